#include "dancegrpo/io/run_report.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "hpc/atomic_file.h"

namespace dancegrpo::io {
namespace {

// The scalars of one iteration, as TensorBoard shows them (grouped by the prefix).
std::vector<std::pair<std::string, double>> TensorBoardScalars(const IterationMetrics& m, double tflops) {
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
                     {"update/lr", m.lr},
                     {"update/skipped_steps", static_cast<double>(u.skipped_steps)},
                     {"throughput/samples_per_second", m.samples_per_second},
                     {"time/rollout_seconds", m.rollout_seconds},
                     {"time/reward_seconds", m.reward_seconds},
                     {"time/update_seconds", m.update_seconds},
                     {"time/iteration_seconds", m.seconds}});
  if (tflops > 0) s.emplace_back("throughput/model_tflops_per_rank", tflops);
  return s;
}

}  // namespace

std::string MetricsJson(const IterationMetrics& m, double tflops) {
  std::string rewards;
  for (size_t k = 0; k < m.reward_names.size(); ++k)
    absl::StrAppendFormat(&rewards, "%s\"%s\": {\"mean\": %.6g, \"std\": %.6g}", k ? ", " : "", m.reward_names[k],
                          m.reward_mean[k], m.reward_std[k]);
  std::string line = absl::StrFormat(
      "{\"iteration\": %d, \"rewards\": {%s}, \"mean_ratio\": %.8g, \"clip_fraction\": %.6g, \"approx_kl\": %.6g, "
      "\"kl_to_reference\": %.6g, \"grad_norm\": %.6g, \"lr\": %.6g, \"samples_per_second\": %.4g, \"seconds\": %.4g, "
      "\"rollout_seconds\": %.4g, \"reward_seconds\": %.4g, \"update_seconds\": %.4g",
      m.iteration, rewards, m.update.mean_ratio, m.update.clip_fraction, m.update.approx_kl, m.update.kl_to_reference,
      m.update.grad_norm, m.lr, m.samples_per_second, m.seconds, m.rollout_seconds, m.reward_seconds, m.update_seconds);
  if (tflops > 0) absl::StrAppendFormat(&line, ", \"model_tflops_per_rank\": %.4g", tflops);
  return line + "}";
}

void KeepMetricsBefore(const std::string& path, int64_t iteration) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    int64_t it = -1;
    if (std::sscanf(line.c_str(), "{\"iteration\": %ld", &it) == 1 && it < iteration) kept += line + "\n";
  }
  const std::string tmp = hpc::TemporaryPathFor(path);
  std::ofstream(tmp) << kept;
  (void)hpc::CommitFile(tmp, path);
}

absl::StatusOr<std::unique_ptr<RunReport>> RunReport::Create(const ReportOptions& options) {
  std::unique_ptr<RunReport> r(new RunReport(options));
  r->metrics_.open(options.out + "/metrics.jsonl", std::ios::app);
  if (!r->metrics_) return absl::PermissionDeniedError(absl::StrCat("cannot append to ", options.out, "/metrics.jsonl"));
  if (options.tensorboard) {
    auto created = EventWriter::Create(options.out + "/tensorboard");
    if (!created.ok()) return absl::Status(created.status().code(), absl::StrCat(created.status().message(),
                                                                                 " (or run with --tensorboard=false)"));
    r->events_ = std::move(*created);
  }
  return r;
}

void RunReport::TensorBoardResult(const absl::Status& s) {
  if (!s.ok()) {  // a full disk should not end a run that can still checkpoint
    LOG(WARNING) << s << "; TensorBoard events stop here";
    events_.reset();
  }
}

SampleShowcase ShowcaseOf(const IterationRecord& r, int max_prompts) {
  SampleShowcase out;
  if (!r.clips.defined()) return out;
  const auto& slot = r.trajectories.prompt_slot;
  std::vector<int64_t> shown;  // the first sample of each prompt on this rank
  for (size_t i = 0; i < slot.size() && static_cast<int>(shown.size()) < max_prompts; ++i)
    if (i == 0 || slot[i] != slot[i - 1]) shown.push_back(static_cast<int64_t>(i));
  out.clips = r.clips.index_select(0, torch::tensor(shown, torch::kLong).to(r.clips.device())).to(torch::kCPU);
  out.reward_names = r.reward_names;
  for (int64_t i : shown) {
    out.prompts.push_back(r.prompt_texts[i]);
    out.rewards.emplace_back();
    for (const auto& per_reward : r.scores) out.rewards.back().push_back(per_reward[i]);
  }
  return out;
}

