// The load-time decisions shared by every architecture's Vulkan graph, as units (no device needed
// for most): VKSSM_TUNE parsing, the validation-layer gate, the weight storage plan, the automatic
// capacity and the texel-view limit; and, on the device, that a model reports the work split it
// runs and that dropping a model with a step in flight is safe without the caller waiting.
#include <cstdlib>
#include <fstream>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vk/device_tuning.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vkssm.hpp"
#include "engine/vulkan_step_model.h"
#include "engine/vulkan_weights_plan.h"
#include "models/mamba1/mamba1_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing_helpers::error_of;

DeviceCaps fake_gpu() {
  DeviceCaps c;
  c.name = "Fake GPU";
  c.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  c.max_workgroup_invocations = 1024;
  c.subgroup_size = 32;
  c.subgroup_arithmetic = true;
  c.shared_memory = 49152;
  c.max_storage_buffer_range = 1ull << 32;
  c.max_texel_buffer_elements = 1u << 27;
  c.texel_rgba32f = c.texel_rgba16f = true;
  c.storage16 = true;
  c.device_local_bytes = 8ull << 30;
  return c;
}

using testing_helpers::ScopedEnv;

TEST(Tuning, ParsesFiveFields) {
  const Tuning t = parse_tuning("8,2,32,16,1", fake_gpu());
  EXPECT_EQ(t, (Tuning{8, 2, 32, 16, true}));
  EXPECT_EQ(t.describe(), "local=8 row_groups=2 conv_chunk=32 ssm_chunk=16 texel=1");
  EXPECT_EQ(parse_tuning("1,8,256,256,0", fake_gpu()), (Tuning{1, 8, 256, 256, false}));
}

TEST(Tuning, RejectsWhatTheEngineCannotRun) {
  const DeviceCaps gpu = fake_gpu();
  auto err = [&](const std::string& v, const DeviceCaps& caps) { return error_of([&] { parse_tuning(v, caps); }); };
  EXPECT_THAT(err("8,32,256,256", gpu), HasSubstr("VKSSM_TUNE='8,32,256,256': has 4 field(s), not 5"));
  EXPECT_THAT(err("8,32,256,256,1,1", gpu), HasSubstr("has 6 field(s), not 5"));
  EXPECT_THAT(err("", gpu), HasSubstr("has 1 field(s), not 5"));
  EXPECT_THAT(err("8,x,256,256,1", gpu), HasSubstr("field row_groups = 'x' is not a whole number"));
  EXPECT_THAT(err("8,32,-1,256,1", gpu), HasSubstr("field conv_chunk = '-1' is not a whole number"));
  EXPECT_THAT(err("8,32,256,,1", gpu), HasSubstr("field ssm_chunk = '' is not a whole number"));
  EXPECT_THAT(err("8, 32,256,256,1", gpu), HasSubstr("field row_groups = ' 32' is not a whole number"));
  EXPECT_THAT(err("0,32,256,256,1", gpu), HasSubstr("field local must be at least 1"));
  EXPECT_THAT(err("8,32,256,0,1", gpu), HasSubstr("field ssm_chunk must be at least 1"));
  EXPECT_THAT(err("2048,1,64,64,0", gpu),
              HasSubstr("field local = 2048 exceeds Fake GPU's limit of 1024 invocations per workgroup"));
  DeviceCaps narrow = gpu;
  narrow.subgroup_size = 4;
  EXPECT_THAT(err("256,1,64,64,0", narrow), HasSubstr("field local = 256 exceeds 32 subgroups of 4"));
  EXPECT_THAT(err("8,1,100000,64,0", gpu), HasSubstr("field conv_chunk = 100000 needs 400000 bytes of shared memory"));
  EXPECT_THAT(err("8,1,66,64,0", gpu), HasSubstr("field conv_chunk = 66 is not a multiple of 4"));
  EXPECT_THAT(err("8,1,64,64,2", gpu), HasSubstr("field texel = 2 must be 0 or 1"));
  DeviceCaps no_texel = gpu;
  no_texel.texel_rgba32f = false;
  EXPECT_THAT(err("8,1,64,64,1", no_texel),
              HasSubstr("field texel = 1, but Fake GPU cannot read RGBA32F uniform texel buffers"));
  EXPECT_EQ(parse_tuning("8,1,64,64,0", no_texel).texel, false);
}

