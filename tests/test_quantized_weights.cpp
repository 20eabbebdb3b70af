// Weights kept in Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K blocks on the GPU (LoadOptions::weights): the
// device layout holds exactly the blocks llama.cpp's reference quantizer writes, and every
// architecture computes on Vulkan what the cpu backend computes with the same dequantized weights,
// within 1e-3 relative per token: decode at B = 1 and B > 1, prefill, every work split. The models
// have rows that are not a multiple of the workgroup's, rows of several K-quant super-blocks, a
// K-quant matrix whose rows are not a multiple of 256 (it falls back to Q8_0) and one whose rows
// are not a multiple of 32 (it stays fp32), each recorded per tensor.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "engine/vulkan_step_model.h"
#include "engine/weight_storage.h"
#include "host/quant.h"
#include "host/quant_matrix.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/gguf_writer.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::max_rel_error;
using testing_helpers::ScopedEnv;

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

uint16_t u16_at(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

// ---- the device layout ---------------------------------------------------------------------------

class DeviceLayout : public testing::TestWithParam<QuantType> {};

TEST_P(DeviceLayout, HoldsTheBlocksOfQuantizeRowWordAligned) {
  const QuantType type = GetParam();
  const QuantTraits& t = quant_traits(type);
  const int64_t rows = 3, cols = int64_t(t.block_elems) * 9;  // 9 blocks: scales fill 5 words, padded to 8
  const std::vector<float> m = random_values(size_t(rows * cols), 5);
  const std::vector<uint32_t> packed = pack_device_matrix(type, m.data(), rows, cols);
  // Q4_K and Q5_K blocks are copied whole; the others' fp16 d (first bytes, Q6_K's last two) moves
  // to the scale section.
  const bool whole = type == QuantType::Q4_K || type == QuantType::Q5_K;
  const uint32_t d_at = type == QuantType::Q6_K ? 208 : 0, kept = whole ? t.block_bytes : t.block_bytes - 2;
  const uint32_t scale_words = whole ? 0 : 8, words = scale_words + 9 * kept / 4;
  ASSERT_EQ(device_row_words(type, cols), words);
  ASSERT_EQ(packed.size(), size_t(rows) * words);
  std::vector<uint8_t> blocks(quant_row_bytes(type, size_t(cols)));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, m.data() + r * cols, blocks.data(), size_t(cols));
    const uint32_t* row = packed.data() + r * words;
    const uint8_t* quants = reinterpret_cast<const uint8_t*>(row + scale_words);
    for (int b = 0; b < 9; ++b) {
      const uint8_t* block = blocks.data() + b * t.block_bytes;
      const uint8_t* got = quants + b * kept;
      if (whole) {
        EXPECT_EQ(std::memcmp(got, block, kept), 0) << "row " << r << " block " << b;
        continue;
      }
      EXPECT_EQ(uint16_t(row[b / 2] >> (16 * (b & 1))), u16_at(block + d_at)) << "row " << r << " block " << b;
      EXPECT_EQ(std::memcmp(got, block, d_at), 0) << "row " << r << " block " << b;
      EXPECT_EQ(std::memcmp(got + d_at, block + d_at + 2, kept - d_at), 0) << "row " << r << " block " << b;
    }
    if (whole) continue;
    EXPECT_EQ(row[4] >> 16, 0u);  // scale slots 9..15 are zero padding
    for (int w = 5; w < 8; ++w) EXPECT_EQ(row[w], 0u);
  }
}

