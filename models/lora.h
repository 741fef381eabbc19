// LoRA (Hu et al., 2021) for any model built from LoraLinear layers (the DiT's every linear):
//
//   y = W x + b + (alpha / r) * B (A x),   A [r, in], B [out, r]
//
// AttachLora adds the adapter to every targeted layer as two bias-free linears named
// "lora_A" and "lora_B" under the layer, so the adapter of blocks.3.self_attn.q has the
// parameters blocks.3.self_attn.q.lora_A.weight and ...lora_B.weight: PEFT's names. A is drawn
// like PEFT's (kaiming-uniform, a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))) from the given seed,
// B is zero, so until the first update the model computes exactly what the base computes.
// The trainer then trains only the adapters (dancegrpo/trainable.h) and keeps the base frozen
// in the compute dtype. Switching the adapters off (LoraDisabled) gives the base model back:
// the free reference policy of a KL penalty.
#ifndef DANCEGRPO_MODELS_LORA_H_
#define DANCEGRPO_MODELS_LORA_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo::models {

// A Linear layer that can carry a LoRA adapter. Without one it computes exactly what
// torch::nn::Linear computes (the same op on the same parameters).
class LoraLinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x);
  bool has_adapter() const { return !lora_A.is_empty(); }

  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double lora_scale = 0;    // alpha / r
  bool lora_enabled = true;
};
TORCH_MODULE(LoraLinear);

// The targets of --lora_targets' default: every block's self- and cross-attention q, k, v,
// o and both FFN linears (Flow-GRPO's and DanceGRPO's choice for Wan).
inline constexpr char kDefaultLoraTargets[] =
    "self_attn.q,self_attn.k,self_attn.v,self_attn.o,cross_attn.q,cross_attn.k,cross_attn.v,cross_attn.o,ffn.0,ffn.2";

struct LoraConfig {
  int64_t rank = 0;      // r; 0 = no LoRA
  double alpha = 0;      // the scale is alpha / r
  std::string targets = kDefaultLoraTargets;
  double dropout = 0;    // only 0: see AttachLora
  bool enabled() const { return rank > 0; }
};

// A comma-separated target list matches a layer when the layer's path equals a target or
// ends with "." + target (PEFT's rule): "q" matches blocks.*.self_attn.q and cross_attn.q,
// "self_attn.q" only the former, "blocks.0.ffn.0" one layer.
//
// Adds adapters to the targeted LoraLinear layers of `model` and returns their paths, in
// model order. Fails, naming the problem and the fix, and leaving the model unchanged, for
// a rank < 1, an alpha that is not finite and > 0, a dropout other than 0 (dropout would make
// the update's policy differ from the one that sampled, so the on-policy ratio would not be
// 1), a target that matches no linear layer (the message lists the model's layers), a rank
// above a targeted layer's width (min of its in and out features), or a model that already
// has adapters.
absl::StatusOr<std::vector<std::string>> AttachLora(torch::nn::Module& model, const LoraConfig& config, uint64_t seed);

// The checks and target matching of AttachLora over a list of linear layers (path, in, out
// features), for tools that plan a model without building it: which layers get adapters.
struct LinearLayerShape {
  std::string path;
  int64_t in = 0, out = 0;
};
absl::StatusOr<std::vector<bool>> SelectLoraLayers(const std::vector<LinearLayerShape>& layers,
                                                   const LoraConfig& config);

// True for an adapter's parameter name ("...lora_A.weight" / "...lora_B.weight").
bool IsLoraParameter(const std::string& name);
// True when any layer of `model` carries an adapter.
bool HasLora(const torch::nn::Module& model);

// The layers of `model` that carry an adapter, in model order.
std::vector<LoraLinearImpl*> AdaptedLayers(const torch::nn::Module& model);

// Switches the adapters of `layers` (AdaptedLayers of a model: the model then computes its
// base) off for this object's lifetime, and back to what they were after.
class LoraDisabled {
 public:
  explicit LoraDisabled(const std::vector<LoraLinearImpl*>& layers);
  ~LoraDisabled();
  LoraDisabled(const LoraDisabled&) = delete;
  LoraDisabled& operator=(const LoraDisabled&) = delete;

 private:
  std::vector<std::pair<LoraLinearImpl*, bool>> saved_;
};

// W + scale * B A, computed in fp32 and returned in W's dtype: the one merge formula, used by
// the in-memory merge and by merge_lora.
torch::Tensor MergedWeight(const torch::Tensor& weight, const torch::Tensor& lora_a, const torch::Tensor& lora_b,
                           double scale);

// The model's parameters with every adapter merged into its layer's weight and the adapters
// themselves left out: the names and shapes of the base model. CPU tensors.
std::vector<std::pair<std::string, torch::Tensor>> MergedParameters(const torch::nn::Module& model);

// Adapter files (export_lora, merge_lora): safetensors with the key names that diffusers'
// Wan LoRA loader and ComfyUI read for Wan2.1's original module names, PEFT's lora_A/lora_B:
//   <prefix><layer>.lora_A.weight  [r, in]
//   <prefix><layer>.lora_B.weight  [out, r]
//   <prefix><layer>.alpha          [] (fp32; the scale is alpha / r)
// with prefix "diffusion_model." by default.
inline constexpr char kLoraFilePrefix[] = "diffusion_model.";

struct LoraLayerWeights {
  torch::Tensor a, b;  // [r, in], [out, r], fp32 on the CPU
  double scale = 1;    // alpha / r (1 when a file has no alpha: PEFT's convention)
};

// The adapters by layer from parameters named "<layer>.lora_A.weight" / "<layer>.lora_B.weight"
// (a model's, or a checkpoint's) and the run's alpha. Fails for a name that is not an
// adapter's, a layer that lacks A or B, or shapes that do not chain.
absl::StatusOr<std::map<std::string, LoraLayerWeights>> LoraLayers(
    const std::vector<std::pair<std::string, torch::Tensor>>& adapters, double alpha);

// An adapter file's tensors (A, B and alpha per layer, keys with `prefix`).
std::vector<std::pair<std::string, torch::Tensor>> LoraFileTensors(const std::map<std::string, LoraLayerWeights>& layers,
                                                                   const std::string& prefix = kLoraFilePrefix);

// Reads an adapter file: layer name (prefix "diffusion_model." / "transformer." /
// "base_model.model." or none stripped) -> its adapter; the file's metadata into `metadata`
// when given. Fails, naming the file and key, on a key that is not an adapter's, a layer with A
// but no B (or the reverse), shapes that do not chain, or a file without adapters.
absl::StatusOr<std::map<std::string, LoraLayerWeights>> ReadLoraFile(
    const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Merges adapters into `named` (a model's parameters by name: "<layer>.weight" must exist
// with shape [out, in]) and returns the merged list in the same order and dtypes. Fails,
// naming the layer, when one is missing or its shape differs.
absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> MergeLora(
    const std::vector<std::pair<std::string, torch::Tensor>>& named,
    const std::map<std::string, LoraLayerWeights>& adapters);

// A checksum of a model's base weights: CRC-32C over every parameter that is not an adapter,
// in name order, of its name and its values as fp32 ("crc32c:%08x"). The same weights give
// the same checksum whatever the dtype they were loaded in (bf16 widens exactly) or the file
// layout they came from.
std::string BaseChecksum(const torch::nn::Module& model);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_LORA_H_
