// train: DanceGRPO training under mpirun or srun, with checkpoints, resume and trajectory
// shards, for a user's own model (a Wan-format DiT, precomputed text embeddings, an optional
// TorchScript decoder and weighted rewards) on CPUs or GPUs, in fp32 or bf16.
//
//   mpirun -np 2 bazel-bin/dancegrpo/tools/train --model=config.json --weights=dit.safetensors
//       --embeddings=embeddings.h5 --prompts=prompts.txt --latent_shape=16,1,8,8
//       --decoder=decoder.pt --rewards=torchscript=reward.pt --precision=bf16 --out=runs/mine
//   mpirun -np 4 bazel-bin/dancegrpo/tools/train ... --resume=latest   # any rank count
//   mpirun -np 2 bazel-bin/dancegrpo/tools/train --out=runs/toy           # the built-in toy world
//
// Flags may come from a file: --flagfile=configs/shapes.flags. Rank 0 prints a progress line
// per iteration and appends it to <out>/metrics.jsonl.
#include <mpi.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "dancegrpo/checkpoint.h"
#include "dancegrpo/images.h"
#include "dancegrpo/tensorboard.h"
#include "dancegrpo/inputs.h"
#include "dancegrpo/tools/model_flags.h"
#include "dancegrpo/tools/run_flags.h"
#include "dancegrpo/memory_plan.h"
#include "dancegrpo/trainable.h"
#include "hpc/memory.h"
#include "hpc/zero3.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/trajectory_store.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "hpc/atomic_file.h"
#include "hpc/topology.h"
#include "hpc/comm/mpi_communicator.h"
#include "hpc/comm/nccl_communicator.h"
#include "hpc/nccl_bootstrap.h"
#include "models/mlp_velocity.h"
#include "world/toy_world.h"

DEFINE_string(out, "runs/default", "output directory: checkpoints/, trajectories/, metrics.jsonl");
DEFINE_string(resume, "", "'latest' (the newest committed checkpoint in --out, or a fresh start if none) or a path");
DEFINE_int32(checkpoint_every, 0, "write a checkpoint every N iterations (and at the end); 0 = only at the end");
DEFINE_int32(keep_checkpoints, 3, "keep the newest K checkpoints; 0 = keep all");
DEFINE_bool(save_trajectories, false, "append every rank's samples to HDF5 trajectory shards");
DEFINE_string(trajectory_latents, "all", "latents kept in trajectory shards: all | trained");
DEFINE_string(replay_from, "", "learner mode: train from the trajectory shards in this directory instead of sampling");
DEFINE_double(watchdog_seconds, 600, "collective timeout before the job is aborted with the late ranks named");

DEFINE_string(prompts, "", "the training prompts: one a line (.txt) or JSON lines {\"prompt\": ..., \"id\": ...} (.jsonl)");
DEFINE_int32(sample_every, 25,
             "write sampled clips every N iterations (samples/iter_N.png and .gif, and TensorBoard); 0 = never");
DEFINE_int32(threads, 0,
             "intra-op threads per rank; 0 = OMP_NUM_THREADS if set, else the CPUs the launcher bound the rank "
             "to, else the node's cores divided by its ranks");
DEFINE_bool(tensorboard, true, "write TensorBoard event files (scalars and sample grids) to <out>/tensorboard/");
DEFINE_uint64(seed, 1, "random seed");
DEFINE_int64(iterations, 100, "GRPO iterations");
DEFINE_int32(targets, 4, "prompts in the toy world (--model=toy)");
DEFINE_bool(shared_noise, true, "the G samples of a prompt start from the same initial noise (DanceGRPO); false: each its own");
DEFINE_double(shift, 1.0, "time shift of the sigma schedule");
DEFINE_string(sde, "dancegrpo", "dancegrpo | flowgrpo");
DEFINE_double(eta, 0.3, "DanceGRPO SDE noise scale");
DEFINE_double(noise_level, 0.7, "Flow-GRPO SDE noise level a (with --sde=flowgrpo)");
DEFINE_int32(grad_accum_samples, 0, "samples per optimizer step over all ranks; 0 = one step per iteration");
DEFINE_int32(sde_window_begin, 0, "first SDE step of the window (with --sde_window_size)");
DEFINE_int32(sde_window_size, 0,
             "SDE steps in the window (MixGRPO): only they are stochastic and trained, the rest take the ODE; "
             "0 = every step");
