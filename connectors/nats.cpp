#include "connectors/nats.hpp"
#include "engine/thread_name.hpp"

#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "connectors/connector_metrics.hpp"
#include "connectors/encoding.hpp"
#include "connectors/errors.hpp"
#include "engine/registry.hpp"

namespace predflow::connectors {

namespace {

int64_t millis(Duration d) { return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

// `text` (a URL list, or an error about one) without the passwords and tokens in `urls`.
// nats.c reads a server written without a scheme as nats://, so "user:pass@host" and
// "token@host" hide their secrets too.
std::string redact(const std::string& text, const std::string& urls) {
  std::string normalised;
  for (std::size_t start = 0; start <= urls.size();) {
    std::size_t comma = std::min(urls.find(',', start), urls.size());
    std::string one = urls.substr(start, comma - start);
    normalised += (start == 0 ? "" : ",") + (one.find("://") == std::string::npos ? "nats://" + one : one);
    start = comma + 1;
  }
  return redact_secrets(text, url_secrets(normalised));
}

// Statuses that blame the request, not the connection.
bool request_error(natsStatus s) {
  return s == NATS_INVALID_SUBJECT || s == NATS_INVALID_ARG || s == NATS_MAX_PAYLOAD || s == NATS_NO_SERVER_SUPPORT;
}

}  // namespace

NatsResource::NatsResource(std::string name, NatsOptions options, Metrics& metrics)
    : name_(std::move(name)),
      options_(std::move(options)),
      connected_gauge_(connected_gauge(metrics, name_, "nats")),
      backoff_(options_.reconnect) {
  connected_gauge_.Set(0);
}

NatsResource::~NatsResource() {
  stop();
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

std::string NatsResource::prefix() const { return "nats resource '" + name_ + "' (" + redact(options_.url, options_.url) + "): "; }

std::string NatsResource::last_error(natsStatus s) const {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  std::string out = natsStatus_GetText(s);
  if (text && *text && std::string(text) != out) out += " (" + std::string(text) + ")";
  return redact(out, options_.url);  // nats.c's texts may quote the URL
}

void NatsResource::start() {
  if (nc_) return;
  // nats.c starts its own threads (timers, callbacks, garbage collection) on first use and
  // the connection's (reader, flusher) here: they take this name (pf:bus:nats), not the
  // caller's.
  ScopedThreadName name(name_, ":nats");
  natsOptions* raw = nullptr;
  if (natsOptions_Create(&raw) != NATS_OK) throw std::runtime_error(prefix() + "cannot create options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> opts(raw, natsOptions_Destroy);
  auto check = [&](natsStatus s, const char* what) {
    if (s != NATS_OK) throw std::runtime_error(prefix() + what + ": " + last_error(s));
  };
  check(natsOptions_SetURL(raw, options_.url.c_str()), "url");
  check(natsOptions_SetName(raw, options_.client_name.c_str()), "name");
  check(natsOptions_SetTimeout(raw, millis(options_.timeout)), "timeout");
  check(natsOptions_SetAllowReconnect(raw, true), "reconnect");
  check(natsOptions_SetMaxReconnect(raw, -1), "reconnect");  // forever
  check(natsOptions_SetCustomReconnectDelay(raw, &NatsResource::reconnect_delay, this), "reconnect delay");
  check(natsOptions_SetReconnectBufSize(raw, static_cast<int>(std::min<std::uint64_t>(options_.reconnect_buffer, 1u << 30))),
        "reconnect buffer");
  check(natsOptions_SetRetryOnFailedConnect(raw, true, &NatsResource::on_connected, this), "retry on failed connect");
  check(natsOptions_SetDisconnectedCB(raw, &NatsResource::on_disconnected, this), "callbacks");
  check(natsOptions_SetReconnectedCB(raw, &NatsResource::on_reconnected, this), "callbacks");
  check(natsOptions_SetClosedCB(raw, &NatsResource::on_closed, this), "callbacks");
  check(natsOptions_SetErrorHandler(raw, &NatsResource::on_error, this), "callbacks");

  natsStatus s = natsConnection_Connect(&nc_, raw);
  if (s == NATS_OK) {
    on_connected(nc_, this);
  } else if (s == NATS_NOT_YET_CONNECTED) {
    spdlog::warn("msg=\"connector not reachable at start, retrying in the background\" resource={} type=nats endpoint={}",
                 name_, redact(options_.url, options_.url));
  } else {
    nc_ = nullptr;
    throw std::runtime_error(prefix() + "cannot connect: " + last_error(s));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = millis(options_.timeout);
  if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK) {
    js_ = nullptr;
    throw std::runtime_error(prefix() + "cannot create a JetStream context");
  }
}

void NatsResource::stop() {
  if (!nc_ || natsConnection_IsClosed(nc_)) return;
  // Publishes still in nats.c's buffer go out before the close.
  if (connected()) natsConnection_FlushTimeout(nc_, millis(options_.timeout));
  natsConnection_Close(nc_);
  // The closed callback is the last one nats.c makes with `this`; wait for it.
  std::unique_lock lock(closed_mutex_);
  closed_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return closed_; });
}

bool NatsResource::connected() const {
  return nc_ && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsResource::publish(const std::string& subject, std::string_view data, const Headers& headers) {
  if (!connected()) throw ConnectorError(prefix() + "not connected; publish to " + subject + " not sent");
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) throw CommandError(prefix() + "publish to '" + subject + "': " + last_error(s));
  std::unique_ptr<natsMsg, void (*)(natsMsg*)> msg(raw, natsMsg_Destroy);
  for (const auto& [key, value] : headers)
    if ((s = natsMsgHeader_Set(raw, key.c_str(), value.c_str())) != NATS_OK)
      throw CommandError(prefix() + "header " + key + ": " + last_error(s));
  s = natsConnection_PublishMsg(nc_, raw);
  if (s == NATS_OK) return;
  if (request_error(s)) throw CommandError(prefix() + "publish to '" + subject + "': " + last_error(s));
  throw ConnectorError(prefix() + "publish to '" + subject + "': " + last_error(s));
}

void NatsResource::flush() {
  if (!connected()) throw ConnectorError(prefix() + "not connected");
  natsStatus s = natsConnection_FlushTimeout(nc_, millis(options_.timeout));
  if (s != NATS_OK) throw ConnectorError(prefix() + "flush: " + last_error(s));
}

bool NatsResource::ensure_stream(const std::string& stream, const std::vector<std::string>& subjects, Duration max_age,
                                 std::int64_t max_bytes) {
  if (!connected()) throw ConnectorError(prefix() + "not connected; cannot check stream " + stream);
  auto fail = [&](natsStatus s, jsErrCode jerr, const std::string& what) {
    std::string message = prefix() + what + " " + stream + ": " + last_error(s);
    if (jerr != 0) throw CommandError(message + " (JetStream error " + std::to_string(jerr) + ")", std::to_string(jerr));
    throw ConnectorError(message);
  };
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    std::vector<std::string> missing;
    for (const auto& want : subjects) {
      bool found = false;
      for (int i = 0; info->Config && i < info->Config->SubjectsLen; ++i) found = found || want == info->Config->Subjects[i];
      if (!found) missing.push_back(want);
    }
    jsStreamInfo_Destroy(info);
    for (const auto& m : missing)
      spdlog::warn("msg=\"stream exists without a subject we need; leaving it as it is\" resource={} stream={} subject={}",
                   name_, stream, m);
    return false;
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) fail(s, jerr, "stream info of");