// Row bands (the CPU drivers' layout): every scale and every texel of quants of every row lands
// where the shaders look for it (shaders/quant_blocks.glsl, written out again here), and the rest
// is zero. Q8_0 / Q4_0 / Q6_K (banded_scale_texel(), banded_quant_texel()): the band's scales
// block by block, 16 rows to two texels, then step after step of every row's quants, the last step
// shorter. Q4_K / Q5_K (k_band_block(), k_band_pair(), k_band_field(), k_band_quants()): block by
// block, the 16 rows' d and dmin, then each pair of sub-blocks' scales and mins unpacked from the
// 12 packed bytes, then the rows' blocks less their heads.
TEST_P(DeviceLayout, RowBandsPutEveryTexelWhereTheShadersLook) {
  const QuantType type = GetParam();
  const bool k_quant = quant_traits(type).block_elems == 256;
  const bool k_heads = type == QuantType::Q4_K || type == QuantType::Q5_K;
  // Q8_0 / Q4_0: 10 blocks, a step of 8 and a last one of 2; K-quants: 3 blocks, a step each.
  const int64_t rows = 19, cols = k_quant ? 3 * 256 : 10 * 32, nb = k_quant ? 3 : 10;
  const uint32_t row_words = device_row_words(type, cols);
  std::vector<uint32_t> words(size_t(rows) * row_words);
  std::mt19937 rng(17);
  for (uint32_t& w : words) w = rng() | 0x01010101u;  // every byte non-zero
  const std::vector<uint32_t> banded = band_rows(type, words, rows, cols);
  ASSERT_EQ(banded.size(), size_t(32) * row_words);  // two bands of 16 rows

  // fp16 scales 8 to a texel in a row (Q8_0 / Q4_0: 10, 2 texels; Q6_K: 3, 1 texel); none in Q4_K / Q5_K rows.
  const uint32_t scale_texels = k_heads ? 0 : k_quant ? 1 : 2;
  const uint32_t quant4 = row_words / 4 - scale_texels, step = band_step_texels(type);
  const uint32_t want_step = type == QuantType::Q8_0 ? 16 : type == QuantType::Q4_0 ? 8 : type == QuantType::Q4_K ? 9
                             : type == QuantType::Q5_K ? 11 : 13;
  ASSERT_EQ(step, want_step);
  auto band_of = [&](uint32_t row) { return row / 16 * 16 * (scale_texels + quant4); };  // its first texel
  std::vector<bool> seen(banded.size() * 4, false);  // by byte
  // Checks that the `bytes` bytes of banded word `at` from byte `shift / 8` on are `want`'s and
  // were not claimed before.
  auto expect_at = [&](uint32_t at, uint32_t shift, uint32_t bytes, uint32_t want, const std::string& what) {
    ASSERT_LT(at, banded.size()) << what;
    for (uint32_t i = shift / 8; i < shift / 8 + bytes; ++i) {
      EXPECT_FALSE(seen[4 * at + i]) << what;
      seen[4 * at + i] = true;
    }
    const uint32_t mask = bytes == 4 ? ~0u : ((1u << (8 * bytes)) - 1);
    EXPECT_EQ((banded[at] >> shift) & mask, want & mask) << what;
  };
  for (uint32_t row = 0; row < uint32_t(rows); ++row) {
    const uint32_t* src = words.data() + size_t(row) * row_words, r = row % 16;
    const std::string at_row = "row " + std::to_string(row);
    if (k_heads) {
      for (uint32_t b = 0; b < uint32_t(nb); ++b) {
        const uint32_t* block = src + 4 * step * b;
        const uint32_t first = band_of(row) + 16 * step * b;  // k_band_block
        const std::string what = at_row + " block " + std::to_string(b);
        expect_at(4 * first + r, 0, 4, block[0], what + " d, dmin");
        uint8_t packed[12];
        std::memcpy(packed, block + 1, 12);
        for (uint32_t p = 0; p < 4; ++p) {
          uint8_t sc[2], mn[2];
          for (int h = 0; h < 2; ++h) scale_min_k4(int(2 * p) + h, packed, &sc[h], &mn[h]);
          const uint32_t field = sc[0] | sc[1] << 6 | mn[0] << 12 | mn[1] << 18, pair = first + 4 + 3 * p;
          expect_at(4 * pair + r / 2, 16 * (r % 2), 2, field, what + " pair " + std::to_string(p) + " bits 0-15");
          expect_at(4 * (pair + 2) + r / 4, 8 * (r % 4), 1, field >> 16, what + " pair " + std::to_string(p) + " bits 16-23");
        }
        for (uint32_t q = 0; q + 1 < step; ++q)  // k_band_quants
          for (uint32_t w = 0; w < 4; ++w)
            expect_at(4 * (first + 16 + r * (step - 1) + q) + w, 0, 4, block[4 + 4 * q + w],
                      what + " texel " + std::to_string(q));
      }
      continue;
    }
    for (uint32_t b = 0; b < uint32_t(nb); ++b)  // banded_scale_texel
      expect_at(4 * (band_of(row) + 2 * b + r / 8) + r % 8 / 2, 16 * (r % 2), 2, src[b / 2] >> (16 * (b % 2)),
                at_row + " scale " + std::to_string(b));
    for (uint32_t q = 0; q < quant4; ++q) {  // banded_quant_texel
      const uint32_t first = q / step * step, width = std::min(step, quant4 - first);
      const uint32_t at = band_of(row) + 16 * (scale_texels + first) + r * width + (q - first);
      for (uint32_t w = 0; w < 4; ++w)
        expect_at(4 * at + w, 0, 4, src[4 * (scale_texels + q) + w], at_row + " texel " + std::to_string(q));
    }
  }
  for (size_t byte = 0; byte < seen.size(); ++byte) {
    if (seen[byte]) continue;
    EXPECT_EQ((banded[byte / 4] >> (8 * (byte % 4))) & 0xFFu, 0u) << "padding byte " << byte;
  }
  // What was placed: K-quant heads 4 bytes of d, dmin and 4 pairs of 3 bytes a block; fp16
  // scales 2 bytes a block; the quants whole.
  const int64_t head_bytes = k_heads ? nb * (4 + 4 * 3) : scale_texels ? nb * 2 : 0;
  const int64_t quant_bytes = k_heads ? nb * (step - 1) * 16 : quant4 * 16;
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), rows * (head_bytes + quant_bytes));
  EXPECT_EQ(error_of([&] { band_rows(type, words, rows + 1, cols); }),
            "internal: band_rows given " + std::to_string(words.size()) + " words for 20 rows of " +
                std::to_string(row_words));
}

