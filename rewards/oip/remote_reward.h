// Reward models served over KServe's Open Inference Protocol v2 (client.h): HPS-v2.1, CLIP
// score or VideoAlign in Triton, KServe/MLServer or scripts/reward_server/, scored as rewards.
//
// One --rewards item names one served model and the outputs it contributes:
//
//   oip=HOST:PORT[+HOST:PORT...]/MODEL[@VERSION][?OPTION&OPTION...]
//
// with the options
//   outputs=NAME:WEIGHT;NAME[K]:WEIGHT   which outputs count, each a reward of its own (VideoAlign's
//                                        VQ;MQ;TA); NAME[K] is column K of a [B, K] output.
//                                        Default: every output the model declares, weight 1.
//   frames=all | every:K | even:N        the frames sent: all, every K-th, or N evenly spaced
//   resize=HxW                           bilinear resize of every frame before sending
//   deadline=SECONDS                     per request (default 60); retries=N (default 3)
//   backoff=SECONDS                      before the first retry, doubled for each next (0.5)
//   max_message_mb=N                     gRPC's message limit both ways (default 1024)
//   overlap=0                            send each request only when its scores are needed (no
//                                        overlap with the rollout; for measuring what overlap buys)
//
// A request carries the clips as UINT8 [B, F, H, W, 3] (0..255), or FP32 [B, F, H, W, 3] in
// [-1, 1] when the model's metadata declares its video input FP32, and the prompts as BYTES [B].
// The model answers FP32 (or FP64) [B] or [B, K] per output. Every rank sends its own clips; a
// pool's requests go to its least busy endpoint.
//
// At start-up the servers must be live and ready, the model ready, and its metadata must have
// exactly one video input (UINT8 or FP32, rank 5, last dimension 3), at most one BYTES prompt
// input (rank 1; a model without one gets no prompts), and FP32/FP64 outputs of rank 1 or 2 holding the named ones: anything else stops
// the job before the first rollout, naming the endpoint, the model and the field.
#ifndef DANCEGRPO_REWARDS_OIP_REMOTE_REWARD_H_
#define DANCEGRPO_REWARDS_OIP_REMOTE_REWARD_H_

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rewards/oip/client.h"
#include "rewards/reward.h"

namespace dancegrpo::rewards::oip {

struct RemoteOutput {
  std::string name;     // the model's output tensor
  int64_t column = -1;  // -1: the whole [B] (or [B, 1]) output; else column K of [B, K]
  double weight = 1.0;
};

struct RemoteSpec {
  std::vector<std::string> endpoints;
  std::string model;
  std::string version;  // empty: the server's choice
  std::vector<RemoteOutput> outputs;  // empty: every declared output, weight 1
  enum class Frames { kAll, kEvery, kEven } frames = Frames::kAll;
  int64_t frames_arg = 0;        // K of every:K, N of even:N
  int64_t resize_h = 0, resize_w = 0;  // 0: as decoded
  CallPolicy policy;
  int64_t max_message_bytes = int64_t{1024} << 20;
  bool overlap = true;  // Reward::Start sends the request
};

// Parses what follows "oip=" in a --rewards item. Errors name the bad part and show the form.
absl::StatusOr<RemoteSpec> ParseRemoteSpec(const std::string& text);

// The frame indices of `frames` decoded frames that the spec sends.
std::vector<int64_t> SelectFrames(const RemoteSpec& spec, int64_t frames);

// The clips [B, 3, F, H, W] in [-1, 1] as the request's video tensor [B, F', H', W', 3]
// (frames selected, resized), UINT8 (round((x + 1) * 127.5), clamped) or FP32.
torch::Tensor ClipsForRequest(const RemoteSpec& spec, const torch::Tensor& videos, bool fp32);

// Connects to the spec's servers, checks them and the model's metadata, and returns one
// reward per output (each with its weight), sharing one client: the first Start or Score of
// a batch sends one request for all of them.
absl::StatusOr<std::vector<WeightedReward>> ConnectRemoteRewards(const RemoteSpec& spec);

}  // namespace dancegrpo::rewards::oip

#endif  // DANCEGRPO_REWARDS_OIP_REMOTE_REWARD_H_