  std::vector<const char*> subject_ptrs;
  for (const auto& sub : subjects) subject_ptrs.push_back(sub.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  cfg.Subjects = subject_ptrs.data();
  cfg.SubjectsLen = static_cast<int>(subject_ptrs.size());
  cfg.Storage = js_FileStorage;
  if (max_age > Duration::zero()) cfg.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(max_age).count();
  if (max_bytes > 0) cfg.MaxBytes = max_bytes;  // beyond it the oldest messages go (Discard: old, JetStream's default)
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&info, js_, &cfg, nullptr, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
    spdlog::info("msg=\"created JetStream stream\" resource={} stream={} subjects={} max_age_s={} max_bytes={}", name_, stream,
                 subjects.size(), std::chrono::duration_cast<std::chrono::seconds>(max_age).count(), max_bytes);
    return true;
  }
  if (jerr == JSStreamNameExistErr) return false;  // another process created it just now
  fail(s, jerr, "cannot create stream");
  return false;
}

void NatsResource::on_connected(natsConnection*, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  r->connected_gauge_.Set(1);
  r->was_connected_ = true;
  {
    std::lock_guard lock(r->backoff_mutex_);
    r->backoff_.reset();
  }
  spdlog::info("msg=\"connected\" resource={} type=nats endpoint={}", r->name_, redact(r->options_.url, r->options_.url));
}

void NatsResource::on_disconnected(natsConnection*, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  r->connected_gauge_.Set(0);
  if (r->was_connected_.exchange(false))
    spdlog::warn("msg=\"disconnected, reconnecting with backoff\" resource={} type=nats endpoint={}", r->name_,
                 redact(r->options_.url, r->options_.url));
}

void NatsResource::on_reconnected(natsConnection*, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  r->connected_gauge_.Set(1);
  r->was_connected_ = true;
  spdlog::info("msg=\"reconnected\" resource={} type=nats endpoint={}", r->name_, redact(r->options_.url, r->options_.url));
}

void NatsResource::on_closed(natsConnection*, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  r->connected_gauge_.Set(0);
  std::lock_guard lock(r->closed_mutex_);
  r->closed_ = true;
  r->closed_cv_.notify_all();
}

void NatsResource::on_error(natsConnection*, natsSubscription* sub, natsStatus s, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  spdlog::warn("msg=\"nats asynchronous error\" resource={} subject={} error=\"{}\"", r->name_,
               sub ? natsSubscription_GetSubject(sub) : "", natsStatus_GetText(s));
}

int64_t NatsResource::reconnect_delay(natsConnection*, int attempts, void* self) {
  auto* r = static_cast<NatsResource*>(self);
  std::lock_guard lock(r->backoff_mutex_);
  return millis(r->backoff_.at(std::max(attempts - 1, 0)));
}

NatsOptions nats_options(const NodeConfig& config) {
  NatsOptions o;
  o.url = config.get_string("url");
  o.client_name = config.get_string("name");
  o.timeout = config.get_duration("timeout");
  o.reconnect.initial = config.get_duration("backoff_initial");
  o.reconnect.max = config.get_duration("backoff_max");
  o.reconnect_buffer = config.get_size("reconnect_buffer");
  return o;
}

namespace {

ResourceSpec nats_spec() {
  ResourceSpec spec{"nats",
                    "NATS client (nats.c) with JetStream: one connection that reconnects forever with backoff",
                    {}};
  spec.fields = {
      field::string("url").default_value("${NATS_URL:-nats://127.0.0.1:4222}").describe(
          "nats://host:port, or several separated by commas"),
      field::string("name").default_value("predflow").describe("Client name the server shows for this connection"),
      field::duration("timeout").default_value("2s").at_least(0.001).describe(
          "Connect timeout, and the wait for a flush or a JetStream API answer"),
      field::duration("backoff_initial")
          .default_value("100ms")
          .at_least(0)
          .describe("Upper bound of the first wait before reconnecting; doubles per failed attempt (full jitter)"),
      field::duration("backoff_max").default_value("5s").at_least(0).describe("Upper bound of any reconnect wait"),
      field::size("reconnect_buffer").default_value("8MiB").at_least(1).describe(
          "Bytes nats.c holds for publishes that race a disconnect (publishing while disconnected fails instead)"),
  };
  return spec;
}

std::shared_ptr<Resource> make_nats(const std::string& name, const NodeConfig& config, Metrics& metrics) {
  return std::make_shared<NatsResource>(name, nats_options(config), metrics);
}

}  // namespace

PREDFLOW_REGISTER_RESOURCE(nats_spec(), make_nats);

}  // namespace predflow::connectors
