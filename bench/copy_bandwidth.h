#pragma once
// The device's own memory bandwidth, measured with vkCmdCopyBuffer between two device-local
// buffers: the roofline that decode speed is compared with.
#include <string>

namespace vkssm {

// The roofline decode speed is compared with. Vulkan: the copy rate, read + write (bytes_per_second)
// and half of it (read_bytes_per_second). cpu backend: the host's read rate with the backend's
// threads (engine/cpu/read_bandwidth.h), the same figure in both fields, since a step only reads
// weights; `read_only` says which it is.
struct CopyBandwidth {
  std::string device;
  double bytes_per_second = 0;  // what weight reads per second are compared with
  double read_bytes_per_second = 0;
  bool read_only = false;       // measured by reading only (the cpu backend)
  int threads = 0;              // the threads that read (read_only)
};

CopyBandwidth measure_copy_bandwidth(int device, uint64_t bytes = 256ull << 20, int reps = 5);

}  // namespace vkssm
