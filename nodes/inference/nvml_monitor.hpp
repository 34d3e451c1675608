// GPU utilisation and memory through NVML, loaded at run time with
// dlopen("libnvidia-ml.so.1"): the build needs no NVML headers or library, and on a
// machine without the driver open() returns null and nothing is reported.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

namespace predflow::inference {

struct GpuReading {
  double utilization = 0;          // 0..1, share of the last sample period a kernel ran
  std::uint64_t memory_used = 0;   // bytes
  std::uint64_t memory_total = 0;  // bytes
};

class NvmlMonitor {
 public:
  // Null when libnvidia-ml.so.1 cannot be loaded or initialised.
  static std::unique_ptr<NvmlMonitor> open();
  ~NvmlMonitor();
  NvmlMonitor(const NvmlMonitor&) = delete;
  NvmlMonitor& operator=(const NvmlMonitor&) = delete;

  // The NVML device behind CUDA device `cuda_index` (see nvml_index_for_cuda).
  std::optional<GpuReading> read(unsigned cuda_index) const;

 private:
  struct Api;
  explicit NvmlMonitor(std::unique_ptr<Api> api);
  std::unique_ptr<Api> api_;
};

// NVML numbers every GPU of the machine; CUDA numbers the visible ones. With
// CUDA_VISIBLE_DEVICES a list of indices, CUDA device i is NVML device list[i]; otherwise
// (unset, or UUIDs) they are taken to be the same.
unsigned nvml_index_for_cuda(unsigned cuda_index, const char* cuda_visible_devices);

}  // namespace predflow::inference