DEFINE_bool(sde_window_random, false,
            "draw the window's first step anew each iteration (keyed by seed and iteration) instead of "
            "--sde_window_begin");
DEFINE_double(clip_range, 1e-4, "ratio clip range");
DEFINE_bool(pooled_std, false,
            "advantages: group means, but one within-group std pooled over the iteration (groups whose samples "
            "barely differ get small advantages instead of unit-scale noise)");
DEFINE_int32(best_of_n, 0, "best-of-n selection: train the top and bottom n/2 of each group; 0 = off");
DEFINE_double(kl_beta, 0.0, "KL penalty to the initial policy; 0 = off");
DEFINE_bool(check_memory, true,
            "refuse, before loading anything, a run whose memory plan (see plan) does not fit --memory_gb or this "
            "machine");
DEFINE_double(lr, 3e-3, "AdamW learning rate (finite, > 0)");
DEFINE_double(max_grad_norm, 1.0, "gradient-norm clipping; 0 = off");
DEFINE_double(peak_tflops, 0,
              "the device's dense peak in TFLOP/s (H200/H100 SXM bf16: 989) to report model FLOPs utilisation; "
              "0 = report TFLOP/s only");

namespace {

using dancegrpo::Trainer;

// Preemption: Slurm sends SIGTERM (or the --signal of the batch script, e.g. SIGUSR1) before it
// kills a job; Open MPI's mpirun forwards SIGUSR1/SIGUSR2 to the ranks. The handler only records
// the signal; after each iteration the ranks agree whether any of them got one, write a
// checkpoint and exit 0, so a requeued job with --resume=latest continues from there.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void OnStopSignal(int signal) { g_stop_signal = signal; }

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
      "\"kl_to_reference\": %.6g, \"grad_norm\": %.6g, \"samples_per_second\": %.4g, \"seconds\": %.4g, "
      "\"rollout_seconds\": %.4g, \"reward_seconds\": %.4g, \"update_seconds\": %.4g}",
      m.iteration, rewards, m.update.mean_ratio, m.update.clip_fraction, m.update.approx_kl, m.update.kl_to_reference,
      m.update.grad_norm, m.samples_per_second, m.seconds, m.rollout_seconds, m.reward_seconds, m.update_seconds);
}

// The scalars of one iteration, as TensorBoard shows them (grouped by the prefix).
std::vector<std::pair<std::string, double>> TensorBoardScalars(const dancegrpo::IterationMetrics& m, double tflops) {
  std::vector<std::pair<std::string, double>> s;
  for (size_t k = 0; k < m.reward_names.size(); ++k) {
    s.emplace_back(absl::StrCat("reward/", m.reward_names[k], "/mean"), m.reward_mean[k]);
    s.emplace_back(absl::StrCat("reward/", m.reward_names[k], "/std"), m.reward_std[k]);
  }
  const auto& u = m.update;
  s.insert(s.end(), {{"update/ratio_mean", u.mean_ratio},
                     {"update/ratio_min", u.ratio_min},
                     {"update/ratio_max", u.ratio_max},
                     {"update/clip_fraction", u.clip_fraction},
                     {"update/approx_kl", u.approx_kl},
                     {"update/kl_to_reference", u.kl_to_reference},
                     {"update/grad_norm", u.grad_norm},
                     {"update/skipped_steps", static_cast<double>(u.skipped_steps)},
                     {"throughput/samples_per_second", m.samples_per_second},
                     {"time/rollout_seconds", m.rollout_seconds},
                     {"time/reward_seconds", m.reward_seconds},
                     {"time/update_seconds", m.update_seconds},
                     {"time/iteration_seconds", m.seconds}});
  if (tflops > 0) s.emplace_back("throughput/model_tflops_per_rank", tflops);
  return s;
}