TEST(Tuning, TableRowsPerProfile) {
  DeviceCaps cpu = fake_gpu();
  cpu.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  ScopedEnv no_override("VKSSM_TUNE", "");  // an empty value counts as unset: the table decides
  EXPECT_EQ(tuning_for(fake_gpu()), (Tuning{64, 1, 64, 64, false}));
  EXPECT_EQ(tuning_for(fake_gpu(), TuningProfile::FrameModel), (Tuning{64, 1, 64, 64, false}));
  EXPECT_EQ(tuning_for(cpu), (Tuning{8, 32, 256, 256, true}));
  EXPECT_EQ(tuning_for(cpu, TuningProfile::FrameModel), (Tuning{1, 1, 256, 256, true}));
  // Subgroups of 4 (lavapipe at 128 bits), 128 (Adreno) and 1: the matvec's 32 partial sums hold.
  for (const auto& [size, local] : {std::pair{4u, 64u}, {128u, 64u}, {1u, 32u}}) {
    DeviceCaps g = fake_gpu();
    g.subgroup_size = size;
    EXPECT_EQ(tuning_for(g).local, local) << "subgroup size " << size;
  }
  // The sampler's workgroup follows the split (a power of two for its reductions).
  EXPECT_EQ(sampler_local(tuning_for(cpu)), 8u);
  EXPECT_EQ(sampler_local(Tuning{24, 1, 1, 1, false}), 16u);
}

TEST(Tuning, AModelRefusesABadOverrideNamingIt) {
  ScopedEnv env("VKSSM_TUNE", "8,32,256,256");
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 1;
  EXPECT_THAT(error_of([&] { create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(50), 3), opt); }),
              HasSubstr("VKSSM_TUNE='8,32,256,256': has 4 field(s), not 5"));
}

// A model reports the split it runs: the table's row for its kind of model on this device.
TEST(Tuning, ModelsReportTheirSplit) {
  ScopedEnv no_override("VKSSM_TUNE", "");  // an empty value counts as unset: the table decides
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 2;
  auto m1 = create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(50), 3), opt);
  S4DConfig c;
  c.d_input = 3;
  c.d_model = 8;
  c.d_state = 4;
  c.n_layers = 1;
  c.d_output = 2;
  auto s4d = create_s4d(random_s4d(c, 5), opt);
  const auto& t1 = dynamic_cast<const VulkanStepModel&>(*m1).tuning();
  const auto& ts = dynamic_cast<const VulkanStepModel&>(*s4d).tuning();
  const bool cpu_driver = m1->info().device_name.find("llvmpipe") != std::string::npos;
  if (cpu_driver) {
    EXPECT_EQ(t1.describe(), "local=8 row_groups=32 conv_chunk=256 ssm_chunk=256 texel=1");
    EXPECT_EQ(ts.describe(), "local=1 row_groups=1 conv_chunk=256 ssm_chunk=256 texel=1");
  } else {
    EXPECT_EQ(t1.row_groups, 1u);
    EXPECT_EQ(ts.local, t1.local);
  }
}

TEST(ValidationGate, AskedForButMissingNamesTheLayer) {
  EXPECT_FALSE(use_validation_layer(false, false));
  EXPECT_FALSE(use_validation_layer(false, true));
  EXPECT_TRUE(use_validation_layer(true, true));
  EXPECT_THAT(error_of([] { use_validation_layer(true, false); }),
              HasSubstr("the layer VK_LAYER_KHRONOS_validation is not installed"));
}