// A GGUF Q8_0 / Q4_0 tensor loads as its dequantized values; quantizing those again gives the
// file's very blocks, so quantize-on-load keeps what the file had. (Not so for Q6_K, whose
// reference quantizer searches its scales again: GGUF K-quant tensors keep their blocks instead.)
TEST_P(DeviceLayout, RequantizingDequantizedBlocksGivesTheSameBlocks) {
  const QuantType type = GetParam();
  const size_t n = 32 * 64;
  std::vector<float> x = random_values(n, 9, 3.0f);
  for (size_t i = 0; i < n; i += 97) x[i] = -std::fabs(x[i]) * 4;  // blocks whose extreme is negative
  for (size_t i = 32 * 5; i < 32 * 6; ++i) x[i] = 0.0f;          // an all-zero block
  std::vector<uint8_t> a(quant_row_bytes(type, n)), b(a.size());
  std::vector<float> y(n);
  quantize_row(type, x.data(), a.data(), n);
  dequantize_row(type, a.data(), y.data(), n);
  quantize_row(type, y.data(), b.data(), n);
  if (quant_traits(type).block_elems == 32) {
    EXPECT_EQ(a, b);
  }
  // round_trip_matrix is what the cpu backend computes with: the same dequantized values.
  std::vector<float> rt = x;
  round_trip_matrix(type, rt, 32 * 8);
  EXPECT_EQ(rt, y);
}

INSTANTIATE_TEST_SUITE_P(Formats, DeviceLayout,
                         testing::Values(QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_K, QuantType::Q5_K,
                                         QuantType::Q6_K),
                         [](const testing::TestParamInfo<QuantType>& i) {
                           return std::string(quant_traits(i.param).name);
                         });

TEST(QuantizedWeightsErrors, NameTheProblem) {
  const std::vector<float> m(40 * 2, 1.0f);
  EXPECT_EQ(error_of([&] { pack_device_matrix(QuantType::Q8_0, m.data(), 2, 40); }),
            "a Q8_0 matrix needs rows of a multiple of 32 values, got 40");
  const std::vector<float> k(288, 1.0f);
  EXPECT_EQ(error_of([&] { pack_device_matrix(QuantType::Q5_0, k.data(), 1, 256); }),
            "weights kept in blocks on the GPU must be Q8_0, Q4_0, Q4_K, Q5_K or Q6_K, not Q5_0");
  EXPECT_EQ(error_of([&] { pack_device_matrix(QuantType::Q4_K, k.data(), 1, 288); }),
            "a Q4_K matrix needs rows of a multiple of 256 values, got 288");
  // What a K-quant row falls back to: Q8_0 for rows of 32 k values, else fp32.
  EXPECT_EQ(row_block_type(QuantType::Q6_K, 512), QuantType::Q6_K);
  EXPECT_EQ(row_block_type(QuantType::Q4_K, 288), QuantType::Q8_0);
  EXPECT_EQ(row_block_type(QuantType::Q5_K, 48), std::nullopt);
  EXPECT_EQ(row_block_type(QuantType::Q4_0, 48), std::nullopt);
  EXPECT_EQ(error_of([] { parse_weight_storage("q5_0", "--weights"); }),
            "--weights: unknown weight storage 'q5_0' (expected auto, f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k)");
  for (WeightStorage s : {WeightStorage::Auto, WeightStorage::F32, WeightStorage::F16, WeightStorage::Q8_0,
                          WeightStorage::Q4_0, WeightStorage::Q4_K, WeightStorage::Q5_K, WeightStorage::Q6_K})
    EXPECT_EQ(parse_weight_storage(weight_storage_name(s), "x"), s);
}

