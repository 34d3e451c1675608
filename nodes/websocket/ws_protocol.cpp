#include "nodes/websocket/ws_protocol.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace predflow::ws {

bool valid_symbol(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  auto alnum = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(s[0])) return false;
  return std::all_of(s.begin() + 1, s.end(), [&](char c) { return alnum(c) || c == '.' || c == '-'; });
}

namespace {
// A value quoted for an error message, shortened: the client's own text echoed back. Only a
// scalar is rendered (a string cut before it is escaped); a list or an object is shown by
// its shape alone, so that the cost never depends on what it holds.
std::string quoted(const nlohmann::json& value) {
  constexpr std::size_t kLongest = 40;
  if (value.is_array()) return value.empty() ? "[]" : "[...]";
  if (value.is_object()) return value.empty() ? "{}" : "{...}";
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (s.size() <= kLongest - 2) return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string text =
        nlohmann::json(s.substr(0, kLongest - 5)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.insert(text.size() - 1, "...");
    return text;
  }
  std::string text = value.dump();  // a number, true, false or null: short
  if (text.size() > kLongest) text = text.substr(0, kLongest - 3) + "...";
  return text;
}

// Parses with containers deeper than kMaxFrameNesting discarded as they start (nlohmann's
// parser is iterative, so the text itself costs a few bytes per level; only the value
// kept could be walked recursively later). Sets `too_deep` when anything was discarded.
nlohmann::json parse_bounded(std::string_view text, bool& too_deep) {
  too_deep = false;
  auto keep = [&too_deep](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxFrameNesting) too_deep = true;
    return !(opens && depth >= kMaxFrameNesting);
  };
  return nlohmann::json::parse(text.begin(), text.end(), keep, /*allow_exceptions=*/false);
}
}  // namespace

std::variant<ClientRequest, std::string> parse_client_frame(std::string_view text) {
  bool too_deep = false;
  nlohmann::json j = parse_bounded(text, too_deep);
  if (j.is_discarded()) return std::string("malformed frame: not valid JSON");
  if (too_deep)
    return "malformed frame: nested deeper than " + std::to_string(kMaxFrameNesting) + " levels";
  if (!j.is_object()) return std::string("malformed frame: expected a JSON object");
  auto action = j.find("action");
  if (action == j.end() || !action->is_string()) return std::string("malformed frame: missing \"action\"");
  ClientRequest request;
  const std::string& name = action->get_ref<const std::string&>();
  if (name == "subscribe") request.action = ClientRequest::Action::Subscribe;
  else if (name == "unsubscribe") request.action = ClientRequest::Action::Unsubscribe;
  else return "unknown action " + quoted(*action) + " (expected \"subscribe\" or \"unsubscribe\")";
  auto symbols = j.find("symbols");
  if (symbols == j.end() || !symbols->is_array())
    return std::string("malformed frame: \"symbols\" must be a list of symbols, or [\"*\"]");
  if (symbols->empty()) return std::string("malformed frame: \"symbols\" is empty");
  request.symbols.reserve(symbols->size());
  for (const auto& s : *symbols) {
    if (!s.is_string() || (s.get_ref<const std::string&>() != "*" && !valid_symbol(s.get_ref<const std::string&>())))
      return "invalid symbol " + quoted(s) + " (expected ^[A-Z0-9][A-Z0-9.-]{0,14}$ or \"*\")";
    request.symbols.push_back(s.get<std::string>());
  }
  return request;
}

std::optional<std::string> Subscription::apply(const ClientRequest& request) {
  if (request.action == ClientRequest::Action::Unsubscribe) {
    for (const auto& s : request.symbols) {
      if (s == "*") {  // "*" ends every subscription, explicit ones included
        wildcard_ = false;
        symbols_.clear();
      } else {
        symbols_.erase(s);
      }
    }
    return std::nullopt;
  }
  // The distinct symbols this request adds (a request may name one twice).
  std::vector<std::string_view> added;
  for (const auto& s : request.symbols)
    if (s != "*" && symbols_.count(s) == 0) added.push_back(s);
  std::sort(added.begin(), added.end());
  added.erase(std::unique(added.begin(), added.end()), added.end());
  if (symbols_.size() + added.size() > max_)
    return "too many subscriptions: at most " + std::to_string(max_) + " symbols per client (or \"*\"); " +
           std::to_string(symbols_.size()) + " held, this request adds " + std::to_string(added.size());
  for (const auto& s : request.symbols) {
    if (s == "*") wildcard_ = true;
    else symbols_.insert(s);
  }
  return std::nullopt;
}

std::string subscribed_frame(const Subscription& subscription, std::size_t max_listed) {
  nlohmann::json symbols = nlohmann::json::array();
  if (subscription.wildcard() && symbols.size() < max_listed) symbols.push_back("*");
  for (const auto& s : subscription.symbols()) {
    if (symbols.size() >= max_listed) break;
    symbols.push_back(s);
  }
  const bool truncated = symbols.size() < subscription.size();
  return nlohmann::json{{"type", "subscribed"},
                        {"symbols", std::move(symbols)},
                        {"count", subscription.size()},
                        {"truncated", truncated}}
      .dump();
}

