#include "connectors/redis.hpp"

#include <poll.h>
#include <signal.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <exception>
#include <new>
#include <stdexcept>

#include "engine/registry.hpp"

namespace predflow::connectors {

namespace {

timeval to_timeval(Duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

RedisReply convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::String; out.str.assign(r.str, r.len); break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::Status; out.str.assign(r.str, r.len); break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::Error; out.str.assign(r.str, r.len); break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::Integer; out.integer = r.integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
      break;
    default: out.type = RedisReply::Type::Nil;
  }
  return out;
}

// An idle pooled connection that has something to read is either closed by the server
// (EOF: a restart, a timeout) or out of step; either way it must not be used.
bool unusable_idle(redisContext* c) {
  if (c->err) return true;
  pollfd p{c->fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
  char byte;
  ssize_t n = ::recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

// An error reply that means "the server is not serving now" rather than "bad request".
bool unavailable_error(const std::string& e) {
  return e.rfind("LOADING", 0) == 0 || e.rfind("BUSY", 0) == 0 || e.rfind("MASTERDOWN", 0) == 0 ||
         e.rfind("TRYAGAIN", 0) == 0;
}

// hiredis writes with write(2): a server that closed the connection would raise SIGPIPE
// and kill the process. Ignore it (unless someone installed a handler); writes then fail
// with EPIPE, which hiredis reports as an I/O error.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  });
}

std::string error_code(const std::string& e) { return e.substr(0, e.find(' ')); }

// argv for redisAppendCommandArgv without copying the strings.
struct Argv {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  void clear() { ptrs.clear(), lens.clear(); }
  void add(std::string_view s) { ptrs.push_back(s.data()), lens.push_back(s.size()); }
  void append_to(redisContext* c) const {
    if (redisAppendCommandArgv(c, static_cast<int>(ptrs.size()), const_cast<const char**>(ptrs.data()), lens.data()) !=
        REDIS_OK)
      throw std::bad_alloc();  // hiredis fails here only when out of memory
  }
};

}  // namespace

class RedisResource::Lease {
 public:
  Lease(RedisResource& owner, redisContext* c) : owner_(owner), c_(c) {}
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { owner_.give_back(c_); }
  redisContext* get() const { return c_; }

