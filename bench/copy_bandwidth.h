#pragma once
// The device's own memory bandwidth, measured with vkCmdCopyBuffer between two device-local
// buffers: the roofline that decode speed is compared with.
#include <string>

namespace vkssm {

struct CopyBandwidth {
  std::string device;
  double bytes_per_second = 0;  // bytes read + bytes written per second
  double read_bytes_per_second = 0;  // half of it: what a read-only kernel can hope for
};

CopyBandwidth measure_copy_bandwidth(int device, uint64_t bytes = 256ull << 20, int reps = 5);

}  // namespace vkssm
