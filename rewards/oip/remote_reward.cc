#include "rewards/oip/remote_reward.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rewards/registry.h"

namespace dancegrpo::rewards::oip {
namespace {

constexpr const char* kForm =
    "oip=HOST:PORT[+HOST:PORT...]/MODEL[@VERSION][?outputs=NAME:W;NAME[K]:W&frames=all|every:K|even:N"
    "&resize=HxW&deadline=S&retries=N&backoff=S&max_message_mb=N&overlap=0|1]";

absl::Status Bad(const std::string& text, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--rewards item oip=", text, ": ", why, "; the form is ", kForm));
}

// "model 'hps' at host:8001+host2:8001", for errors.
std::string ModelWhere(const RemoteSpec& spec) {
  return absl::StrCat("model '", spec.model, "' at ", absl::StrJoin(spec.endpoints, "+"));
}

bool PositiveDouble(absl::string_view s, double* v) { return absl::SimpleAtod(s, v) && std::isfinite(*v) && *v > 0; }

}  // namespace

absl::StatusOr<RemoteSpec> ParseRemoteSpec(const std::string& text) {
  RemoteSpec spec;
  std::pair<std::string, std::string> head_opts = absl::StrSplit(text, absl::MaxSplits('?', 1));
  const std::string& head = head_opts.first;
  const auto slash = head.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == head.size())
    return Bad(text, "give the server and the model as HOST:PORT/MODEL");
  for (absl::string_view e : absl::StrSplit(head.substr(0, slash), '+')) {
    const auto colon = e.rfind(':');
    int port = 0;
    if (colon == absl::string_view::npos || colon == 0 || !absl::SimpleAtoi(e.substr(colon + 1), &port) || port <= 0 ||
        port > 65535)
      return Bad(text, absl::StrCat("endpoint '", e, "' is not HOST:PORT (Triton's gRPC port is 8001)"));
    spec.endpoints.emplace_back(e);
  }
  std::pair<std::string, std::string> model_version = absl::StrSplit(head.substr(slash + 1), absl::MaxSplits('@', 1));
  spec.model = model_version.first;
  spec.version = model_version.second;
  if (spec.model.empty()) return Bad(text, "the model name is empty");
  if (head_opts.second.empty()) return spec;
  for (absl::string_view option : absl::StrSplit(head_opts.second, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(option, absl::MaxSplits('=', 1));
    const std::string& key = kv.first;
    const std::string& value = kv.second;
    double d = 0;
    int64_t n = 0;
    if (key == "outputs") {
      for (absl::string_view item : absl::StrSplit(value, ';', absl::SkipEmpty())) {
        RemoteOutput o;
        std::string name(item);
        const auto colon = name.rfind(':');
        if (colon != std::string::npos) {
          if (!absl::SimpleAtod(name.substr(colon + 1), &o.weight) || !std::isfinite(o.weight))
            return Bad(text, absl::StrCat("the weight in '", item, "' is not a number"));
          name = name.substr(0, colon);
        }
        const auto bracket = name.find('[');
        if (bracket != std::string::npos) {
          if (name.back() != ']' || !absl::SimpleAtoi(name.substr(bracket + 1, name.size() - bracket - 2), &o.column) ||
              o.column < 0)
            return Bad(text, absl::StrCat("'", item, "': a column is written NAME[K] with K >= 0"));
          name = name.substr(0, bracket);
        }
        if (name.empty()) return Bad(text, absl::StrCat("'", item, "' names no output"));
        o.name = name;
        spec.outputs.push_back(o);
      }
      if (spec.outputs.empty()) return Bad(text, "outputs= lists no output");
    } else if (key == "frames") {
      if (value == "all") {
        spec.frames = RemoteSpec::Frames::kAll;
      } else if (absl::StartsWith(value, "every:") && absl::SimpleAtoi(value.substr(6), &n) && n > 0) {
        spec.frames = RemoteSpec::Frames::kEvery;
        spec.frames_arg = n;
      } else if (absl::StartsWith(value, "even:") && absl::SimpleAtoi(value.substr(5), &n) && n > 0) {
        spec.frames = RemoteSpec::Frames::kEven;
        spec.frames_arg = n;
      } else {
        return Bad(text, absl::StrCat("frames=", value, " is not all, every:K or even:N (K, N > 0)"));
      }
    } else if (key == "resize") {
      std::pair<std::string, std::string> hw = absl::StrSplit(value, absl::MaxSplits('x', 1));
      if (!absl::SimpleAtoi(hw.first, &spec.resize_h) || !absl::SimpleAtoi(hw.second, &spec.resize_w) ||
          spec.resize_h <= 0 || spec.resize_w <= 0)
        return Bad(text, absl::StrCat("resize=", value, " is not HxW in pixels (e.g. resize=224x224)"));
    } else if (key == "deadline") {
      if (!PositiveDouble(value, &spec.policy.deadline_seconds))
        return Bad(text, absl::StrCat("deadline=", value, " is not a positive number of seconds"));
    } else if (key == "retries") {
      if (!absl::SimpleAtoi(value, &n) || n < 0 || n > 100)
        return Bad(text, absl::StrCat("retries=", value, " is not a count from 0 to 100"));
      spec.policy.retries = static_cast<int>(n);
    } else if (key == "backoff") {
      if (!absl::SimpleAtod(value, &d) || !std::isfinite(d) || d < 0)
        return Bad(text, absl::StrCat("backoff=", value, " is not a number of seconds >= 0"));
      spec.policy.backoff_seconds = d;
    } else if (key == "overlap") {
      if (value != "0" && value != "1") return Bad(text, absl::StrCat("overlap=", value, " is not 0 or 1"));
      spec.overlap = value == "1";
    } else if (key == "max_message_mb") {
      if (!absl::SimpleAtoi(value, &n) || n <= 0 || n > 2047)
        return Bad(text, absl::StrCat("max_message_mb=", value, " is not from 1 to 2047 (gRPC's limit is 2 GB)"));
      spec.max_message_bytes = n << 20;
    } else {
      return Bad(text, absl::StrCat("unknown option '", key, "'"));
    }
  }
  return spec;
}

std::vector<int64_t> SelectFrames(const RemoteSpec& spec, int64_t frames) {
  std::vector<int64_t> idx;
  switch (spec.frames) {
    case RemoteSpec::Frames::kAll:
      for (int64_t f = 0; f < frames; ++f) idx.push_back(f);
      break;
    case RemoteSpec::Frames::kEvery:
      for (int64_t f = 0; f < frames; f += spec.frames_arg) idx.push_back(f);
      break;
    case RemoteSpec::Frames::kEven: {
      const int64_t n = std::min(spec.frames_arg, frames);
      // n indices spread over [0, frames - 1], both ends included (one frame: the middle).
      for (int64_t i = 0; i < n; ++i)
        idx.push_back(n == 1 ? (frames - 1) / 2 : (i * (frames - 1) + (n - 1) / 2) / (n - 1));
      break;
    }
  }
  return idx;
}

torch::Tensor ClipsForRequest(const RemoteSpec& spec, const torch::Tensor& videos, bool fp32) {
  auto v = videos.to(torch::kCPU, torch::kFloat);
  const auto idx = SelectFrames(spec, v.size(2));
  if (static_cast<int64_t>(idx.size()) != v.size(2)) v = v.index_select(2, torch::tensor(idx, torch::kLong));
  const int64_t b = v.size(0), c = v.size(1), f = v.size(2);
  v = v.permute({0, 2, 1, 3, 4});  // [B, F, C, H, W]
  if (spec.resize_h > 0 && (spec.resize_h != v.size(3) || spec.resize_w != v.size(4))) {
    namespace F = torch::nn::functional;
    v = F::interpolate(v.reshape({b * f, c, v.size(3), v.size(4)}),
                       F::InterpolateFuncOptions()
                           .size(std::vector<int64_t>{spec.resize_h, spec.resize_w})
                           .mode(torch::kBilinear)
                           .align_corners(false))
            .view({b, f, c, spec.resize_h, spec.resize_w});
  }
  v = v.permute({0, 1, 3, 4, 2}).contiguous();  // [B, F, H, W, C]
  if (fp32) return v;
  return ((v + 1) * 127.5).round_().clamp_(0, 255).to(torch::kUInt8);
}

namespace {

// One served model: the client, the request's tensor names and the outputs' columns. Start
// sends a batch's request on a worker thread; Result waits for it. Batches are told apart by
// the clips' storage and the prompts, so the K rewards of one model share one request.
class RemoteModel {
 public:
  struct Column {
    std::string output;
    int64_t column;  // -1: the whole output
  };
  using Scores = std::vector<std::vector<double>>;  // [column][sample]

