// train: DanceGRPO training under mpirun, with checkpoints, resume and trajectory shards.
//
//   mpirun -np 2 bazel-bin/dancegrpo/tools/train --out=runs/toy --iterations=200
//       --checkpoint_every=20 --save_trajectories
//   mpirun -np 4 bazel-bin/dancegrpo/tools/train --out=runs/toy --resume=latest   # any rank count
//   mpirun -np 2 bazel-bin/dancegrpo/tools/train --out=runs/learner --replay_from=runs/toy/trajectories
//
// Flags may come from a file: --flagfile=configs/toy.flags. Rank 0 prints a progress line
// per iteration and appends it to <out>/metrics.jsonl.
#include <mpi.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/checkpoint.h"
#include "dancegrpo/images.h"
#include "dancegrpo/shapes_setup.h"
#include "dancegrpo/toy_world.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/trajectory_store.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "hpc/atomic_file.h"
#include "hpc/comm/mpi_communicator.h"
#include "models/mlp_velocity.h"
#include "rewards/video_rewards.h"
#include "world/shapes_world.h"

DEFINE_string(out, "runs/default", "output directory: checkpoints/, trajectories/, metrics.jsonl");
DEFINE_string(resume, "", "'latest' (the newest committed checkpoint in --out, or a fresh start if none) or a path");
DEFINE_int32(checkpoint_every, 0, "write a checkpoint every N iterations (and at the end); 0 = only at the end");
DEFINE_int32(keep_checkpoints, 3, "keep the newest K checkpoints");
DEFINE_bool(save_trajectories, false, "append every rank's samples to HDF5 trajectory shards");
DEFINE_string(trajectory_latents, "all", "latents kept in trajectory shards: all | trained");
DEFINE_string(replay_from, "", "learner mode: train from the trajectory shards in this directory instead of sampling");
DEFINE_double(watchdog_seconds, 600, "collective timeout before the job is aborted with the late ranks named");

DEFINE_string(world, "toy", "toy (MLP on target vectors) | shapes (video DiT on the shapes world)");
DEFINE_string(base, "configs/base/shapes_base.safetensors", "shapes world: the base model to start GRPO from");
DEFINE_string(rewards, "alignment:1,motion_quality:0.25,jpeg:0.1", "shapes world: weighted rewards");
DEFINE_int32(sample_every, 25, "write a PNG grid of sampled clips every N iterations (shapes world; 0 = never)");
DEFINE_uint64(seed, 1, "random seed");
DEFINE_int64(iterations, 100, "GRPO iterations");
DEFINE_int32(targets, 4, "prompts in the toy world");
DEFINE_int32(prompts_per_iteration, 4, "prompts per iteration (global)");
DEFINE_int32(group_size, 8, "samples per prompt (G)");
DEFINE_bool(shared_noise, true, "the G samples of a prompt start from the same initial noise (DanceGRPO); false: each its own");
DEFINE_int32(steps, 8, "sampling steps (T)");
DEFINE_double(shift, 1.0, "time shift of the sigma schedule");
DEFINE_string(sde, "dancegrpo", "dancegrpo | flowgrpo");
DEFINE_double(eta, 0.3, "DanceGRPO SDE noise scale");
DEFINE_double(noise_level, 0.7, "Flow-GRPO SDE noise level a (with --sde=flowgrpo)");
DEFINE_int32(micro_batch, 4, "samples per policy evaluation");
DEFINE_int32(grad_accum_samples, 0, "samples per optimizer step over all ranks; 0 = one step per iteration");
DEFINE_int32(sde_window_begin, 0, "first SDE step of the window (with --sde_window_size)");
DEFINE_int32(sde_window_size, 0,
             "SDE steps in the window (MixGRPO): only they are stochastic and trained, the rest take the ODE; "
             "0 = every step");
DEFINE_bool(sde_window_random, false,
            "draw the window's first step anew each iteration (keyed by seed and iteration) instead of "
            "--sde_window_begin");
DEFINE_double(timestep_fraction, 0.6, "fraction of the trainable steps trained per sample");
DEFINE_double(clip_range, 1e-4, "ratio clip range");
DEFINE_bool(pooled_std, false,
            "advantages: group means, but one within-group std pooled over the iteration (groups whose samples "
            "barely differ get small advantages instead of unit-scale noise)");
