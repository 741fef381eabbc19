#include "dancegrpo/io/inputs.h"

#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "hpc/status_macros.h"
#include "models/safetensors.h"
#include "models/decoder_frames.h"
#include "models/torchscript_decoder.h"
#include "models/vae/wan_vae.h"
#include "rewards/video_rewards.h"

namespace dancegrpo {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

absl::StatusOr<std::vector<int64_t>> ParseInts(const std::string& text, size_t count, const std::string& flag,
                                               const std::string& example) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v) || v < 1)
      return absl::InvalidArgumentError(absl::StrCat(flag, "='", text, "': '", part, "' is not a positive integer; ",
                                                     "give ", count, " of them, e.g. ", flag, "=", example));
    out.push_back(v);
  }
  if (out.size() != count)
    return absl::InvalidArgumentError(
        absl::StrCat(flag, "='", text, "' has ", out.size(), " values; give ", count, ", e.g. ", flag, "=", example));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<rewards::Prompt>> ReadPromptFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open the prompt file ", path));
  const bool jsonl = EndsWith(path, ".jsonl");
  std::vector<rewards::Prompt> out;
  std::set<int64_t> ids;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    rewards::Prompt p;
    p.id = static_cast<int64_t>(out.size());
    if (!jsonl) {
      p.text = std::string(absl::StripAsciiWhitespace(line));
    } else {
      const std::string where = absl::StrCat(path, ":", line_no, ": ");
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object())
        return absl::InvalidArgumentError(where + "not a JSON object; each line must be {\"prompt\": \"...\"} "
                                                  "with an optional integer \"id\"");
      const char* field = j.contains("prompt") ? "prompt" : j.contains("text") ? "text" : "caption";
      if (!j.contains(field) || !j[field].is_string())
        return absl::InvalidArgumentError(where + "no string \"prompt\" field (\"text\" and \"caption\" are also "
                                                  "accepted)");
      p.text = j[field].get<std::string>();
      if (j.contains("id")) {
        if (!j["id"].is_number_integer())
          return absl::InvalidArgumentError(where + "\"id\" must be an integer");
        p.id = j["id"].get<int64_t>();
      }
    }
    if (!ids.insert(p.id).second)
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": id ", p.id, " appears twice; ids must "
                                                     "be unique (or leave them out)"));
    out.push_back(std::move(p));
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat("the prompt file ", path, " holds no prompt; write one a line "
                                                   "(.txt) or {\"prompt\": ...} lines (.jsonl)"));
  return out;
}

absl::StatusOr<std::vector<int64_t>> ResolveLatentShape(const std::string& latent_shape, const std::string& video_size,
                                                        const std::string& vae_stride, int64_t channels) {
  if (latent_shape.empty() == video_size.empty())
    return absl::InvalidArgumentError("give exactly one of --latent_shape=C,F,H,W and --video_size=F,H,W (pixels, "
                                      "with --vae_stride)");
  if (!latent_shape.empty()) {
    DGRPO_ASSIGN_OR_RETURN(auto shape, ParseInts(latent_shape, 4, "--latent_shape", "16,21,60,104"));
    if (shape[0] != channels)
      return absl::InvalidArgumentError(absl::StrCat("--latent_shape has ", shape[0], " channels but the model takes ",
                                                     channels, " (in_dim); use ", channels, ",", shape[1], ",",
                                                     shape[2], ",", shape[3]));
    return shape;
  }
  DGRPO_ASSIGN_OR_RETURN(auto video, ParseInts(video_size, 3, "--video_size", "81,480,832"));
  DGRPO_ASSIGN_OR_RETURN(auto stride, ParseInts(vae_stride, 3, "--vae_stride", "4,8,8"));
  if ((video[0] - 1) % stride[0] != 0)
    return absl::InvalidArgumentError(absl::StrCat("--video_size frames ", video[0], " do not fit the VAE's temporal "
                                                   "stride ", stride[0], ": a causal video VAE takes 1 + k * ",
                                                   stride[0], " frames (e.g. ", 1 + ((video[0] - 1) / stride[0]) * stride[0],
                                                   " or ", 1 + ((video[0] - 1) / stride[0] + 1) * stride[0], ")"));
  for (int a = 1; a < 3; ++a)
    if (video[a] % stride[a] != 0)
      return absl::InvalidArgumentError(absl::StrCat("--video_size ", a == 1 ? "height " : "width ", video[a],
                                                     " is not a multiple of the VAE stride ", stride[a]));
  return std::vector<int64_t>{channels, (video[0] - 1) / stride[0] + 1, video[1] / stride[1], video[2] / stride[2]};
}