TEST(WeightsPlan, Fp16RangeNamesTensorAndFile) {
  const std::vector<float> small{1.0f, -2.0f}, big{1.0f, 70000.0f};
  WeightsPlanRequest r;
  r.source = "ckpt/model.safetensors";
  r.source_dtype = DType::BF16;
  r.matrices = {{"layers.0.in_proj", &small}, {"layers.0.out_proj", &big}};
  r.max_streams = 3;
  r.requested = WeightStorage::F16;
  EXPECT_EQ(error_of([&] { plan_weights(r, fake_gpu()); }),
            "tensor layers.0.out_proj of ckpt/model.safetensors has values beyond the fp16 range (65504); "
            "load it with f32 weights");
  r.requested = WeightStorage::Auto;  // keeps fp32 instead
  EXPECT_FALSE(plan_weights(r, fake_gpu()).f16);
  r.matrices.pop_back();
  EXPECT_TRUE(plan_weights(r, fake_gpu()).f16);
  EXPECT_EQ(plan_weights(r, fake_gpu()).capacity, 3);
  r.auto_may_use_f16 = false;  // S4D: fp16 only when asked for
  EXPECT_FALSE(plan_weights(r, fake_gpu()).f16);
  DeviceCaps no16 = fake_gpu();
  no16.storage16 = false;
  r.auto_may_use_f16 = true;
  EXPECT_FALSE(plan_weights(r, no16).f16);
  r.source_dtype = DType::F32;
  EXPECT_FALSE(plan_weights(r, fake_gpu()).f16);
}

TEST(WeightsPlan, AutomaticCapacity) {
  DeviceCaps caps = fake_gpu();  // discrete: the whole budget
  caps.memory_available = 500;
  EXPECT_EQ(stream_memory_budget(caps), 500u);
  EXPECT_EQ(automatic_capacity(100, 40, caps), 10);
  EXPECT_EQ(automatic_capacity(480, 40, caps), 1);   // not even one stream beside the weights
  EXPECT_EQ(automatic_capacity(0, 1, caps), 500);
  caps.memory_available = 1ull << 40;
  EXPECT_EQ(automatic_capacity(0, 1, caps), 1024);   // the ceiling
  WeightsPlanRequest r;
  r.max_streams = 0;
  r.parameters = 25;  // 100 bytes in fp32
  r.bytes_per_stream = 40;
  caps.memory_available = 500;
  const WeightsPlan plan = plan_weights(r, caps);
  EXPECT_EQ(plan.capacity, 10);
  EXPECT_EQ(plan.capacity_plan.reason, CapacityReason::MemoryBudget);
  EXPECT_EQ(plan.capacity_plan.detail, "500 bytes (heap size) less 100 bytes of weights, 40 bytes per stream");
  caps.memory_available = 1ull << 40;
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.reason, CapacityReason::Ceiling);
}

// Unified memory is the system's RAM: weights and streams get a quarter of it (kUnifiedMemoryShare),
// of the budget VK_EXT_memory_budget reports when the device has it.
TEST(WeightsPlan, UnifiedMemoryLeavesMostToTheApplication) {
  DeviceCaps caps = fake_gpu();
  caps.type = VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
  caps.unified_memory = true;
  caps.memory_budget_ext = true;
  caps.memory_available = 4000;
  EXPECT_EQ(stream_memory_budget(caps), 1000u);
  EXPECT_EQ(automatic_capacity(100, 40, caps), 22);  // (1000 - 100) / 40
  WeightsPlanRequest r;
  r.parameters = 25;
  r.bytes_per_stream = 40;
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.detail,
            "1000 bytes (VK_EXT_memory_budget, 1/4 on unified memory) less 100 bytes of weights, 40 bytes per stream");
}

// Every state buffer and activation / output buffer stays within one binding: the automatic
// capacity stops there (naming the buffer), and an explicit max_streams beyond it runs in shards
// of one binding each (the detail names the buffer, the limit and the shards). Rollback rings are split across buffers,
// so their depth does not lower the capacity.
TEST(WeightsPlan, CapacityKeepsBindingsWithinTheLimit) {
  DeviceCaps caps = fake_gpu();
  caps.memory_available = 1ull << 40;  // memory is not the limit
  caps.max_storage_buffer_range = 1000;
  WeightsPlanRequest r;
  r.max_streams = 0;
  r.bytes_per_stream = 1;
  r.slot_bytes = 40;
  r.slot_what = "layer ssm state";
  EXPECT_EQ(plan_weights(r, caps).capacity, 25);
  r.rollback_depth = 5;  // the ring [capacity][5][40 bytes] goes into parts of 25 entries
  EXPECT_EQ(plan_weights(r, caps).capacity, 25);
  r.row_bytes = 500;  // the logits of 2 rows
  r.row_what = "step outputs (logits)";
  const WeightsPlan plan = plan_weights(r, caps);
  EXPECT_EQ(plan.capacity, 2);
  EXPECT_EQ(plan.capacity_plan.reason, CapacityReason::BindingLimit);
  EXPECT_EQ(plan.capacity_plan.detail, "step outputs (logits): 500 bytes per stream, maxStorageBufferRange 1000 of Fake GPU");
  r.max_streams = 2;
  EXPECT_EQ(plan_weights(r, caps).capacity, 2);
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.reason, CapacityReason::Requested);
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.shard_capacity, 2);
  r.max_streams = 7;  // more than one binding holds: 4 shards of 2 (the last one of 1)
  const WeightsPlan sharded = plan_weights(r, caps);
  EXPECT_EQ(sharded.capacity, 7);
  EXPECT_EQ(sharded.capacity_plan.shard_capacity, 2);
  EXPECT_EQ(sharded.capacity_plan.detail,
            "4 shards of at most 2 streams: step outputs (logits): 500 bytes per stream, maxStorageBufferRange "
            "1000 of Fake GPU holds 2 streams");
  caps.max_memory_allocation_size = 800;  // the smaller limit is the one named
  WeightsPlanRequest state_only;
  state_only.slot_bytes = 40;
  EXPECT_EQ(plan_weights(state_only, caps).capacity_plan.detail,
            "a layer's state: 40 bytes per stream, maxMemoryAllocationSize 800 of Fake GPU");
}