// Flags whose 0 means "all", "off" or "never" say so in their help; below zero is refused.
void CheckFlags(int rank) {
  struct NonNegative {
    const char* name;
    int64_t value;
  };
  for (const auto& f : {NonNegative{"checkpoint_every", FLAGS_checkpoint_every},
                        {"keep_checkpoints", FLAGS_keep_checkpoints},
                        {"sample_every", FLAGS_sample_every},
                        {"threads", FLAGS_threads},
                        {"micro_batch", FLAGS_micro_batch},
                        {"grad_accum_samples", FLAGS_grad_accum_samples},
                        {"best_of_n", FLAGS_best_of_n},
                        {"iterations", FLAGS_iterations},
                        {"sde_window_size", FLAGS_sde_window_size},
                        {"sde_window_begin", FLAGS_sde_window_begin}}) {
    if (f.value < 0) Die(rank, absl::StrCat("--", f.name, "=", f.value, " is negative; see --helpon=train for its range"));
  }
  for (const auto& f : {NonNegative{"targets", FLAGS_targets}, {"sp", FLAGS_sp}, {"steps", FLAGS_steps},
                        {"group_size", FLAGS_group_size}, {"prompts_per_iteration", FLAGS_prompts_per_iteration}}) {
    if (f.value < 1) Die(rank, absl::StrCat("--", f.name, "=", f.value, "; it must be >= 1"));
  }
  // The optimizer's own validation, before any model is loaded (a 14B checkpoint takes minutes).
  dancegrpo::OptimizerConfig optimizer;
  optimizer.lr = FLAGS_lr;
  optimizer.max_grad_norm = FLAGS_max_grad_norm;
  if (auto s = dancegrpo::hpc::ValidateAdamWConfig(optimizer); !s.ok()) Die(rank, absl::StrCat("--lr: ", s.message()));
  if (FLAGS_max_grad_norm < 0)
    Die(rank, absl::StrCat("--max_grad_norm=", FLAGS_max_grad_norm, "; use a positive norm, or 0 for no clipping"));
  if (!std::isfinite(FLAGS_cfg_scale) || FLAGS_cfg_scale < 1)
    Die(rank, absl::StrCat("--cfg_scale=", FLAGS_cfg_scale, "; use 1 (off) or more (Wan uses 5)"));
  if (!(FLAGS_watchdog_seconds > 0)) Die(rank, "--watchdog_seconds must be > 0");
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("DanceGRPO training (see the header of train.cc and the README)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  MPI_Init(&argc, &argv);
  {
    struct sigaction action {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    for (int signal : {SIGTERM, SIGUSR1}) sigaction(signal, &action, nullptr);
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    CheckFlags(rank);
    auto device = dancegrpo::tools::DeviceFromFlag(dancegrpo::hpc::LauncherLocalRank());
    if (!device.ok()) Die(rank, std::string(device.status().message()));
    auto precision = dancegrpo::ParsePrecision(FLAGS_precision);
    if (!precision.ok()) Die(rank, absl::StrCat("--precision: ", precision.status().message()));
    auto reduce_dtype = dancegrpo::ParsePrecision(FLAGS_reduce_dtype);
    if (!reduce_dtype.ok()) Die(rank, absl::StrCat("--reduce_dtype: ", reduce_dtype.status().message()));

    // The memory plan, before anything is loaded: a run that cannot fit is refused with the
    // cheapest change that would, instead of swapping or being OOM-killed mid-run.
    int world_size = 1, node_size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    {
      MPI_Comm node;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
      MPI_Comm_size(node, &node_size);
      MPI_Comm_free(&node);
    }
    const int threads = FLAGS_threads > 0 ? FLAGS_threads : dancegrpo::hpc::IntraOpThreadsForThisProcess(node_size);
    at::set_num_threads(threads);
    std::optional<dancegrpo::MemoryPlan> plan;
    if (FLAGS_model != "toy") {
      if (FLAGS_ranks_per_node == 0) FLAGS_ranks_per_node = node_size;
      auto input = dancegrpo::tools::PlanInputFromFlags(world_size);
      if (!input.ok()) Die(rank, std::string(input.status().message()));
      auto planned = dancegrpo::PlanMemory(*input);
      if (!planned.ok()) Die(rank, absl::StrCat("config error: ", planned.status().message()));
      plan = *planned;
      if (FLAGS_check_memory && !plan->fits) {
        if (rank == 0) std::fputs(dancegrpo::FormatPlan(*input, *plan).c_str(), stderr);
        Die(rank, absl::StrCat("this run does not fit: its plan peaks at ", dancegrpo::FormatBytes(plan->peak),
                               " per rank (", plan->peak_phase, ") and ", dancegrpo::FormatBytes(plan->node_load),
                               " per node while loading; ", plan->advice,
                               ". (--check_memory=false runs it anyway)"));
      }
    }

    auto mpi_or = dancegrpo::hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {FLAGS_watchdog_seconds});
    if (!mpi_or.ok()) Die(rank, mpi_or.status().ToString());
    std::shared_ptr<dancegrpo::hpc::MpiCommunicator> mpi = *mpi_or;
    std::shared_ptr<dancegrpo::hpc::Communicator> world = mpi, data_world;
    if (device->is_cuda()) {
      // The data plane (ZeRO reduce-scatter / all-gather, Ulysses all-to-all) over NCCL; the
      // control messages and the watchdog stay on MPI.
      auto nccl = dancegrpo::hpc::NcclCommunicator::Create(mpi, device->index());
      if (!nccl.ok()) Die(rank, absl::StrCat("--device=cuda: ", nccl.status().message()));
      data_world = *nccl;
    }

    // The policy, its prompt encoder, decoder, rewards and prompts. The same initial weights
    // on every rank: every rank seeds and builds (or loads) them alike.
    std::shared_ptr<dancegrpo::models::VelocityModel> policy, reference;
    std::shared_ptr<dancegrpo::models::PromptEncoder> encoder;
    std::shared_ptr<dancegrpo::models::LatentDecoder> decoder;
    std::vector<dancegrpo::rewards::WeightedReward> rewards;
    std::vector<dancegrpo::rewards::Prompt> prompts;
    std::vector<int64_t> shape;
    double flops_per_forward = 0;  // model FLOPs of one sample's forward pass (DiT models)
    auto lora = dancegrpo::tools::LoraConfigFromFlags();
    if (!lora.ok()) Die(rank, std::string(lora.status().message()));
    std::string base_weights, base_checksum;
    int lora_layers = 0;
    if (FLAGS_model == "toy") {
      if (lora->enabled()) Die(rank, "--lora_rank: LoRA adapts a DiT's linear layers; the toy model has none (use --model=<preset or config.json>)");
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
      if (FLAGS_prompts.empty()) Die(rank, "--prompts is required: a prompt file (one a line, or .jsonl)");
      auto options = dancegrpo::tools::ModelOptionsFromFlags(FLAGS_seed, *device);
      options.compute_dtype = *precision;
      options.lora = *lora;
      // Checkpoints of part of a model record the base's checksum. Every rank loads the same
      // weights, so rank 0 alone reads them through (under ZeRO-3 the ranks load in turns) and
      // sends the result to the others below.
      const bool partial = lora->enabled() || !FLAGS_trainable.empty();
      options.checksum_base = partial && rank == 0;
      absl::StatusOr<dancegrpo::UserModel> user = absl::UnknownError("not loaded");
      auto load = [&]() -> absl::Status {
        user = dancegrpo::LoadUserModel(options);
        if (!user.ok()) return user.status();
        if (FLAGS_zero_stage != 3) return absl::OkStatus();
        // ZeRO-3: keep this rank's slices of the blocks and drop the whole model.
        return dancegrpo::ShardPolicy(*user->dit, FLAGS_trainable, data_world ? data_world : world, *precision, *device)
            .status();
      };
      // Under ZeRO-3 the ranks load one at a time, so a node holds one whole model at once.
      const absl::Status loaded = FLAGS_zero_stage == 3 ? dancegrpo::hpc::ShardTurns(*world, load) : load();
      if (!loaded.ok()) Die(rank, std::string(loaded.message()));
      auto read = dancegrpo::ReadPromptFile(FLAGS_prompts);
      if (!read.ok()) Die(rank, std::string(read.status().message()));
      prompts = *read;
      if (auto s = dancegrpo::CheckPromptsHaveEmbeddings(*user->encoder, prompts, FLAGS_prompts, FLAGS_cfg_scale != 1);
          !s.ok())
        Die(rank, std::string(s.message()));
      auto resolved = dancegrpo::ResolveLatentShape(FLAGS_latent_shape, FLAGS_video_size, FLAGS_vae_stride,
                                                    user->config.in_channels);
      if (!resolved.ok()) Die(rank, std::string(resolved.status().message()));
      shape = *resolved;
      if (auto s = dancegrpo::CheckDecoderFits(user->decoder.get(), shape); !s.ok())
        Die(rank, absl::StrCat("--decoder: ", s.message()));
      policy = user->dit;
      {
        const auto grid = user->dit->TokenGrid(shape[1], shape[2], shape[3]);
        const int64_t text_tokens = user->config.pad_text_to_len ? user->config.text_len : user->encoder->token_length();
        flops_per_forward = dancegrpo::models::DitForwardFlops(user->config, 1, grid[0] * grid[1] * grid[2], text_tokens);
      }
      // With LoRA the reference is the base itself: the policy with its adapters off.
      if (FLAGS_kl_beta > 0 && !lora->enabled()) reference = dancegrpo::MakeDit(user->config);
      base_weights = user->base_weights;
      base_checksum = user->base_checksum;
      if (partial) {
        char sum[32] = {};
        base_checksum.copy(sum, sizeof(sum) - 1);
        MPI_Bcast(sum, sizeof(sum), MPI_CHAR, 0, MPI_COMM_WORLD);
        base_checksum = sum;
      }
      lora_layers = static_cast<int>(user->lora_layers.size());
      encoder = user->encoder;
      decoder = user->decoder;
      rewards = user->rewards;
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
    c.cfg_scale = FLAGS_cfg_scale;
    c.sequence_parallel = FLAGS_sp;
    c.trainable = FLAGS_trainable;
    c.optimizer.lr = FLAGS_lr;
    c.optimizer.max_grad_norm = FLAGS_max_grad_norm;
    c.optimizer.ema = FLAGS_ema;
    c.optimizer.reduce_dtype = *reduce_dtype;
    c.latent_shape = shape;
    c.compute_dtype = *precision;
    c.device = *device;
    c.zero_stage = FLAGS_zero_stage;
    c.lora = *lora;
    c.base_weights = base_weights;
    c.base_checksum = base_checksum;
    auto trainer_or = Trainer::Create(c, policy, reference, encoder, decoder, rewards, prompts, world, data_world);
    if (!trainer_or.ok()) Die(rank, absl::StrCat("config error: ", trainer_or.status().message()));
    if (rank == 0) {
      // One line that says what this job is, before the first (possibly long) iteration.
      int64_t parameters = 0;
      if (plan) {
        parameters = plan->parameters;
      } else {
        for (const auto& p : policy->parameters()) parameters += p.numel();
      }
      auto& t = **trainer_or;
      std::printf(
            "train: %s, %.3g M parameters (%.3g M trained%s), on %d rank(s) = dp %d x sp %d, %s (%d thread(s) per rank), %s, "
            "ZeRO-%d, latents "
            "%s, %ld samples per iteration (%d prompts x group %d) from %zu prompts, %ld iterations%s\n",
            FLAGS_model.c_str(), parameters / 1e6, t.optimizer().total_elements() / 1e6,
            lora->enabled() ? absl::StrFormat(": LoRA r=%d alpha %g on %d layers, base %s", lora->rank, lora->alpha,
                                              lora_layers, base_checksum).c_str()
                            : "",
            world->size(),
            world->size() / FLAGS_sp, FLAGS_sp, device->str().c_str(), at::get_num_threads(), FLAGS_precision.c_str(),
            FLAGS_zero_stage,
            absl::StrJoin(shape, "x").c_str(), static_cast<long>(t.TrainedSamplesPerIteration()),
            FLAGS_prompts_per_iteration, FLAGS_group_size, prompts.size(), static_cast<long>(FLAGS_iterations),
            plan ? absl::StrCat(", planned peak ", dancegrpo::FormatBytes(static_cast<double>(plan->peak)),
                                " per rank (", plan->peak_phase, ")")
                       .c_str()
                 : "");
    }
    auto& trainer = **trainer_or;
    // Each phase's peak resident memory on this rank (VmHWM, reset after each phase), to set
    // beside the plan at the end.
    std::map<std::string, int64_t> measured;
    auto end_phase = [&](const char* phase) {
      measured[phase] = std::max(measured[phase], dancegrpo::hpc::PeakRss());
      // Give what the phase freed back to the kernel (malloc_trim; tcmalloc's release when it
      // is preloaded), so that each phase starts from what is live, as the plan counts it,
      // and other ranks on the node can have it.
      dancegrpo::hpc::ReleaseFreeMemory();
      dancegrpo::hpc::ResetPeakRss();
    };
    end_phase("load");
    trainer.set_phase_hook(end_phase);

    const std::string ckpt_dir = FLAGS_out + "/checkpoints", traj_dir = FLAGS_out + "/trajectories";
    const std::string metrics_path = FLAGS_out + "/metrics.jsonl";
    if (rank == 0) {
      if (auto s = dancegrpo::hpc::MakeDirectories(FLAGS_out); !s.ok()) Die(rank, absl::StrCat("--out: ", s.message()));
    }
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
      dancegrpo::hpc::ResetPeakRss();
      auto saved = dancegrpo::SaveCheckpoint(trainer, ckpt_dir, FLAGS_keep_checkpoints);
      if (!saved.ok()) Die(rank, saved.status().ToString());
      end_phase("checkpoint");
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

    double elapsed = 0, flops_total = 0;
    int64_t done_here = 0;
    std::vector<dancegrpo::Curve> curves;  // rank 0: reward means of the iterations run here
    std::ofstream metrics;
    if (rank == 0) metrics.open(metrics_path, std::ios::app);
    std::unique_ptr<dancegrpo::EventWriter> events;  // rank 0: TensorBoard
    if (rank == 0 && FLAGS_tensorboard) {
      auto created = dancegrpo::EventWriter::Create(FLAGS_out + "/tensorboard");
      if (!created.ok()) Die(rank, absl::StrCat(created.status().message(), " (or run with --tensorboard=false)"));
      events = std::move(*created);
    }
    auto tensorboard = [&](const absl::Status& s) {
      if (!s.ok()) {  // a full disk should not end a run that can still checkpoint
        LOG(WARNING) << s << "; TensorBoard events stop here";
        events.reset();
      }
    };
    int stopped_by = 0;  // the stop signal that ended the run early, if any
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
      // Model FLOPs of the iteration (rollout: T forwards per sample; update: forward and
      // backward, 3x, per trained (sample, step) pair; x2 with guidance), per rank and second.
      const double cfg = FLAGS_cfg_scale != 1.0 ? 2.0 : 1.0;
      const double iteration_flops =
          cfg * flops_per_forward * (static_cast<double>(m->samples) * FLAGS_steps + 3.0 * m->update.trained_pairs);
      const double tflops = iteration_flops / world->size() / std::max(m->seconds, 1e-9) / 1e12;
      flops_total += iteration_flops;
      ++done_here;
      if (rank == 0) {
        const double eta = elapsed / done_here * (FLAGS_iterations - trainer.iteration());
        std::printf("%s\n", dancegrpo::FormatProgress(*m, FLAGS_iterations, eta).c_str());
        std::fflush(stdout);
        std::string line = MetricsJson(*m);
        if (flops_per_forward > 0) {
          line.pop_back();  // the closing brace
          absl::StrAppendFormat(&line, ", \"model_tflops_per_rank\": %.4g}", tflops);
          if (trainer.iteration() % 10 == 0 || trainer.iteration() == FLAGS_iterations)
            std::printf("  model FLOPs: %.3g TFLOP/s per rank%s\n", tflops,
                        FLAGS_peak_tflops > 0 ? absl::StrFormat(", MFU %.1f%% of %.0f", 100 * tflops / FLAGS_peak_tflops,
                                                                FLAGS_peak_tflops).c_str()
                                              : "");
        }
        metrics << line << "\n" << std::flush;
        if (events) tensorboard(events->AddScalars(m->iteration + 1, TensorBoardScalars(*m, flops_per_forward > 0 ? tflops : 0)));
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
        if (FLAGS_model != "toy" && FLAGS_sample_every > 0 && (last || (m->iteration % FLAGS_sample_every) == 0)) {
          (void)dancegrpo::hpc::MakeDirectories(FLAGS_out + "/samples");  // WritePng reports a failure
          const auto& shown = trainer.last_samples();
          const std::string stem = absl::StrFormat("%s/samples/iter_%06d", FLAGS_out, m->iteration);
          const auto grid = dancegrpo::PreviewGrid(shown.clips);
          if (auto s = dancegrpo::WritePng(stem + ".png", grid); !s.ok()) LOG(WARNING) << s;
          if (events) tensorboard(events->AddImage(m->iteration + 1, "samples", grid));
          std::vector<dancegrpo::LabelledClip> cells;
          for (size_t i = 0; i < shown.prompts.size(); ++i)
            cells.push_back({shown.clips[static_cast<int64_t>(i)],
                             dancegrpo::ClipLabel("", shown.prompts[i], shown.reward_names, shown.rewards[i])});
          const std::string title = absl::StrFormat("ITERATION %d: ONE SAMPLE OF EACH PROMPT", m->iteration);
          if (auto s = dancegrpo::WriteGif(stem + ".gif", dancegrpo::AnimatedSheet(cells, 4, title)); !s.ok())
            LOG(WARNING) << s;
        }
      }
      if (events) tensorboard(events->Flush());
      const bool last = trainer.iteration() == FLAGS_iterations;
      const bool periodic = FLAGS_checkpoint_every > 0 && trainer.iteration() % FLAGS_checkpoint_every == 0;
      if (last || periodic) checkpoint();
      // Did any rank get a stop signal? (One tiny all-reduce per iteration.)
      auto stop = torch::tensor({static_cast<int64_t>(g_stop_signal)}, torch::kInt64);
      if (auto s = world->AllReduce(stop, dancegrpo::hpc::ReduceOp::kMax); !s.ok()) Die(rank, s.ToString());
      if (stop.item<int64_t>() != 0 && !last) {
        if (!periodic) checkpoint();
        stopped_by = static_cast<int>(stop.item<int64_t>());
        break;
      }
    }
    if (rank == 0 && stopped_by != 0) {
      std::printf("stopped by signal %d (%s) after iteration %ld of %ld: checkpoint written; run again with "
                  "--resume=latest to continue\n",
                  stopped_by, stopped_by == SIGTERM ? "SIGTERM" : stopped_by == SIGUSR1 ? "SIGUSR1" : "?",
                  static_cast<long>(trainer.iteration()), static_cast<long>(FLAGS_iterations));
    } else if (rank == 0) {
      std::printf("training complete: %ld iterations in %s\n", static_cast<long>(FLAGS_iterations), FLAGS_out.c_str());
    }
    if (rank == 0 && done_here > 0) {
      // The final summary: time, each reward's first, best and final mean, and the outputs.
      std::printf("summary: %ld iterations run here in %s", static_cast<long>(done_here),
                  absl::FormatDuration(absl::Seconds(std::round(elapsed))).c_str());
      for (const auto& cv : curves) {
        if (cv.values.empty()) continue;
        const auto best = std::max_element(cv.values.begin(), cv.values.end());
        std::printf("; %s first %.4g, best %.4g (iteration %ld), final %.4g", cv.name.c_str(), cv.values.front(), *best,
                    static_cast<long>(trainer.iteration() - done_here + (best - cv.values.begin()) + 1),
                    cv.values.back());
      }
      std::printf("\n  outputs: %s/checkpoints/, %s, %s/reward_curves.png%s%s\n", FLAGS_out.c_str(),
                  metrics_path.c_str(), FLAGS_out.c_str(),
                  FLAGS_model != "toy" && FLAGS_sample_every > 0
                      ? absl::StrCat(", ", FLAGS_out, "/samples/ (PNG and GIF)").c_str()
                      : "",
                  FLAGS_tensorboard ? absl::StrCat(", ", FLAGS_out, "/tensorboard/ (tensorboard --logdir ", FLAGS_out,
                                                   "/tensorboard)")
                                          .c_str()
                                    : "");
    }
    if (rank == 0 && stopped_by == 0) {
      if (done_here > 0 && flops_per_forward > 0) {
        const double per_rank = flops_total / world->size() / elapsed / 1e12;
        std::printf("%.3f s/iteration, %.3g model TFLOP/s per rank", elapsed / done_here, per_rank);
        if (FLAGS_peak_tflops > 0) std::printf(", MFU %.2f%% of %.0f TFLOP/s", 100 * per_rank / FLAGS_peak_tflops, FLAGS_peak_tflops);
        std::printf(" (%ld iterations run here)\n", static_cast<long>(done_here));
      }
    }
    if (plan) {
      // Measured peak RSS of every rank beside the plan, phase by phase.
      const std::vector<std::string> phases = {"load", "rollout", "update", "checkpoint"};
      std::vector<double> mine, all(phases.size() * world->size());
      for (const auto& p : phases) mine.push_back(static_cast<double>(measured[p]));
      MPI_Gather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(), static_cast<int>(mine.size()),
                 MPI_DOUBLE, 0, MPI_COMM_WORLD);
      if (rank == 0) {
        std::printf("memory per rank, peak RSS measured vs planned:\n  %-11s", "phase");
        for (int r = 0; r < world->size(); ++r) std::printf(" %9s", absl::StrCat("rank ", r).c_str());
        std::printf(" %9s %9s\n", "planned", "worst");
        for (size_t k = 0; k < phases.size(); ++k) {
          int64_t planned = 0;
          for (const auto& ph : plan->phases)
            if (ph.name == phases[k]) planned = ph.bytes;
          double worst = 0, any = 0;
          std::printf("  %-11s", phases[k].c_str());
          for (int r = 0; r < world->size(); ++r) {
            const double v = all[r * phases.size() + k];
            any = std::max(any, v);
            std::printf(" %9s", v > 0 ? dancegrpo::FormatBytes(v).c_str() : "-");
            if (v > 0 && planned > 0) worst = std::max(worst, std::abs(v - planned) / planned);
          }
          std::printf(" %9s %8s\n", dancegrpo::FormatBytes(static_cast<double>(planned)).c_str(),
                      any > 0 ? absl::StrFormat("%.1f%%", 100 * worst).c_str() : "-");
        }
      }
    }
  } catch (const c10::Error& e) {
    Die(rank, absl::StrCat("libtorch error: ", e.what_without_backtrace()));
  }
  MPI_Finalize();
  return 0;
}
