#pragma once
// Keeps the Vulkan drivers loaded for the life of the process.
//
// The loader loads every driver library at vkCreateInstance and unloads it when that instance is
// destroyed. Some drivers cannot be loaded again and again in one process: NVIDIA's driver uses
// static thread-local storage, and after about a hundred load/unload cycles glibc has none left
// ("libnvidia-tls.so: cannot allocate memory in static TLS block"), so the loader finds no driver
// and every later model fails with "no Vulkan device found" (seen on an NVIDIA H200, driver 580,
// running the test suite, which creates hundreds of models in one process). One extra instance,
// created once and kept until the process exits, holds a reference to every driver, so later
// instances only bump the libraries' reference counts.

namespace vkssm {

// Creates the keep-alive instance the first time it succeeds; later calls do nothing. Call it
// after an instance was created successfully (the loader and a driver are known to be there).
// Never throws: failing to keep a driver loaded costs only the reload.
void keep_vulkan_drivers_loaded();

}  // namespace vkssm