// A llama.cpp Q8_0 GGUF file: loading it with q8_0 weights computes with the file's blocks (the
// cpu backend's logits are those of loading it as f32 bit for bit), and the GPU agrees.
TEST(QuantizedWeightsGguf, Q8_0FileKeepsItsBlocks) {
  Mamba1Config cfg;
  cfg.d_model = 32;
  cfg.n_layer = 2;
  cfg.vocab_size = 40;
  cfg.d_state = 4;
  cfg.d_inner = 64;
  cfg.dt_rank = 2;
  gguf_test::ConvertedModel m = gguf_test::convert_mamba1(random_mamba1(cfg, 12), gguf_test::OutType::Q8_0);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("vkssm_q8_gguf_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tiny-Q8_0.gguf").string();
  gguf_test::write_bytes(path, m.gguf.bytes());
  auto logits = [&](BackendKind backend, WeightStorage storage) {
    LoadOptions o;
    o.backend = backend;
    o.weights = storage;
    auto model = load_model(path, o);
    std::vector<float> out(3 * 40);
    const int32_t slot = 0, ids[] = {1, 2, 39};
    for (int t = 0; t < 3; ++t) model->step(&ids[t], &slot, 1, out.data() + t * 40);
    return out;
  };
  const std::vector<float> f32 = logits(BackendKind::Reference, WeightStorage::F32);
  EXPECT_EQ(logits(BackendKind::Reference, WeightStorage::Q8_0), f32);
  const std::vector<float> gpu = logits(BackendKind::Vulkan, WeightStorage::Q8_0);
  for (int t = 0; t < 3; ++t) EXPECT_LE(max_rel_error(gpu.data() + t * 40, f32.data() + t * 40, 40), 1e-3f) << t;
  std::filesystem::remove_all(dir);
}

// Writes `m` (an F32 conversion) with the tensors in `types` re-quantized, loads it with auto
// weights on the GPU and the cpu backend, checks the GPU's storage of each tensor named in
// `storage` and that the GPU's logits match the cpu backend's, which computes with the dequantized
// blocks: decode at B = 1 and B = 3, and prefill.
void expect_mixed_gguf_runs(gguf_test::ConvertedModel m, const std::vector<std::pair<const char*, QuantType>>& types,
                            const std::vector<std::pair<const char*, const char*>>& storage, int32_t vocab) {
  for (const auto& [name, type] : types) gguf_test::quantize_tensor(m, name, type);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("vkssm_mixed_gguf_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tiny-mixed.gguf").string();
  gguf_test::write_bytes(path, m.gguf.bytes());
  auto load = [&](BackendKind backend) {
    LoadOptions o;
    o.backend = backend;
    o.max_streams = 3;
    return load_model(path, o);
  };
  auto gpu = load(BackendKind::Vulkan), cpu = load(BackendKind::Reference);
  for (const auto& [name, want] : storage) {
    std::string got = "missing";
    for (const TensorStorage& t : gpu->info().tensors)
      if (t.name == name) got = t.type;
    if (std::string(want) == "f16|f32") {
      EXPECT_THAT(got, testing::AnyOf("f16", "f32")) << name;
    } else {
      EXPECT_EQ(got, want) << name;
    }
  }
  const size_t V = size_t(vocab);
  const int32_t slots[3] = {0, 1, 2};
  for (int t = 0; t < 4; ++t) {
    const int B = t < 2 ? 1 : 3;
    const int32_t ids[3] = {(t * 37 + 5) % vocab, (t * 11 + vocab - 1) % vocab, 7};
    std::vector<float> got(size_t(B) * V), want(got.size());
    gpu->step(ids, slots, B, got.data());
    cpu->step(ids, slots, B, want.data());
    for (int b = 0; b < B; ++b)
      ASSERT_LE(max_rel_error(got.data() + b * V, want.data() + b * V, vocab), 1e-3f)
          << "step " << t << " stream " << b;
  }
  std::vector<int32_t> prompt(70);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 53 + 7) % V);
  std::vector<float> got(V), want(V);
  gpu->prefill(2, prompt.data(), int(prompt.size()), got.data());
  cpu->prefill(2, prompt.data(), int(prompt.size()), want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), vocab), 1e-3f);
  std::filesystem::remove_all(dir);
}

// A llama-quantize style mix of block types (Q4_K_M files hold Q4_K and Q6_K matrices, maybe Q8_0,
// and F32 vectors): under auto weights every matrix whose type has a device layout keeps the file's
// blocks on the device, so one projection runs with different formats in different layers; a Q5_0
// matrix (no device layout) is dequantized as before.
TEST(QuantizedWeightsGguf, MixedMamba1FileKeepsEachTensorsBlocksOnTheDevice) {
  Mamba1Config cfg;
  cfg.d_model = 256;
  cfg.n_layer = 2;
  cfg.vocab_size = 301;
  cfg.d_state = 4;
  cfg.d_inner = 512;
  cfg.dt_rank = 16;
  cfg.tie_embeddings = false;
  expect_mixed_gguf_runs(gguf_test::convert_mamba1(random_mamba1(cfg, 21), gguf_test::OutType::F32),
                         {{"token_embd.weight", QuantType::Q4_K},
                          {"output.weight", QuantType::Q6_K},
                          {"blk.0.ssm_in.weight", QuantType::Q4_K},
                          {"blk.1.ssm_in.weight", QuantType::Q5_K},
                          {"blk.0.ssm_out.weight", QuantType::Q8_0},
                          {"blk.1.ssm_out.weight", QuantType::Q5_0},
                          {"blk.0.ssm_x.weight", QuantType::Q6_K}},  // x_proj: not a matrix the uploader takes
                         {{"token embeddings", "q4_k"},
                          {"lm_head", "q6_k"},
                          {"layer 0 in_proj", "q4_k"},
                          {"layer 1 in_proj", "q5_k"},
                          {"layer 0 out_proj", "q8_0"},
                          {"layer 1 out_proj", "f16|f32"}},
                         301);
}

