// Pictures of a run, for people: PNG sample grids of clips (one row per clip, one column per
// frame), animated GIF sheets of labelled clips, and a reward-curve plot. PNGs are encoded by
// libpng, GIFs by giflib; files are written atomically.
#ifndef DANCEGRPO_DANCEGRPO_IO_IMAGES_H_
#define DANCEGRPO_DANCEGRPO_IO_IMAGES_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo {

// rgb: uint8 [H, W, 3]. EncodePng returns the PNG file's bytes (TensorBoard images).
absl::StatusOr<std::string> EncodePng(const torch::Tensor& rgb);
absl::Status WritePng(const std::string& path, const torch::Tensor& rgb);

// frames: uint8 [T, H, W, 3] -> a looping GIF89a animation, `delay_centiseconds` a frame.
// One 256-colour palette for all frames (giflib's median-cut quantizer over every frame), so
// colours hold still; each palette entry is the mean of the pixels it stands for. Exact for
// pictures of at most 256 colours that differ in the top 5 bits of some channel (the quantizer
// sorts on 5 bits a channel); other pictures get 256 median-cut colours.
absl::StatusOr<std::string> EncodeGif(const torch::Tensor& frames, int delay_centiseconds = 25);
absl::Status WriteGif(const std::string& path, const torch::Tensor& frames, int delay_centiseconds = 25);

// One clip of an animated sheet and the lines printed under it (wrapped to its width).
struct LabelledClip {
  torch::Tensor clip;  // [C, F, H, W], shown as PreviewClips shows clips
  std::vector<std::string> lines;
};
// The frames, uint8 [T, H, W, 3], of a sheet of labelled clips in a grid of `columns`, under
// a title: frame t shows frame t of every clip (a shorter clip holds its last frame). Small
// clips are enlarged to about 120 pixels; at most 48 frames, evenly spaced.
torch::Tensor AnimatedSheet(const std::vector<LabelledClip>& cells, int columns, const std::string& title);

// The lines under a clip: an optional header, the prompt, then "name value" for each reward.
std::vector<std::string> ClipLabel(const std::string& header, const std::string& prompt,
                                   const std::vector<std::string>& reward_names, const std::vector<double>& rewards);

// Words of `text` in lines of at most `width` characters (longer words are cut).
std::vector<std::string> WrapText(const std::string& text, size_t width);

// Clips [N, C, F, H, W] as people see them: at most `max_clips` clips and `max_frames` evenly
// spaced frames; latents that are not RGB show their first three channels (one channel: grey),
// each clip scaled to [-1, 1] by its largest magnitude; frames wider than 160 pixels shrunk by
// area averaging. Returns float [N', 3, F', H', W'].
torch::Tensor PreviewClips(const torch::Tensor& clips, int64_t max_clips, int64_t max_frames);

// clips [N, 3, F, H, W] in [-1, 1] -> uint8 [rows, cols, 3]: each pixel scaled up by
// `scale`, 2-pixel grey gutters between frames and clips.
torch::Tensor ClipGrid(const torch::Tensor& clips, int scale = 6);

// A still preview of clips [N, C, F, H, W]: PreviewClips(clips, 8, 8) in a ClipGrid, small
// frames enlarged to about 60 pixels.
torch::Tensor PreviewGrid(const torch::Tensor& clips);

struct Curve {
  std::string name;
  std::vector<double> values;  // one per iteration
};
// A line plot of the curves over iterations, with axes, gridlines, tick labels and a
// legend (a built-in 5x7 pixel font: no font files needed).
absl::Status WriteCurvesPng(const std::string& path, const std::string& title, const std::vector<Curve>& curves);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_IMAGES_H_
