// Collective agreement on an error. When one rank fails in a phase that the others pass (a
// reward model that raises on one rank's clips, say), the others would otherwise walk into the
// next collective and wait there for a rank that is gone. AgreeOnStatus is that phase's
// end: every rank learns whether any rank failed, and every rank returns the same error, the
// first failing rank's message, so the job stops on all of them with one clear message.
#ifndef DANCEGRPO_HPC_COMM_AGREE_H_
#define DANCEGRPO_HPC_COMM_AGREE_H_

#include "absl/status/status.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

// Collective over `world` (null: one process). OK when every rank's `local` is OK; otherwise,
// on every rank, the lowest failing rank's error (its code, and "rank R of N: " before its
// message when N > 1), marked as agreed. Fails (unmarked) only if the exchange itself fails.
absl::Status AgreeOnStatus(const absl::Status& local, Communicator* world);

// Whether `s` came out of AgreeOnStatus, i.e. every rank holds the same error and may stop
// together (finalize and exit) instead of aborting the job from one rank.
bool IsAgreed(const absl::Status& s);

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_AGREE_H_