TEST(QuantizedWeightsGguf, MixedMamba2FileKeepsEachTensorsBlocksOnTheDevice) {
  const Mamba2Config cfg{.d_model = 256, .n_layer = 2, .vocab_size = 301, .d_state = 8, .expand = 2, .head_dim = 16,
                         .n_groups = 1};
  expect_mixed_gguf_runs(gguf_test::convert_mamba2(random_mamba2(cfg, 22), gguf_test::OutType::F32),
                         {{"token_embd.weight", QuantType::Q8_0},  // tied: the lm_head too
                          {"blk.0.ssm_in.weight", QuantType::Q4_K},
                          {"blk.1.ssm_in.weight", QuantType::Q4_0},
                          {"blk.0.ssm_out.weight", QuantType::Q6_K},
                          {"blk.1.ssm_out.weight", QuantType::Q4_K}},
                         {{"token embeddings", "q8_0"},
                          {"layer 0 in_proj", "q4_k"},
                          {"layer 1 in_proj", "q4_0"},
                          {"layer 0 out_proj", "q6_k"},
                          {"layer 1 out_proj", "q4_k"}},
                         301);
}

// ---- GPU = CPU reference -------------------------------------------------------------------------

// A small random model of one architecture, made on either backend.
struct QuantArch {
  const char* name;
  bool frame_model;
  // in_proj-like and fallback tensor names as ModelInfo::tensors reports them (nullptr: none)
  const char* blocks_tensor;
  const char* f32_tensor;
  const char* q8_0_tensor;  // K-quant storages: rows of a multiple of 32 but not 256 values
  // Mamba-1's x_proj: blocks where CPU drivers run it as a matvec, the blocks' values in fp32 on
  // GPUs (the conv + x_proj shader reads floats)
  const char* x_proj_tensor;
  std::function<std::unique_ptr<Model>(const LoadOptions&)> create;
};

constexpr int64_t kVocab = 301;  // not a multiple of any workgroup's rows

Mamba1Config mamba1_config(bool falcon) {
  Mamba1Config c;
  c.d_model = 32;  // in_proj, embeddings, lm_head: blocks
  c.n_layer = 2;
  c.vocab_size = kVocab;
  c.d_state = 4;
  c.d_conv = 4;
  c.d_inner = falcon ? 64 : 48;  // out_proj and x_proj rows of 48 values stay fp32; of 64, blocks
  c.dt_rank = 2;
  c.tie_embeddings = false;
  c.dt_b_c_rms = falcon;
  return c;
}

Mamba2Config mamba2_config() {
  // D 48: in_proj and the tied embeddings stay fp32; out_proj (rows of E = 96) goes into blocks.
  return {.d_model = 48, .n_layer = 2, .vocab_size = kVocab, .d_state = 8, .expand = 2, .head_dim = 16, .n_groups = 1};
}

S4DConfig s4d_config() {
  // encoder rows of d_input = 3 stay fp32; decoder and output linears (rows of H = 32) go into blocks
  return {.d_input = 3, .d_model = 32, .d_state = 8, .n_layers = 2, .d_output = 7};
}

const QuantArch kArchs[] = {
    {"mamba1", false, "layer 1 in_proj", "layer 1 out_proj", nullptr, nullptr,
     [](const LoadOptions& o) {
       static const Mamba1Weights w = random_mamba1(mamba1_config(false), 3);
       return create_mamba1(w, o);
     }},
    {"falcon_mamba", false, "lm_head", nullptr, nullptr, "layer 0 x_proj",
     [](const LoadOptions& o) {
       static const Mamba1Weights w = random_mamba1(mamba1_config(true), 4);
       return create_mamba1(w, o);
     }},
    {"mamba2", false, "layer 1 out_proj", "layer 0 in_proj", nullptr, nullptr,
     [](const LoadOptions& o) {
       static const Mamba2Weights w = random_mamba2(mamba2_config(), 5);
       return create_mamba2(w, o);
     }},
    {"s4d", true, "layer 0 output linear", "encoder weight", nullptr, nullptr,
     [](const LoadOptions& o) {
       static const S4DWeights w = random_s4d(s4d_config(), 6);
       return create_s4d(w, o);
     }},
};

// The same architectures with rows for the K-quants' 256-value super-blocks.
Mamba1Config mamba1_k_config() {
  Mamba1Config c = mamba1_config(false);
  c.d_model = 512;  // in_proj, embeddings, lm_head: two super-blocks a row
  c.d_inner = 288;  // out_proj rows of 288 values: Q8_0
  return c;
}