  RemoteModel(RemoteSpec spec, std::unique_ptr<Client> client, TensorSpec video, TensorSpec prompts,
              std::vector<Column> columns, std::vector<std::string> output_names)
      : spec_(std::move(spec)),
        client_(std::move(client)),
        video_(std::move(video)),
        prompts_(std::move(prompts)),
        columns_(std::move(columns)),
        output_names_(std::move(output_names)) {}

  std::string Where() const { return ModelWhere(spec_); }

  void Start(const torch::Tensor& videos, const std::vector<Prompt>& prompts) {
    const std::string key = Key(videos, prompts);
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.count(key)) return;
    // The request is built here, on the caller's thread: the clips may change after Start.
    auto inputs = Request(videos, prompts);
    const int64_t batch = videos.size(0);
    pending_[key] = {std::async(std::launch::async,
                                [this, inputs = std::move(inputs), batch]() { return Send(inputs, batch); })
                         .share(),
                     0, videos};
  }

  absl::StatusOr<std::vector<double>> Result(const torch::Tensor& videos, const std::vector<Prompt>& prompts,
                                             size_t column) {
    Start(videos, prompts);
    const std::string key = Key(videos, prompts);
    std::shared_future<absl::StatusOr<Scores>> future;
    {
      std::lock_guard<std::mutex> lock(mu_);
      future = pending_[key].future;
    }
    const auto& scores = future.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (++pending_[key].taken == columns_.size()) pending_.erase(key);
    }
    if (!scores.ok()) return scores.status();
    return (*scores)[column];
  }

