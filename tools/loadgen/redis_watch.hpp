// Which `pred:{symbol}` keys were written, and when, without polling them: Redis's
// client-side-caching invalidations in broadcast mode (CLIENT TRACKING … BCAST PREFIX pred:,
// Redis 6 and later; no server setting changes). Every write of a key under the prefix makes
// the server push the key's name to our subscriber connection at the end of that event-loop
// turn, so the time we read it is within a round trip of the write.
//
// Why: polling 100,000 keys with MGET every 10 ms fetched each prediction (about 300 bytes)
// again and again; at that size one poll took about a second and the poller and Redis used
// as much CPU as predflow itself on a 2-core machine. With the watch, loadgen fetches a key
// only after it was written (to check the correlation id), once per write.
#pragma once

#include <hiredis/hiredis.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connectors/redis.hpp"

namespace predflow::loadgen {

class RedisWriteWatch {
 public:
  using Clock = std::chrono::steady_clock;
  struct Write {
    std::size_t index;  // into the symbols given to the constructor
    Clock::time_point at;
  };

  // Throws std::runtime_error when the server cannot do it (older than Redis 6, no rights).
  RedisWriteWatch(const connectors::RedisEndpoint& ep, const std::vector<std::string>& symbols, const std::string& prefix) {
    for (std::size_t i = 0; i < symbols.size(); ++i) index_.emplace(prefix + symbols[i], i);
    try {
      subscriber_ = connect(ep);
      tracker_ = connect(ep);
      const long long id = command(subscriber_, {"CLIENT", "ID"}).integer;
      expect_array(command(subscriber_, {"SUBSCRIBE", "__redis__:invalidate"}), "SUBSCRIBE");
      const auto ok = command(tracker_, {"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(id), "BCAST", "PREFIX", prefix});
      if (ok.type != REDIS_REPLY_STATUS) throw std::runtime_error("CLIENT TRACKING: unexpected reply");
    } catch (...) {
      close();
      throw;
    }
    reader_ = std::thread([this] { read_loop(); });
  }
  ~RedisWriteWatch() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    close();
  }
  RedisWriteWatch(const RedisWriteWatch&) = delete;
  RedisWriteWatch& operator=(const RedisWriteWatch&) = delete;

  // Forget what was written so far (call before a cycle's announcements go out).
  void clear() {
    std::lock_guard lock(mutex_);
    written_.clear();
  }
  // The keys written since the last take(), each with the time of its latest write; waits up
  // to `wait` for the first one. Empty after `wait`, or once the watch failed.
  std::vector<Write> take(Clock::duration wait) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, wait, [&] { return !written_.empty() || failed_; });
    std::vector<Write> out;
    out.reserve(written_.size());
    for (const auto& [i, at] : written_) out.push_back({i, at});
    written_.clear();
    return out;
  }
  bool failed() const { return failed_; }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  struct Reply {
    int type = REDIS_REPLY_NIL;
    long long integer = 0;
  };

  static redisContext* connect(const connectors::RedisEndpoint& ep) {
    std::string error;
    redisContext* c = connectors::open_redis_connection(ep, std::chrono::seconds(5), error);
    if (!c) throw std::runtime_error("cannot connect to " + ep.display() + ": " + error);
    return c;
  }
  static Reply command(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!r) throw std::runtime_error(args[0] + ": " + (c->errstr[0] ? c->errstr : "connection lost"));
    Reply out{r->type, r->integer};
    std::string error = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "";
    freeReplyObject(r);
    if (!error.empty()) throw std::runtime_error(args[0] + " " + (args.size() > 1 ? args[1] : "") + ": " + error);
    return out;
  }
  static void expect_array(const Reply& r, const char* what) {
    if (r.type != REDIS_REPLY_ARRAY) throw std::runtime_error(std::string(what) + ": unexpected reply");
  }

  void read_loop() {
    while (!stop_) {
      pollfd p{subscriber_->fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      if (redisBufferRead(subscriber_) != REDIS_OK) return fail(subscriber_->errstr);
      void* raw = nullptr;
      while (redisGetReplyFromReader(subscriber_, &raw) == REDIS_OK && raw) {
        on_message(*static_cast<redisReply*>(raw));
        freeReplyObject(raw);
        raw = nullptr;
      }
      if (subscriber_->err) return fail(subscriber_->errstr);
    }
  }
  // ["message", "__redis__:invalidate", [key, …]]; a null list means the server flushed
  // everything, which no cycle expects: counted as no write.
  void on_message(const redisReply& r) {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3 || r.element[2]->type != REDIS_REPLY_ARRAY) return;
    const auto now = Clock::now();
    const redisReply& keys = *r.element[2];
    std::lock_guard lock(mutex_);
    for (std::size_t k = 0; k < keys.elements; ++k) {
      const redisReply& key = *keys.element[k];
      if (key.type != REDIS_REPLY_STRING) continue;
      if (auto it = index_.find(std::string(key.str, key.len)); it != index_.end()) written_[it->second] = now;
    }
    if (!written_.empty()) cv_.notify_all();
  }
  void fail(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      error_ = "the write watch stopped: " + why;
      failed_ = true;
    }
    cv_.notify_all();
  }
  void close() {
    if (subscriber_) redisFree(subscriber_), subscriber_ = nullptr;
    if (tracker_) redisFree(tracker_), tracker_ = nullptr;
  }

  std::unordered_map<std::string, std::size_t> index_;
  redisContext* subscriber_ = nullptr;  // receives the invalidations
  redisContext* tracker_ = nullptr;     // holds the tracking (redirected to subscriber_)
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::unordered_map<std::size_t, Clock::time_point> written_;
  std::string error_;
};

}  // namespace predflow::loadgen
