// Fault injection for restart tests: a process kills itself with SIGKILL (no clean-up, no
// flush, exactly like a preempted or OOM-killed job) at a named point.
//
//   DGRPO_FAULT="phase=checkpoint,iteration=4,rank=1"
//
// makes world rank 1 die at FaultPoint("checkpoint", 4). Unset, FaultPoint costs one
// cached comparison. Phases used by the trainer: "rollout" (half-way through sampling),
// "update" (after the first optimizer step of an iteration), "checkpoint" (after this
// rank wrote its part of a checkpoint, before the file is committed), "commit" (on rank 0,
// just before the atomic rename).
#ifndef DANCEGRPO_HPC_FAULT_INJECTION_H_
#define DANCEGRPO_HPC_FAULT_INJECTION_H_

#include <cstdint>

namespace dancegrpo::hpc {

void FaultPoint(const char* phase, int64_t iteration);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_FAULT_INJECTION_H_
