// evaluate: scores the base model and (optionally) a trained checkpoint on a split of the
// shapes world, per reward, and writes sample grids.
//   bazel-bin/dancegrpo/tools/evaluate --base=configs/base/shapes_base.safetensors
//       --checkpoint=runs/demo/checkpoints/ckpt-000300.h5 --out=runs/demo
// Both policies sample with the same noise keys, so the table compares like with like.
#include <sys/stat.h>
#include <torch/torch.h>

#include <cstdio>

#include "absl/strings/str_format.h"
#include "dancegrpo/checkpoint.h"
#include "dancegrpo/evaluate.h"
#include "dancegrpo/images.h"
#include "dancegrpo/shapes_setup.h"
#include "gflags/gflags.h"
#include "rewards/video_rewards.h"
#include "world/shapes_world.h"

DEFINE_string(base, "configs/base/shapes_base.safetensors", "the base model (.safetensors from pretrain)");
DEFINE_string(checkpoint, "", "a training checkpoint (ckpt-*.h5) to compare with the base");
DEFINE_bool(ema, false, "evaluate the checkpoint's EMA weights");
DEFINE_string(split, "heldout", "heldout | train");
DEFINE_string(rewards, "alignment,colour,count,motion,motion_quality,jpeg", "rewards to report");
DEFINE_int32(samples_per_prompt, 4, "samples per prompt");
DEFINE_int32(steps, 10, "sampling steps");
DEFINE_double(eta, 0.3, "SDE noise scale");
DEFINE_uint64(seed, 12345, "noise seed");
DEFINE_string(out, "", "directory for sample grids (none if empty)");

namespace {
int Fail(const std::string& m) {
  std::fprintf(stderr, "evaluate: %s\n", m.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("evaluate base vs trained on the shapes world");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  try {
    if (FLAGS_split != "heldout" && FLAGS_split != "train")
      return Fail("--split=" + FLAGS_split + " is unknown; use heldout or train");
    auto rewards = dancegrpo::rewards::ParseRewardSpec(FLAGS_rewards);
    if (!rewards.ok()) return Fail(std::string(rewards.status().message()));
    const auto prompts = dancegrpo::ShapesPrompts(FLAGS_split == "heldout");
    dancegrpo::EvalConfig c;
    c.seed = FLAGS_seed;
    c.samples_per_prompt = FLAGS_samples_per_prompt;
    c.steps = FLAGS_steps;
    c.sde.eta = FLAGS_eta;
    c.latent_shape = dancegrpo::world::ClipShape();
    auto models = dancegrpo::MakeShapesModels(1);
    if (auto s = dancegrpo::LoadShapesBase(models, FLAGS_base); !s.ok()) return Fail(std::string(s.message()));
    auto base = dancegrpo::EvaluatePolicy(*models.dit, *models.text, prompts, *rewards, c);
    if (!base.ok()) return Fail(std::string(base.status().message()));
    absl::StatusOr<dancegrpo::EvalResult> trained = absl::NotFoundError("no checkpoint");
    if (!FLAGS_checkpoint.empty()) {
      if (auto s = dancegrpo::LoadModelWeights(FLAGS_checkpoint, *models.dit, FLAGS_ema); !s.ok())
        return Fail(std::string(s.message()));
      trained = dancegrpo::EvaluatePolicy(*models.dit, *models.text, prompts, *rewards, c);
      if (!trained.ok()) return Fail(std::string(trained.status().message()));
    }
    std::printf("%s split: %zu prompts x %d samples (seed %lu)\n", FLAGS_split.c_str(), prompts.size(),
                FLAGS_samples_per_prompt, static_cast<unsigned long>(FLAGS_seed));
    std::printf("| %-15s | %8s |%s\n", "reward", "base", trained.ok() ? " trained  | change   |" : "");
    std::printf("|-----------------|----------|%s\n", trained.ok() ? "----------|----------|" : "");
    for (size_t k = 0; k < base->reward_names.size(); ++k) {
      std::printf("| %-15s | %8.4f |", base->reward_names[k].c_str(), base->reward_means[k]);
      if (trained.ok()) {
        const double b = base->reward_means[k], t = trained->reward_means[k];
        std::printf(" %8.4f | %+7.1f%% |", t, b != 0 ? 100.0 * (t - b) / std::fabs(b) : 0.0);
      }
      std::printf("\n");
    }
    if (!FLAGS_out.empty()) {
      mkdir(FLAGS_out.c_str(), 0755);
      const int64_t show = std::min<int64_t>(8, static_cast<int64_t>(prompts.size()));
      auto pick = torch::arange(show, torch::kLong) * FLAGS_samples_per_prompt;
      auto write = [&](const std::string& name, const torch::Tensor& clips) {
        const std::string path = FLAGS_out + "/" + name;
        if (auto s = dancegrpo::WritePng(path, dancegrpo::ClipGrid(clips.index_select(0, pick))); s.ok())
          std::printf("wrote %s (rows: the first %ld %s prompts, columns: frames)\n", path.c_str(),
                      static_cast<long>(show), FLAGS_split.c_str());
      };
      write("eval_base.png", base->clips);
      if (trained.ok()) write("eval_trained.png", trained->clips);
    }
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  }
  return 0;
}
