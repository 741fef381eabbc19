// probe: does a shapes-world model follow each word of its prompt? For the base model, or a
// trained checkpoint on top of it (world/shapes_probe.h):
//   bazel-bin/world/tools/probe --base=configs/base/shapes_base.safetensors
//   bazel-bin/world/tools/probe --checkpoint=runs/demo/checkpoints/ckpt-000400.h5
// prints, per prompt attribute, the flow-matching loss on ground-truth clips with the true
// prompt and with that attribute swapped, at several noise levels (equal losses: the model
// ignores the word), and how often generated clips move in the asked direction against in
// any direction.
#include <torch/torch.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "dancegrpo/io/checkpoint.h"
#include "world/shapes_probe.h"
#include "world/shapes_setup.h"
#include "gflags/gflags.h"
#include "world/shapes_world.h"

DEFINE_string(base, "configs/base/shapes_base.safetensors", "the base model (.safetensors from pretrain)");
DEFINE_string(checkpoint, "", "a training checkpoint (ckpt-*.h5) to probe instead of the base");
DEFINE_bool(ema, false, "probe the checkpoint's EMA weights");
DEFINE_string(split, "train", "train | heldout: the prompts the clips are drawn from");
DEFINE_int32(clips, 256, "ground-truth clips for the loss probe");
DEFINE_string(sigmas, "0.3,0.5,0.7,0.8,0.9", "noise levels of the loss probe, in (0, 1]");
DEFINE_int32(samples, 128, "generated clips for the direction probe");
DEFINE_int32(steps, 10, "sampling steps");
DEFINE_double(eta, 0.3, "SDE noise scale of the sampler");
DEFINE_uint64(seed, 7, "noise seed");

namespace {
int Fail(const std::string& m) {
  std::fprintf(stderr, "probe: %s\n", m.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("probe which prompt words a shapes-world model follows");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  try {
    if (FLAGS_split != "heldout" && FLAGS_split != "train")
      return Fail("--split=" + FLAGS_split + " is unknown; use train or heldout");
    dancegrpo::ProbeConfig c;
    c.seed = FLAGS_seed;
    c.clips = FLAGS_clips;
    c.samples = FLAGS_samples;
    c.steps = FLAGS_steps;
    c.eta = FLAGS_eta;
    c.sigmas.clear();
    for (absl::string_view part : absl::StrSplit(FLAGS_sigmas, ',', absl::SkipEmpty())) {
      double s = 0;
      if (!absl::SimpleAtod(part, &s)) return Fail("--sigmas: '" + std::string(part) + "' is not a number");
      c.sigmas.push_back(s);
    }
    auto models = dancegrpo::MakeShapesModels(1);
    if (auto s = dancegrpo::LoadShapesBase(models, FLAGS_base); !s.ok()) return Fail(std::string(s.message()));
    if (!FLAGS_checkpoint.empty()) {
      if (auto s = dancegrpo::LoadModelWeights(FLAGS_checkpoint, *models.dit, FLAGS_ema); !s.ok())
        return Fail(std::string(s.message()));
    }
    const auto specs = FLAGS_split == "train" ? dancegrpo::world::TrainSpecs() : dancegrpo::world::HeldOutSpecs();
    auto probe = dancegrpo::ProbePromptFollowing(*models.dit, *models.text, specs, c);
    if (!probe.ok()) return Fail(std::string(probe.status().message()));
    std::printf("%s (%s split, %d ground-truth clips, %d generated)\n",
                FLAGS_checkpoint.empty() ? FLAGS_base.c_str() : FLAGS_checkpoint.c_str(), FLAGS_split.c_str(),
                c.clips, c.samples);
    std::printf("%s", dancegrpo::FormatPromptProbe(*probe).c_str());
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  }
  return 0;
}