 private:
  RedisResource& owner_;
  redisContext* c_;
};

RedisResource::RedisResource(std::string name, RedisOptions options, Metrics& metrics)
    : GuardedResource(std::move(name), "redis", options.endpoint.display(), options.guard, metrics),
      options_(std::move(options)),
      free_slots_(std::max(options_.pool_size, 1)) {
  if (options_.mget_chunk == 0) options_.mget_chunk = 1000;
  ignore_sigpipe();
}

RedisResource::~RedisResource() { stop(); }

void RedisResource::stop() {
  GuardedResource::stop();
  std::lock_guard lock(pool_mutex_);
  stopped_ = true;
  for (redisContext* c : idle_) redisFree(c);
  free_slots_ += static_cast<int>(idle_.size());
  idle_.clear();
  pool_cv_.notify_all();
}

redisContext* RedisResource::take(bool trial) {
  std::unique_lock lock(pool_mutex_);
  if (stopped_) throw ConnectorError(prefix() + "stopped");
  if (!pool_cv_.wait_for(lock, options_.timeout, [this] { return stopped_ || !idle_.empty() || free_slots_ > 0; }))
    throw ConnectorError(prefix() + "no free connection in the pool within " + format_duration(options_.timeout));
  if (stopped_) throw ConnectorError(prefix() + "stopped");
  while (!idle_.empty()) {
    redisContext* c = idle_.back();
    idle_.pop_back();
    if (!unusable_idle(c)) return c;
    spdlog::debug("msg=\"dropping a pooled connection the server closed\" resource={} endpoint={}", name_, endpoint_);
    redisFree(c);
    ++free_slots_;
  }
  --free_slots_;
  lock.unlock();
  try {
    return connect(trial);
  } catch (...) {
    lock.lock();
    ++free_slots_;
    pool_cv_.notify_one();
    throw;
  }
}

void RedisResource::give_back(redisContext* c) {
  std::lock_guard lock(pool_mutex_);
  if (c->err || stopped_) {
    redisFree(c);
    ++free_slots_;
  } else {
    idle_.push_back(c);
  }
  pool_cv_.notify_one();
}

redisContext* open_redis_connection(const RedisEndpoint& ep, Duration timeout, std::string& error) {
  redisContext* c = redisConnectWithTimeout(ep.host.c_str(), ep.port, to_timeval(timeout));
  if (!c) error = "cannot allocate a connection";
  else if (c->err) error = c->errstr;
  if (error.empty()) {
    redisSetTimeout(c, to_timeval(timeout));
    redisEnableKeepAlive(c);
    // AUTH and SELECT in one round trip.
    Argv auth, select;
    std::string db = std::to_string(ep.db);
    int expect = 0;
    if (ep.password) {
      auth.add("AUTH");
      if (ep.username) auth.add(*ep.username);
      auth.add(*ep.password);
      auth.append_to(c);
      ++expect;
    }
    if (ep.db != 0) {
      select.add("SELECT"), select.add(db);
      select.append_to(c);
      ++expect;
    }
    for (int i = 0; i < expect && error.empty(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(c, &raw) != REDIS_OK || !raw) {
        error = c->errstr[0] ? c->errstr : "connection lost during set-up";
        break;
      }
      auto* r = static_cast<redisReply*>(raw);
      if (r->type == REDIS_REPLY_ERROR) error = (i == 0 && ep.password ? "AUTH: " : "SELECT: ") + std::string(r->str, r->len);
      freeReplyObject(r);
    }
  }
  if (!error.empty()) {
    if (c) redisFree(c);
    return nullptr;
  }
  return c;
}

redisContext* RedisResource::connect(bool trial) {
  check_connect_allowed(trial);
  std::string error;
  redisContext* c = open_redis_connection(options_.endpoint, options_.timeout, error);
  if (!c) {
    connect_failed(error);
    throw ConnectorError(prefix() + "cannot connect: " + error);
  }
  connects_.fetch_add(1);
  connect_succeeded();
  return c;
}

void RedisResource::round_trip(std::size_t commands, const Appender& append, const ReplyHandler& on_reply) {
  guarded([&](bool trial) {
    Lease lease(*this, take(trial));
    redisContext* c = lease.get();
    try {
      append(c);
    } catch (...) {
      c->err = REDIS_ERR_OTHER;  // half a pipeline is queued: never pool this connection again
      throw;
    }
    round_trips_.fetch_add(1);
    commands_.fetch_add(commands);
    count_round_trips(1);
    std::exception_ptr first_error;
    for (std::size_t i = 0; i < commands; ++i) {
      void* raw = nullptr;
      if (c->err || redisGetReply(c, &raw) != REDIS_OK || !raw) {
        instruments_.connected->Set(0);
        std::string why = c->errstr;
        if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
          why = "no reply within " + format_duration(options_.timeout);
        if (!c->err) c->err = REDIS_ERR_OTHER;  // never pool it again
        throw ConnectorError(prefix() + (why.empty() ? "connection lost" : why));
      }
      std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw), freeReplyObject);
      if (first_error) continue;  // keep reading, so the connection stays in step
      try {
        on_reply(i, *reply);
      } catch (...) {
        first_error = std::current_exception();
      }
    }
    instruments_.connected->Set(1);
    if (first_error) std::rethrow_exception(first_error);
  });
}

std::vector<std::optional<std::string>> RedisResource::mget(std::span<const std::string> keys, std::size_t chunk) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  if (chunk == 0) chunk = options_.mget_chunk;
  const std::size_t chunks = (keys.size() + chunk - 1) / chunk;
  Argv argv;
  argv.ptrs.reserve(std::min(chunk, keys.size()) + 1);
  argv.lens.reserve(argv.ptrs.capacity());
  round_trip(
      chunks,
      [&](redisContext* c) {
        for (std::size_t begin = 0; begin < keys.size(); begin += chunk) {
          argv.clear();
          argv.add("MGET");
          for (std::size_t i = begin; i < std::min(begin + chunk, keys.size()); ++i) argv.add(keys[i]);
          argv.append_to(c);
        }
      },
      [&](std::size_t index, const redisReply& r) {
        if (r.type == REDIS_REPLY_ERROR) {
          std::string e(r.str, r.len);
          if (unavailable_error(e)) throw ConnectorError(prefix() + e);
          throw CommandError(prefix() + "MGET: " + e, error_code(e));
        }
        const std::size_t begin = index * chunk;
        const std::size_t n = std::min(chunk, keys.size() - begin);
        if (r.type != REDIS_REPLY_ARRAY || r.elements != n)
          throw CommandError(prefix() + "MGET: unexpected reply shape");
        for (std::size_t i = 0; i < n; ++i) {
          const redisReply* e = r.element[i];
          if (e->type == REDIS_REPLY_STRING) out[begin + i].emplace(e->str, e->len);
        }
      });
  return out;
}