  bool overlap() const { return spec_.overlap; }

 private:
  struct Pending {
    std::shared_future<absl::StatusOr<Scores>> future;
    size_t taken = 0;
    torch::Tensor clips;  // held, so that no other batch gets this storage (and key) while pending
  };

  static std::string Key(const torch::Tensor& videos, const std::vector<Prompt>& prompts) {
    std::string key = absl::StrCat(reinterpret_cast<uintptr_t>(videos.data_ptr()), "/",
                                   absl::StrJoin(videos.sizes(), "x"), "/");
    for (const auto& p : prompts) absl::StrAppend(&key, p.id, ",");
    return key;
  }

  std::vector<RawTensor> Request(const torch::Tensor& videos, const std::vector<Prompt>& prompts) const {
    const bool fp32 = video_.datatype == "FP32";
    const auto clips = ClipsForRequest(spec_, videos, fp32);
    RawTensor v{{video_.name, video_.datatype, clips.sizes().vec()}, ""};
    v.raw.assign(static_cast<const char*>(clips.data_ptr()), clips.numel() * clips.element_size());
    std::vector<RawTensor> inputs;
    inputs.push_back(std::move(v));
    if (!prompts_.name.empty()) {  // a model without a text input gets none
      std::vector<std::string> texts;
      for (const auto& p : prompts) texts.push_back(p.text);
      inputs.push_back({{prompts_.name, "BYTES", {static_cast<int64_t>(texts.size())}}, EncodeBytes(texts)});
    }
    return inputs;
  }