absl::Status RunReport::OnIteration(const IterationRecord& record) {
  const auto& o = options_;
  const auto& m = record.metrics;
  const int64_t next_iteration = m.iteration + 1;
  elapsed_ += m.seconds;
  ++done_here_;
  // Model FLOPs of the iteration (rollout: T forwards per sample; update: forward and
  // backward, 3x, per trained (sample, step) pair; x2 with guidance), per rank and second.
  const double flops = (o.guidance ? 2.0 : 1.0) * o.flops_per_forward *
                       (static_cast<double>(m.samples) * o.steps + 3.0 * m.update.trained_pairs);
  const double tflops = flops / o.world_size / std::max(m.seconds, 1e-9) / 1e12;
  flops_total_ += flops;
  const double eta = elapsed_ / done_here_ * (o.iterations - next_iteration);
  std::printf("%s\n", FormatProgress(m, o.iterations, eta).c_str());
  const bool last = next_iteration == o.iterations;
  if (o.flops_per_forward > 0 && (next_iteration % 10 == 0 || last))
    std::printf("  model FLOPs: %.3g TFLOP/s per rank%s\n", tflops,
                o.peak_tflops > 0 ? absl::StrFormat(", MFU %.1f%% of %.0f", 100 * tflops / o.peak_tflops, o.peak_tflops).c_str()
                                  : "");
  std::fflush(stdout);
  std::string line = MetricsJson(m, o.flops_per_forward > 0 ? tflops : 0);
  if (!o.blas_kernels.empty()) {
    line.pop_back();  // the closing brace
    absl::StrAppend(&line, ", \"blas_kernels\": \"", o.blas_kernels, "\"}");
  }
  metrics_ << line << "\n" << std::flush;
  if (events_) TensorBoardResult(events_->AddScalars(m.iteration + 1, TensorBoardScalars(m, o.flops_per_forward > 0 ? tflops : 0)));
  if (curves_.empty())
    for (const auto& name : m.reward_names) curves_.push_back({name, {}});
  for (size_t k = 0; k < curves_.size() && k < m.reward_mean.size(); ++k) curves_[k].values.push_back(m.reward_mean[k]);
  if (last || next_iteration % 10 == 0) WriteCurves();
  if (o.sample_pictures && o.sample_every > 0 && (last || m.iteration % o.sample_every == 0) &&
      record.clips.defined())
    WriteSamples(m, ShowcaseOf(record));
  if (events_) TensorBoardResult(events_->Flush());
  return absl::OkStatus();
}

void RunReport::WriteCurves() {
  // Each reward, and its trailing 10-iteration mean (the per-iteration mean is noisy: every
  // iteration draws other prompts).
  std::vector<Curve> shown;
  for (const auto& cv : curves_) {
    Curve avg{cv.name + " avg10", {}};
    for (size_t i = 0; i < cv.values.size(); ++i) {
      const size_t from = i >= 9 ? i - 9 : 0;
      double sum = 0;
      for (size_t j = from; j <= i; ++j) sum += cv.values[j];
      avg.values.push_back(sum / (i - from + 1));
    }
    shown.push_back(cv);
    shown.push_back(avg);
  }
  if (auto s = WriteCurvesPng(options_.out + "/reward_curves.png", "MEAN REWARD PER ITERATION", shown); !s.ok())
    LOG(WARNING) << s;
}

void RunReport::WriteSamples(const IterationMetrics& m, const SampleShowcase& shown) {
  (void)hpc::MakeDirectories(options_.out + "/samples");  // the writers report a failure
  const std::string stem = absl::StrFormat("%s/samples/iter_%06d", options_.out, m.iteration);
  if (events_) TensorBoardResult(events_->AddImage(m.iteration + 1, "samples", PreviewGrid(shown.clips)));
  SampleSheet sheet;
  sheet.title = absl::StrFormat("ITERATION %d: ONE SAMPLE OF EACH PROMPT", m.iteration);
  for (size_t i = 0; i < shown.prompts.size(); ++i)
    sheet.cells.push_back(
        {shown.clips[static_cast<int64_t>(i)], ClipLabel("", shown.prompts[i], shown.reward_names, shown.rewards[i])});
  for (const auto& writer : DefaultSampleWriters())
    if (auto s = writer->Write(stem, sheet); !s.ok()) LOG(WARNING) << s;
}

