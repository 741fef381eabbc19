// A procedural text-to-video world that GRPO can learn in and be judged by, since no
// pretrained weights can be downloaded here: short clips of coloured objects moving over a
// plain background, described by prompts composed from attributes.
//
//   "two red balls moving left on a black background"
//
// Attributes: object (square, ball), colour (red, green, blue, yellow), count (one, two),
// motion (left, right, up, down), background (black, white): 128 combinations, split into
// a training set and a held-out set of combinations (about one in five, chosen so that
// every single attribute value still appears in training). Clips are [3, F, H, W] in
// [-1, 1]; the latent space of the policy is the clip itself (no VAE).
#ifndef DANCEGRPO_WORLD_SHAPES_WORLD_H_
#define DANCEGRPO_WORLD_SHAPES_WORLD_H_

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dancegrpo::world {

enum class Motion { kLeft = 0, kRight = 1, kUp = 2, kDown = 3 };

struct ClipSpec {
  int object = 0;      // 0 square, 1 ball
  int colour = 0;      // index into Palette()
  int count = 1;       // 1 or 2
  Motion motion = Motion::kLeft;
  int background = 0;  // 0 black, 1 white

  int64_t id() const;  // 0..127, stable
  bool operator==(const ClipSpec& o) const { return id() == o.id(); }
};

constexpr int kFrames = 4;
constexpr int kSize = 10;  // H = W
constexpr int kObjects = 2, kColours = 4, kMotions = 4, kBackgrounds = 2;

std::vector<int64_t> ClipShape();  // {3, kFrames, kSize, kSize}
const std::vector<std::string>& ColourNames();
const std::vector<std::array<float, 3>>& Palette();     // RGB in [-1, 1]
const std::vector<std::array<float, 3>>& Backgrounds();
std::array<float, 2> Direction(Motion m);               // (dx, dy) per frame in pixels

std::string PromptText(const ClipSpec& spec);
// Parses a prompt made by PromptText; fails naming the word it does not understand.
absl::StatusOr<ClipSpec> ParsePrompt(const std::string& text);

std::vector<ClipSpec> AllSpecs();
bool IsHeldOut(const ClipSpec& spec);
std::vector<ClipSpec> TrainSpecs();
std::vector<ClipSpec> HeldOutSpecs();
// Every word the prompts use (for the tokenizer).
std::vector<std::string> Vocabulary();

// Renders a ground-truth clip; the start positions are drawn from `seed`, uniformly over
// the positions that keep every frame inside the clip.
torch::Tensor Render(const ClipSpec& spec, uint64_t seed);

// Every clip Render can draw for `spec`, [K, 3, F, H, W], all equally likely: the support of
// the world's clip distribution given the prompt (for Bayes-optimal denoising).
torch::Tensor EnumerateClips(const ClipSpec& spec);

}  // namespace dancegrpo::world

#endif  // DANCEGRPO_WORLD_SHAPES_WORLD_H_
