// evaluate: scores a base model and (optionally) a trained checkpoint on a prompt file, per
// reward, with the same noise for both, and writes preview grids. It takes the same flags as
// train (dancegrpo/tools/model_flags.h and run_flags.h). With --checkpoint it samples with the
// sampler the run was trained with (steps, shift, SDE kind, noise and window, as recorded in
// the checkpoint), except the settings given on the command line; it prints the sampler used.
//   bazel-bin/dancegrpo/tools/evaluate --model=config.json --weights=dit.safetensors
//       --embeddings=embeddings.h5 --prompts=heldout.txt --latent_shape=16,1,8,8
//       --decoder=decoder.pt --rewards=torchscript=reward.pt
//       --checkpoint=runs/mine/checkpoints/ckpt-000100.h5 --out=runs/mine
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/evaluate.h"
#include "dancegrpo/io/images.h"
#include "dancegrpo/io/mp4.h"
#include "dancegrpo/io/sample_writer.h"
#include "dancegrpo/io/inputs.h"
#include "dancegrpo/tools/model_flags.h"
#include "dancegrpo/tools/run_flags.h"
#include "dancegrpo/trainer.h"
#include "gflags/gflags.h"
#include "hpc/topology.h"
#include "hpc/atomic_file.h"

DEFINE_string(prompts, "", "the evaluation prompts (one a line, or .jsonl), e.g. a held-out set");
DEFINE_string(checkpoint, "",
              "a training checkpoint (ckpt-*.h5) to compare with the base; its sampler is used unless a sampler flag "
              "(--steps, --shift, --sde, --eta, --noise_level, --sde_window_*) is given");
DEFINE_int32(samples_per_prompt, dancegrpo::EvalConfig().samples_per_prompt,
             "samples per prompt (independent noise, the same for base and trained)");
DEFINE_uint64(eval_seed, dancegrpo::EvalConfig().seed, "the evaluation's noise seed (apart from the training --seed)");
DEFINE_string(out, "", "directory for eval_base.png / eval_trained.png (none if empty)");
DEFINE_bool(save_videos, false,
            "with --out: every evaluated clip as H.264 MP4, <out>/videos/{base,trained}/p<prompt>_s<sample>.mp4");

