#pragma once
// Mamba-1 / Falcon-Mamba weights as a llama.cpp GGUF file (`vkssm quantize`): the tensor names,
// shapes and metadata keys convert_hf_to_gguf.py's MambaModel writes (architecture "mamba"; A
// stored as -exp(A_log), conv1d squeezed to [E, K], a tied lm_head omitted, Falcon-Mamba as
// mamba.ssm.dt_b_c_rms = true), with the matrices in one ggml type chosen per tensor by
// gguf_export_type() (host/gguf_writer.h) and quantized by host/quant's quantize_row (llama.cpp's
// reference rounding).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/gguf_vocab.h"
#include "host/gguf_writer.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {

// Writes `path`; `target` is a ggml type id (F32, F16 or a block format quantize_row supports),
// `name` goes to general.name, `vocab` (when given) to tokenizer.ggml.*. Returns what each tensor
// became, in file order. Throws vkssm::Error naming the tensor or file.
std::vector<GgufTensorSummary> write_mamba1_gguf(const Mamba1Weights& w, uint32_t target, const std::string& name,
                                                 const std::optional<GgufVocab>& vocab, const std::string& path);

}  // namespace vkssm
