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
// Flags may come from a file: --flagfile=configs/shapes.flags. The run's settings are the
// flags of run_flags.h and model_flags.h (shared with plan and evaluate); these are train's
// own. Rank 0 prints a progress line per iteration and appends it to <out>/metrics.jsonl
// (dancegrpo/io/run_report.h).
#include <mpi.h>
#include <torch/torch.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "dancegrpo/io/best_checkpoint.h"
#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/io/run_report.h"
#include "dancegrpo/plan/memory_plan.h"
#include "dancegrpo/tools/model_flags.h"
#include "dancegrpo/tools/run_flags.h"
#include "dancegrpo/tools/run_setup.h"
#include "dancegrpo/trainer.h"
#include "dancegrpo/io/trajectory_store.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "hpc/atomic_file.h"
#include "hpc/comm/agree.h"
#include "hpc/comm/mpi_communicator.h"
#include "hpc/comm/nccl_communicator.h"
#include "hpc/memory.h"
#include "hpc/topology.h"
#include "hpc/torch_error.h"
#include "hpc/usp.h"
#include "models/decoder_frames.h"

DEFINE_string(out, "runs/default", "output directory: checkpoints/, trajectories/, metrics.jsonl");
DEFINE_string(resume, "", "'latest' (the newest committed checkpoint in --out, or a fresh start if none) or a path");
DEFINE_int32(checkpoint_every, 0, "write a checkpoint every N iterations (and at the end); 0 = only at the end");
DEFINE_int32(keep_checkpoints, 3, "keep the newest K checkpoints; 0 = keep all");
DEFINE_bool(keep_best, false,
            "also keep, as checkpoints/best.h5, the checkpoint after the window of --best_window iterations with the "
            "highest mean weighted training reward (dancegrpo/io/best_checkpoint.h); needs --checkpoint_every");
DEFINE_int32(best_window, 0, "--keep_best's window in iterations; 0 = --checkpoint_every");
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
DEFINE_int32(targets, 4, "prompts in the toy world (--model=toy)");
DEFINE_bool(check_memory, true,
            "refuse, before loading anything, a run whose memory plan (see plan) does not fit --memory_gb or this "
            "machine");
DEFINE_double(peak_tflops, 0,
              "the device's dense peak in TFLOP/s (H200/H100 SXM bf16: 989) to report model FLOPs utilisation; "
              "0 = report TFLOP/s only");