std::string error_frame(std::string_view message) {
  return nlohmann::json{{"type", "error"}, {"message", message}}.dump(-1, ' ', false,
                                                                      nlohmann::json::error_handler_t::replace);
}

namespace {
constexpr std::string_view kHead = R"({"type":"predictions","data":[)";
constexpr std::string_view kTail = "]}";
}  // namespace

std::string predictions_frame(const std::vector<Json>& predictions) {
  std::size_t bytes = kHead.size() + kTail.size() + predictions.size();
  for (const auto& p : predictions) bytes += p->size();
  std::string frame;
  frame.reserve(bytes);
  frame += kHead;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    if (i) frame += ',';
    frame += *predictions[i];
  }
  frame += kTail;
  return frame;
}

std::vector<Json> predictions_frames(const std::vector<Json>& predictions, std::size_t max_bytes) {
  std::vector<Json> frames;
  std::vector<Json> part;
  std::size_t bytes = kHead.size() + kTail.size();
  for (const auto& p : predictions) {
    const std::size_t add = p->size() + (part.empty() ? 0 : 1);
    if (!part.empty() && bytes + add > max_bytes) {
      frames.push_back(std::make_shared<const std::string>(predictions_frame(part)));
      part.clear();
      bytes = kHead.size() + kTail.size();
    }
    bytes += p->size() + (part.empty() ? 0 : 1);
    part.push_back(p);
  }
  if (!part.empty()) frames.push_back(std::make_shared<const std::string>(predictions_frame(part)));
  return frames;
}

std::shared_ptr<const Update> make_update(std::vector<Update::Row> rows, std::size_t max_frame_bytes) {
  auto update = std::make_shared<Update>();
  update->rows.reserve(rows.size());  // never reallocates below: `index` points into it
  update->index.reserve(rows.size());
  for (auto& row : rows) {
    if (auto it = update->index.find(row.symbol); it != update->index.end()) {
      update->rows[it->second].json = std::move(row.json);  // a later row of the same symbol is newer
      continue;
    }
    update->rows.push_back(std::move(row));
    update->index.emplace(update->rows.back().symbol, static_cast<std::uint32_t>(update->rows.size() - 1));
  }
  std::vector<Json> all;
  all.reserve(update->rows.size());
  for (const auto& row : update->rows) all.push_back(row.json);
  update->all_frames = predictions_frames(all, max_frame_bytes);
  return update;
}

RateLimiter::RateLimiter(std::size_t limit, Clock::duration span)
    : sends_(std::max<std::size_t>(1, limit)), span_(span) {}

Clock::time_point RateLimiter::next_allowed() const {
  if (count_ == 0) return Clock::time_point::min();
  // Paced: at least span / limit after the last send, so that a burst of updates is
  // spread over frames that coalesce what arrived meanwhile, instead of `limit` frames at
  // once and then a wait for the rest of the span (the last update of a 5,000-symbol
  // burst reached a client about 1 s after it was stored).
  const auto last = sends_[(next_ + sends_.size() - 1) % sends_.size()];
  const auto paced = last + span_ / static_cast<Clock::duration::rep>(sends_.size());
  if (count_ < sends_.size()) return paced;
  return std::max(paced, sends_[next_] + span_);  // and the oldest of the last `limit` sends must leave the span
}

void RateLimiter::record(Clock::time_point now) {
  sends_[next_] = now;
  next_ = (next_ + 1) % sends_.size();
  count_ = std::min(count_ + 1, sends_.size());
}

HeldUpdates::Put HeldUpdates::put(const std::string& symbol, Json json) {
  if (auto it = index_.find(symbol); it != index_.end()) {
    it->second->json = std::move(json);
    entries_.splice(entries_.end(), entries_, it->second);  // now the newest
    return Put::Coalesced;
  }
  entries_.push_back({symbol, std::move(json)});
  index_.emplace(entries_.back().symbol, std::prev(entries_.end()));
  if (entries_.size() <= max_) return Put::Added;
  index_.erase(entries_.front().symbol);
  entries_.pop_front();
  return Put::AddedDroppingOldest;
}

std::vector<Json> HeldUpdates::take(std::size_t max_bytes) {
  std::vector<Json> out;
  std::size_t bytes = 0;
  while (!entries_.empty()) {
    const std::size_t add = entries_.front().json->size() + 1;
    if (!out.empty() && bytes + add > max_bytes) break;
    bytes += add;
    out.push_back(std::move(entries_.front().json));
    index_.erase(entries_.front().symbol);
    entries_.pop_front();
  }
  return out;
}

std::size_t HeldUpdates::erase_if(const std::function<bool(std::string_view)>& drop) {
  std::size_t n = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (drop(it->symbol)) {
      index_.erase(it->symbol);
      it = entries_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace predflow::ws