void RunReport::Finish(int stopped_by, int64_t next_iteration) {
  const auto& o = options_;
  if (stopped_by != 0) {
    std::printf("stopped by signal %d (%s) after iteration %ld of %ld: checkpoint written; run again with "
                "--resume=latest to continue\n",
                stopped_by, stopped_by == SIGTERM ? "SIGTERM" : stopped_by == SIGUSR1 ? "SIGUSR1" : "?",
                static_cast<long>(next_iteration), static_cast<long>(o.iterations));
  } else {
    std::printf("training complete: %ld iterations in %s\n", static_cast<long>(o.iterations), o.out.c_str());
  }
  if (done_here_ > 0) {
    // The final summary: time, each reward's first, best and final mean, and the outputs.
    std::printf("summary: %ld iterations run here in %s", static_cast<long>(done_here_),
                absl::FormatDuration(absl::Seconds(std::round(elapsed_))).c_str());
    for (const auto& cv : curves_) {
      if (cv.values.empty()) continue;
      const auto best = std::max_element(cv.values.begin(), cv.values.end());
      std::printf("; %s first %.4g, best %.4g (iteration %ld), final %.4g", cv.name.c_str(), cv.values.front(), *best,
                  static_cast<long>(next_iteration - done_here_ + (best - cv.values.begin()) + 1), cv.values.back());
    }
    std::printf("\n  outputs: %s/checkpoints/, %s/metrics.jsonl, %s/reward_curves.png%s%s\n", o.out.c_str(),
                o.out.c_str(), o.out.c_str(),
                o.sample_pictures && o.sample_every > 0 ? absl::StrCat(", ", o.out, "/samples/ (PNG and GIF)").c_str()
                                                        : "",
                o.tensorboard
                    ? absl::StrCat(", ", o.out, "/tensorboard/ (tensorboard --logdir ", o.out, "/tensorboard)").c_str()
                    : "");
  }
  if (stopped_by == 0 && done_here_ > 0 && o.flops_per_forward > 0) {
    const double per_rank = flops_total_ / o.world_size / elapsed_ / 1e12;
    std::printf("%.3f s/iteration, %.3g model TFLOP/s per rank", elapsed_ / done_here_, per_rank);
    if (o.peak_tflops > 0) std::printf(", MFU %.2f%% of %.0f TFLOP/s", 100 * per_rank / o.peak_tflops, o.peak_tflops);
    std::printf(" (%ld iterations run here)\n", static_cast<long>(done_here_));
  }
}

std::string FormatMeasuredMemory(const std::vector<std::string>& phases, const std::vector<double>& all,
                                 int world_size, const MemoryPlan& plan) {
  std::string out = absl::StrFormat("memory per rank, peak RSS measured vs planned:\n  %-11s", "phase");
  for (int r = 0; r < world_size; ++r) absl::StrAppendFormat(&out, " %9s", absl::StrCat("rank ", r));
  absl::StrAppendFormat(&out, " %9s %9s\n", "planned", "worst");
  for (size_t k = 0; k < phases.size(); ++k) {
    int64_t planned = 0;
    for (const auto& ph : plan.phases)
      if (ph.name == phases[k]) planned = ph.bytes;
    double worst = 0, any = 0;
    absl::StrAppendFormat(&out, "  %-11s", phases[k]);
    for (int r = 0; r < world_size; ++r) {
      const double v = all[r * phases.size() + k];
      any = std::max(any, v);
      absl::StrAppendFormat(&out, " %9s", v > 0 ? FormatBytes(v) : "-");
      if (v > 0 && planned > 0) worst = std::max(worst, std::abs(v - planned) / planned);
    }
    absl::StrAppendFormat(&out, " %9s %8s\n", FormatBytes(static_cast<double>(planned)),
                          any > 0 ? absl::StrFormat("%.1f%%", 100 * worst) : "-");
  }
  return out;
}

}  // namespace dancegrpo::io
