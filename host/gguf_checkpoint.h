#pragma once
// A llama.cpp GGUF file of the `mamba` or `mamba2` architecture seen as a Hugging Face checkpoint
// (a `mamba` file with mamba.ssm.dt_b_c_rms = true becomes a Falcon-Mamba config):
// an HF-style config (synthesised from the GGUF metadata) and the tensors under their HF names,
// with llama.cpp's converter changes undone, so the architectures' loaders read it unchanged.
//
// What the converter (convert_hf_to_gguf.py, MambaModel / Mamba2Model) did, and how it is undone:
//   - names: blk.{i}.ssm_in -> backbone.layers.{i}.mixer.in_proj, ... (table in the .cpp);
//   - ssm_a holds A = -exp(A_log): A_log = log(-A), computed in double, rounded to fp32;
//   - ssm_conv1d.weight was squeezed to [C, K]: it becomes [C, 1, K] again;
//   - Mamba-2: ssm_a and ssm_d got a trailing 1 ([H, 1] -> [H]); ssm_norm.weight was reshaped to
//     [G, E/G] (-> [E]); dt_bias was stored as blk.{i}.ssm_dt.bias;
//   - dimensions are stored innermost first (reversed);
//   - a tied lm_head is omitted (output.weight absent -> tie_word_embeddings).
// Quantised tensors (Q8_0, Q4_0, ...) and ssm_a are converted to fp32 at open time; F32, F16 and
// BF16 tensors are used in place, inside the mapping.
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/dtype.h"
#include "host/gguf.h"
#include "host/safetensors.h"

namespace vkssm {

struct GgufCheckpoint {
  std::unique_ptr<GgufFile> file;
  nlohmann::json config;            // HF config.json form
  std::vector<TensorInfo> tensors;  // HF names; data points into `file` or `converted`
  std::deque<std::vector<float>> converted;  // a deque never moves its elements
  // F16 when most bytes are F16 (or quantised with values fp16 holds exactly), BF16 or F32
  // likewise: decides whether the GPU stores the weights in fp16.
  DType main_dtype = DType::F32;
};

// Throws vkssm::Error naming the file and the key or tensor at fault: a malformed file, an
// architecture other than mamba / mamba2, dt_b_c_rms on a mamba2 file, a missing or mistyped
// metadata key, a tensor vkssm does not know, a ggml type it cannot read.
std::shared_ptr<const GgufCheckpoint> open_gguf_checkpoint(const std::string& path);

}  // namespace vkssm
