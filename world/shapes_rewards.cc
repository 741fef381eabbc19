#include "world/shapes_rewards.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "rewards/registry.h"
#include "world/shapes_world.h"

namespace dancegrpo::world {
namespace {

namespace w = world;
using rewards::Prompt;
using rewards::Reward;

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

// A rule reward for every registered name; linking this library registers them.
std::shared_ptr<Reward> Rule(const char* name, RuleFn fn) { return std::make_shared<RuleReward>(name, fn); }
const rewards::RewardRegistration kColour({"colour", "shapes world: fraction of foreground of the asked colour", false},
                                          [](const rewards::RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
                                            return Rule("colour", ColourScore);
                                          });
const rewards::RewardRegistration kCount({"count", "shapes world: fraction of frames with the asked count", false},
                                         [](const rewards::RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
                                           return Rule("count", CountScore);
                                         });
const rewards::RewardRegistration kMotion({"motion", "shapes world: travel along the asked direction", false},
                                          [](const rewards::RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
                                            return Rule("motion", MotionScore);
                                          });
const rewards::RewardRegistration kAlignment(
    {"alignment", "shapes world: the mean of colour, count and motion", false},
    [](const rewards::RewardArgs&) -> absl::StatusOr<std::shared_ptr<Reward>> {
      return Rule("alignment", AlignmentScore);
    });

}  // namespace

std::vector<std::string> ShapesRuleRewards() { return {"colour", "count", "motion", "alignment"}; }

}  // namespace dancegrpo::world
