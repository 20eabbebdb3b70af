// The shipped demo checkpoint against logits from an independent PyTorch implementation of
// upstream Mamba.step (models/mamba1/reference_step.py wrote tests/data/tiny_shakespeare_ref.npy).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/vkssm.hpp"
#include "tests/test_helpers.h"
#include "host/checkpoint.h"
#include "host/npy.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::max_rel_error;

const std::string kModel = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";

std::vector<int32_t> reference_ids() {
  std::ifstream in(std::string(VKSSM_SOURCE_DIR) + "/tests/data/tiny_shakespeare_ref.txt");
  std::string line;
  std::getline(in, line);  // "ids: 82,79,..."
  std::vector<int32_t> ids;
  for (size_t p = line.find(':') + 1; p < line.size();) {
    size_t q = line.find(',', p);
    if (q == std::string::npos) q = line.size();
    ids.push_back(std::stoi(line.substr(p, q - p)));
    p = q + 1;
  }
  return ids;
}


void expect_matches_upstream(BackendKind backend) {
  NpyArray ref = read_npy_f32(std::string(VKSSM_SOURCE_DIR) + "/tests/data/tiny_shakespeare_ref.npy");
  std::vector<int32_t> ids = reference_ids();
  ASSERT_EQ(ref.shape.size(), 2u);
  ASSERT_EQ(ref.shape[0], int64_t(ids.size()));
  LoadOptions opt;
  opt.backend = backend;
  auto model = load_model(kModel, opt);
  const int64_t V = model->info().vocab_size;
  ASSERT_EQ(ref.shape[1], V);
  std::vector<float> logits(V);
  int32_t slot = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    model->step(&ids[t], &slot, 1, logits.data());
    EXPECT_LT(max_rel_error(logits.data(), ref.data.data() + t * V, V), 1e-4f) << "token " << t;
  }
}

TEST(TinyShakespeare, VulkanMatchesUpstreamReference) { expect_matches_upstream(BackendKind::Vulkan); }
TEST(TinyShakespeare, CpuMatchesUpstreamReference) { expect_matches_upstream(BackendKind::Reference); }

// An fp16 copy of the checkpoint loads with fp16 weights where the device has 16-bit storage
// and matches the CPU reference run on the same fp16 values.
TEST(TinyShakespeare, Fp16CheckpointKeepsFp16Weights) {
  Mamba1Weights w = load_mamba1(Checkpoint::open(kModel));
  auto dir = std::filesystem::temp_directory_path() / ("vkssm_tiny_f16_" + std::to_string(::getpid()));
  save_mamba1_hf(w, dir.string(), DType::F16);
  Mamba1Weights w16 = load_mamba1(Checkpoint::open(dir.string()));
  EXPECT_EQ(w16.source_dtype, DType::F16);
  LoadOptions vulkan;
  vulkan.backend = BackendKind::Vulkan;
  auto gpu = load_model(dir.string(), vulkan);
  std::filesystem::remove_all(dir);
  bool storage16 = false;
  for (const DeviceInfo& d : list_devices())
    if (d.is_default) storage16 = d.storage16;
  EXPECT_EQ(gpu->info().weight_type, storage16 ? "f16" : "f32");

  Mamba1CpuReference ref(w16);
  auto state = ref.new_state();
  const int64_t V = w16.cfg.vocab_size;
  std::vector<float> got(V), want(V);
  int32_t slot = 0;
  for (int32_t tok : reference_ids()) {
    gpu->step(&tok, &slot, 1, got.data());
    ref.step(state, tok, want.data());
    EXPECT_LT(max_rel_error(got.data(), want.data(), V), 1e-3f);
  }
}

}  // namespace
}  // namespace vkssm