const QuantArch kKArchs[] = {
    {"mamba1_k", false, "layer 1 in_proj", nullptr, "layer 0 out_proj", "layer 1 x_proj",
     [](const LoadOptions& o) {
       static const Mamba1Weights w = random_mamba1(mamba1_k_config(), 7);
       return create_mamba1(w, o);
     }},
    {"mamba2_k", false, "layer 1 out_proj", nullptr, nullptr, nullptr,
     [](const LoadOptions& o) {
       // D 256: in_proj and the tied embeddings one super-block a row, out_proj (E = 512) two
       static const Mamba2Weights w = random_mamba2(
           {.d_model = 256, .n_layer = 2, .vocab_size = kVocab, .d_state = 8, .expand = 2, .head_dim = 16, .n_groups = 1},
           8);
       return create_mamba2(w, o);
     }},
    {"s4d_k", true, "layer 1 output linear", "encoder weight", nullptr, nullptr,
     [](const LoadOptions& o) {
       static const S4DWeights w = random_s4d({.d_input = 3, .d_model = 256, .d_state = 8, .n_layers = 2, .d_output = 7}, 9);
       return create_s4d(w, o);
     }},
};

constexpr WeightStorage kKQuants[] = {WeightStorage::Q4_K, WeightStorage::Q5_K, WeightStorage::Q6_K};
constexpr WeightStorage kBlockStorages[] = {WeightStorage::Q8_0, WeightStorage::Q4_0, WeightStorage::Q4_K,
                                            WeightStorage::Q5_K, WeightStorage::Q6_K};
bool is_k_quant(WeightStorage s) { return quant_traits(*quant_type_of(s)).block_elems == 256; }

struct QuantParam {
  const QuantArch* arch;
  WeightStorage storage;
};

std::string quant_param_name(const testing::TestParamInfo<QuantParam>& i) {
  return std::string(i.param.arch->name) + "_" + weight_storage_name(i.param.storage);
}

std::vector<QuantParam> quant_params(bool token_models_only) {
  std::vector<QuantParam> p;
  for (const QuantArch& a : kArchs)
    if (!(token_models_only && a.frame_model))
      for (WeightStorage s : {WeightStorage::Q8_0, WeightStorage::Q4_0}) p.push_back({&a, s});
  for (const QuantArch& a : kKArchs)
    if (!(token_models_only && a.frame_model))
      for (WeightStorage s : kKQuants) p.push_back({&a, s});
  return p;
}

class QuantizedWeights : public testing::TestWithParam<QuantParam> {
 protected:
  const QuantArch& arch() const { return *GetParam().arch; }
  std::unique_ptr<Model> make(BackendKind backend, WeightStorage storage, int streams = 4) const {
    LoadOptions o;
    o.backend = backend;
    o.weights = storage;
    o.max_streams = streams;
    return arch().create(o);
  }
  // One batched step of B streams (slot b = stream b) at time t; returns [B][d_output].
  static std::vector<float> step(Model& m, int B, int t) {
    const ModelInfo& info = m.info();
    auto slots = std::vector<int32_t>(size_t(B));
    std::vector<float> out(size_t(B * info.d_output));
    for (int b = 0; b < B; ++b) slots[size_t(b)] = b;
    if (info.d_input > 0) {
      std::vector<float> frames(size_t(B * info.d_input));
      for (size_t i = 0; i < frames.size(); ++i) frames[i] = std::sin(0.3f * float(t) + 0.7f * float(i));
      m.step_frames(frames.data(), slots.data(), B, out.data());
    } else {
      auto tokens = std::vector<int32_t>(size_t(B));
      for (int b = 0; b < B; ++b) tokens[size_t(b)] = int32_t((t * 37 + b * 101 + 5) % info.vocab_size);
      m.step(tokens.data(), slots.data(), B, out.data());
    }
    return out;
  }
  // Decodes `steps` steps of B streams on the GPU and on the cpu backend, comparing every token.
  void expect_decode_matches(int B, int steps) const {
    auto gpu = make(BackendKind::Vulkan, GetParam().storage, B);
    auto cpu = make(BackendKind::Reference, GetParam().storage, B);
    const size_t d = size_t(gpu->info().d_output);
    for (int t = 0; t < steps; ++t) {
      const std::vector<float> got = step(*gpu, B, t), want = step(*cpu, B, t);
      for (int b = 0; b < B; ++b)
        ASSERT_LE(max_rel_error(got.data() + b * d, want.data() + b * d, int64_t(d)), 1e-3f)
            << "B " << B << " step " << t << " stream " << b;
    }
  }
};

