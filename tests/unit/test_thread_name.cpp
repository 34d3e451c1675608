// Thread names: "pf:" + id + role suffix, at most 15 bytes (Linux's limit), the suffix kept.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <thread>

#include "engine/thread_name.hpp"

using namespace predflow;

TEST_CASE("thread_label: pf: + id + suffix, cut to 15 bytes with the suffix kept") {
  CHECK(thread_label("timers") == "pf:timers");
  CHECK(thread_label("cache", ":probe") == "pf:cache:probe");
  CHECK(thread_label("redis_store", ":w") == "pf:redis_stor:w");  // the id is cut, not the role
  CHECK(thread_label("a_very_long_node_identifier") == "pf:a_very_long_");
  CHECK(thread_label("x", "a_suffix_longer_than_the_limit").size() == 15);
  CHECK(thread_label("").size() == 3);
}

TEST_CASE("name_this_thread: the kernel shows the label for the thread") {
  std::string seen;
  std::thread t([&] {
    name_this_thread("normal_model");
    std::ifstream comm("/proc/thread-self/comm");
    std::getline(comm, seen);
  });
  t.join();
  CHECK(seen == "pf:normal_model");
}
