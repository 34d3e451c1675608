// NVML, loaded at run time: device mapping, and no throw where there is no driver.
#include <doctest/doctest.h>

#include "nodes/inference/nvml_monitor.hpp"

TEST_CASE("NVML: CUDA device numbers map through CUDA_VISIBLE_DEVICES when it lists indices") {
  using predflow::inference::nvml_index_for_cuda;
  CHECK(nvml_index_for_cuda(0, nullptr) == 0);
  CHECK(nvml_index_for_cuda(1, "") == 1);
  CHECK(nvml_index_for_cuda(0, "3") == 3);
  CHECK(nvml_index_for_cuda(1, "2, 5") == 5);
  CHECK(nvml_index_for_cuda(2, "2,5") == 2);  // out of range: unchanged
  CHECK(nvml_index_for_cuda(1, "GPU-8f2a,GPU-77b1") == 1);  // UUIDs: no mapping
}

TEST_CASE("NVML: open() is null or reads a plausible GPU, never throws") {
  auto nvml = predflow::inference::NvmlMonitor::open();
  if (!nvml) return;  // no driver on this machine: nothing is reported
  if (auto r = nvml->read(0)) {
    CHECK(r->utilization >= 0.0);
    CHECK(r->utilization <= 1.0);
    CHECK(r->memory_total > 0);
    CHECK(r->memory_used <= r->memory_total);
  }
}