std::vector<RedisReply> RedisResource::pipeline(std::span<const RedisCommand> commands) {
  std::vector<RedisReply> out(commands.size());
  if (commands.empty()) return out;
  for (const auto& cmd : commands)
    if (cmd.empty()) throw std::invalid_argument("redis pipeline: an empty command");
  Argv argv;
  round_trip(
      commands.size(),
      [&](redisContext* c) {
        for (const auto& cmd : commands) {
          argv.clear();
          for (const auto& arg : cmd) argv.add(arg);
          argv.append_to(c);
        }
      },
      [&](std::size_t index, const redisReply& r) { out[index] = convert(r); });
  return out;
}

void RedisResource::set_with_ttl(std::span<const std::pair<std::string, std::string>> items, std::chrono::seconds ttl) {
  if (items.empty()) return;
  if (ttl.count() < 1) throw std::invalid_argument("redis set_with_ttl: the TTL must be at least 1s");
  const std::string ttl_text = std::to_string(ttl.count());
  Argv argv;
  std::size_t failed = 0;
  std::string first;
  round_trip(
      items.size(),
      [&](redisContext* c) {
        for (const auto& [key, value] : items) {
          argv.clear();
          argv.add("SET"), argv.add(key), argv.add(value), argv.add("EX"), argv.add(ttl_text);
          argv.append_to(c);
        }
      },
      [&](std::size_t index, const redisReply& r) {
        if (r.type != REDIS_REPLY_ERROR) return;
        std::string e(r.str, r.len);
        if (unavailable_error(e)) throw ConnectorError(prefix() + e);
        if (failed++ == 0) first = "SET " + items[index].first + ": " + e;
      });
  if (failed)
    throw CommandError(prefix() + std::to_string(failed) + " of " + std::to_string(items.size()) +
                           " SETs refused; first: " + first,
                       error_code(first.substr(first.find(": ") + 2)));
}

void RedisResource::ping() {
  round_trip(
      1, [](redisContext* c) { redisAppendCommand(c, "PING"); },
      [this](std::size_t, const redisReply& r) {
        std::string text = r.str ? std::string(r.str, r.len) : "";
        if (r.type == REDIS_REPLY_STATUS && text == "PONG") return;
        if (r.type == REDIS_REPLY_ERROR && unavailable_error(text)) throw ConnectorError(prefix() + text);
        throw CommandError(prefix() + "PING answered '" + text + "'", error_code(text));
      });
}

RedisResource::Stats RedisResource::stats() const {
  return Stats{round_trips_.load(), commands_.load(), connects_.load()};
}

RedisOptions redis_options(const NodeConfig& config) {
  RedisOptions o;
  o.endpoint = parse_redis_url(config.get_string("url"));
  if (config.has("password") && !config.get_string("password").empty()) o.endpoint.password = config.get_string("password");
  o.pool_size = static_cast<int>(config.get_int("pool_size"));
  o.timeout = config.get_duration("timeout");
  o.mget_chunk = static_cast<std::size_t>(config.get_int("mget_chunk"));
  o.guard = guard_options(config);
  return o;
}

namespace {

ResourceSpec redis_spec() {
  ResourceSpec spec{"redis",
                    "Redis client: a pool of connections with pipelining, chunked MGET, reconnects with backoff and "
                    "a circuit breaker",
                    {}};
  spec.fields = {
      field::string("url")
          .default_value("${REDIS_URL:-redis://127.0.0.1:6379/0}")
          .describe("redis://[[user]:password@]host[:port][/db]"),
      field::string("password").hide().describe("AUTH password; replaces one given in url"),
      field::integer("pool_size").default_value("4").at_least(1).at_most(256).in_unit("connections").describe(
          "Connections kept open; calls beyond this wait for a free one (up to timeout)"),
      field::duration("timeout").default_value("2s").at_least(0.001).describe(
          "Connect timeout, and the longest wait for any one read or write"),
      field::integer("mget_chunk").default_value("1000").at_least(1).in_unit("keys").describe(
          "Keys per MGET command; a large MGET is split into several, sent together in one round trip"),
  };
  for (auto& f : guard_fields()) spec.fields.push_back(std::move(f));
  return spec;
}

std::shared_ptr<Resource> make_redis(const std::string& name, const NodeConfig& config, Metrics& metrics) {
  RedisOptions options;
  try {
    options = redis_options(config);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("resource " + name + " (redis): url: " + e.what());
  }
  return std::make_shared<RedisResource>(name, std::move(options), metrics);
}

}  // namespace

PREDFLOW_REGISTER_RESOURCE(redis_spec(), make_redis);

}  // namespace predflow::connectors
