# The shader variants built into vkssm (included by engine/CMakeLists.txt, which embeds them).
# Every variant becomes a value of the generated `enum class vkssm::ShaderId` (engine/vk/
# shader_registry.h), so C++ that names a variant not listed here does not compile.
#
# Shaders that read big weight matrices are built once per weight storage type: <name>_f32 and
# <name>_f16.
foreach(shader matvec embed_gather mamba1_conv_x_proj mamba1_scan)
  vkssm_shader(NAME ${shader}_f32 SOURCE ${shader}.comp)
  vkssm_shader(NAME ${shader}_f16 SOURCE ${shader}.comp DEFINES WEIGHT_F16=1)
endforeach()
# matvec reading its matrix and inputs through uniform texel buffers: fast on llvmpipe (lavapipe);
# the Mamba-1 scan reading dt_proj's weights so (fp32 or fp16 alike, the view converts).
vkssm_shader(NAME matvec_texel SOURCE matvec.comp DEFINES WEIGHT_TEXEL=1)
vkssm_shader(NAME mamba1_scan_texel SOURCE mamba1_scan.comp DEFINES DT_TEXEL=1)
# fp32 matvec with a stream per invocation: frame models' many streams on CPU drivers.
vkssm_shader(NAME matvec_stream_lanes SOURCE matvec_stream_lanes.comp)
# The same three with shared-memory reductions, for devices without subgroup arithmetic.
vkssm_shader(NAME matvec_f32_shared SOURCE matvec.comp DEFINES SHARED_REDUCTION=1)
vkssm_shader(NAME matvec_f16_shared SOURCE matvec.comp DEFINES WEIGHT_F16=1 SHARED_REDUCTION=1)
vkssm_shader(NAME matvec_texel_shared SOURCE matvec.comp DEFINES WEIGHT_TEXEL=1 SHARED_REDUCTION=1)
# Matrices kept in Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K blocks (host/quant_matrix.h), dequantised as
# they are read: the matvec (storage or texel buffers, subgroup or shared-memory reductions) and
# the embedding gather.
foreach(q q8_0 q4_0 q4_k q5_k q6_k)
  string(TOUPPER "WEIGHT_${q}=1" qdef)  # e.g. WEIGHT_Q4_K=1
  vkssm_shader(NAME matvec_${q} SOURCE matvec.comp DEFINES ${qdef})
  vkssm_shader(NAME matvec_${q}_texel SOURCE matvec.comp DEFINES ${qdef} WEIGHT_TEXEL=1)
  vkssm_shader(NAME matvec_${q}_shared SOURCE matvec.comp DEFINES ${qdef} SHARED_REDUCTION=1)
  vkssm_shader(NAME matvec_${q}_texel_shared SOURCE matvec.comp DEFINES ${qdef} WEIGHT_TEXEL=1 SHARED_REDUCTION=1)
  vkssm_shader(NAME embed_gather_${q} SOURCE embed_gather.comp DEFINES ${qdef})
endforeach()
# Engine shaders shared by every architecture (no weights in them).
vkssm_shader(NAME sample_tokens SOURCE sample_tokens.comp)
vkssm_shader(NAME state_save SOURCE state_save.comp)
vkssm_shader(NAME frame_gather SOURCE frame_gather.comp)
# Mamba-2 step shaders (their weights are small fp32 vectors: one variant each).
foreach(shader mamba2_conv mamba2_scan mamba2_gated_norm)
  vkssm_shader(NAME ${shader} SOURCE ${shader}.comp)
endforeach()
# S4D step shaders.
foreach(shader s4d_scan s4d_glu_norm)
  vkssm_shader(NAME ${shader} SOURCE ${shader}.comp)
endforeach()
# The S4D scan reading its state and constants through texel views, and the GLU/LayerNorm rows a
# thread each reading through texel views (CPU drivers).
vkssm_shader(NAME s4d_scan_texel SOURCE s4d_scan.comp DEFINES TEXEL_READS=1)
vkssm_shader(NAME s4d_glu_norm_rows SOURCE s4d_glu_norm_rows.comp)
