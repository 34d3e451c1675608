#include "nodes/inference/nvml_monitor.hpp"

#include <dlfcn.h>

#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

namespace predflow::inference {

// The few NVML declarations used, as in nvml.h (ABI-stable since NVML 2).
namespace {
using nvmlReturn_t = int;  // 0 = NVML_SUCCESS
using nvmlDevice_t = struct nvmlDevice_st*;
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using HandleByIndexFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using UtilizationFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlUtilization_t*);
using MemoryFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*);
}  // namespace

struct NvmlMonitor::Api {
  void* library = nullptr;
  ShutdownFn shutdown = nullptr;
  HandleByIndexFn handle_by_index = nullptr;
  UtilizationFn utilization = nullptr;
  MemoryFn memory = nullptr;
  ~Api() {
    if (shutdown) shutdown();
    if (library) dlclose(library);
  }
};

std::unique_ptr<NvmlMonitor> NvmlMonitor::open() {
  auto api = std::make_unique<Api>();
  api->library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!api->library) return nullptr;
  auto init = reinterpret_cast<InitFn>(dlsym(api->library, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<ShutdownFn>(dlsym(api->library, "nvmlShutdown"));
  api->handle_by_index = reinterpret_cast<HandleByIndexFn>(dlsym(api->library, "nvmlDeviceGetHandleByIndex_v2"));
  api->utilization = reinterpret_cast<UtilizationFn>(dlsym(api->library, "nvmlDeviceGetUtilizationRates"));
  api->memory = reinterpret_cast<MemoryFn>(dlsym(api->library, "nvmlDeviceGetMemoryInfo"));
  if (!init || !shutdown || !api->handle_by_index || !api->utilization || !api->memory || init() != 0) return nullptr;
  api->shutdown = shutdown;  // only after a successful init
  return std::unique_ptr<NvmlMonitor>(new NvmlMonitor(std::move(api)));
}

NvmlMonitor::NvmlMonitor(std::unique_ptr<Api> api) : api_(std::move(api)) {}
NvmlMonitor::~NvmlMonitor() = default;

std::optional<GpuReading> NvmlMonitor::read(unsigned cuda_index) const {
  nvmlDevice_t device = nullptr;
  if (api_->handle_by_index(nvml_index_for_cuda(cuda_index, std::getenv("CUDA_VISIBLE_DEVICES")), &device) != 0)
    return std::nullopt;
  GpuReading r;
  nvmlUtilization_t u{};
  if (api_->utilization(device, &u) != 0) return std::nullopt;
  r.utilization = u.gpu / 100.0;
  nvmlMemory_t m{};
  if (api_->memory(device, &m) != 0) return std::nullopt;
  r.memory_used = m.used;
  r.memory_total = m.total;
  return r;
}

unsigned nvml_index_for_cuda(unsigned cuda_index, const char* visible) {
  if (!visible || !*visible) return cuda_index;
  std::vector<unsigned> ids;
  std::string item;
  for (const char* p = visible;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (item.empty() || !std::isdigit(static_cast<unsigned char>(item[0]))) return cuda_index;  // UUIDs: no mapping
      ids.push_back(static_cast<unsigned>(std::stoul(item)));
      item.clear();
      if (*p == '\0') break;
    } else if (*p != ' ') {
      item += *p;
    }
  }
  return cuda_index < ids.size() ? ids[cuda_index] : cuda_index;
}

}  // namespace predflow::inference
