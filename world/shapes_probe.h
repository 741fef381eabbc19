// Does a shapes-world model follow each part of its prompt? Two measurements, for a base
// model before GRPO and for a trained policy after it:
//
//   - Attribute sensitivity: ground-truth clips noised to level s, flow-matching loss of the
//     velocity with the true prompt and with one attribute of the prompt swapped (red ->
//     green, left -> right, ...). A model that uses the attribute predicts worse with the
//     wrong word; a model that ignores it predicts the same (swapped == true loss).
//   - The Bayes-optimal loss for the same clips and noise: the world's clips given a prompt
//     are a small enumerable set (world::EnumerateClips), so E[x0 | x_s, prompt] is an exact
//     softmax-weighted mean. With the full prompt and with one word unknown (its values
//     equally likely), this says what each word is worth to the loss and how far the model
//     is from the best any model could do.
//   - Motion direction of generated clips: the motion score in the asked direction against
//     the best score over the four directions. "Moves in some direction, but not the asked
//     one" is a model that makes coherent clips and ignores the motion word.
//
// Both use fixed, counter-based noise keyed by (seed, clip), so a base and a trained policy
// are compared on the same noise.
#ifndef DANCEGRPO_WORLD_SHAPES_PROBE_H_
#define DANCEGRPO_WORLD_SHAPES_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/velocity_model.h"
#include "world/shapes_world.h"

namespace dancegrpo {

struct ProbeConfig {
  uint64_t seed = 7;
  int clips = 256;                                // ground-truth clips for the loss probe
  std::vector<double> sigmas = {0.3, 0.5, 0.7, 0.8, 0.9};
  int samples = 128;                              // generated clips for the direction probe
  int steps = 10;                                 // sampling steps (the evaluation sampler)
  double eta = 0.3;                               // its SDE noise scale
  int micro_batch = 64;
};

// The prompt attributes the probe swaps, in report order.
const std::vector<std::string>& ProbeAttributes();  // colour, count, motion, motion_axis, object, background

// `spec` with `attribute` changed to another value: the next colour, the other count,
// object or background, the opposite motion (left <-> right, up <-> down; "motion", the
// sign) or the same sign on the other axis (left <-> up, right <-> down; "motion_axis").
// For the Bayes loss "without the word", motion means all four directions unknown and
// motion_axis the axis unknown with the sign known.
absl::StatusOr<world::ClipSpec> SwapAttribute(const world::ClipSpec& spec, const std::string& attribute);

// Every value of `attribute` (the spec itself among them), e.g. the four colours.
absl::StatusOr<std::vector<world::ClipSpec>> AttributeVariants(const world::ClipSpec& spec, const std::string& attribute);

// E[x0 | x_s] for x_s = (1 - sigma) x0 + sigma noise when x0 is one of `candidates` [K, D]
// with log prior `log_prior` [K]: sum_k softmax_k(log_prior_k - |x_s - (1 - sigma) c_k|^2 /
// (2 sigma^2)) c_k. x_s: [D].
torch::Tensor BayesPosteriorMean(const torch::Tensor& x_s, double sigma, const torch::Tensor& candidates,
                                 const torch::Tensor& log_prior);

struct AttributeSensitivity {
  std::string attribute;
  std::vector<double> loss_swapped;   // per sigma
  std::vector<double> bayes_unknown;  // per sigma: Bayes-optimal loss without this word
};

struct DirectionStats {
  double asked = 0;        // mean motion score in the asked direction
  double best = 0;         // mean of the best motion score over the four directions
  double moves = 0;        // fraction of clips covering >= 2/3 of the travel in some direction
  double moves_asked = 0;  // ... in the asked direction
};

struct PromptProbe {
  std::vector<double> sigmas;
  std::vector<double> loss_true;                 // per sigma, with the true prompt
  std::vector<double> bayes_true;                // per sigma: Bayes-optimal loss, full prompt
  std::vector<AttributeSensitivity> attributes;  // ProbeAttributes() order
  DirectionStats direction;
};

// Clips and prompts are drawn from `specs` (cycled in order). Fails naming the field for a
// config it cannot run (no clips, a sigma outside (0, 1], ...).
absl::StatusOr<PromptProbe> ProbePromptFollowing(models::VelocityModel& model, models::PromptEncoder& encoder,
                                                 const std::vector<world::ClipSpec>& specs, const ProbeConfig& config);

// Markdown table of the probe, one row per attribute (loss true / swapped per sigma), then
// the direction line.
std::string FormatPromptProbe(const PromptProbe& probe);

}  // namespace dancegrpo

#endif  // DANCEGRPO_WORLD_SHAPES_PROBE_H_