TEST_P(QuantizedWeights, DecodeMatchesTheCpuReferenceAtB1) { expect_decode_matches(1, 5); }
TEST_P(QuantizedWeights, DecodeMatchesTheCpuReferenceAtB5) { expect_decode_matches(5, 4); }

TEST_P(QuantizedWeights, RecordsHowEachTensorIsStored) {
  auto gpu = make(BackendKind::Vulkan, GetParam().storage, 1);
  const std::string type = weight_storage_name(GetParam().storage);
  EXPECT_EQ(gpu->info().weight_type, type);
  EXPECT_EQ(make(BackendKind::Reference, GetParam().storage, 1)->info().weight_type, type);
  auto storage_of = [&](const std::string& name) -> std::string {
    for (const TensorStorage& t : gpu->info().tensors)
      if (t.name == name) return t.type;
    return "missing";
  };
  EXPECT_EQ(storage_of(arch().blocks_tensor), type);
  if (arch().f32_tensor) {
    EXPECT_EQ(storage_of(arch().f32_tensor), "f32");  // rows not a multiple of 32: fp32
  }
  if (arch().q8_0_tensor) {
    EXPECT_EQ(storage_of(arch().q8_0_tensor), "q8_0");
  }
  if (arch().x_proj_tensor) {
    // x_proj runs as a matvec where the work split reads texel buffers (CPU drivers, unless a
    // device profile's limits turn texel reads off); rows of 64 or 288 values: the K-quants fall
    // back to Q8_0
    const auto* vk = dynamic_cast<const VulkanStepModel*>(gpu.get());
    ASSERT_NE(vk, nullptr);
    const std::string blocks = is_k_quant(GetParam().storage) ? "q8_0" : type;
    EXPECT_EQ(storage_of(arch().x_proj_tensor), vk->tuning().texel ? blocks : "f32");
  }
  // Fewer bytes per step than fp32, and the weights really changed: the cpu backend's q output
  // differs from its f32 output. The fp32 model is loaded without a device profile: its layer
  // matrices may exceed a binding under VKSSM_DEVICE_PROFILE=tiny-bindings (bytes do not depend on it).
  uint64_t f32_bytes = 0;
  {
    ScopedEnv no_profile("VKSSM_DEVICE_PROFILE", "");
    f32_bytes = make(BackendKind::Vulkan, WeightStorage::F32, 1)->info().weight_bytes;
  }
  EXPECT_LT(gpu->info().weight_bytes, f32_bytes);
  auto cpu_q = make(BackendKind::Reference, GetParam().storage, 1), cpu_f = make(BackendKind::Reference, WeightStorage::F32, 1);
  const std::vector<float> q = step(*cpu_q, 1, 0), f = step(*cpu_f, 1, 0);
  EXPECT_GT(max_rel_error(q.data(), f.data(), int64_t(q.size())), 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Architectures, QuantizedWeights, testing::ValuesIn(quant_params(false)), quant_param_name);

// Prefill (prompt tokens as the rows of one step: the matvecs as matrix-matrix products) gives the
// logits of stepping the cpu reference through the prompt.
class QuantizedPrefill : public QuantizedWeights {};

TEST_P(QuantizedPrefill, MatchesTheCpuReference) {
  auto gpu = make(BackendKind::Vulkan, GetParam().storage, 2);
  auto cpu = make(BackendKind::Reference, GetParam().storage, 2);
  std::vector<int32_t> prompt(70);  // more than one prefill step of 64 rows
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 53 + 7) % kVocab);
  std::vector<float> got(kVocab), want(kVocab);
  gpu->prefill(1, prompt.data(), int(prompt.size()), got.data());
  cpu->prefill(1, prompt.data(), int(prompt.size()), want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), kVocab), 1e-3f);
  // Prefill (many rows per matvec) leaves the very state one step per token does (one row each).
  auto stepped = make(BackendKind::Vulkan, GetParam().storage, 2);
  const int32_t slot = 1;
  for (int32_t tok : prompt) stepped->step(&tok, &slot, 1, nullptr);
  EXPECT_EQ(gpu->snapshot(1), stepped->snapshot(1));
}

// A stream stepped alone computes, bit for bit, what it computes beside another stream: on CPU
// drivers one-row steps run the matvecs' one-row variants (MatvecPipeline), batches the others.
TEST_P(QuantizedPrefill, AStreamAloneComputesWhatItDoesInABatch) {
  auto alone = make(BackendKind::Vulkan, GetParam().storage, 2);
  auto batched = make(BackendKind::Vulkan, GetParam().storage, 2);
  std::vector<float> one(kVocab), two(2 * size_t(kVocab));
  for (int t = 0; t < 3; ++t) {
    const int32_t tok = int32_t((t * 53 + 7) % kVocab), slot = 1;
    const int32_t toks[2] = {int32_t((t * 31 + 3) % kVocab), tok}, slots[2] = {0, 1};
    alone->step(&tok, &slot, 1, one.data());
    batched->step(toks, slots, 2, two.data());
    ASSERT_EQ(one, std::vector<float>(two.begin() + kVocab, two.end())) << "step " << t;
  }
  EXPECT_EQ(alone->snapshot(1), batched->snapshot(1));
}

