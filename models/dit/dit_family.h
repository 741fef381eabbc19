// The Wan-style video DiT as a model family (models/model_family.h): its presets and
// Wan/diffusers config.json files, its module inventory, FLOPs and block activations, all
// from the config alone. Registered as "wan-dit".
#ifndef DANCEGRPO_MODELS_DIT_DIT_FAMILY_H_
#define DANCEGRPO_MODELS_DIT_DIT_FAMILY_H_

#include <memory>

#include "models/dit/dit_config.h"
#include "models/model_family.h"

namespace dancegrpo::models {

class DitFamily : public ModelFamily {
 public:
  explicit DitFamily(DitConfig config) : config_(std::move(config)) {}
  static std::shared_ptr<const ModelFamily> Make(const DitConfig& config) {
    return std::make_shared<DitFamily>(config);
  }
  const DitConfig& config() const { return config_; }

  std::string family() const override { return "wan-dit"; }
  std::string name() const override { return config_.name; }
  std::shared_ptr<VelocityModel> Build() const override;
  std::vector<ModuleShape> Modules() const override;
  std::vector<LinearLayerShape> LinearLayers() const override;
  int NumBlocks() const override { return config_.layers; }
  int Heads() const override { return config_.heads; }
  int64_t LatentChannels() const override { return config_.in_channels; }
  int64_t TextDim() const override { return config_.text_dim; }
  int64_t Tokens(const std::vector<int64_t>& latent_shape) const override;
  int64_t TextTokens(int64_t encoder_tokens) const override;
  double ForwardFlops(int64_t batch, int64_t tokens, int64_t text_tokens) const override;
  int64_t BlockActivations(const ActivationQuery& q) const override;
  int64_t BlockInput(const ActivationQuery& q) const override;
  int64_t ForwardWorkingSet(const ActivationQuery& q) const override;
  int64_t BackwardWorkingSet(const ActivationQuery& q) const override;
  int64_t AttentionWidth() const override { return config_.dim; }

 private:
  // Elements of the attention score matrices one sample keeps (none when fused).
  int64_t Scores(const ActivationQuery& q) const;
  DitConfig config_;
};

}  // namespace dancegrpo::models

#endif  // DANCEGRPO_MODELS_DIT_DIT_FAMILY_H_
