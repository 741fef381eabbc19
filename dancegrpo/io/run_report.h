// What a training run shows people and writes beside its checkpoints, on rank 0: a progress
// line per iteration (rewards, ratio, throughput, ETA), metrics.jsonl, TensorBoard scalars and
// sample grids, reward curves as a PNG, sample clips as PNG and GIF, and the closing summary
// (rewards first / best / final, outputs, s/iteration, model TFLOP/s and MFU). Also the
// memory table of a run: each rank's measured peak beside the plan, phase by phase.
//
// Writing a picture or an event can fail (a full disk) without ending a run that can still
// checkpoint: such failures are logged, and TensorBoard stops.
#ifndef DANCEGRPO_DANCEGRPO_IO_RUN_REPORT_H_
#define DANCEGRPO_DANCEGRPO_IO_RUN_REPORT_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dancegrpo/io/images.h"
#include "dancegrpo/io/sample_writer.h"
#include "dancegrpo/plan/memory_plan.h"
#include "dancegrpo/io/tensorboard.h"
#include "dancegrpo/trainer.h"

namespace dancegrpo::io {

struct ReportOptions {
  std::string out;                 // the run's directory
  int64_t iterations = 0;          // the run's total
  int sample_every = 0;            // sample pictures every N iterations and at the end; 0 = never
  bool sample_pictures = true;     // false where the clips are not pictures (the toy world)
  bool tensorboard = true;         // <out>/tensorboard/
  double flops_per_forward = 0;    // model FLOPs of one sample's forward; 0 = not counted
  double peak_tflops = 0;          // the device's dense peak, for MFU; 0 = TFLOP/s only
  int steps = 0;                   // sampling steps (rollout forwards per sample)
  bool guidance = false;           // classifier-free guidance doubles every evaluation
  int world_size = 1;
  std::string blas_kernels;        // the BLAS kernels in use (each metrics line records them); "" = none
};

// A few sampled clips with what made them and how they scored, for pictures of a run.
struct SampleShowcase {
  torch::Tensor clips;                       // [N, C, F, H, W], CPU
  std::vector<std::string> prompts;          // [N]
  std::vector<std::string> reward_names;     // [K]
  std::vector<std::vector<double>> rewards;  // [N][K]
};

// The clips of an iteration to show people: the first sample of each of this rank's
// prompts (up to `max_prompts`), as the rewards saw them, with their prompts and rewards.
// Empty for a replayed iteration (no clips).
SampleShowcase ShowcaseOf(const IterationRecord& record, int max_prompts = 8);

// An observer of the trainer on rank 0 (Trainer::AddObserver).
class RunReport : public IterationObserver {
 public:
  // Opens metrics.jsonl (appending) and the TensorBoard writer. Rank 0 only.
  static absl::StatusOr<std::unique_ptr<RunReport>> Create(const ReportOptions& options);

  // After each iteration. Failures to write a picture or an event are logged, not returned.
  absl::Status OnIteration(const IterationRecord& record) override;
  // The closing lines. `stopped_by` is the stop signal that ended the run early (0: none).
  void Finish(int stopped_by, int64_t next_iteration);

 private:
  explicit RunReport(ReportOptions options) : options_(std::move(options)) {}
  void TensorBoardResult(const absl::Status& s);
  void WriteCurves();
  void WriteSamples(const IterationMetrics& m, const SampleShowcase& samples);

  ReportOptions options_;
  std::ofstream metrics_;
  std::unique_ptr<EventWriter> events_;
  std::vector<Curve> curves_;  // reward means of the iterations run here
  double elapsed_ = 0, flops_total_ = 0;
  int64_t done_here_ = 0;
};

// The metrics.jsonl of a resumed run: drops the lines of iterations >= `iteration`, which
// the run writes again (atomically: a temporary file renamed over it).
void KeepMetricsBefore(const std::string& path, int64_t iteration);

// One iteration as a metrics.jsonl line (model_tflops_per_rank when `tflops` > 0).
std::string MetricsJson(const IterationMetrics& m, double tflops);

// The memory table: `measured[rank * phases.size() + k]` is rank's peak RSS in phase k.
std::string FormatMeasuredMemory(const std::vector<std::string>& phases, const std::vector<double>& measured,
                                 int world_size, const MemoryPlan& plan);

}  // namespace dancegrpo::io

#endif  // DANCEGRPO_DANCEGRPO_IO_RUN_REPORT_H_
