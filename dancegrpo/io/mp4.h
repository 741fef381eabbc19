// Clips as H.264 MP4, what DanceGRPO and Flow-GRPO write for video samples (a GIF of a Wan-size
// clip is tens of megabytes). Through FFmpeg's libavformat / libavcodec (Debian's encodes H.264
// with libx264), yuv420p so that every player shows it.
//
// yuv420p needs even sizes: an odd width or height is padded by repeating the last column or
// row (the file is then one pixel larger; ReadVideoFrames returns what the file holds).
#ifndef DANCEGRPO_DANCEGRPO_IO_MP4_H_
#define DANCEGRPO_DANCEGRPO_IO_MP4_H_

#include <torch/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace dancegrpo {

struct Mp4Options {
  int fps = 8;
  int crf = 18;  // x264's constant rate factor: 0 lossless in luma, 18 visually lossless, 23 default
};

// Writes one clip [3, F, H, W] in [-1, 1] (any float dtype) to `path`, atomically (a temporary
// file, then rename). Fails naming the file for a wrong shape, non-finite values, or an
// encoder error.
absl::Status WriteMp4(const std::string& path, const torch::Tensor& clip, const Mp4Options& options = {});

// False in a build without FFmpeg (-DDANCEGRPO_NO_MP4, as scripts/gpu_check.sh builds where
// FFmpeg's headers are missing): WriteMp4 and ReadVideoFrames then return Unimplemented.
bool Mp4Supported();

// Decodes every frame of a video file: uint8 [F, H, W, 3] RGB.
absl::StatusOr<torch::Tensor> ReadVideoFrames(const std::string& path);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_IO_MP4_H_