std::shared_ptr<models::VideoDit> MakeDit(const models::DitConfig& config) {
  return std::make_shared<models::VideoDit>(config);
}

absl::StatusOr<UserModel> LoadUserDit(const UserModelOptions& o) {
  UserModel m;
  auto config = models::DitConfigFromPresetOrFile(o.model);
  if (!config.ok()) return absl::Status(config.status().code(), absl::StrCat("--model: ", config.status().message()));
  m.config = *config;
  m.config.activation_checkpointing = o.activation_checkpointing;
  torch::manual_seed(o.seed);  // the same random initial weights on every rank
  m.dit = MakeDit(m.config);
  if (!o.weights.empty()) {
    if (o.compute_dtype == torch::kBFloat16) {
      auto files = models::OpenSafetensorsSet(o.weights);
      bool all_bf16 = files.ok();
      if (files.ok())
        for (const auto& f : *files)
          for (const auto& [name, entry] : f.entries()) all_bf16 = all_bf16 && entry.dtype == "BF16";
      if (all_bf16) m.dit->to(torch::kBFloat16);
    }
    std::vector<models::NameRule> rules;
    if (!o.weights_prefix.empty()) rules.push_back({o.weights_prefix, ""});
    auto report = models::ImportSafetensors(*m.dit, o.weights, rules);
    if (!report.ok()) return absl::Status(report.status().code(), absl::StrCat("--weights: ", report.status().message()));
    m.base_weights = o.weights;
  } else {
    m.base_weights = absl::StrCat("preset ", o.model, ", random weights of seed ", o.seed);
  }
  if (o.checksum_base) m.base_checksum = models::BaseChecksum(*m.dit);
  if (o.lora.enabled()) {
    auto layers = models::AttachLora(*m.dit, o.lora, o.seed);
    if (!layers.ok()) return layers.status();
    m.lora_layers = std::move(*layers);
  }
  return m;
}

absl::StatusOr<UserModel> LoadUserModel(const UserModelOptions& o) {
  DGRPO_ASSIGN_OR_RETURN(UserModel m, LoadUserDit(o));

  if (o.embeddings.empty())
    return absl::InvalidArgumentError("--embeddings is required: an HDF5 file of precomputed text embeddings "
                                      "(README: Train your own model)");
  auto encoder = models::PrecomputedTextEncoder::Load(o.embeddings);
  if (!encoder.ok()) return encoder.status();
  m.encoder = std::move(*encoder);
  const auto& e = *m.encoder;
  if (e.token_width() != m.config.text_dim)
    return absl::InvalidArgumentError(absl::StrCat(
        "--embeddings ", o.embeddings, ": token embeddings are ", e.token_width(), " wide but the model's text_dim is ",
        m.config.text_dim, "; compute them with the text encoder the model was trained with (umT5-XXL: 4096 for Wan)"));
  if (m.config.text_len > 0 && e.max_real_tokens() > m.config.text_len)
    return absl::InvalidArgumentError(absl::StrCat("--embeddings ", o.embeddings, ": a prompt has ", e.max_real_tokens(),
                                                   " real tokens, more than the model's text_len ", m.config.text_len,
                                                   "; truncate the tokens to ", m.config.text_len));
  if (m.config.pad_text_to_len && e.token_length() > m.config.text_len)
    return absl::InvalidArgumentError(absl::StrCat("--embeddings ", o.embeddings, ": 'tokens' has L = ",
                                                   e.token_length(), " positions, more than the model's text_len ",
                                                   m.config.text_len, "; store at most ", m.config.text_len));
  if (m.config.pooled_dim > 0 && e.pooled_width() != m.config.pooled_dim)
    return absl::InvalidArgumentError(absl::StrCat("--embeddings ", o.embeddings, ": the model takes a pooled text ",
                                                   "vector of ", m.config.pooled_dim, " values but the file's 'pooled' "
                                                   "is ", e.pooled_width() == 0 ? std::string("missing")
                                                                                : absl::StrCat(e.pooled_width(), " wide")));

  auto decoder = LoadDecoder(o.decoder, o.device, o.compute_dtype);
  if (!decoder.ok()) return absl::Status(decoder.status().code(), absl::StrCat("--decoder: ", decoder.status().message()));
  m.decoder = *decoder;
  auto rewards = rewards::ParseRewardSpec(o.rewards, o.device);
  if (!rewards.ok()) return absl::Status(rewards.status().code(), absl::StrCat("--rewards: ", rewards.status().message()));
  m.rewards = *rewards;
  return m;
}

