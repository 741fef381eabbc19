// A client of KServe's Open Inference Protocol v2 over gRPC (inference.GRPCInferenceService):
// what NVIDIA Triton, KServe/MLServer and scripts/reward_server/ serve. The wire format is the
// protocol's (rewards/oip/inference.proto); nothing here is ours but the retry policy.
//
// One Client holds one channel per endpoint of a pool. Every call has a deadline; a call that
// fails with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED is retried with doubling
// back-off, each attempt on the endpoint with the fewest calls in flight, and after the last
// retry the error names the endpoint, the model and the gRPC status. Thread-safe: requests may
// be sent from several threads at once (remote_reward.h overlaps them with the rollout).
#ifndef DANCEGRPO_REWARDS_OIP_CLIENT_H_
#define DANCEGRPO_REWARDS_OIP_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dancegrpo::rewards::oip {

// A tensor's name, datatype ("UINT8", "FP32", "BYTES", ...) and shape (-1: any size).
struct TensorSpec {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// A tensor of a request or a response: its elements row-major, little endian, as the
// protocol's raw contents (BYTES: each element a 4-byte little-endian length, then its bytes).
struct RawTensor {
  TensorSpec spec;
  std::string raw;
};

struct CallPolicy {
  double deadline_seconds = 60;  // per attempt
  int retries = 3;               // attempts after the first, for the retryable codes above
  double backoff_seconds = 0.5;  // before the first retry; doubled for each next one
};

// Bytes one element of `datatype` takes (0 for BYTES and for names the protocol lacks).
int64_t DatatypeBytes(const std::string& datatype);

// BYTES tensor contents: each string as a 4-byte little-endian length and its bytes.
std::string EncodeBytes(const std::vector<std::string>& items);
absl::StatusOr<std::vector<std::string>> DecodeBytes(const std::string& raw);

// The ModelInferRequest that Client::Infer sends, serialised: for checking it against the
// protocol's wire format.
std::string SerializeInferRequest(const std::string& model, const std::string& version,
                                  const std::vector<RawTensor>& inputs, const std::vector<std::string>& outputs);

// A serialised ModelInferResponse's outputs, as Client::Infer reads them (raw contents, or
// FP32 contents), in the order of `outputs` (every output when empty).
absl::StatusOr<std::vector<RawTensor>> ParseInferResponse(const std::string& model, const std::string& bytes,
                                                          const std::vector<std::string>& outputs);

// "[2, -1, 3]".
std::string ShapeText(const std::vector<int64_t>& shape);

class Client {
 public:
  // endpoints: "host:port" each (a pool; requests go to the least busy one). Creates the
  // channels; nothing is sent until the first call. max_message_bytes bounds both directions
  // (gRPC's default of 4 MB is less than one video clip).
  static absl::StatusOr<std::unique_ptr<Client>> Create(const std::vector<std::string>& endpoints,
                                                        int64_t max_message_bytes);
  ~Client();

  // ServerLive, ServerReady and ModelReady on every endpoint; the first that is not live or
  // ready (or cannot be reached within the policy's retries, each attempt waiting at most
  // 10 s) is the error, naming the endpoint and what to check.
  absl::Status CheckReady(const std::string& model, const std::string& version, const CallPolicy& policy);

  // The model's metadata from the first endpoint (every endpoint must serve the same model).
  absl::StatusOr<ModelMetadata> Metadata(const std::string& model, const std::string& version,
                                         const CallPolicy& policy);

  // ModelInfer with raw contents; returns the requested outputs in the order asked (every
  // output the model has when `outputs` is empty). Blocking; safe to call from many threads.
  absl::StatusOr<std::vector<RawTensor>> Infer(const std::string& model, const std::string& version,
                                               const std::vector<RawTensor>& inputs,
                                               const std::vector<std::string>& outputs, const CallPolicy& policy);

  const std::vector<std::string>& endpoints() const { return endpoints_; }

 private:
  struct Endpoint;
  explicit Client(std::vector<std::string> endpoints);
  Endpoint& LeastBusy();

  std::vector<std::string> endpoints_;
  std::vector<std::unique_ptr<Endpoint>> channels_;
};

}  // namespace dancegrpo::rewards::oip

#endif  // DANCEGRPO_REWARDS_OIP_CLIENT_H_