INSTANTIATE_TEST_SUITE_P(Architectures, QuantizedPrefill, testing::ValuesIn(quant_params(true)), quant_param_name);

// Every work split (storage buffers with 64 or 32 threads, one thread per workgroup, texel buffers
// with 8) reads the blocks alike.
TEST(QuantizedWeightsGpu, EveryWorkSplitMatchesTheCpuReference) {
  const bool subgroups =
      dynamic_cast<const VulkanStepModel&>(*kArchs[0].create(testing_helpers::on_vulkan())).caps().subgroup_arithmetic;
  for (const char* tune : {"64,1,64,64,0", "1,8,256,256,0", "8,2,32,16,1", "32,3,40,24,0"}) {
    if (!subgroups && std::atoi(tune) > 32) continue;  // refused there (test_mamba1_gpu.cpp checks how)
    for (WeightStorage storage : kBlockStorages) {
      SCOPED_TRACE(std::string(tune) + " " + weight_storage_name(storage));
      const QuantArch& arch = is_k_quant(storage) ? kKArchs[0] : kArchs[0];  // rows the format takes
      LoadOptions o = testing_helpers::on_vulkan(3);
      o.weights = storage;
      std::unique_ptr<Model> gpu;
      {
        ScopedEnv env("VKSSM_TUNE", tune);
        gpu = arch.create(o);
      }
      o.backend = BackendKind::Reference;
      auto cpu = arch.create(o);
      for (int t = 0; t < 3; ++t) {
        const int B = t + 1;
        auto tokens = std::vector<int32_t>(size_t(B));
        const std::vector<int32_t> slots{0, 1, 2};
        for (int b = 0; b < B; ++b) tokens[size_t(b)] = int32_t((t * 17 + b * 31) % kVocab);
        std::vector<float> got(size_t(B) * kVocab), want(got.size());
        gpu->step(tokens.data(), slots.data(), B, got.data());
        cpu->step(tokens.data(), slots.data(), B, want.data());
        ASSERT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << "step " << t;
      }
    }
  }
}

// A q8_0 table larger than one binding under tiny-bindings (1 MiB): 4,004 rows of 544 bytes, bound
// in slices of whole 16-row bands on lavapipe (the row-band layout), for the embedding gather and
// for the head. Tokens from the first, middle and last slices, and the last (padded) band.
TEST(QuantizedWeightsGpu, ATableInSeveralSlicesMatchesTheCpuReference) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  constexpr int64_t V = 4004;
  Mamba1Config c = testing_helpers::small_mamba1_config(V);
  c.d_model = 512;
  c.d_inner = 64;
  c.n_layer = 1;
  const Mamba1Weights w = random_mamba1(c, 21);
  LoadOptions o = testing_helpers::on_vulkan(3);
  o.weights = WeightStorage::Q8_0;
  auto gpu = create_mamba1(w, o);
  o.backend = BackendKind::Reference;
  auto cpu = create_mamba1(w, o);
  EXPECT_EQ(gpu->info().weight_type, "q8_0");
  const int32_t slots[3] = {0, 1, 2};
  for (const std::vector<int32_t>& tokens : {std::vector<int32_t>{5, 1990, 4003}, {4000, 2100, 1000}}) {
    std::vector<float> got(3 * V), want(got.size());
    gpu->step(tokens.data(), slots, 3, got.data());
    cpu->step(tokens.data(), slots, 3, want.data());
    ASSERT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << tokens[0];
  }
}

// Without subgroup arithmetic the matvecs reduce in shared memory (the *_shared variants).
TEST(QuantizedWeightsGpu, SharedMemoryReductionsMatchTheCpuReference) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "vulkan-1.1-minimal");
  for (WeightStorage storage : kBlockStorages) {
    const QuantArch& arch = is_k_quant(storage) ? kKArchs[1] : kArchs[2];
    LoadOptions o = testing_helpers::on_vulkan(2);
    o.weights = storage;
    auto gpu = arch.create(o);
    ASSERT_FALSE(dynamic_cast<const VulkanStepModel&>(*gpu).caps().subgroup_arithmetic);
    o.backend = BackendKind::Reference;
    auto cpu = arch.create(o);
    const int32_t tokens[2] = {7, 300}, slots[2] = {1, 0};
    std::vector<float> got(2 * kVocab), want(got.size());
    for (int t = 0; t < 2; ++t) {
      gpu->step(tokens, slots, 2, got.data());
      cpu->step(tokens, slots, 2, want.data());
      ASSERT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << weight_storage_name(storage);
    }
  }
}

}  // namespace
}  // namespace vkssm
