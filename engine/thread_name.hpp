// Names for the threads predflow starts, so that `top -H`, `ps -L`, perf and gdb say whose
// thread is busy: "pf:" + the node or resource id + a role suffix. Linux keeps 15 bytes of a
// thread name; the id is cut to fit, the suffix is kept.
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace predflow {

inline std::string thread_label(std::string_view id, std::string_view suffix = {}) {
  constexpr std::size_t kMax = 15;  // bytes, without the terminating NUL
  const std::string_view prefix = "pf:";
  const std::size_t room = kMax - prefix.size() - std::min(suffix.size(), kMax - prefix.size());
  std::string label(prefix);
  label += id.substr(0, room);
  label += suffix.substr(0, kMax - label.size());
  return label;
}

// Names the calling thread (best effort: a failure changes nothing but the label).
inline void name_this_thread(std::string_view id, std::string_view suffix = {}) {
  pthread_setname_np(pthread_self(), thread_label(id, suffix).c_str());
}

// Lowers the calling thread's CPU priority (nice +10, Linux: per thread) for background
// work that must not slow the pipeline down on a busy machine, e.g. loading and warming up a
// new model version while the old one serves. Best effort.
inline void lower_this_thread_priority() { ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10); }

// Names the calling thread for a scope, then gives it its name back: for calls into a
// client library that starts threads of its own (nats.c's reader, flusher and timers),
// which inherit the name of the thread that started them.
class ScopedThreadName {
 public:
  explicit ScopedThreadName(std::string_view id, std::string_view suffix = {}) {
    if (pthread_getname_np(pthread_self(), saved_, sizeof saved_) != 0) saved_[0] = '\0';
    name_this_thread(id, suffix);
  }
  ~ScopedThreadName() {
    if (saved_[0] != '\0') pthread_setname_np(pthread_self(), saved_);
  }
  ScopedThreadName(const ScopedThreadName&) = delete;
  ScopedThreadName& operator=(const ScopedThreadName&) = delete;

 private:
  char saved_[16] = {};
};

}  // namespace predflow
