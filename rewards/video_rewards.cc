#include "rewards/video_rewards.h"

#include <jpeglib.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "world/shapes_world.h"

namespace dancegrpo::rewards {
namespace {

namespace w = world;

struct FrameStats {
  int objects = 0;
  double area = 0;
  double cx = 0, cy = 0;
};

struct ClipStats {
  std::vector<FrameStats> frames;
  double colour_match = 0;  // fraction of foreground pixels of the asked colour
  int64_t foreground = 0;
};

ClipStats Analyse(const torch::Tensor& clip, const w::ClipSpec& spec) {
  auto c = clip.to(torch::kFloat32).contiguous();
  auto a = c.accessor<float, 4>();  // [3, F, H, W]
  const int F = static_cast<int>(c.size(1)), H = static_cast<int>(c.size(2)), W = static_cast<int>(c.size(3));
  const auto& bg = w::Backgrounds()[spec.background];
  ClipStats s;
  int64_t matched = 0;
  for (int f = 0; f < F; ++f) {
    std::vector<char> fg(H * W, 0);
    FrameStats fs;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        double d = 0;
        for (int ch = 0; ch < 3; ++ch) d += (a[ch][f][y][x] - bg[ch]) * (a[ch][f][y][x] - bg[ch]);
        if (d <= 1.0) continue;
        fg[y * W + x] = 1;
        fs.area += 1;
        fs.cx += x;
        fs.cy += y;
        int best = 0;
        double best_d = 1e9;
        for (int p = 0; p < w::kColours; ++p) {
          double dp = 0;
          for (int ch = 0; ch < 3; ++ch) dp += (a[ch][f][y][x] - w::Palette()[p][ch]) * (a[ch][f][y][x] - w::Palette()[p][ch]);
          if (dp < best_d) best_d = dp, best = p;
        }
        matched += best == spec.colour;
        ++s.foreground;
      }
    if (fs.area > 0) fs.cx /= fs.area, fs.cy /= fs.area;
    // 4-connected components of at least 2 pixels.
    std::vector<char> seen(H * W, 0);
    for (int i = 0; i < H * W; ++i) {
      if (!fg[i] || seen[i]) continue;
      int size = 0;
      std::vector<int> stack = {i};
      seen[i] = 1;
      while (!stack.empty()) {
        const int p = stack.back();
        stack.pop_back();
        ++size;
        const int y = p / W, x = p % W;
        const int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
        for (const auto& n : nb) {
          if (n[0] < 0 || n[0] >= W || n[1] < 0 || n[1] >= H) continue;
          const int q = n[1] * W + n[0];
          if (fg[q] && !seen[q]) seen[q] = 1, stack.push_back(q);
        }
      }
      if (size >= 2) ++fs.objects;
    }
    s.frames.push_back(fs);
  }
  s.colour_match = s.foreground > 0 ? static_cast<double>(matched) / s.foreground : 0.0;
  return s;
}

double ColourScore(const ClipStats& s, const w::ClipSpec&) { return s.colour_match; }

// GenEval's counting check, per frame: the fraction of frames that show exactly the asked
// number of objects.
double CountScore(const ClipStats& s, const w::ClipSpec& spec) {
  double right = 0;
  for (const auto& f : s.frames) right += f.objects == spec.count;
  return right / s.frames.size();
}

double MotionScore(const ClipStats& s, const w::ClipSpec& spec) {
  const auto& first = s.frames.front();
  const auto& last = s.frames.back();
  if (first.area == 0 || last.area == 0) return 0;
  const auto dir = w::Direction(spec.motion);
  const double travel = s.frames.size() - 1;
  const double along = (last.cx - first.cx) * dir[0] + (last.cy - first.cy) * dir[1];
  // The fraction of the asked travel covered in the asked direction: a still clip, or one moving
  // the wrong way, scores 0 (no credit for chance), partial progress earns partial credit so
  // the group advantages carry signal.
  return std::clamp(along / travel, 0.0, 1.0);
}

using RuleFn = double (*)(const ClipStats&, const w::ClipSpec&);

double AlignmentScore(const ClipStats& s, const w::ClipSpec& spec) {
  return (ColourScore(s, spec) + CountScore(s, spec) + MotionScore(s, spec)) / 3.0;
}

class RuleReward : public Reward {
 public:
  RuleReward(std::string name, RuleFn fn) : name_(std::move(name)), fn_(fn) {}
  std::string name() const override { return name_; }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override {
    std::vector<double> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto spec = w::ParsePrompt(prompts[i].text);
      if (!spec.ok()) return spec.status();
      out.push_back(fn_(Analyse(videos[i], *spec), *spec));
    }
    return out;
  }

 private:
  std::string name_;
  RuleFn fn_;
};

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
    out = impl_->module.forward(inputs).toTensor();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(name_, " failed: ", e.what_without_backtrace()));
  }
  out = out.reshape(-1).to(torch::kCPU, torch::kFloat64).contiguous();
  if (out.numel() != static_cast<int64_t>(prompts.size()))
    return absl::InternalError(absl::StrCat(name_, " returned ", out.numel(), " scores for ", prompts.size(), " clips"));
  return std::vector<double>(out.data_ptr<double>(), out.data_ptr<double>() + out.numel());
}

absl::StatusOr<std::shared_ptr<Reward>> MakeReward(const std::string& name, const torch::Device& device) {
  if (name == "colour") return std::shared_ptr<Reward>(std::make_shared<RuleReward>("colour", ColourScore));
  if (name == "count") return std::shared_ptr<Reward>(std::make_shared<RuleReward>("count", CountScore));
  if (name == "motion") return std::shared_ptr<Reward>(std::make_shared<RuleReward>("motion", MotionScore));
  if (name == "alignment") return std::shared_ptr<Reward>(std::make_shared<RuleReward>("alignment", AlignmentScore));
  if (name == "motion_quality") return std::shared_ptr<Reward>(std::make_shared<MotionQualityReward>());
  if (name == "jpeg") return std::shared_ptr<Reward>(std::make_shared<JpegReward>());
  if (name.rfind("torchscript=", 0) == 0) {
    auto r = TorchScriptReward::Load(name.substr(12), device);
    if (!r.ok()) return r.status();
    return std::shared_ptr<Reward>(*r);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown reward '", name, "'; use colour, count, motion, alignment, ",
                                                 "motion_quality, jpeg or torchscript=<path>"));
}

absl::StatusOr<std::vector<WeightedReward>> ParseRewardSpec(const std::string& spec, const torch::Device& device) {
  std::vector<WeightedReward> out;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::string name(item);
    double weight = 1.0;
    const auto colon = name.rfind(':');
    if (colon != std::string::npos) {
      if (!absl::SimpleAtod(name.substr(colon + 1), &weight) || !std::isfinite(weight))
        return absl::InvalidArgumentError(absl::StrCat("reward weight in '", item, "' is not a number"));
      name = name.substr(0, colon);
    }
    auto r = MakeReward(name, device);
    if (!r.ok()) return r.status();
    out.push_back({*r, weight});
  }
  if (out.empty()) return absl::InvalidArgumentError("no rewards given; e.g. --rewards=alignment:1,motion_quality:0.3");
  return out;
}

}  // namespace dancegrpo::rewards
