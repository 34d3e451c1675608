// End-to-end acknowledgement of a source message.
//
// A source makes one AckToken per message it takes in. Every batch derived from that
// message (after routing, re-batching, fan-out) holds a shared_ptr to the token, so the
// token dies — and its callback fires, exactly once — when the last batch derived from the
// message has been released by the last node that needed it. Sinks that write in the
// background keep their batch (or its tokens) until the write is durable.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace predflow {

enum class AckOutcome { Done, Failed };

class AckToken {
 public:
  using Callback = std::function<void(AckOutcome)>;

  explicit AckToken(Callback on_complete) : on_complete_(std::move(on_complete)) {}
  ~AckToken();
  AckToken(const AckToken&) = delete;
  AckToken& operator=(const AckToken&) = delete;

  // A node that could neither deliver nor dead-letter part of the message marks it failed,
  // so that the source can ask for redelivery (NAK) instead of acknowledging.
  void fail() { failed_.store(true, std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  Callback on_complete_;
  std::atomic<bool> failed_{false};
};

using AckPtr = std::shared_ptr<AckToken>;

// Runs a source's work on a message whose token already exists. Whatever the work throws
// fails the token — so that its source asks for redelivery — instead of letting the token
// complete as if every row had been done (the message would be acknowledged unprocessed).
// Returns the error's text, empty when the work succeeded.
template <typename Work>
std::string fail_token_on_error(const AckPtr& token, Work&& work) noexcept {
  try {
    work();
    return {};
  } catch (const std::exception& e) {
    if (token) token->fail();
    return e.what()[0] ? e.what() : "unknown error";
  } catch (...) {
    if (token) token->fail();
    return "unknown error";
  }
}

}  // namespace predflow
