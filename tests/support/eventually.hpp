// Polls a condition until it holds or a time limit passes (for asynchronous effects in tests).
#pragma once

#include <chrono>
#include <thread>

namespace predflow::test {

// True as soon as `condition()` holds; false if it still does not after `limit`.
template <typename Condition>
bool eventually(Condition condition, std::chrono::nanoseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace predflow::test
