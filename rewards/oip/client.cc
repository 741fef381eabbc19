#include "rewards/oip/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rewards/oip/inference.grpc.pb.h"

namespace dancegrpo::rewards::oip {
namespace {

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    default: return "error";
  }
}

TensorSpec FromProto(const inference::ModelMetadataResponse::TensorMetadata& t) {
  return {t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}};
}

inference::ModelInferRequest InferRequest(const std::string& model, const std::string& version,
                                          const std::vector<RawTensor>& inputs, const std::vector<std::string>& outputs) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  req.set_model_version(version);
  for (const auto& in : inputs) {
    auto* t = req.add_inputs();
    t->set_name(in.spec.name);
    t->set_datatype(in.spec.datatype);
    for (int64_t d : in.spec.shape) t->add_shape(d);
    req.add_raw_input_contents(in.raw);
  }
  for (const auto& name : outputs) req.add_outputs()->set_name(name);
  return req;
}

// The outputs of a response: raw contents, or (for servers that answer with typed contents)
// FP32 contents; in the order of `outputs` (all, as answered, when it is empty).
absl::StatusOr<std::vector<RawTensor>> OutputsOf(const std::string& model, const inference::ModelInferResponse& resp,
                                                 const std::vector<std::string>& outputs) {
  std::vector<RawTensor> got;
  for (int i = 0; i < resp.outputs_size(); ++i) {
    const auto& o = resp.outputs(i);
    RawTensor t{{o.name(), o.datatype(), {o.shape().begin(), o.shape().end()}}, ""};
    if (i < resp.raw_output_contents_size()) {
      t.raw = resp.raw_output_contents(i);
    } else if (o.datatype() == "FP32" && o.has_contents()) {
      const auto& v = o.contents().fp32_contents();
      t.raw.resize(v.size() * sizeof(float));
      if (!v.empty()) std::memcpy(t.raw.data(), v.data(), t.raw.size());
    } else {
      return absl::InvalidArgumentError(absl::StrCat("model '", model, "' answered output '", o.name(),
                                                     "' without raw contents or FP32 contents"));
    }
    got.push_back(std::move(t));
  }
  if (outputs.empty()) return got;
  std::vector<RawTensor> ordered;
  for (const auto& name : outputs) {
    auto it = std::find_if(got.begin(), got.end(), [&](const RawTensor& t) { return t.spec.name == name; });
    if (it == got.end())
      return absl::InvalidArgumentError(absl::StrCat("model '", model, "' did not return the output '", name, "'"));
    ordered.push_back(*it);
  }
  return ordered;
}

}  // namespace

absl::StatusOr<std::vector<RawTensor>> ParseInferResponse(const std::string& model, const std::string& bytes,
                                                          const std::vector<std::string>& outputs) {
  inference::ModelInferResponse resp;
  if (!resp.ParseFromString(bytes))
    return absl::InvalidArgumentError(absl::StrCat("model '", model, "': the response is not a ModelInferResponse"));
  return OutputsOf(model, resp, outputs);
}

std::string SerializeInferRequest(const std::string& model, const std::string& version,
                                  const std::vector<RawTensor>& inputs, const std::vector<std::string>& outputs) {
  return InferRequest(model, version, inputs, outputs).SerializeAsString();
}

struct Client::Endpoint {
  std::string address;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub;
  std::atomic<int> in_flight{0};
};

int64_t DatatypeBytes(const std::string& datatype) {
  if (datatype == "BOOL" || datatype == "UINT8" || datatype == "INT8") return 1;
  if (datatype == "UINT16" || datatype == "INT16" || datatype == "FP16" || datatype == "BF16") return 2;
  if (datatype == "UINT32" || datatype == "INT32" || datatype == "FP32") return 4;
  if (datatype == "UINT64" || datatype == "INT64" || datatype == "FP64") return 8;
  return 0;
}

std::string EncodeBytes(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    const uint32_t n = static_cast<uint32_t>(s.size());
    const unsigned char len[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                                  static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
    out.append(reinterpret_cast<const char*>(len), 4);
    out.append(s);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeBytes(const std::string& raw) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < raw.size()) {
    if (raw.size() - at < 4)
      return absl::InvalidArgumentError(absl::StrCat("BYTES contents end inside an element's 4-byte length (at byte ",
                                                     at, " of ", raw.size(), ")"));
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + at);
    const uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
    at += 4;
    if (raw.size() - at < n)
      return absl::InvalidArgumentError(absl::StrCat("a BYTES element says ", n, " bytes but ", raw.size() - at,
                                                     " are left"));
    out.push_back(raw.substr(at, n));
    at += n;
  }
  return out;
}

