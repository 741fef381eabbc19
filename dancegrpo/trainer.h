// The DanceGRPO trainer: Algorithm 1 for M iterations, on one process or many.
//
// One iteration, seen from a rank (hpc/topology.h says which samples it holds):
//   1. pick this iteration's prompts (a keyed shuffle per epoch of the prompt set; every
//      rank computes the same list);
//   2. roll out this replica's slice of the global samples (G per prompt) with the SDE
//      sampler (rollout.h); noise keys never involve the rank;
//   3. decode x0_hat of the last step and score it with every reward;
//   4. all-gather the rewards inside the sampling group (over all replicas for global
//      normalisation) and compute the advantages exactly as one process would
//      (advantage.h), optionally keeping best-of-n;
//   5. update the policy with the clipped objective (update.h); the sharded optimizer sums
//      the gradients over all ranks, so N ranks take the same step as one rank would on
//      the same global batch;
//   6. report global metrics (rewards, ratio, clip fraction, approx KL, grad norm, samples/s).
// The same seed and config give the same bits on the same number of ranks, and the same
// parameters to fp32 rounding on any number of ranks.
#ifndef DANCEGRPO_DANCEGRPO_TRAINER_H_
#define DANCEGRPO_DANCEGRPO_TRAINER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/Device.h"
#include "torch/ordered_dict.h"
#include "c10/core/ScalarType.h"
#include "dancegrpo/rollout.h"
#include "dancegrpo/sde.h"
#include "dancegrpo/trainer_config.h"
#include "dancegrpo/update.h"
#include "hpc/comm/communicator.h"
#include "hpc/sharding.h"
#include "hpc/topology.h"
#include "models/lora.h"
#include "models/velocity_model.h"
#include "rewards/reward.h"

namespace dancegrpo {

// Trajectory shards (dancegrpo/io/trajectory_store.h, HDF5) are written by an observer; this
// header stays free of HDF5 and MPI.
class TrajectoryWriter;
struct TrajectoryRecord;


struct IterationMetrics {
  int64_t iteration = 0;
  int64_t samples = 0;
  std::vector<std::string> reward_names;
  std::vector<double> reward_mean;
  std::vector<double> reward_std;
  UpdateStats update;
  double lr = 0;               // the learning rate of this iteration's optimizer steps
  double rollout_seconds = 0;  // sampling (the SDE rollout) alone
  double reward_seconds = 0;   // decoding and scoring
  double update_seconds = 0;
  double seconds = 0;
  double samples_per_second = 0;
};

// Everything one iteration produced on one rank. The trainer emits it to its observers
// after each iteration (trajectory shards, metrics, TensorBoard and sample pictures are
// observers, in dancegrpo/io/), and a replay (decoupled learner mode) consumes a stored one.
struct IterationRecord {
  IterationMetrics metrics;                  // the global statistics, the update's included
  int rank = 0;                              // this rank of world_size
  int world_size = 1;
  int64_t first_global_sample = 0;           // the global index of this rank's first sample
  Trajectories trajectories;                 // this rank's samples (slot, member, latents, log-probs)
  std::vector<int64_t> prompt_ids;           // [n]: each sample's index into the prompt set
  std::vector<std::string> prompt_texts;     // [n]
  torch::Tensor clips;                       // [n, C, F, H, W]: decoded, CPU fp32, as the rewards saw
                                             // them (undefined for a replayed iteration)
  std::vector<std::string> reward_names;     // [K]
  std::vector<std::vector<double>> scores;   // [K][n]
  std::vector<double> advantages;            // [n]
  std::vector<int64_t> trained;              // indices of the samples trained (all, or best-of-n)
  bool replayed = false;                     // trained from a stored iteration, not sampled
};

// Receives every iteration's record, on the ranks where it was added (Trainer::AddObserver).
// An error stops the run: Step returns it.
class IterationObserver {
 public:
  virtual ~IterationObserver() = default;
  virtual absl::Status OnIteration(const IterationRecord& record) = 0;
};

// One progress line: iteration, rewards, ratio/clip/KL, grad norm, throughput and ETA.
std::string FormatProgress(const IterationMetrics& m, int64_t total_iterations, double eta_seconds);


class Trainer {
 public:
  // `reference` is needed only when kl_beta > 0 without LoRA: it must have the policy's
  // architecture and is frozen at the policy's initial weights (with LoRA it is ignored). `decoder` may be null (identity). The policy
  // arrives in fp32 on the CPU; its fp32 values become the optimizer's masters before it is
  // cast to the compute dtype and moved to the device. `data_world`, when given (NCCL over
  // the same ranks as `world`), carries the data-plane collectives: the optimizer's
  // reduce-scatter and all-gather and the Ulysses all-to-alls; `world` (MPI) keeps the
  // control messages: rewards, metrics and checkpoints. `world`
  // may be null (one process); otherwise Create and every Step are collective over it, and
  // every rank must pass the same config, prompts and initial weights.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainerConfig& config, std::shared_ptr<models::VelocityModel> policy,
      std::shared_ptr<models::VelocityModel> reference, std::shared_ptr<models::PromptEncoder> encoder,
      std::shared_ptr<models::LatentDecoder> decoder, std::vector<rewards::WeightedReward> rewards,
      std::vector<rewards::Prompt> prompts, std::shared_ptr<hpc::Communicator> world = nullptr,
      std::shared_ptr<hpc::Communicator> data_world = nullptr);