  absl::StatusOr<Scores> Send(const std::vector<RawTensor>& inputs, int64_t batch) const {
    // Fixed sizes the model declares must match what is sent (dims of -1 take anything).
    const auto& sent = inputs[0].spec.shape;
    for (size_t d = 0; d < sent.size() && d < video_.shape.size(); ++d)
      if (video_.shape[d] >= 0 && video_.shape[d] != sent[d] && d > 0)
        return absl::InvalidArgumentError(absl::StrCat(
            Where(), ": its input '", video_.name, "' is ", ShapeText(video_.shape), " but the clips are ",
            ShapeText(sent), "; match it with frames=even:N and resize=HxW in the --rewards item"));
    auto got = client_->Infer(spec_.model, spec_.version, inputs, output_names_, spec_.policy);
    if (!got.ok()) return absl::Status(got.status().code(), absl::StrCat(Where(), ": ", got.status().message()));
    Scores scores;
    for (const auto& c : columns_) {
      auto it = std::find_if(got->begin(), got->end(), [&](const RawTensor& t) { return t.spec.name == c.output; });
      if (it == got->end()) return absl::InternalError(absl::StrCat(Where(), " did not return output '", c.output, "'"));
      const auto& shape = it->spec.shape;
      const int64_t elem = DatatypeBytes(it->spec.datatype);
      if (it->spec.datatype != "FP32" && it->spec.datatype != "FP64")
        return absl::InternalError(absl::StrCat(Where(), ": output '", c.output, "' is ", it->spec.datatype,
                                                ", not FP32 or FP64"));
      const int64_t width = shape.size() == 2 ? shape[1] : 1;
      if (shape.empty() || shape.size() > 2 || shape[0] != batch)
        return absl::InternalError(absl::StrCat(Where(), ": output '", c.output, "' has shape ", ShapeText(shape),
                                                " for ", batch, " clips; it must be [", batch, "] or [", batch, ", K]"));
      if (static_cast<int64_t>(it->raw.size()) != batch * width * elem)
        return absl::InternalError(absl::StrCat(Where(), ": output '", c.output, "' holds ", it->raw.size(),
                                                " bytes; its shape ", ShapeText(shape), " needs ", batch * width * elem));
      if (c.column >= width || (c.column < 0 && width != 1))
        return absl::InternalError(absl::StrCat(Where(), ": output '", c.output, "' has ", width, " column(s); ",
                                                c.column < 0 ? "name one as NAME[K] in outputs="
                                                             : absl::StrCat("there is no column ", c.column)));
      std::vector<double> col(batch);
      const int64_t k = std::max<int64_t>(c.column, 0);
      for (int64_t i = 0; i < batch; ++i) {
        const char* p = it->raw.data() + (i * width + k) * elem;
        if (elem == 4) {
          float f;
          std::memcpy(&f, p, 4);
          col[i] = f;
        } else {
          std::memcpy(&col[i], p, 8);
        }
      }
      scores.push_back(std::move(col));
    }
    return scores;
  }

  const RemoteSpec spec_;
  const std::unique_ptr<Client> client_;
  const TensorSpec video_, prompts_;
  const std::vector<Column> columns_;
  const std::vector<std::string> output_names_;
  std::mutex mu_;
  std::map<std::string, Pending> pending_;
};

class RemoteOutputReward : public Reward {
 public:
  RemoteOutputReward(std::shared_ptr<RemoteModel> model, size_t column, std::string name)
      : model_(std::move(model)), column_(column), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void Start(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override {
    if (model_->overlap()) model_->Start(videos, prompts);
  }
  absl::StatusOr<std::vector<double>> Score(const torch::Tensor& videos, const std::vector<Prompt>& prompts) override {
    return model_->Result(videos, prompts, column_);
  }

 private:
  std::shared_ptr<RemoteModel> model_;
  size_t column_;
  std::string name_;
};

}  // namespace

