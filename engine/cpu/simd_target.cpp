#include "engine/cpu/simd_target.h"

#include <cstdlib>
#include <mutex>
#include <strings.h>

#include "engine/cpu/hwy_targets.h"  // the targets the kernels are compiled for (HWY_TARGETS)
#include <hwy/targets.h>

#include "host/error.h"

namespace vkssm {
namespace {

std::once_flag chosen;
int64_t chosen_target = 0;  // the Highway target bit the kernels dispatch to, once chosen

}  // namespace

int64_t simd_target_named(const std::string& name, int64_t available) {
  std::string names;
  for (int64_t rest = available; rest != 0; rest &= rest - 1) {
    const int64_t bit = rest & -rest;
    if (strcasecmp(name.c_str(), hwy::TargetName(bit)) == 0) return bit;
    names += std::string(names.empty() ? "" : ", ") + hwy::TargetName(bit);
  }
  throw Error("VKSSM_CPU_SIMD='" + name + "' is not an instruction set the cpu backend can use on this CPU (" +
              names + ")");
}

void choose_simd_target() {
  std::call_once(chosen, [] {
    // hwy::SupportedTargets() resets Highway's dispatch choice to every target the CPU has, so it
    // is called only here, before any kernel has run, and the choice is made final below.
    const int64_t available = HWY_TARGETS & hwy::SupportedTargets();  // a lower bit is better
    chosen_target = available & -available;
    if (const char* env = std::getenv("VKSSM_CPU_SIMD"); env && *env) {
      chosen_target = simd_target_named(env, available);
      hwy::DisableTargets(chosen_target - 1);  // every better target
    }
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());  // dispatch to chosen_target from now on
  });
}

const char* simd_target_name() {
  choose_simd_target();
  return hwy::TargetName(chosen_target);
}

}  // namespace vkssm
