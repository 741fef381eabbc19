// plan: what one rank of a training run holds, term by term and phase by phase, and whether
// it fits, before anything is allocated. Takes train's flags (a train command line works
// as it is) plus --ranks:
//
//   plan --model=wan2.1-14b --video_size=81,480,832 --ranks=8 --sp=8 --zero_stage=3
//        --precision=bf16 --activation_checkpointing --micro_batch=1 --group_size=8
//        --prompts_per_iteration=1 --device=cuda --memory_gb=80
//
// Exit status: 0 when it fits (or nothing to check against), 3 when it does not (the cheapest
// change that fits is printed), 2 for bad input.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "dancegrpo/plan/memory_plan.h"
#include "dancegrpo/tools/model_flags.h"
#include "dancegrpo/tools/run_flags.h"
#include "gflags/gflags.h"

DEFINE_int32(ranks, 1, "ranks of the run (the world size: mpirun -np)");

int main(int argc, char** argv) {
  gflags::SetUsageMessage("plan: per-rank memory of a training run (see the header of plan.cc)");
  // A train command line works as it is: the run's settings are the same flags (run_flags.h),
  // and train's own (--prompts, --out, ...) do not change the memory and are accepted and ignored.
  gflags::AllowCommandLineReparsing();
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  auto run = dancegrpo::tools::RunConfigFromFlags();
  if (!run.ok()) {
    std::fprintf(stderr, "plan: %s\n", std::string(run.status().message()).c_str());
    return 2;
  }
  if (FLAGS_print_config) {
    std::fputs(dancegrpo::tools::DescribeRunConfig(*run).c_str(), stdout);
    return 0;
  }
  if (FLAGS_model == "toy") {
    std::fprintf(stderr, "plan: give --model (a DiT preset or a Wan config.json); the toy model needs no plan\n");
    return 2;
  }
  if (FLAGS_ranks < 1) {
    std::fprintf(stderr, "plan: --ranks=%d; it must be >= 1\n", FLAGS_ranks);
    return 2;
  }
  auto input = dancegrpo::tools::PlanInputFor(*run, FLAGS_ranks);
  if (!input.ok()) {
    std::fprintf(stderr, "plan: %s\n", std::string(input.status().message()).c_str());
    return 2;
  }
  auto plan = dancegrpo::PlanMemory(*input);
  if (!plan.ok()) {
    std::fprintf(stderr, "plan: %s\n", std::string(plan.status().message()).c_str());
    return 2;
  }
  std::fputs(dancegrpo::FormatPlan(*input, *plan).c_str(), stdout);
  return plan->fits ? 0 : 3;
}
