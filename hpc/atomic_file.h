// Atomic file commit: write under a temporary name beside the destination, flush it to
// disk, then rename it over the destination and flush the directory. A reader (or a
// restarted job) sees either the old file or the complete new one, never a partial one,
// even if the writer is killed at any point.
#ifndef DANCEGRPO_HPC_ATOMIC_FILE_H_
#define DANCEGRPO_HPC_ATOMIC_FILE_H_

#include <string>

#include "absl/status/status.h"

namespace dancegrpo::hpc {

// "<dir>/.<name>.tmp-<pid>": hidden, in the same directory (so rename is atomic), and
// unique per process.
std::string TemporaryPathFor(const std::string& path);

// fsync(tmp), rename(tmp, path), fsync(dir of path). On failure the temporary file is
// removed and the error names both paths.
absl::Status CommitFile(const std::string& tmp, const std::string& path);

// Writes `contents` to a temporary file beside `path` and commits it (CommitFile).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

// mkdir -p: creates `dir` and its missing parents. Fails, naming the directory and the
// reason, when it cannot (a file in the way, no permission).
absl::Status MakeDirectories(const std::string& dir);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_ATOMIC_FILE_H_
