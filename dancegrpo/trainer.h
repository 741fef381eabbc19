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

// Trajectory shards (dancegrpo/trajectory_store.h, HDF5) are written by an observer; this
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
  double rollout_seconds = 0;  // sampling (the SDE rollout) alone
  double reward_seconds = 0;   // decoding and scoring
  double update_seconds = 0;
  double seconds = 0;
  double samples_per_second = 0;
};

// A few sampled clips with what made them and how they scored, for pictures of a run.
struct SampleShowcase {
  torch::Tensor clips;                       // [N, C, F, H, W], CPU
  std::vector<std::string> prompts;          // [N]
  std::vector<std::string> reward_names;     // [K]
  std::vector<std::vector<double>> rewards;  // [N][K]
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
  const hpc::SampleLayout& layout() const { return layout_; }
  // Appends every iteration's samples to `writer` (this rank's trajectory shards).
  void set_trajectory_writer(std::shared_ptr<TrajectoryWriter> writer) { trajectory_writer_ = std::move(writer); }
  TrajectoryWriter* trajectory_writer() { return trajectory_writer_.get(); }
  // Resumption (dancegrpo/checkpoint.h) sets the next iteration to run.
  void set_iteration(int64_t iteration) { iteration_ = iteration; }
  // Replays the update of one stored iteration of this rank (from a trajectory shard)
  // instead of sampling: decoupled learner mode. Advances the iteration counter.
  absl::StatusOr<IterationMetrics> ReplayStep(const TrajectoryRecord& record);
  // Called at the end of each phase of Step ("rollout": sampling, decoding and scoring;
  // "update"), e.g. to measure each phase's peak memory.
  void set_phase_hook(std::function<void(const char* phase)> hook) { phase_hook_ = std::move(hook); }
  // Seconds this rank has spent in collectives, over all of the trainer's communicators.
  double CommunicationSeconds() const;
  // The trajectories of the last Step (this rank's samples), for inspection and storage.
  const Trajectories& last_trajectories() const { return last_trajectories_; }
  // Clips of the last Step to show people: the first sample of each of this rank's prompts
  // (up to 8), decoded, on the CPU, as the rewards saw them, with their prompts and rewards.
  const SampleShowcase& last_samples() const { return last_samples_; }

 private:
  Trainer() = default;
  // The conditions of samples given their prompt slots and texts (one row per sample).
  absl::StatusOr<models::Conditioning> EncodeSamples(const std::vector<int64_t>& slots,
                                                     const std::vector<std::string>& texts);
  // The update phase and its global statistics (collective).
  absl::Status Update(const Trajectories& traj, const std::vector<double>& advantages,
                      const std::vector<int64_t>& train_samples, IterationMetrics& m);

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
  std::shared_ptr<hpc::Communicator> group_comm_;  // reward exchange inside a sampling group
  Trajectories last_trajectories_;
  SampleShowcase last_samples_;
  std::shared_ptr<TrajectoryWriter> trajectory_writer_;
  std::function<void(const char*)> phase_hook_;
  int64_t iteration_ = 0;
};

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_TRAINER_H_