namespace {

using dancegrpo::Trainer;
namespace tools = dancegrpo::tools;
namespace hpc = dancegrpo::hpc;

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

// The value of a StatusOr, or the job ends with its message on this rank.
template <typename T>
T OrDie(int rank, absl::StatusOr<T> v, const std::string& context = "") {
  if (!v.ok()) Die(rank, absl::StrCat(context, v.status().message()));
  return *std::move(v);
}
void OrDie(int rank, const absl::Status& s, const std::string& context = "") {
  if (!s.ok()) Die(rank, absl::StrCat(context, s.message()));
}

// train's own flags (the run's settings are checked by RunConfigFromFlags). Those whose 0
// means "all", "off" or "never" say so in their help; below zero is refused.
void CheckTrainFlags(int rank) {
  struct NonNegative {
    const char* name;
    int64_t value;
  };
  for (const auto& f : {NonNegative{"checkpoint_every", FLAGS_checkpoint_every},
                        {"keep_checkpoints", FLAGS_keep_checkpoints},
                        {"sample_every", FLAGS_sample_every},
                        {"threads", FLAGS_threads}}) {
    if (f.value < 0) Die(rank, absl::StrCat("--", f.name, "=", f.value, " is negative; see --helpon=train for its range"));
  }
  if (FLAGS_targets < 1) Die(rank, absl::StrCat("--targets=", FLAGS_targets, "; it must be >= 1"));
  if (!(FLAGS_watchdog_seconds > 0)) Die(rank, "--watchdog_seconds must be > 0");
  if (FLAGS_keep_best) (void)OrDie(rank, dancegrpo::io::BestWindow(FLAGS_best_window, FLAGS_checkpoint_every));
  if (FLAGS_trajectory_latents != "all" && FLAGS_trajectory_latents != "trained")
    Die(rank, absl::StrCat("--trajectory_latents=", FLAGS_trajectory_latents, " is unknown; use all or trained"));
}

// The memory plan, before anything is loaded: a run that cannot fit is refused with the
// cheapest change that would, instead of swapping or being OOM-killed mid-run.
std::optional<dancegrpo::MemoryPlan> PlanOrRefuse(tools::RunConfig& run, int rank, int world_size, int node_size) {
  if (FLAGS_model == "toy") return std::nullopt;
  if (run.ranks_per_node == 0) run.ranks_per_node = node_size;
  const auto input = OrDie(rank, tools::PlanInputFor(run, world_size));
  auto plan = OrDie(rank, dancegrpo::PlanMemory(input), "config error: ");
  if (FLAGS_check_memory && !plan.fits) {
    if (rank == 0) std::fputs(dancegrpo::FormatPlan(input, plan).c_str(), stderr);
    Die(rank, absl::StrCat("this run does not fit: its plan peaks at ", dancegrpo::FormatBytes(plan.peak),
                           " per rank (", plan.peak_phase, ") and ", dancegrpo::FormatBytes(plan.node_load),
                           " per node while loading; ", plan.advice, ". (--check_memory=false runs it anyway)"));
  }
  return plan;
}

std::string DecoderText(const tools::LoadedRun& loaded, const std::vector<int64_t>& latent_shape) {
  if (loaded.decoder == nullptr) return "none (the rewards see the latents)";
  const auto* d = dynamic_cast<const dancegrpo::models::FrameCheckedDecoder*>(loaded.decoder.get());
  if (d == nullptr || latent_shape.size() != 4) return "yes";
  return absl::StrCat(d->source(), ", video frames ", d->rule().ToString(), " = ", d->rule().Frames(latent_shape[1]));
}

// " (Ulysses 4 x ring 2: --ulysses=0 took the largest degree dividing sp and the heads)" for sp > 1;
// without that note when --ulysses was given.
std::string SequenceParallelText(const dancegrpo::TrainerConfig& c, const Trainer& t) {
  if (c.sequence_parallel <= 1) return "";
  return absl::StrCat(" (", hpc::UspLayout(c.sequence_parallel, t.ulysses()),
                      c.ulysses == 0 ? ": --ulysses=0 took the largest degree dividing sp and the heads" : "", ")");
}

// One line that says what this job is, before the first (possibly long) iteration.
std::string StartLine(const tools::RunConfig& run, Trainer& t, const tools::LoadedRun& loaded,
                      const std::optional<dancegrpo::MemoryPlan>& plan, int world_size, const hpc::BlasChoice& blas) {
  const auto& c = run.trainer;
  int64_t parameters = 0;
  if (plan) {
    parameters = plan->parameters;
  } else {
    for (const auto& p : loaded.policy->parameters()) parameters += p.numel();
  }
  return absl::StrFormat(
      "train: %s, %.3g M parameters (%.3g M trained%s), on %d rank(s) = dp %d x sp %d%s, %s (%d thread(s) per rank), %s, "
      "ZeRO-%d, latents %s, %ld samples per iteration (%d prompts x group %d) from %zu prompts, %ld iterations, %s%s, "
      "decoder: %s, BLAS: %s",
      FLAGS_model, parameters / 1e6, t.optimizer().total_elements() / 1e6,
      c.lora.enabled() ? absl::StrFormat(": LoRA r=%d alpha %g on %d layers, base %s", c.lora.rank, c.lora.alpha,
                                         loaded.lora_layers, c.base_checksum)
                       : "",
      world_size, world_size / c.sequence_parallel, c.sequence_parallel, SequenceParallelText(c, t), c.device.str(),
      at::get_num_threads(),
      FLAGS_precision, c.zero_stage, absl::StrJoin(c.latent_shape, "x"), t.TrainedSamplesPerIteration(),
      c.prompts_per_iteration, c.group_size, loaded.prompts.size(), c.iterations,
      c.lr_schedule == "cosine"
          ? absl::StrFormat("lr %g cosine to %g", c.optimizer.lr, dancegrpo::ScheduledLr(c, c.iterations - 1))
          : absl::StrFormat("lr %g", c.optimizer.lr),
      plan ? absl::StrCat(", planned peak ", dancegrpo::FormatBytes(static_cast<double>(plan->peak)), " per rank (",
                          plan->peak_phase, ")")
           : "",
      DecoderText(loaded, c.latent_shape), blas.Describe());
}

// --resume: the checkpoint's state, and on rank 0 the trajectory shards and metrics lines of
// the iterations it will run again dropped.
void Resume(Trainer& trainer, int rank, const std::string& ckpt_dir, const std::string& traj_dir) {
  if (FLAGS_resume.empty()) return;
  auto path = FLAGS_resume == "latest" ? dancegrpo::LatestCheckpoint(ckpt_dir) : absl::StatusOr<std::string>(FLAGS_resume);
  if (!path.ok() && FLAGS_resume == "latest") {
    if (rank == 0) std::printf("no checkpoint in %s yet: starting from scratch\n", ckpt_dir.c_str());
    return;
  }
  if (!path.ok()) Die(rank, path.status().ToString());
  const auto report = OrDie(rank, dancegrpo::LoadCheckpoint(trainer, *path));
  if (rank != 0) return;
  std::printf("resumed from %s at iteration %ld (saved by %d ranks, now %d)\n", path->c_str(),
              static_cast<long>(report.iteration), report.saved_world_size, trainer.grid().world->size());
  if (auto s = dancegrpo::DiscardTrajectoriesFrom(traj_dir, report.iteration); !s.ok()) Die(rank, s.ToString());
  dancegrpo::io::KeepMetricsBefore(FLAGS_out + "/metrics.jsonl", report.iteration);
}

// Replay mode (--replay_from): this rank's stored iterations, in order.
std::vector<std::pair<std::string, int64_t>> ReplayList(int rank, int64_t iterations) {
  std::vector<std::pair<std::string, int64_t>> replay;
  if (FLAGS_replay_from.empty()) return replay;
  const std::string mine = absl::StrFormat("rank-%05d", rank);
  for (const auto& seg : dancegrpo::ListTrajectorySegments(FLAGS_replay_from)) {
    if (seg.find(mine) == std::string::npos) continue;
    for (int64_t it : OrDie(rank, dancegrpo::ListStoredIterations(seg))) replay.emplace_back(seg, it);
  }
  if (static_cast<int64_t>(replay.size()) < iterations)
    Die(rank, absl::StrCat(FLAGS_replay_from, " holds ", replay.size(), " iterations for rank ", rank,
                           ", fewer than --iterations"));
  return replay;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("DanceGRPO training (see the header of train.cc and the README)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  MPI_Init(&argc, &argv);
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGTERM, SIGUSR1}) sigaction(signal, &action, nullptr);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int exit_code = 0;
  try {
    // Set-up: the run's settings, the communicators, the plan, the model.
    auto run = OrDie(rank, tools::RunConfigFromFlags());
    if (FLAGS_print_config) {
      if (rank == 0) std::fputs(tools::DescribeRunConfig(run).c_str(), stdout);
      MPI_Finalize();
      return 0;
    }
    CheckTrainFlags(rank);
    // The BLAS kernels, before any BLAS work: the best this CPU runs, after a GEMM self-check.
    const auto blas = OrDie(rank, tools::ChooseBlasFromFlags(), "BLAS: ");
    if (rank == 0 && !blas.notice.empty()) std::fprintf(stderr, "train: BLAS: %s\n", blas.notice.c_str());
    run.trainer.device = run.model.device = OrDie(rank, tools::DeviceFromFlag(hpc::LauncherLocalRank()));
    std::shared_ptr<hpc::MpiCommunicator> mpi =
        OrDie(rank, hpc::MpiCommunicator::Create(MPI_COMM_WORLD, {FLAGS_watchdog_seconds}));
    std::shared_ptr<hpc::Communicator> world = mpi, data_world;
    if (run.trainer.device.is_cuda())  // the data plane over NCCL; control messages and the watchdog stay on MPI
      data_world = OrDie(rank, hpc::NcclCommunicator::Create(mpi, run.trainer.device.index()), "--device=cuda: ");
    const int node_size = OrDie(rank, hpc::MpiCommunicator::RanksOnThisNode(MPI_COMM_WORLD));
    at::set_num_threads(FLAGS_threads > 0 ? FLAGS_threads : hpc::IntraOpThreadsForThisProcess(node_size));
    const auto plan = PlanOrRefuse(run, rank, world->size(), node_size);
    const auto loaded = FLAGS_model == "toy" ? OrDie(rank, tools::LoadToyRun(run, FLAGS_targets))
                                             : OrDie(rank, tools::LoadUserRun(run, FLAGS_prompts, *world,
                                                                              data_world ? data_world : world));
    auto trainer_or = OrDie(rank, Trainer::Create(run.trainer, loaded.policy, loaded.reference, loaded.encoder,
                                                  loaded.decoder, loaded.rewards, loaded.prompts, world, data_world),
                            "config error: ");
    Trainer& trainer = *trainer_or;
    if (rank == 0) std::printf("%s\n", StartLine(run, trainer, loaded, plan, world->size(), blas).c_str());
    // Each phase's peak resident memory on this rank (VmHWM, reset after each phase), to set
    // beside the plan at the end. What a phase freed goes back to the kernel (malloc_trim),
    // so each phase starts from what is live, as the plan counts it.
    const std::vector<std::string> phases = {"load", "rollout", "update", "checkpoint"};
    std::map<std::string, int64_t> measured;
    auto end_phase = [&](const char* phase) {
      measured[phase] = std::max(measured[phase], hpc::PeakRss());
      hpc::ReleaseFreeMemory();
      hpc::ResetPeakRss();
    };
    end_phase("load");
    trainer.set_phase_hook(end_phase);

    // Outputs, resume, replay.
    const std::string ckpt_dir = FLAGS_out + "/checkpoints", traj_dir = FLAGS_out + "/trajectories";
    if (rank == 0) OrDie(rank, hpc::MakeDirectories(FLAGS_out), "--out: ");
    Resume(trainer, rank, ckpt_dir, traj_dir);
    OrDie(rank, world->Barrier());
    std::shared_ptr<dancegrpo::TrajectoryWriter> writer;
    if (FLAGS_save_trajectories) {
      writer = std::make_shared<dancegrpo::TrajectoryWriter>(traj_dir, rank, FLAGS_trajectory_latents == "trained"
                                                                                  ? dancegrpo::StoredLatents::kTrainedSteps
                                                                                  : dancegrpo::StoredLatents::kAll);
      trainer.AddObserver(std::make_shared<dancegrpo::TrajectoryShards>(writer, trainer.config()));
    }
    // --keep_best: rank 0 scores each periodic (and the last) checkpoint by the training reward
    // of the window before it and keeps the best as checkpoints/best.h5 (a link; no collective).
    // A checkpoint written for a stop signal is not a candidate, so that a preempted and resumed
    // run keeps the same best as an uninterrupted one.
    std::shared_ptr<dancegrpo::io::BestCheckpoint> best;
    if (FLAGS_keep_best && rank == 0) {
      std::vector<std::pair<std::string, double>> weights;
      for (const auto& w : loaded.rewards) weights.emplace_back(w.reward->name(), w.weight);
      best = OrDie(rank, dancegrpo::io::BestCheckpoint::Open(
                             ckpt_dir, FLAGS_out + "/metrics.jsonl",
                             OrDie(rank, dancegrpo::io::BestWindow(FLAGS_best_window, FLAGS_checkpoint_every)),
                             std::move(weights), trainer.iteration()),
                   "--keep_best: ");
      if (!best->notice().empty()) std::fprintf(stderr, "train: --keep_best: %s\n", best->notice().c_str());
      if (best->best_iteration() >= 0) std::printf("best so far: %s\n", best->Describe().c_str());
      trainer.AddObserver(best);
    }
    auto checkpoint = [&](bool candidate) {
      if (writer) OrDie(rank, writer->CommitSegment());
      hpc::ResetPeakRss();
      const auto saved = OrDie(rank, dancegrpo::SaveCheckpoint(trainer, ckpt_dir, FLAGS_keep_checkpoints));
      end_phase("checkpoint");
      if (rank != 0) return;
      std::printf("checkpoint %s\n", saved.c_str());
      if (!best || !candidate) return;
      const auto kept = best->Consider(saved, trainer.iteration());
      if (!kept.ok())  // the run goes on; the last best stays
        std::fprintf(stderr, "train: --keep_best: %s; %s stays as it was\n", std::string(kept.status().message()).c_str(),
                     best->BestPath().c_str());
      else if (kept->has_value())
        std::printf("best: %s\n", (*kept)->c_str());
    };
    if (FLAGS_checkpoint_every > 0 && trainer.iteration() == 0) checkpoint(true);
    const auto replay = ReplayList(rank, run.trainer.iterations);
    std::shared_ptr<dancegrpo::io::RunReport> report;
    if (rank == 0) {
      dancegrpo::io::ReportOptions o;
      o.out = FLAGS_out;
      o.iterations = run.trainer.iterations;
      o.sample_every = FLAGS_sample_every;
      o.sample_pictures = FLAGS_model != "toy";
      o.tensorboard = FLAGS_tensorboard;
      o.flops_per_forward = loaded.flops_per_forward;
      o.peak_tflops = FLAGS_peak_tflops;
      o.steps = run.trainer.steps;
      o.guidance = run.trainer.cfg_scale != 1.0;
      o.world_size = world->size();
      o.blas_kernels = blas.kernels;
      report = OrDie(rank, dancegrpo::io::RunReport::Create(o));
      trainer.AddObserver(report);
    }

    // The loop.
    int stopped_by = 0;       // the stop signal that ended the run early, if any
    absl::Status failure;     // an error all ranks agreed on, which ended the run early
    while (trainer.iteration() < run.trainer.iterations) {
      absl::StatusOr<dancegrpo::IterationMetrics> m;
      if (replay.empty()) {
        m = trainer.Step();
      } else {
        const auto& [seg, it] = replay[trainer.iteration()];
        m = trainer.ReplayStep(dancegrpo::ToIterationRecord(OrDie(rank, dancegrpo::ReadTrajectoryRecord(seg, it))));
      }
      if (!m.ok()) {
        // An error every rank agreed on (a reward model or decoder that raised on some rank):
        // stop together, cleanly. Anything else: this rank alone knows, so it ends the job.
        if (!hpc::IsAgreed(m.status())) Die(rank, std::string(m.status().message()));
        failure = m.status();
        break;
      }
      const bool last = trainer.iteration() == run.trainer.iterations;
      const bool periodic = FLAGS_checkpoint_every > 0 && trainer.iteration() % FLAGS_checkpoint_every == 0;
      if (last || periodic) checkpoint(true);
      // Did any rank get a stop signal? (One tiny all-reduce per iteration.)
      auto stop = torch::tensor({static_cast<int64_t>(g_stop_signal)}, torch::kInt64);
      OrDie(rank, world->AllReduce(stop, hpc::ReduceOp::kMax));
      if (stop.item<int64_t>() != 0 && !last) {
        if (!periodic) checkpoint(false);
        stopped_by = static_cast<int>(stop.item<int64_t>());
        break;
      }
    }

    if (!failure.ok()) {
      if (rank == 0)
        std::fprintf(stderr,
                     "train: stopped in iteration %ld on every rank: %s\n"
                     "train: nothing of iteration %ld was written; the checkpoints and trajectory segments in %s are "
                     "whole (an open segment stays temporary); fix the cause and rerun with --resume=latest\n",
                     static_cast<long>(trainer.iteration()), std::string(failure.message()).c_str(),
                     static_cast<long>(trainer.iteration()), FLAGS_out.c_str());
      std::fflush(stderr);
      exit_code = 1;
    }

    // The report.
    if (report && failure.ok()) report->Finish(stopped_by, trainer.iteration());
    if (best && failure.ok()) std::printf("best: %s\n", best->Describe().c_str());
    if (plan && failure.ok()) {  // every rank's measured peak beside the plan, phase by phase
      auto mine = torch::zeros({static_cast<int64_t>(phases.size())}, torch::kFloat64);
      for (size_t k = 0; k < phases.size(); ++k) mine[k] = static_cast<double>(measured[phases[k]]);
      auto all = torch::zeros({world->size() * mine.numel()}, torch::kFloat64);
      OrDie(rank, world->AllGather(mine, all));
      if (rank == 0)
        std::fputs(dancegrpo::io::FormatMeasuredMemory(
                       phases, std::vector<double>(all.data_ptr<double>(), all.data_ptr<double>() + all.numel()),
                       world->size(), *plan)
                       .c_str(),
                   stdout);
    }
  } catch (const std::exception& e) {  // c10::Error, a TorchScript module's raise, anything else
    Die(rank, absl::StrCat("unexpected error: ", hpc::ExceptionMessage(e)));
  }
  MPI_Finalize();
  return exit_code;
}