std::string ShapeText(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

Client::Client(std::vector<std::string> endpoints) : endpoints_(std::move(endpoints)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const std::vector<std::string>& endpoints,
                                                       int64_t max_message_bytes) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no inference server endpoint given (HOST:PORT)");
  std::unique_ptr<Client> c(new Client(endpoints));
  grpc::ChannelArguments args;
  const int limit = static_cast<int>(std::min<int64_t>(max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  // A server that restarts is found again within a second or two, not after gRPC's default
  // reconnect back-off (up to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  for (const auto& address : endpoints) {
    if (address.find(':') == std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat("inference server endpoint '", address,
                                                     "' has no port; write HOST:PORT (Triton's gRPC port is 8001)"));
    auto e = std::make_unique<Endpoint>();
    e->address = address;
    e->stub = inference::GRPCInferenceService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    c->channels_.push_back(std::move(e));
  }
  return c;
}

Client::Endpoint& Client::LeastBusy() {
  Endpoint* best = channels_[0].get();
  for (auto& e : channels_)
    if (e->in_flight.load() < best->in_flight.load()) best = e.get();
  return *best;
}

namespace {

// Runs `rpc(stub, context)` under the policy: a deadline per attempt, retries with back-off on
// the retryable codes, each attempt on `pick()`'s endpoint. `what` names the call in errors.
template <typename Pick, typename Rpc>
absl::Status WithRetries(Pick pick, Rpc rpc, const CallPolicy& policy, const std::string& what) {
  double backoff = policy.backoff_seconds;
  std::string first_error, last_error;
  for (int attempt = 0; attempt <= policy.retries; ++attempt) {
    auto& e = pick();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::microseconds(static_cast<int64_t>(policy.deadline_seconds * 1e6)));
    // The first attempt fails fast on a channel that is down; a retry waits (within its
    // deadline) for the channel to connect again, so a restarted server is picked up.
    context.set_wait_for_ready(attempt > 0);
    e.in_flight.fetch_add(1);
    const grpc::Status s = rpc(*e.stub, context);
    e.in_flight.fetch_sub(1);
    if (s.ok()) return absl::OkStatus();
    const std::string error = absl::StrCat(e.address, ": ", CodeName(s.error_code()),
                                           s.error_message().empty() ? "" : absl::StrCat(" (", s.error_message(), ")"));
    if (!Retryable(s.error_code()))
      return absl::FailedPreconditionError(absl::StrCat(what, " failed at ", error));
    if (attempt == 0) first_error = error;
    last_error = error;
    if (attempt < policy.retries) {
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(backoff * 1e6)));
      backoff *= 2;
    }
  }
  return absl::UnavailableError(absl::StrCat(what, " failed after ", policy.retries + 1, " attempt(s) of ",
                                             policy.deadline_seconds, " s each: ", first_error,
                                             last_error == first_error ? "" : absl::StrCat(", then ", last_error),
                                             ". Is the inference server running and reachable from this node?"));
}

}  // namespace

// Health and metadata calls answer at once on a live server: their attempts wait at most 10 s
// (an inference deadline may be minutes), so an absent server is named within about 30 s.
namespace {
CallPolicy QuickCalls(CallPolicy policy) {
  policy.deadline_seconds = std::min(policy.deadline_seconds, 10.0);
  return policy;
}
}  // namespace

absl::Status Client::CheckReady(const std::string& model, const std::string& version, const CallPolicy& slow_policy) {
  const CallPolicy policy = QuickCalls(slow_policy);
  for (auto& e : channels_) {
    auto pick = [&]() -> Endpoint& { return *e; };
    inference::ServerLiveResponse live;
    absl::Status s = WithRetries(
        pick, [&](auto& stub, auto& ctx) { return stub.ServerLive(&ctx, inference::ServerLiveRequest(), &live); },
        policy, "ServerLive");
    if (!s.ok()) return s;
    if (!live.live()) return absl::UnavailableError(absl::StrCat(e->address, " answers but is not live"));
    inference::ServerReadyResponse ready;
    s = WithRetries(
        pick, [&](auto& stub, auto& ctx) { return stub.ServerReady(&ctx, inference::ServerReadyRequest(), &ready); },
        policy, "ServerReady");
    if (!s.ok()) return s;
    if (!ready.ready()) return absl::UnavailableError(absl::StrCat(e->address, " is live but not ready"));
    inference::ModelReadyRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelReadyResponse model_ready;
    s = WithRetries(
        pick, [&](auto& stub, auto& ctx) { return stub.ModelReady(&ctx, req, &model_ready); }, policy,
        absl::StrCat("ModelReady of '", model, "'"));
    if (!s.ok()) return s;
    if (!model_ready.ready())
      return absl::UnavailableError(absl::StrCat(e->address, " does not have model '", model, "'",
                                                 version.empty() ? "" : absl::StrCat(" version ", version),
                                                 " ready; check the model name and the server's model repository"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelMetadata> Client::Metadata(const std::string& model, const std::string& version,
                                               const CallPolicy& slow_policy) {
  const CallPolicy policy = QuickCalls(slow_policy);
  inference::ModelMetadataRequest req;
  req.set_name(model);
  req.set_version(version);
  inference::ModelMetadataResponse resp;
  auto& first = *channels_[0];
  absl::Status s = WithRetries([&]() -> Endpoint& { return first; },
                               [&](auto& stub, auto& ctx) { return stub.ModelMetadata(&ctx, req, &resp); }, policy,
                               absl::StrCat("ModelMetadata of '", model, "'"));
  if (!s.ok()) return s;
  ModelMetadata m;
  m.name = resp.name();
  m.versions.assign(resp.versions().begin(), resp.versions().end());
  m.platform = resp.platform();
  for (const auto& t : resp.inputs()) m.inputs.push_back(FromProto(t));
  for (const auto& t : resp.outputs()) m.outputs.push_back(FromProto(t));
  return m;
}

absl::StatusOr<std::vector<RawTensor>> Client::Infer(const std::string& model, const std::string& version,
                                                     const std::vector<RawTensor>& inputs,
                                                     const std::vector<std::string>& outputs,
                                                     const CallPolicy& policy) {
  const inference::ModelInferRequest req = InferRequest(model, version, inputs, outputs);
  inference::ModelInferResponse resp;
  absl::Status s = WithRetries([&]() -> Endpoint& { return LeastBusy(); },
                               [&](auto& stub, auto& ctx) {
                                 resp.Clear();
                                 return stub.ModelInfer(&ctx, req, &resp);
                               },
                               policy, absl::StrCat("ModelInfer of '", model, "'"));
  if (!s.ok()) return s;
  return OutputsOf(model, resp, outputs);
}

}  // namespace dancegrpo::rewards::oip