// mamba-130m's shape (D 768, 24 layers, E 1536, N 16, K 4, V 50280, fp32) under
// android-baseline-2022 (128 MiB bindings): 256 streams fit, with or without a rollback ring. The
// largest per-stream bindings are the logits (201120 bytes a stream: 667 streams in 128 MiB) and a
// layer's ssm state (98304 bytes: 1365 streams); the ring (K x 25 MB at 256 streams) is split.
TEST(WeightsPlan, Mamba130mShapeRuns256StreamsIn128MiBBindings) {
  DeviceCaps caps = fake_gpu();
  caps.max_storage_buffer_range = 134217728;
  caps.memory_available = 8ull << 30;
  WeightsPlanRequest r;
  r.parameters = 129135360;  // embedding 50280 x 768 (tied) + 24 layers
  r.bytes_per_stream = 4 * (24 * 1536 * (4 + 16) + 2 * 768 + 6 * 1536 + 64 + 3 * 50280);
  r.slot_bytes = 4 * 1536 * 16;
  r.row_bytes = 4 * 50280;
  r.row_what = "step outputs (logits)";
  r.max_streams = 256;
  for (int depth : {0, 8}) {
    r.rollback_depth = depth;
    EXPECT_EQ(plan_weights(r, caps).capacity, 256) << "rollback depth " << depth;
  }
  r.max_streams = 0;
  EXPECT_EQ(plan_weights(r, caps).capacity, 667);  // the logits' binding
  r.max_streams = 1000;  // two shards of 500
  EXPECT_EQ(plan_weights(r, caps).capacity, 1000);
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.shard_capacity, 500);
  EXPECT_EQ(plan_weights(r, caps).capacity_plan.detail,
            "2 shards of at most 500 streams: step outputs (logits): 201120 bytes per stream, "
            "maxStorageBufferRange 134217728 of Fake GPU holds 667 streams");
}

// vkFlushMappedMemoryRanges wants offsets and sizes in whole nonCoherentAtomSize units, or a range
// that ends at the end of the allocation.
TEST(GpuBuffer, FlushRangeRoundsToTheAtomWithinTheAllocation) {
  EXPECT_EQ(flush_range(100, 10, 64, 4096), (FlushRange{64, 64}));
  EXPECT_EQ(flush_range(0, 1, 64, 4096), (FlushRange{0, 64}));
  EXPECT_EQ(flush_range(64, 64, 64, 4096), (FlushRange{64, 64}));
  EXPECT_EQ(flush_range(60, 10, 64, 4096), (FlushRange{0, 128}));   // straddles two atoms
  EXPECT_EQ(flush_range(4090, 6, 64, 4096), (FlushRange{4032, 64}));
  EXPECT_EQ(flush_range(4000, 50, 64, 4050), (FlushRange{3968, 82}));  // clamped to the allocation
  EXPECT_EQ(flush_range(0, 4050, 256, 4050), (FlushRange{0, 4050}));
  EXPECT_EQ(flush_range(7, 5, 1, 100), (FlushRange{7, 5}));            // coherent-sized atom
}

