#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  // spdlog's registry is a function-local static inside the (uninstrumented) shared
  // library: made here, before a test starts a thread, so that two threads' first log lines
  // do not race to make it — TSan cannot see the library's init guard and reported that
  // race (test_retrying_writer). predflow itself sets its logger up in main() first too.
  spdlog::default_logger();
  doctest::Context context(argc, argv);
  return context.run();
}
