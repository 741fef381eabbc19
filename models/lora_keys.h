// Which adapter-file keys the LoRA loaders outside this project consume, for Wan2.1's original
// layer names (the names export_lora writes, after the "diffusion_model." prefix).
//
// diffusers (WanPipeline.load_lora_weights -> _convert_non_diffusers_wan_lora_to_diffusers)
// converts, per block, self_attn.{q,k,v,o}, cross_attn.{q,k,v,o,k_img,v_img} and ffn.{0,2}, and
// outside the blocks head.head, time_projection.1, text_embedding.{0,2}, time_embedding.{0,2}
// and img_emb.proj.{1,3}. It reads a layer's `.alpha` (and folds alpha / r into A and B) for
// block layers only; outside the blocks it takes A and B as they are (scale 1) and raises
// "state_dict should be empty" on any key it did not consume, an `.alpha` among them. It also
// needs at least one block layer in the file.
// ComfyUI maps "diffusion_model.<module>" for every weight of the model and reads
// "<layer>.alpha" for any layer when present (scale alpha / r), scale 1 when absent.
// So an adapter file is read the same by both (and by merge_lora, PEFT's convention: no alpha,
// scale 1) when block layers carry A, B and alpha, and every other layer carries A with
// alpha / r folded in, B, and no alpha.
#ifndef DANCEGRPO_MODELS_LORA_KEYS_H_
#define DANCEGRPO_MODELS_LORA_KEYS_H_

#include <string>

namespace dancegrpo::models {

// Whether `layer` (e.g. "blocks.3.self_attn.q", "head.head") is inside a transformer block:
// its adapter is written with an alpha key.
bool LoraLayerInBlock(const std::string& layer);

// Whether diffusers' Wan LoRA conversion consumes an adapter on `layer`.
bool DiffusersWanConvertsLayer(const std::string& layer);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_LORA_KEYS_H_
