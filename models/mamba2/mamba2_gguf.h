#pragma once
// Mamba-2 weights as a llama.cpp GGUF file (`vkssm quantize`): the tensor names, shapes and
// metadata keys convert_hf_to_gguf.py's Mamba2Model writes (architecture "mamba2"; A stored as
// -exp(A_log) and A, D shaped [H, 1]; the gated norm reshaped to [G, E/G]; dt_bias as
// ssm_dt.bias), the matrices in the types gguf_export_type() picks for `target`. The file has no
// key for time_step_limit, as llama.cpp's has none.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/gguf_vocab.h"
#include "host/gguf_writer.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {

// As write_mamba1_gguf() (models/mamba1/mamba1_gguf.h).
std::vector<GgufTensorSummary> write_mamba2_gguf(const Mamba2Weights& w, uint32_t target, const std::string& name,
                                                 const std::optional<GgufVocab>& vocab, const std::string& path);

}  // namespace vkssm
