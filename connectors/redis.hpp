// The `redis` resource: a small pool of blocking hiredis connections with timeouts, a
// circuit breaker and reconnects with backoff (guarded_resource.hpp). Every call takes one
// connection from the pool for one network round trip: commands are appended to its
// output buffer and sent together, then the replies are read in order (pipelining).
//
//   auto redis = ctx.resource<connectors::RedisResource>("redis");
//   auto values = redis->mget(keys);          // nullopt where the key is missing
//   redis->set_with_ttl(items, std::chrono::seconds(120));
//
// Thread-safe: calls from several threads use different connections (up to pool_size at
// once; more wait for a free one, up to `timeout`).
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "connectors/guarded_resource.hpp"
#include "connectors/redis_url.hpp"

namespace predflow {
class NodeConfig;
}

namespace predflow::connectors {

// A connection of its own, outside any pool (a subscriber, a benchmark's watcher): connects
// with `timeout` for the connection and each read or write, and sends AUTH and SELECT from
// the endpoint. Null with `error` set when that fails. The caller frees it (redisFree).
redisContext* open_redis_connection(const RedisEndpoint& ep, Duration timeout, std::string& error);

// One command's arguments: {"SET", "key", "value", "EX", "120"}.
using RedisCommand = std::vector<std::string>;

// A reply, copied out of hiredis.
struct RedisReply {
  enum class Type { Nil, String, Status, Integer, Error, Array };
  Type type = Type::Nil;
  std::string str;  // String, Status, Error
  long long integer = 0;
  std::vector<RedisReply> elements;  // Array
  bool is_error() const { return type == Type::Error; }
};

struct RedisOptions {
  RedisEndpoint endpoint;
  int pool_size = 4;
  Duration timeout = std::chrono::seconds(2);  // connect, and each read or write
  std::size_t mget_chunk = 1000;               // keys per MGET command
  GuardOptions guard;
};

// The pipeline file's settings as RedisOptions; throws std::invalid_argument for a bad URL.
RedisOptions redis_options(const NodeConfig& config);

class RedisResource : public GuardedResource {
 public:
  RedisResource(std::string name, RedisOptions options, Metrics& metrics);
  ~RedisResource() override;
  void stop() override;

  // The values of `keys`, in order; nullopt for a missing key (or a non-string value).
  // MGET commands of `chunk` keys each (0 = the configured mget_chunk), all sent in one
  // pipelined round trip on one connection.
  std::vector<std::optional<std::string>> mget(std::span<const std::string> keys, std::size_t chunk = 0);

  // Any commands, pipelined in one round trip; error replies come back as replies
  // (is_error()), not as exceptions.
  std::vector<RedisReply> pipeline(std::span<const RedisCommand> commands);

  // SET key value EX ttl for each item, pipelined in one round trip. Throws CommandError
  // when Redis refused any of them (the others are set).
  void set_with_ttl(std::span<const std::pair<std::string, std::string>> items, std::chrono::seconds ttl);

  // PING; throws unless Redis answers PONG.
  void ping();

  struct Stats {
    std::uint64_t round_trips = 0;  // calls that went to the server
    std::uint64_t commands = 0;     // commands sent in them
    std::uint64_t connects = 0;     // connections opened
  };
  Stats stats() const;
  const RedisOptions& options() const { return options_; }

 protected:
  void probe() override { ping(); }

 private:
  class Lease;
  using Appender = std::function<void(redisContext*)>;
  using ReplyHandler = std::function<void(std::size_t index, const redisReply& reply)>;

  // One round trip: append() queues the commands, then `replies` replies are read and
  // handed to on_reply. Runs under the breaker; all replies are read even if a handler
  // throws, so the connection stays in step.
  void round_trip(std::size_t commands, const Appender& append, const ReplyHandler& on_reply);
  redisContext* take(bool trial);
  void give_back(redisContext* c);
  redisContext* connect(bool trial);

  RedisOptions options_;
  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::vector<redisContext*> idle_;
  int free_slots_;  // slots without a connection
  bool stopped_ = false;

  std::atomic<std::uint64_t> round_trips_{0}, commands_{0}, connects_{0};
};

}  // namespace predflow::connectors
