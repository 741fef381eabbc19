#include "dancegrpo/evaluate.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "dancegrpo/rollout.h"
#include "dancegrpo/scored_rollout.h"
#include "dancegrpo/schedule.h"
#include "hpc/status_macros.h"

namespace dancegrpo {

EvalConfig EvalConfigFor(const TrainerConfig& run) {
  EvalConfig c;
  c.steps = run.steps;
  c.shift = run.shift;
  c.sde = run.sde;
  c.micro_batch = run.micro_batch;
  c.latent_shape = run.latent_shape;
  return c;
}

absl::StatusOr<EvalResult> EvaluatePolicy(models::VelocityModel& policy, models::PromptEncoder& encoder,
                                          const std::vector<rewards::Prompt>& prompts,
                                          const std::vector<rewards::WeightedReward>& rewards, const EvalConfig& c) {
  if (c.steps < 1 || c.micro_batch < 0 || !(c.shift > 0) || c.samples_per_prompt < 1)
    return absl::InvalidArgumentError(absl::StrCat("evaluation with steps ", c.steps, ", shift ", c.shift,
                                                   ", micro_batch ", c.micro_batch, ", samples per prompt ",
                                                   c.samples_per_prompt, ": steps, shift and samples must be positive "
                                                   "(EvalConfigFor takes a run's)"));
  torch::NoGradGuard no_grad;
  DGRPO_ASSIGN_OR_RETURN(auto sigmas, SigmaSchedule(c.steps, c.shift));
  std::vector<SampleId> samples;
  std::vector<std::string> texts;
  std::vector<rewards::Prompt> per_sample;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int g = 0; g < c.samples_per_prompt; ++g) {
      samples.push_back({static_cast<int64_t>(p), g});
      texts.push_back(prompts[p].text);
      per_sample.push_back(prompts[p]);
    }
  DGRPO_ASSIGN_OR_RETURN(auto conditions, encoder.Encode(texts));
  RolloutConfig rc;
  rc.seed = c.seed;
  rc.shared_noise = false;
  rc.micro_batch = c.micro_batch;
  rc.sde = c.sde;
  rc.latent_shape = c.latent_shape;
  DGRPO_ASSIGN_OR_RETURN(auto scored, RolloutAndScore(policy, rc, sigmas, /*iteration=*/0, samples, conditions,
                                                       models::Conditioning(), c.decoder, rewards, per_sample));
  EvalResult r;
  r.clips = std::move(scored.clips);
  auto& scores = scored.scores;
  for (size_t k = 0; k < rewards.size(); ++k) {
    double sum = 0;
    for (double v : scores[k]) sum += v;
    r.reward_names.push_back(rewards[k].reward->name());
    r.reward_means.push_back(sum / scores[k].size());
  }
  r.scores = std::move(scores);
  return r;
}

}  // namespace dancegrpo
