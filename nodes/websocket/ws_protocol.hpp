// The WebSocket protocol of ws_sink (docs/nodes.md), without any networking: client frames
// parsed into requests, server frames built, a client's subscription set, its per-second
// frame limit and its held (coalesced, bounded) updates. ws_server.cpp puts these on
// sockets; the unit tests drive them directly. Every cost here is bounded by the size of
// the client's frame: a hostile client can make the server do no more than read it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace predflow::ws {

using Clock = std::chrono::steady_clock;
using Json = std::shared_ptr<const std::string>;  // one prediction's JSON, shared by every client

// The symbol pattern of announcements and predictions: ^[A-Z0-9][A-Z0-9.\-]{0,14}$.
bool valid_symbol(std::string_view symbol);

// A client's subscribe / unsubscribe request.
struct ClientRequest {
  enum class Action { Subscribe, Unsubscribe };
  Action action = Action::Subscribe;
  std::vector<std::string> symbols;  // valid symbols or "*", at least one
};

// Containers nested deeper than this make a frame malformed. A valid frame needs two (the
// object and its `symbols` list); the rest is room for fields a client may add. The parse
// keeps nothing deeper, so no later step (an error message's quote, the value's
// destructor) ever walks a deep value, whatever the frame holds.
inline constexpr int kMaxFrameNesting = 16;

// The request in one client frame, or the message of the `error` frame to answer with:
// text that is not JSON, nested deeper than kMaxFrameNesting, not an object, without a
// string `action`, an unknown action, `symbols` missing, not a list, empty, or holding
// something that is not a symbol or "*". The message quotes at most ~40 bytes of the frame.
std::variant<ClientRequest, std::string> parse_client_frame(std::string_view text);

// What one client subscribed to: explicit symbols and/or every symbol ("*").
class Subscription {
 public:
  // A client cannot grow its set without bound: at most this many explicit symbols ("*"
  // covers any number). The default is ws_sink's `max_subscribed_symbols`.
  static constexpr std::size_t kDefaultMaxSymbols = 10000;
  explicit Subscription(std::size_t max_symbols = kDefaultMaxSymbols) : max_(max_symbols) {}

  // Applies a request; on error (too many symbols) nothing changes and the message is returned.
  std::optional<std::string> apply(const ClientRequest& request);
  bool matches(std::string_view symbol) const { return wildcard_ || symbols_.count(symbol) != 0; }
  bool wildcard() const { return wildcard_; }
  bool empty() const { return !wildcard_ && symbols_.empty(); }
  const std::set<std::string, std::less<>>& symbols() const { return symbols_; }
  // Entries, with "*" counted as one (the subscriptions gauge).
  std::size_t size() const { return symbols_.size() + (wildcard_ ? 1 : 0); }
  std::size_t max_symbols() const { return max_; }

 private:
  std::size_t max_;
  bool wildcard_ = false;
  std::set<std::string, std::less<>> symbols_;
};

// Entries a `subscribed` frame lists at most: a reply stays under ~20 KB however large the
// set (a client sending many subscribe frames gets many replies; each must stay small).
inline constexpr std::size_t kMaxListedSymbols = 1000;

// {"type":"subscribed","symbols":[…],"count":N,"truncated":false}: the client's set after
// the change, "*" first when subscribed to every symbol, then the explicit symbols in
// order — the first `max_listed` of them; `count` is the whole set's size ("*" counts as
// one) and `truncated` says whether the list is shorter than that.
std::string subscribed_frame(const Subscription& subscription, std::size_t max_listed = kMaxListedSymbols);
// {"type":"error","message":"…"}
std::string error_frame(std::string_view message);
// {"type":"predictions","data":[…]} from predictions already serialised.
std::string predictions_frame(const std::vector<Json>& predictions);
// The predictions as frames of at most `max_bytes` each (a single larger prediction gets a
// frame of its own), in order.
std::vector<Json> predictions_frames(const std::vector<Json>& predictions, std::size_t max_bytes);

// One batch of predictions as every client sees it: serialised once, newest per symbol.
struct Update {
  struct Row {
    std::string symbol;
    Json json;
  };
  Update() = default;
  Update(const Update&) = delete;  // `index` points into `rows`
  Update& operator=(const Update&) = delete;

  std::vector<Row> rows;
  std::unordered_map<std::string_view, std::uint32_t> index;  // symbol → row
  std::vector<Json> all_frames;  // every row as predictions frames, for "*" subscribers
  Clock::time_point created = Clock::now();
};
// Builds an update; a symbol that appears twice keeps its last row (newest wins).
std::shared_ptr<const Update> make_update(std::vector<Update::Row> rows, std::size_t max_frame_bytes);

// At most `limit` sends in any one-second span: a send at t is allowed when fewer than
// `limit` sends happened in (t − 1 s, t], so that no half-open span [a, a + 1 s) ever
// holds more than `limit`. Keeps the last `limit` send times (a sliding log, exact; a
// token bucket would allow a burst of `limit` right after a full second).
class RateLimiter {
 public:
  explicit RateLimiter(std::size_t limit, Clock::duration span = std::chrono::seconds(1));
  bool allowed(Clock::time_point now) const { return next_allowed() <= now; }
  // The earliest time a send is allowed (a time in the past when one is allowed now).
  Clock::time_point next_allowed() const;
  void record(Clock::time_point now);

 private:
  std::vector<Clock::time_point> sends_;  // ring of the last `limit` send times
  std::size_t next_ = 0, count_ = 0;
  Clock::duration span_;
};

// Updates held for one client between its frames: newest per symbol, oldest first, at most
// `max_symbols` (an update for a held symbol replaces it and becomes the newest; beyond
// the bound the oldest is dropped).
class HeldUpdates {
 public:
  explicit HeldUpdates(std::size_t max_symbols) : max_(max_symbols) {}
  HeldUpdates(const HeldUpdates&) = delete;  // index_ points into entries_
  HeldUpdates& operator=(const HeldUpdates&) = delete;

  enum class Put { Added, Coalesced, AddedDroppingOldest };
  Put put(const std::string& symbol, Json json);
  // The oldest updates whose JSON adds up to at most `max_bytes` (at least one), removed.
  std::vector<Json> take(std::size_t max_bytes);
  // Removes the updates for which `drop(symbol)` holds; returns how many.
  std::size_t erase_if(const std::function<bool(std::string_view)>& drop);
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string symbol;
    Json json;
  };
  std::size_t max_;
  std::list<Entry> entries_;  // oldest first; nodes never move, so index_ keys stay valid
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
};

}  // namespace predflow::ws
