#include "rewards/video_rewards.h"

#include <jpeglib.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "hpc/torch_error.h"
#include "rewards/registry.h"

namespace dancegrpo::rewards {
namespace {

class MotionQualityReward : public Reward {
 public:
  std::string name() const override { return "motion_quality"; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override {
    std::vector<double> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto clip = videos[i].to(torch::kFloat32).clamp(-1, 1);  // [C, F, H, W]
      const double smooth =
          clip.size(1) > 1 ? 1.0 - (clip.narrow(1, 1, clip.size(1) - 1) - clip.narrow(1, 0, clip.size(1) - 1))
                                           .abs()
                                           .mean()
                                           .item<double>() /
                                       2.0
                           : 1.0;
      // Consistency of the foreground area (far from the frame's median colour) over time.
      auto median = std::get<0>(clip.flatten(2).median(2)).unsqueeze(-1).unsqueeze(-1);  // [C, F, 1, 1]
      auto area = ((clip - median).pow(2).sum(0) > 1.0).to(torch::kFloat32).sum({1, 2});  // [F]
      const double mean = area.mean().item<double>();
      const double rel_std = mean > 0 && area.numel() > 1 ? area.std().item<double>() / mean : 0.0;
      out.push_back(smooth / (1.0 + rel_std));
    }
    return out;
  }
};

class JpegReward : public Reward {
 public:
  std::string name() const override { return "jpeg"; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override {
    std::vector<double> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      // Frames upsampled 4x (nearest) to a size where JPEG's 8x8 blocks see structure.
      auto clip = ((videos[i].to(torch::kFloat32).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8);
      clip = clip.repeat_interleave(4, 2).repeat_interleave(4, 3);  // [C, F, 4H, 4W]
      double total = 0;
      for (int64_t f = 0; f < clip.size(1); ++f) {
        auto rgb = clip.select(1, f).permute({1, 2, 0}).contiguous();  // [H, W, 3]
        auto bytes = EncodedBytes(rgb);
        if (!bytes.ok()) return bytes.status();
        total += 1.0 - static_cast<double>(*bytes) / rgb.numel();
      }
      out.push_back(total / clip.size(1));
    }
    return out;
  }

 private:
  static absl::StatusOr<size_t> EncodedBytes(const torch::Tensor& rgb) {
    jpeg_compress_struct cinfo;
    jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = static_cast<JDIMENSION>(rgb.size(1));
    cinfo.image_height = static_cast<JDIMENSION>(rgb.size(0));
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 90, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    const auto* data = rgb.data_ptr<uint8_t>();
    while (cinfo.next_scanline < cinfo.image_height) {
      JSAMPROW row = const_cast<JSAMPROW>(data + cinfo.next_scanline * rgb.size(1) * 3);
      jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(buffer);
    return static_cast<size_t>(size);
  }
};


}  // namespace

struct TorchScriptReward::Impl {
  torch::jit::Module module;
  bool takes_prompts = false;
  torch::Device device = torch::kCPU;
};

absl::StatusOr<std::shared_ptr<TorchScriptReward>> TorchScriptReward::Load(const std::string& path,
                                                                           const torch::Device& device) {
  auto r = std::make_shared<TorchScriptReward>();
  r->impl_ = std::make_shared<Impl>();
  r->impl_->device = device;
  try {
    r->impl_->module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load TorchScript reward model ", path, ": ",
                                                   e.what_without_backtrace()));
  }
  auto method = r->impl_->module.find_method("forward");
  if (!method) return absl::InvalidArgumentError(absl::StrCat(path, ": the TorchScript module has no forward()"));
  const size_t args = method->function().getSchema().arguments().size();  // includes self
  if (args != 2 && args != 3)
    return absl::InvalidArgumentError(absl::StrCat(path, ": forward must take (videos) or (videos, prompts), it takes ",
                                                   args - 1, " arguments"));
  r->impl_->takes_prompts = args == 3;
  r->impl_->module.eval();
  const auto slash = path.find_last_of('/');
  r->name_ = "torchscript:" + (slash == std::string::npos ? path : path.substr(slash + 1));
  return r;
}

absl::StatusOr<std::vector<double>> TorchScriptReward::Score(const torch::Tensor& videos,
                                                             const std::vector<Prompt>& prompts) {
  torch::NoGradGuard no_grad;
  torch::Tensor out;
  try {
    std::vector<torch::jit::IValue> inputs = {videos.to(impl_->device)};
    if (impl_->takes_prompts) {
      c10::List<std::string> texts;
      for (const auto& p : prompts) texts.push_back(p.text);
      inputs.emplace_back(texts);
    }
    auto value = impl_->module.forward(inputs);
    if (!value.isTensor())
      return absl::InvalidArgumentError(absl::StrCat(name_, " returned a ", value.tagKind(),
                                                     ", not a tensor of one score per clip"));
    out = value.toTensor();
  } catch (const std::exception& e) {  // c10::Error, and torch::jit::JITException for a `raise`
    return absl::InternalError(absl::StrCat(name_, " failed: ", hpc::ExceptionMessage(e)));
  }
  out = out.reshape(-1).to(torch::kCPU, torch::kFloat64).contiguous();
  if (out.numel() != static_cast<int64_t>(prompts.size()))
    return absl::InternalError(absl::StrCat(name_, " returned ", out.numel(), " scores for ", prompts.size(), " clips"));
  return std::vector<double>(out.data_ptr<double>(), out.data_ptr<double>() + out.numel());
}

namespace {

// The generic rewards; linking this library registers them.
const RewardRegistration kMotionQuality(
    {"motion_quality", "temporal smoothness and a steady foreground area", false},
    [](const RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
      return std::shared_ptr<Reward>(std::make_shared<MotionQualityReward>());
    });
const RewardRegistration kJpeg({"jpeg", "JPEG compressibility of each frame (DDPO)", false},
                               [](const RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
                                 return std::shared_ptr<Reward>(std::make_shared<JpegReward>());
                               });
const RewardRegistration kTorchScript(
    {"torchscript", "a saved TorchScript module: forward(videos) or forward(videos, prompts) -> [B]", true},
    [](const RewardArgs& args) -> absl::StatusOr<std::shared_ptr<Reward>> {
      auto r = TorchScriptReward::Load(args.argument, args.device);
      if (!r.ok()) return r.status();
      return std::shared_ptr<Reward>(*r);
    });

}  // namespace

}  // namespace dancegrpo::rewards