absl::StatusOr<std::vector<WeightedReward>> ConnectRemoteRewards(const RemoteSpec& spec) {
  auto client = Client::Create(spec.endpoints, spec.max_message_bytes);
  if (!client.ok()) return client.status();
  const std::string where = ModelWhere(spec);
  if (auto s = (*client)->CheckReady(spec.model, spec.version, spec.policy); !s.ok())
    return absl::Status(s.code(), absl::StrCat("reward ", where, ": ", s.message()));
  auto meta = (*client)->Metadata(spec.model, spec.version, spec.policy);
  if (!meta.ok()) return absl::Status(meta.status().code(), absl::StrCat("reward ", where, ": ", meta.status().message()));
  auto bad = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("reward ", where, ": metadata: ", why));
  };
  const TensorSpec* video = nullptr;
  const TensorSpec* prompts = nullptr;
  for (const auto& in : meta->inputs) {
    if (in.datatype == "BYTES") {
      if (prompts) return bad(absl::StrCat("two BYTES inputs ('", prompts->name, "', '", in.name, "'); one takes the prompts"));
      if (in.shape.size() != 1)
        return bad(absl::StrCat("input '", in.name, "' (BYTES, the prompts) has shape ", ShapeText(in.shape),
                                "; the prompts are sent as [B]"));
      prompts = &in;
    } else if (in.datatype == "UINT8" || in.datatype == "FP32") {
      if (video) return bad(absl::StrCat("two video inputs ('", video->name, "', '", in.name, "')"));
      if (in.shape.size() != 5 || (in.shape[4] != 3 && in.shape[4] != -1))
        return bad(absl::StrCat("input '", in.name, "' (", in.datatype, ", the clips) has shape ", ShapeText(in.shape),
                                "; the clips are sent as [B, F, H, W, 3]"));
      video = &in;
    } else {
      return bad(absl::StrCat("input '", in.name, "' is ", in.datatype,
                              "; the trainer sends a UINT8 or FP32 video [B, F, H, W, 3] and BYTES prompts [B]"));
    }
  }
  if (!video) return bad("no UINT8 or FP32 video input [B, F, H, W, 3]");
  std::vector<RemoteOutput> outputs = spec.outputs;
  if (outputs.empty())
    for (const auto& o : meta->outputs) outputs.push_back({o.name, -1, 1.0});
  if (outputs.empty()) return bad("the model declares no outputs");
  std::vector<RemoteModel::Column> columns;
  std::vector<std::string> names;
  for (const auto& o : outputs) {
    auto it = std::find_if(meta->outputs.begin(), meta->outputs.end(), [&](const TensorSpec& t) { return t.name == o.name; });
    if (it == meta->outputs.end()) {
      std::vector<std::string> have;
      for (const auto& t : meta->outputs) have.push_back(t.name);
      return bad(absl::StrCat("no output '", o.name, "'; the model has ", absl::StrJoin(have, ", ")));
    }
    if (it->datatype != "FP32" && it->datatype != "FP64")
      return bad(absl::StrCat("output '", o.name, "' is ", it->datatype, "; scores must be FP32 or FP64"));
    if (it->shape.empty() || it->shape.size() > 2)
      return bad(absl::StrCat("output '", o.name, "' has shape ", ShapeText(it->shape), "; scores are [B] or [B, K]"));
    const int64_t width = it->shape.size() == 2 ? it->shape[1] : 1;
    if (o.column < 0 && width > 1)
      return bad(absl::StrCat("output '", o.name, "' is ", ShapeText(it->shape), "; name its columns as ", o.name,
                              "[0] ... in outputs="));
    if (o.column >= 0 && width >= 0 && o.column >= width)
      return bad(absl::StrCat("output '", o.name, "' has ", width, " column(s); there is no column ", o.column));
    columns.push_back({o.name, o.column});
    if (std::find(names.begin(), names.end(), o.name) == names.end()) names.push_back(o.name);
  }
  auto model = std::make_shared<RemoteModel>(spec, std::move(*client), *video, prompts ? *prompts : TensorSpec{},
                                             columns, names);
  std::vector<WeightedReward> out;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& o = outputs[i];
    std::string name = spec.model;
    if (outputs.size() > 1 || o.column >= 0)
      absl::StrAppend(&name, ".", o.name, o.column >= 0 ? absl::StrCat("[", o.column, "]") : "");
    out.push_back({std::make_shared<RemoteOutputReward>(model, i, name), o.weight});
  }
  return out;
}

namespace {

const RewardSetRegistration kOip(
    {"oip", "reward models served over the Open Inference Protocol v2 (Triton, KServe): oip=HOST:PORT/MODEL[?...]", true},
    [](const RewardArgs& args) -> absl::StatusOr<std::vector<WeightedReward>> {
      auto spec = ParseRemoteSpec(args.argument);
      if (!spec.ok()) return spec.status();
      return ConnectRemoteRewards(*spec);
    });

}  // namespace

}  // namespace dancegrpo::rewards::oip
