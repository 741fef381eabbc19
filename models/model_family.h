// The model-family seam: what the trainer, the memory planner and LoRA ask of a kind of
// model, from its config alone, without building it: its modules with their sizes, its
// linear layers (where adapters can go), its attention heads, how many tokens a latent
// becomes, the FLOPs of a forward and the activations a block keeps. Building the model is
// the family's too; a built model runs its blocks through hpc::BlockRunner (ZeRO-3,
// checkpointing), so a new family writes neither the planner's inventory nor the sharding.
//
// Families register a parser at link time (RegisterModelFamily); ModelFamilyFor tries them
// in turn on a preset name or a config path. The Wan-style DiT (models/dit/dit_family.h)
// is the first.
#ifndef DANCEGRPO_MODELS_MODEL_FAMILY_H_
#define DANCEGRPO_MODELS_MODEL_FAMILY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/lora.h"
#include "models/module_shape.h"
#include "models/velocity_model.h"

namespace dancegrpo::models {

// The sizes an activation count depends on, for one sample (one row of a batch).
struct ActivationQuery {
  int64_t tokens = 0;           // video tokens on this rank (the sequence's slice under sp)
  int64_t full_tokens = 0;      // video tokens of the whole sequence
  int64_t text_tokens = 0;
  int sequence_parallel = 1;
  int ulysses = 1;              // the Ulysses degree inside sp; ring attention when sp / ulysses > 1
  int dtype_bytes = 4;          // of the compute dtype (ring attention keeps fp32 state)
  int64_t extra_per_token = 0;  // elements more per token and block (LoRA's A x)
  bool fused_attention = false; // attention keeps no score matrices (scaled_dot_product_attention)
};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  virtual std::string family() const = 0;  // "wan-dit"
  virtual std::string name() const = 0;    // the config's name ("wan2.1-1.3b"), may be empty

  // A new model with this config (random initialisation).
  virtual std::shared_ptr<VelocityModel> Build() const = 0;

  // Every parameter, module by module, in the model's order (the modules its forward pass
  // uses before the blocks come before them: the planner counts their gradients through
  // every block).
  virtual std::vector<ModuleShape> Modules() const = 0;
  // The linear layers, the places a LoRA adapter can go.
  virtual std::vector<LinearLayerShape> LinearLayers() const = 0;
  virtual int NumBlocks() const = 0;
  // Attention heads (sequence parallelism splits them); 0 for a model without attention.
  virtual int Heads() const = 0;
  // The channels of the latent the model denoises, and of the text condition.
  virtual int64_t LatentChannels() const = 0;
  virtual int64_t TextDim() const = 0;

  // Video tokens of one latent [C, F, H, W].
  virtual int64_t Tokens(const std::vector<int64_t>& latent_shape) const = 0;
  // Text tokens a sample attends to, given the encoder's (0: the config's own length).
  virtual int64_t TextTokens(int64_t encoder_tokens) const = 0;
  // Model FLOPs of one forward of `batch` samples.
  virtual double ForwardFlops(int64_t batch, int64_t tokens, int64_t text_tokens) const = 0;

  // Elements one block keeps for its backward, per sample.
  virtual int64_t BlockActivations(const ActivationQuery& q) const = 0;
  // Elements of a block's input (what activation checkpointing keeps), per sample.
  virtual int64_t BlockInput(const ActivationQuery& q) const = 0;
  // Elements of a forward without gradients at its widest, per sample (rollout).
  virtual int64_t ForwardWorkingSet(const ActivationQuery& q) const = 0;
  // Elements one block's backward holds at once beyond its kept activations and their
  // gradients (ring attention's score blocks and travelling buffers), per sample.
  virtual int64_t BackwardWorkingSet(const ActivationQuery& q) const { return 0; }
  // Elements per token that sequence parallelism moves for one block's self-attention, per
  // query/key/value/output tensor: the attention width (heads x head_dim); 0 = none.
  virtual int64_t AttentionWidth() const { return 0; }
};

// Parses a preset name or a config path; NotFound when the config is not this family's.
using ModelFamilyParser = std::function<absl::StatusOr<std::shared_ptr<const ModelFamily>>(const std::string&)>;

// Registers a family's parser (at static-initialisation time; the target must be
// alwayslink). Returns true, for `static const bool registered = RegisterModelFamily(...)`.
bool RegisterModelFamily(const std::string& family, ModelFamilyParser parser);

// The family of a preset name or config path: the first registered parser that accepts
// it, or the errors of all of them.
absl::StatusOr<std::shared_ptr<const ModelFamily>> ModelFamilyFor(const std::string& preset_or_path);

// The block a module path belongs to ("blocks.3.ffn.0" -> 3), by the family's modules: the
// block of the longest module name that is a prefix of it; -1 outside the blocks.
int BlockOfPath(const std::vector<ModuleShape>& modules, const std::string& path);

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_MODEL_FAMILY_H_