  // Runs iteration `iteration()` and advances it.
  absl::StatusOr<IterationMetrics> Step();
  // Runs the remaining iterations, calling `on_iteration` after each.
  absl::Status Run(const std::function<void(const IterationMetrics&)>& on_iteration);

  // Samples trained per iteration over all ranks (all, or prompts x best_of_n).
  int64_t TrainedSamplesPerIteration() const;
  // Indices into the prompt set for the given iteration's slots.
  std::vector<int64_t> PromptsFor(int64_t iteration) const;

  int64_t iteration() const { return iteration_; }
  const TrainerConfig& config() const { return config_; }
  models::VelocityModel& policy() { return *policy_; }
  hpc::ShardedAdamW& optimizer() { return *optimizer_; }
  // ZeRO-3's parameter shards (null under ZeRO-2).
  hpc::ShardedParameters* sharded_parameters() { return sharded_.get(); }
  // The trained parameters, by name, in the optimizer's order (all of the policy's unless
  // config().trainable selects some).
  const torch::OrderedDict<std::string, torch::Tensor>& trained_parameters() const { return trained_; }
  const std::vector<double>& sigmas() const { return sigmas_; }
  const hpc::ProcessGrid& grid() const { return grid_; }
  // The Ulysses degree inside sp (the policy's choice when config().ulysses = 0); the ring
  // degree is sp / ulysses(). 1 without sequence parallelism.
  int ulysses() const { return ulysses_; }
  const hpc::SampleLayout& layout() const { return layout_; }
  // After each iteration (Step or ReplayStep), in the order added.
  void AddObserver(std::shared_ptr<IterationObserver> observer) { observers_.push_back(std::move(observer)); }
  // Resumption (dancegrpo/io/checkpoint.h) sets the next iteration to run.
  void set_iteration(int64_t iteration) { iteration_ = iteration; }
  // Replays the update of one stored iteration of this rank (from a trajectory shard,
  // dancegrpo/io/trajectory_store.h) instead of sampling: decoupled learner mode. The
  // conditions are encoded again from prompt_texts. Advances the iteration counter.
  absl::StatusOr<IterationMetrics> ReplayStep(const IterationRecord& stored);
  // Called at the end of each phase of Step ("rollout": sampling, decoding and scoring;
  // "update"), e.g. to measure each phase's peak memory.
  void set_phase_hook(std::function<void(const char* phase)> hook) { phase_hook_ = std::move(hook); }
  // Seconds this rank has spent in collectives, over all of the trainer's communicators.
  double CommunicationSeconds() const;
  // The trajectories of the last Step (this rank's samples), for inspection.
  const Trajectories& last_trajectories() const { return last_trajectories_; }

 private:
  Trainer() = default;
  // Whether the policy computes in another dtype or on another device than its fp32 CPU
  // values (which then seed the optimizer's masters).
  bool compute_copy() const {
    return config_.compute_dtype != torch::kFloat32 || config_.device != torch::Device(torch::kCPU);
  }
  // Create's phases.
  absl::Status PlaceRanks(std::shared_ptr<hpc::Communicator> world, std::shared_ptr<hpc::Communicator> data_world);
  absl::Status PlacePolicy(std::shared_ptr<models::VelocityModel> policy);
  absl::Status MakeReference(std::shared_ptr<models::VelocityModel> reference);

  // Step's phases. This rank's samples of the iteration: prompts, rollout, decoding, scores.
  absl::Status Sample(IterationRecord& r);
  // The advantages of this rank's samples and which of them are trained (collective inside
  // the sampling group).
  absl::Status Advantages(IterationRecord& r);
  // Each reward's mean and standard deviation over all replicas (collective).
  absl::Status RewardStatistics(IterationRecord& r);
  // The update and its global statistics (collective).
  absl::Status Update(IterationRecord& r);
  // Hands the record to the observers, then advances the iteration.
  absl::StatusOr<IterationMetrics> Finish(IterationRecord& r, std::chrono::steady_clock::time_point start);

  // The conditions of samples given their prompt slots and texts (one row per sample).
  absl::StatusOr<models::Conditioning> EncodeSamples(const std::vector<int64_t>& slots,
                                                     const std::vector<std::string>& texts);

  TrainerConfig config_;
  std::vector<double> sigmas_;
  std::shared_ptr<models::VelocityModel> policy_;
  std::shared_ptr<models::VelocityModel> reference_;
  std::shared_ptr<models::PromptEncoder> encoder_;
  std::shared_ptr<models::LatentDecoder> decoder_;
  std::vector<rewards::WeightedReward> rewards_;
  std::vector<rewards::Prompt> prompts_;
  std::unique_ptr<hpc::ShardedAdamW> optimizer_;
  std::shared_ptr<hpc::ShardedParameters> sharded_;
  torch::OrderedDict<std::string, torch::Tensor> trained_;
  models::Conditioning null_condition_;
  hpc::ProcessGrid grid_;       // control (MPI)
  hpc::ProcessGrid data_grid_;  // data plane: grid_ itself unless a data_world was given
  hpc::SampleLayout layout_;
  int ulysses_ = 1;             // the Ulysses degree inside sp
  std::shared_ptr<hpc::Communicator> group_comm_;  // reward exchange inside a sampling group
  Trajectories last_trajectories_;
  std::vector<std::shared_ptr<IterationObserver>> observers_;
  std::function<void(const char*)> phase_hook_;
  int64_t iteration_ = 0;
};

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_TRAINER_H_