DEFINE_int32(best_of_n, 0, "best-of-n selection (0 = off)");
DEFINE_double(kl_beta, 0.0, "KL penalty to the initial policy");
DEFINE_double(lr, 3e-3, "AdamW learning rate");
DEFINE_bool(ema, false, "keep an EMA of the weights");

namespace {

using dancegrpo::Trainer;

[[noreturn]] void Die(int rank, const std::string& what) {
  std::fprintf(stderr, "train (rank %d): %s\n", rank, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::abort();
}

void KeepMetricsBefore(const std::string& path, int64_t iteration) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    int64_t it = -1;
    if (std::sscanf(line.c_str(), "{\"iteration\": %ld", &it) == 1 && it < iteration) kept += line + "\n";
  }
  const std::string tmp = dancegrpo::hpc::TemporaryPathFor(path);
  std::ofstream(tmp) << kept;
  (void)dancegrpo::hpc::CommitFile(tmp, path);
}

std::string MetricsJson(const dancegrpo::IterationMetrics& m) {
  std::string rewards;
  for (size_t k = 0; k < m.reward_names.size(); ++k)
    absl::StrAppendFormat(&rewards, "%s\"%s\": {\"mean\": %.6g, \"std\": %.6g}", k ? ", " : "", m.reward_names[k],
                          m.reward_mean[k], m.reward_std[k]);
  return absl::StrFormat(
      "{\"iteration\": %d, \"rewards\": {%s}, \"mean_ratio\": %.8g, \"clip_fraction\": %.6g, \"approx_kl\": %.6g, "
      "\"kl_to_reference\": %.6g, \"grad_norm\": %.6g, \"samples_per_second\": %.4g, \"seconds\": %.4g}",
      m.iteration, rewards, m.update.mean_ratio, m.update.clip_fraction, m.update.approx_kl, m.update.kl_to_reference,
      m.update.grad_norm, m.samples_per_second, m.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("DanceGRPO training (see the header of train.cc)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    auto world_or = dancegrpo::hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {FLAGS_watchdog_seconds});
    if (!world_or.ok()) Die(rank, world_or.status().ToString());
    std::shared_ptr<dancegrpo::hpc::Communicator> world = *world_or;

    // The policy, its prompt encoder, rewards and prompts for the chosen world. The same
    // initial weights on every rank: every rank seeds and builds (or loads) them alike.
    std::shared_ptr<dancegrpo::models::VelocityModel> policy, reference;
    std::shared_ptr<dancegrpo::models::PromptEncoder> encoder;
    std::vector<dancegrpo::rewards::WeightedReward> rewards;
    std::vector<dancegrpo::rewards::Prompt> prompts;
    std::vector<int64_t> shape;
    if (FLAGS_world == "shapes") {
      shape = dancegrpo::world::ClipShape();
      auto models = dancegrpo::MakeShapesModels(FLAGS_seed);
      if (auto s = dancegrpo::LoadShapesBase(models, FLAGS_base); !s.ok()) Die(rank, std::string(s.message()));
      policy = models.dit;
      encoder = models.text;
      if (FLAGS_kl_beta > 0) {
        auto ref = dancegrpo::MakeShapesModels(FLAGS_seed);
        reference = ref.dit;
      }
      auto parsed = dancegrpo::rewards::ParseRewardSpec(FLAGS_rewards);
      if (!parsed.ok()) Die(rank, absl::StrCat("--rewards: ", parsed.status().message()));
      rewards = *parsed;
      prompts = dancegrpo::ShapesPrompts(/*held_out=*/false);
    } else if (FLAGS_world == "toy") {
      torch::manual_seed(FLAGS_seed);
      shape = {4, 1, 2, 2};
      dancegrpo::models::MlpVelocityConfig mc;
      mc.latent_shape = shape;
      mc.condition_dim = FLAGS_targets;
      policy = std::make_shared<dancegrpo::models::MlpVelocity>(mc);
      if (FLAGS_kl_beta > 0) reference = std::make_shared<dancegrpo::models::MlpVelocity>(mc);
      encoder = std::make_shared<dancegrpo::toy::OneHotPromptEncoder>(FLAGS_targets);
      rewards = {{std::make_shared<dancegrpo::toy::TargetRegionReward>(FLAGS_targets, shape, FLAGS_seed), 1.0}};
      prompts = dancegrpo::toy::TargetPrompts(FLAGS_targets);
    } else {
      Die(rank, absl::StrCat("--world=", FLAGS_world, " is unknown; use toy or shapes"));
    }

    dancegrpo::TrainerConfig c;
    c.seed = FLAGS_seed;
    c.iterations = FLAGS_iterations;
    c.prompts_per_iteration = FLAGS_prompts_per_iteration;
    c.group_size = FLAGS_group_size;
    c.shared_noise = FLAGS_shared_noise;
    c.steps = FLAGS_steps;
    c.shift = FLAGS_shift;
    auto kind = dancegrpo::ParseSdeKind(FLAGS_sde);
    if (!kind.ok()) Die(rank, absl::StrCat("--sde: ", kind.status().message()));
    c.sde.kind = *kind;
    c.sde.eta = FLAGS_eta;
    c.sde.noise_level = FLAGS_noise_level;
    c.sde.window = {FLAGS_sde_window_begin, FLAGS_sde_window_size, FLAGS_sde_window_random};
    c.micro_batch = FLAGS_micro_batch;
    c.grad_accum_samples = FLAGS_grad_accum_samples;
    c.timestep_fraction = FLAGS_timestep_fraction;
    c.clip_range = FLAGS_clip_range;
    c.pooled_std = FLAGS_pooled_std;
    c.best_of_n = FLAGS_best_of_n;
    c.kl_beta = FLAGS_kl_beta;
    c.optimizer.lr = FLAGS_lr;
    c.optimizer.ema = FLAGS_ema;
    c.latent_shape = shape;
    auto trainer_or = Trainer::Create(c, policy, reference, encoder, nullptr, rewards, prompts, world);
    if (!trainer_or.ok()) Die(rank, absl::StrCat("config error: ", trainer_or.status().message()));
    auto& trainer = **trainer_or;

    const std::string ckpt_dir = FLAGS_out + "/checkpoints", traj_dir = FLAGS_out + "/trajectories";
    const std::string metrics_path = FLAGS_out + "/metrics.jsonl";
    if (rank == 0) mkdir(FLAGS_out.c_str(), 0755);
    if (!FLAGS_resume.empty()) {
      auto path = FLAGS_resume == "latest" ? dancegrpo::LatestCheckpoint(ckpt_dir) : absl::StatusOr<std::string>(FLAGS_resume);
      if (!path.ok() && FLAGS_resume == "latest") {
        if (rank == 0) std::printf("no checkpoint in %s yet: starting from scratch\n", ckpt_dir.c_str());
      } else {
        if (!path.ok()) Die(rank, path.status().ToString());
        auto report = dancegrpo::LoadCheckpoint(trainer, *path);
        if (!report.ok()) Die(rank, std::string(report.status().message()));
        if (rank == 0) {
          std::printf("resumed from %s at iteration %ld (saved by %d ranks, now %d)\n", path->c_str(),
                      static_cast<long>(report->iteration), report->saved_world_size, world->size());
          if (auto s = dancegrpo::DiscardTrajectoriesFrom(traj_dir, report->iteration); !s.ok())
            Die(rank, s.ToString());
          KeepMetricsBefore(metrics_path, report->iteration);
        }
      }
    }
    if (!world->Barrier().ok()) Die(rank, "barrier failed");

    if (FLAGS_trajectory_latents != "all" && FLAGS_trajectory_latents != "trained")
      Die(rank, absl::StrCat("--trajectory_latents=", FLAGS_trajectory_latents, " is unknown; use all or trained"));
    std::shared_ptr<dancegrpo::TrajectoryWriter> writer;
    if (FLAGS_save_trajectories) {
      writer = std::make_shared<dancegrpo::TrajectoryWriter>(
          traj_dir, rank,
          FLAGS_trajectory_latents == "trained" ? dancegrpo::StoredLatents::kTrainedSteps : dancegrpo::StoredLatents::kAll);
      trainer.set_trajectory_writer(writer);
    }
    auto checkpoint = [&] {
      if (writer) {
        if (auto s = writer->CommitSegment(); !s.ok()) Die(rank, s.ToString());
      }
      auto saved = dancegrpo::SaveCheckpoint(trainer, ckpt_dir, FLAGS_keep_checkpoints);
      if (!saved.ok()) Die(rank, saved.status().ToString());
      if (rank == 0) std::printf("checkpoint %s\n", saved->c_str());
    };
    if (FLAGS_checkpoint_every > 0 && trainer.iteration() == 0) checkpoint();

    // Replay mode reads this rank's stored iterations in order.
    std::vector<std::pair<std::string, int64_t>> replay;
    if (!FLAGS_replay_from.empty()) {
      const std::string mine = absl::StrFormat("rank-%05d", rank);
      for (const auto& seg : dancegrpo::ListTrajectorySegments(FLAGS_replay_from)) {
        if (seg.find(mine) == std::string::npos) continue;
        auto its = dancegrpo::ListStoredIterations(seg);
        if (!its.ok()) Die(rank, its.status().ToString());
        for (int64_t it : *its) replay.emplace_back(seg, it);
      }
      if (static_cast<int64_t>(replay.size()) < FLAGS_iterations)
        Die(rank, absl::StrCat(FLAGS_replay_from, " holds ", replay.size(), " iterations for rank ", rank, ", fewer than --iterations"));
    }

    double elapsed = 0;
    int64_t done_here = 0;
    std::vector<dancegrpo::Curve> curves;  // rank 0: reward means of the iterations run here
    std::ofstream metrics;
    if (rank == 0) metrics.open(metrics_path, std::ios::app);
    while (trainer.iteration() < FLAGS_iterations) {
      absl::StatusOr<dancegrpo::IterationMetrics> m;
      if (replay.empty()) {
        m = trainer.Step();
      } else {
        const auto& [seg, it] = replay[trainer.iteration()];
        auto record = dancegrpo::ReadTrajectoryRecord(seg, it);
        if (!record.ok()) Die(rank, record.status().ToString());
        m = trainer.ReplayStep(*record);
      }
      if (!m.ok()) Die(rank, std::string(m.status().message()));
      elapsed += m->seconds;
      ++done_here;
      if (rank == 0) {
        const double eta = elapsed / done_here * (FLAGS_iterations - trainer.iteration());
        std::printf("%s\n", dancegrpo::FormatProgress(*m, FLAGS_iterations, eta).c_str());
        std::fflush(stdout);
        metrics << MetricsJson(*m) << "\n" << std::flush;
        if (curves.empty())
          for (const auto& name : m->reward_names) curves.push_back({name, {}});
        for (size_t k = 0; k < curves.size() && k < m->reward_mean.size(); ++k) curves[k].values.push_back(m->reward_mean[k]);
        const bool last = trainer.iteration() == FLAGS_iterations;
        if (last || trainer.iteration() % 10 == 0) {
          // Each reward, and its trailing 10-iteration mean (the per-iteration mean is noisy:
          // every iteration draws other prompts).
          std::vector<dancegrpo::Curve> shown;
          for (const auto& cv : curves) {
            dancegrpo::Curve avg{cv.name + " avg10", {}};
            for (size_t i = 0; i < cv.values.size(); ++i) {
              const size_t from = i >= 9 ? i - 9 : 0;
              double sum = 0;
              for (size_t j = from; j <= i; ++j) sum += cv.values[j];
              avg.values.push_back(sum / (i - from + 1));
            }
            shown.push_back(cv);
            shown.push_back(avg);
          }
          if (auto s = dancegrpo::WriteCurvesPng(FLAGS_out + "/reward_curves.png", "MEAN REWARD PER ITERATION", shown);
              !s.ok())
            LOG(WARNING) << s;
        }
        if (FLAGS_world == "shapes" && FLAGS_sample_every > 0 &&
            (last || (m->iteration % FLAGS_sample_every) == 0)) {
          const auto& clips = trainer.last_trajectories().final_x0;
          const int64_t show = std::min<int64_t>(8, clips.size(0));
          mkdir((FLAGS_out + "/samples").c_str(), 0755);
          const std::string png = absl::StrFormat("%s/samples/iter_%06d.png", FLAGS_out, m->iteration);
          if (auto s = dancegrpo::WritePng(png, dancegrpo::ClipGrid(clips.narrow(0, 0, show))); !s.ok())
            LOG(WARNING) << s;
        }
      }
      const bool last = trainer.iteration() == FLAGS_iterations;
      if (last || (FLAGS_checkpoint_every > 0 && trainer.iteration() % FLAGS_checkpoint_every == 0)) checkpoint();
    }
    if (rank == 0) std::printf("training complete: %ld iterations in %s\n", static_cast<long>(FLAGS_iterations), FLAGS_out.c_str());
  } catch (const c10::Error& e) {
    Die(rank, absl::StrCat("libtorch error: ", e.what_without_backtrace()));
  }
  MPI_Finalize();
  return 0;
}
