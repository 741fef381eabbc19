// Pictures of a run, for people: PNG sample grids of clips (one row per clip, one column per
// frame) and a reward-curve plot. PNGs are encoded by libpng and written atomically.
#ifndef DANCEGRPO_DANCEGRPO_IMAGES_H_
#define DANCEGRPO_DANCEGRPO_IMAGES_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dancegrpo {

// rgb: uint8 [H, W, 3].
absl::Status WritePng(const std::string& path, const torch::Tensor& rgb);

// clips [N, 3, F, H, W] in [-1, 1] -> uint8 [rows, cols, 3]: each pixel scaled up by
// `scale`, 2-pixel grey gutters between frames and clips.
torch::Tensor ClipGrid(const torch::Tensor& clips, int scale = 6);

// A preview of any clips [N, C, F, H, W] for people: at most 8 clips and 8 evenly spaced
// frames; latents that are not RGB show their first three channels (one channel: grey),
// each clip scaled to [-1, 1] by its largest magnitude; frames wider than 160 pixels are
// shrunk by area averaging, small ones enlarged to about 60 pixels.
torch::Tensor PreviewGrid(const torch::Tensor& clips);

struct Curve {
  std::string name;
  std::vector<double> values;  // one per iteration
};
// A line plot of the curves over iterations, with axes, gridlines, tick labels and a
// legend (a built-in 5x7 pixel font: no font files needed).
absl::Status WriteCurvesPng(const std::string& path, const std::string& title, const std::vector<Curve>& curves);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IMAGES_H_
