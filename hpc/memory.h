// Process memory, as the kernel counts it: for memory plans and their measurement.
#ifndef DANCEGRPO_HPC_MEMORY_H_
#define DANCEGRPO_HPC_MEMORY_H_

#include <cstdint>

namespace dancegrpo::hpc {

// Peak resident set size since the start or the last ResetPeakRss (bytes; Linux
// /proc/self/status VmHWM; 0 where unavailable).
int64_t PeakRss();
// Starts a new peak (writes 5 to /proc/self/clear_refs). False where the kernel refuses.
bool ResetPeakRss();
// The memory this machine gives its processes: MemTotal, or a smaller cgroup limit.
int64_t MachineMemoryBytes();

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_MEMORY_H_