namespace {
int Fail(const std::string& m) {
  std::fprintf(stderr, "evaluate: %s\n", m.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("evaluate base vs trained on a prompt file");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  at::set_num_threads(dancegrpo::hpc::IntraOpThreadsForThisProcess(1));  // one process: every core
  try {
    auto run = dancegrpo::tools::RunConfigFromFlags();
    if (!run.ok()) return Fail(std::string(run.status().message()));
    if (FLAGS_print_config) {
      std::fputs(dancegrpo::tools::DescribeRunConfig(*run).c_str(), stdout);
      return 0;
    }
    const auto blas = dancegrpo::tools::ChooseBlasFromFlags();
    if (!blas.ok()) return Fail(absl::StrCat("BLAS: ", blas.status().message()));
    if (!blas->notice.empty()) std::fprintf(stderr, "evaluate: BLAS: %s\n", blas->notice.c_str());
    if (FLAGS_model == "toy") return Fail("--model: give the DiT's preset or config.json (the toy world has no evaluation)");
    if (FLAGS_prompts.empty()) return Fail("--prompts is required: the prompts to evaluate on");
    if (FLAGS_samples_per_prompt < 1) return Fail("--samples_per_prompt must be >= 1");
    // The sampler: the checkpoint's, except what the command line sets.
    std::string sampler_source = "from the flags";
    if (!FLAGS_checkpoint.empty()) {
      auto saved = dancegrpo::ReadCheckpointConfig(FLAGS_checkpoint);
      if (!saved.ok()) return Fail(std::string(saved.status().message()));
      const auto given = dancegrpo::tools::ExplicitFlags(dancegrpo::SamplerKeys());
      if (auto s = dancegrpo::ApplyDescribedSampler(*saved, given, run->trainer); !s.ok())
        return Fail(absl::StrCat("checkpoint ", FLAGS_checkpoint, ": ", s.message()));
      sampler_source = given.empty() ? "the checkpoint's" : "the checkpoint's, with the flags given";
      if (auto s = dancegrpo::ValidateTrainerConfig(run->trainer); !s.ok())
        return Fail(absl::StrCat("the sampler (", sampler_source, "): ", s.message()));
    }
    auto device = dancegrpo::tools::DeviceFromFlag(0);
    if (!device.ok()) return Fail(std::string(device.status().message()));
    run->model.device = *device;
    run->model.lora = {};  // a checkpoint's adapters are attached from the checkpoint, below
    const auto precision = run->trainer.compute_dtype;
    auto user = dancegrpo::LoadUserModel(run->model);
    if (!user.ok()) return Fail(std::string(user.status().message()));
    auto prompts = dancegrpo::ReadPromptFile(FLAGS_prompts);
    if (!prompts.ok()) return Fail(std::string(prompts.status().message()));
    if (auto s = dancegrpo::CheckPromptsHaveEmbeddings(*user->encoder, *prompts, FLAGS_prompts); !s.ok())
      return Fail(std::string(s.message()));
    auto shape = dancegrpo::tools::LatentShapeFromFlags(user->config.in_channels);
    if (!shape.ok()) return Fail(std::string(shape.status().message()));
    run->trainer.latent_shape = *shape;
    if (auto s = dancegrpo::CheckDecoderFits(&user->decoder, *shape); !s.ok())
      return Fail(absl::StrCat("--decoder: ", s.message()));

    dancegrpo::EvalConfig c = dancegrpo::EvalConfigFor(run->trainer);
    c.seed = FLAGS_eval_seed;
    c.samples_per_prompt = FLAGS_samples_per_prompt;
    c.decoder = user->decoder.get();
    std::printf("sampler (%s): %s\n", sampler_source.c_str(), dancegrpo::DescribeSampler(run->trainer).c_str());
    std::printf("BLAS: %s\n", blas->Describe().c_str());
    auto& dit = *user->dit;
    // A checkpoint of part of a model (LoRA adapters, --trainable) must meet its own base.
    dancegrpo::LoraCheckpointInfo info;
    if (!FLAGS_checkpoint.empty()) {
      auto read = dancegrpo::ReadCheckpointLora(FLAGS_checkpoint);
      if (!read.ok()) return Fail(std::string(read.status().message()));
      info = *read;
      if (!info.base_checksum.empty()) {
        if (auto s = dancegrpo::CheckBaseChecksum(info, dancegrpo::models::BaseChecksum(dit)); !s.ok())
          return Fail(absl::StrCat("checkpoint ", FLAGS_checkpoint, ": ", s.message()));
      }
    }
    dit.to(*device, precision);
    auto base = dancegrpo::EvaluatePolicy(dit, *user->encoder, *prompts, user->rewards, c);
    if (!base.ok()) return Fail(std::string(base.status().message()));
    absl::StatusOr<dancegrpo::EvalResult> trained = absl::NotFoundError("no checkpoint");
    if (!FLAGS_checkpoint.empty()) {
      if (info.lora.enabled()) {  // the run's adapters, then their trained values
        auto layers = dancegrpo::models::AttachLora(dit, info.lora, 1);
        if (!layers.ok()) return Fail(absl::StrCat("--checkpoint ", FLAGS_checkpoint, ": ", layers.status().message()));
        dit.to(*device, precision);
      }
      if (auto s = dancegrpo::LoadModelWeights(FLAGS_checkpoint, dit, FLAGS_ema); !s.ok())
        return Fail(std::string(s.message()));
      trained = dancegrpo::EvaluatePolicy(dit, *user->encoder, *prompts, user->rewards, c);
      if (!trained.ok()) return Fail(std::string(trained.status().message()));
    }
    std::printf("%s: %zu prompts x %d samples (noise seed %lu, %s)\n", FLAGS_prompts.c_str(), prompts->size(),
                FLAGS_samples_per_prompt, static_cast<unsigned long>(FLAGS_eval_seed), FLAGS_precision.c_str());
    int width = 15;
    for (const auto& name : base->reward_names) width = std::max<int>(width, static_cast<int>(name.size()));
    std::printf("| %-*s | %8s |%s\n", width, "reward", "base", trained.ok() ? " trained  | change   |" : "");
    std::printf("|%s|----------|%s\n", std::string(width + 2, '-').c_str(), trained.ok() ? "----------|----------|" : "");
    for (size_t k = 0; k < base->reward_names.size(); ++k) {
      std::printf("| %-*s | %8.4f |", width, base->reward_names[k].c_str(), base->reward_means[k]);
      if (trained.ok()) {
        const double b = base->reward_means[k], t = trained->reward_means[k];
        std::printf(" %8.4f | %+7.1f%% |", t, b != 0 ? 100.0 * (t - b) / std::fabs(b) : 0.0);
      }
      std::printf("\n");
    }
    if (!FLAGS_out.empty()) {
      if (auto s = dancegrpo::hpc::MakeDirectories(FLAGS_out); !s.ok()) return Fail(std::string(s.message()));
      const int64_t show = std::min<int64_t>(8, static_cast<int64_t>(prompts->size()));
      // The first sample of each of the first prompts, labelled with its prompt and rewards.
      auto cells = [&](const dancegrpo::EvalResult& r, const std::string& header) {
        std::vector<dancegrpo::LabelledClip> out;
        for (int64_t p = 0; p < show; ++p) {
          const int64_t i = p * FLAGS_samples_per_prompt;
          std::vector<double> values;
          for (const auto& per_reward : r.scores) values.push_back(per_reward[i]);
          out.push_back({r.clips[i], dancegrpo::ClipLabel(header, (*prompts)[p].text, r.reward_names, values)});
        }
        return out;
      };
      auto write = [&](const std::string& name, const dancegrpo::SampleWriter& writer,
                       const std::vector<dancegrpo::LabelledClip>& clips, const std::string& title) {
        const std::string path = writer.PathFor(FLAGS_out + "/" + name);
        if (auto s = writer.Write(FLAGS_out + "/" + name, {clips, 4, title}); !s.ok()) {
          std::fprintf(stderr, "evaluate: %s\n", std::string(s.message()).c_str());
        } else if (writer.extension() == "png") {
          std::printf("wrote %s (rows: the first %ld prompts, columns: frames)\n", path.c_str(), static_cast<long>(show));
        } else {
          std::printf("wrote %s\n", path.c_str());
        }
      };
      if (FLAGS_save_videos) {
        auto save = [&](const dancegrpo::EvalResult& r, const std::string& name) -> absl::Status {
          const std::string dir = absl::StrCat(FLAGS_out, "/videos/", name);
          if (auto s = dancegrpo::hpc::MakeDirectories(dir); !s.ok()) return s;
          for (int64_t i = 0; i < r.clips.size(0); ++i) {
            const auto& clip = r.clips[i];
            const auto rgb = clip.size(0) >= 3 ? clip.narrow(0, 0, 3) : clip.narrow(0, 0, 1).expand({3, -1, -1, -1});
            const std::string path = absl::StrFormat("%s/p%03d_s%02d.mp4", dir, i / FLAGS_samples_per_prompt,
                                                     i % FLAGS_samples_per_prompt);
            if (auto s = dancegrpo::WriteMp4(path, rgb); !s.ok()) return s;
          }
          std::printf("wrote %s/ (%ld MP4 clips)\n", dir.c_str(), static_cast<long>(r.clips.size(0)));
          return absl::OkStatus();
        };
        if (auto s = save(*base, "base"); !s.ok()) return Fail(std::string(s.message()));
        if (trained.ok())
          if (auto s = save(*trained, "trained"); !s.ok()) return Fail(std::string(s.message()));
      }
      const auto writers = dancegrpo::DefaultSampleWriters();
      for (const auto& w : writers) write("eval_base", *w, cells(*base, ""), "BASE POLICY, HELD-OUT PROMPTS");
      if (trained.ok()) {
        for (const auto& w : writers) write("eval_trained", *w, cells(*trained, ""), "TRAINED POLICY, HELD-OUT PROMPTS");
        // Base against trained, side by side: the same prompts and the same noise (animated).
        const auto b = cells(*base, "BASE"), t = cells(*trained, "TRAINED");
        std::vector<dancegrpo::LabelledClip> pairs;
        for (size_t i = 0; i < b.size(); ++i) pairs.push_back(b[i]), pairs.push_back(t[i]);
        write("base_vs_trained", dancegrpo::GifSheetWriter(), pairs, "BASE VS TRAINED: THE SAME PROMPTS AND NOISE");
      }
    }
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  }
  return 0;
}