absl::Status CheckPromptsHaveEmbeddings(const models::PrecomputedTextEncoder& encoder,
                                        const std::vector<rewards::Prompt>& prompts, const std::string& prompt_file,
                                        bool need_null) {
  std::vector<std::string> missing;
  for (const auto& p : prompts)
    if (!encoder.Has(p.text)) missing.push_back(absl::StrCat("'", p.text, "'"));
  if (need_null && !encoder.Has("")) missing.push_back("'' (the empty prompt, for classifier-free guidance)");
  if (missing.empty()) return absl::OkStatus();
  const size_t n = missing.size();
  if (missing.size() > 5) missing.resize(5), missing.push_back("...");
  return absl::NotFoundError(absl::StrCat(n, " prompt(s) of ", prompt_file, " have no embedding in ", encoder.path(),
                                          ": ", absl::StrJoin(missing, ", "),
                                          "; compute them with the text encoder and add them to the file (the key is "
                                          "the prompt text, exactly)"));
}

absl::StatusOr<std::shared_ptr<models::LatentDecoder>> LoadDecoder(const std::string& spec, const torch::Device& device,
                                                                  torch::ScalarType dtype) {
  if (spec.empty() || spec == "none") return std::shared_ptr<models::LatentDecoder>();
  auto wan = models::vae::ParseWanVaeSpec(spec);
  if (!wan.ok()) return wan.status();
  if (!wan->has_value()) {
    auto d = models::TorchScriptDecoder::Load(spec, device);
    if (!d.ok()) return d.status();
    return std::shared_ptr<models::LatentDecoder>(*d);
  }
  models::vae::WanVaeOptions options = (*wan)->options;
  options.device = device;
  options.dtype = dtype == torch::kBFloat16 ? torch::kBFloat16 : torch::kFloat;
  auto d = models::vae::WanVaeDecoder::Load((*wan)->path, options);
  if (!d.ok()) return d.status();
  return std::shared_ptr<models::LatentDecoder>(*d);
}

absl::Status CheckDecoderFits(std::shared_ptr<models::LatentDecoder>* decoder, const std::vector<int64_t>& latent_shape) {
  if (*decoder == nullptr) return absl::OkStatus();
  if (auto* wan = dynamic_cast<models::vae::WanVaeDecoder*>(decoder->get())) {
    // Declared: no probe (a full-size decode costs minutes on a CPU).
    if (latent_shape.size() != 4 || latent_shape[0] != wan->config().z_dim)
      return absl::InvalidArgumentError(absl::StrCat("the Wan VAE ", wan->source(), " decodes ", wan->config().z_dim,
                                                     " latent channels but --latent_shape is ",
                                                     absl::StrJoin(latent_shape, ","), "; make C ", wan->config().z_dim));
    models::FrameRule rule{wan->config().temporal_stride(), true};
    const auto& o = wan->options();
    *decoder = std::make_shared<models::FrameCheckedDecoder>(
        *decoder, rule,
        absl::StrCat("the Wan VAE ", wan->source(), ", ", o.dtype == torch::kBFloat16 ? "bf16" : "fp32",
                     o.tiling ? absl::StrCat(", tiles ", o.tile, "/", o.tile_stride, " px") : std::string()));
    return absl::OkStatus();
  }
  const std::string source = "the decoder";
  if (latent_shape.size() != 4) {  // not a video latent: one probe, no frame rule
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), latent_shape.begin(), latent_shape.end());
    return (*decoder)->Decode(torch::zeros(shape)).status();
  }
  auto rule = models::InferFrameRule(**decoder, latent_shape, source);
  if (!rule.ok()) return rule.status();
  *decoder = std::make_shared<models::FrameCheckedDecoder>(*decoder, *rule, source);
  return absl::OkStatus();
}

}  // namespace dancegrpo