TEST(GpuBuffer, UploadPathFollowsUnifiedMemoryAndVkssmUpload) {
  DeviceCaps discrete = fake_gpu();
  DeviceCaps unified = fake_gpu();
  unified.name = "Fake iGPU";
  unified.unified_memory = true;
  EXPECT_EQ(choose_upload_path(discrete, ""), UploadPath::Staged);
  EXPECT_EQ(choose_upload_path(unified, ""), UploadPath::Mapped);
  EXPECT_EQ(choose_upload_path(unified, "auto"), UploadPath::Mapped);
  EXPECT_EQ(choose_upload_path(unified, "staged"), UploadPath::Staged);
  EXPECT_EQ(choose_upload_path(unified, "flushed"), UploadPath::Flushed);
  EXPECT_EQ(error_of([&] { choose_upload_path(unified, "zero-copy"); }),
            "VKSSM_UPLOAD='zero-copy' is not an upload path (known: auto, staged, mapped, flushed)");
  EXPECT_EQ(error_of([&] { choose_upload_path(discrete, "mapped"); }),
            "VKSSM_UPLOAD='mapped' writes device memory in place, but Fake GPU has no unified memory (no memory "
            "type both DEVICE_LOCAL and HOST_VISIBLE on a device that is not discrete)");
}

TEST(WeightsPlan, TexelViewsFallBackToStorageBuffers) {
  DeviceCaps caps = fake_gpu();
  caps.max_texel_buffer_elements = 1000;
  Tuning t{8, 32, 256, 256, true};
  fit_texel_views(t, caps, false, 1000);
  EXPECT_TRUE(t.texel);
  fit_texel_views(t, caps, false, 1001);  // one texel past the limit
  EXPECT_FALSE(t.texel);
  t.texel = true;
  caps.texel_rgba16f = false;
  fit_texel_views(t, caps, true, 10);  // fp16 weights need RGBA16F texels
  EXPECT_FALSE(t.texel);
  t.texel = true;
  fit_texel_views(t, caps, false, 10);
  EXPECT_TRUE(t.texel);
}

// The model waits for the device itself before its buffers go: no collect() needed first (the
// validation layer would report buffers destroyed while a submitted step still uses them).
TEST(VulkanLifetime, DroppingAModelWithStepsInFlightIsSafe) {
  for (bool s4d : {false, true}) {
    LoadOptions opt = testing_helpers::on_vulkan();
    opt.max_streams = 2;
    std::unique_ptr<Model> m;
    Model::StepRequest r;
    const int32_t slots[2] = {0, 1}, tokens[2] = {1, 2};
    std::vector<float> frames(2 * 3, 0.5f);
    if (s4d) {
      S4DConfig c;
      c.d_input = 3;
      c.d_model = 8;
      c.d_state = 4;
      c.n_layers = 2;
      c.d_output = 2;
      m = create_s4d(random_s4d(c, 5), opt);
      r.frames = frames.data();
    } else {
      m = create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(50), 3), opt);
      r.tokens = tokens;
    }
    r.slots = slots;
    r.batch = 2;
    r.want_outputs = true;
    m->submit(r);
    m->submit(r);
    EXPECT_EQ(m->in_flight(), 2);
    m.reset();
  }
}

// The shared libraries mapped into this process (from /proc/self/maps).
std::set<std::string> mapped_libraries() {
  std::set<std::string> libs;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) libs.insert(line.substr(slash));
  }
  return libs;
}

// The driver stays loaded once the last model is gone (engine/vk/driver_keepalive.h): NVIDIA's
// driver could not be loaded again after about a hundred models in one process. Every library
// mapped while a model lived is still mapped after it goes, except the validation layer, which
// only models' own instances enable.
TEST(VulkanLifetime, DriversStayLoadedAfterTheLastModelGoes) {
  std::set<std::string> while_alive;
  {
    auto m = create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(50), 3), testing_helpers::on_vulkan());
    while_alive = mapped_libraries();
  }
  const std::set<std::string> after = mapped_libraries();
  for (const std::string& lib : while_alive) {
    if (lib.find("VkLayer") != std::string::npos) continue;
    EXPECT_TRUE(after.count(lib)) << lib << " was unloaded with the model";
  }
}

}  // namespace
}  // namespace vkssm
