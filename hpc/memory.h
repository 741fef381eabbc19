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
// Gives the memory that malloc holds free back to the kernel: tcmalloc's free page heap when
// tcmalloc is the process's malloc (it keeps freed memory for reuse, which is why it is fast),
// else glibc's malloc_trim. Called at phase boundaries and after each rank's turn at loading
// the model, so that memory one rank freed is there for the next (ZeRO-3 load in turns).
void ReleaseFreeMemory();
// The memory this machine gives its processes: MemTotal, or a smaller cgroup limit.
int64_t MachineMemoryBytes();

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_MEMORY_H_
