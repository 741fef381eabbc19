// merge_lora: merges LoRA adapters into their base and writes the full model as one
// safetensors file (W + alpha / r * B A per adapted layer, in each weight's own dtype), loadable
// by train and evaluate (--weights) or any Wan2.1 loader. The adapters come from an adapter
// file (export_lora's, or any with lora_A/lora_B keys under Wan2.1's layer names) or straight
// from a LoRA run's checkpoint. The base is built as train builds it (--model, --weights,
// --weights_prefix), and its checksum must match the one the adapters record.
//   merge_lora --model=runs/shapes_inputs/config.json --weights=runs/shapes_inputs/dit.safetensors \
//     --lora=runs/lora/adapter.safetensors --out=runs/lora/merged.safetensors
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "dancegrpo/io/checkpoint.h"
#include "dancegrpo/io/inputs.h"
#include "dancegrpo/tools/model_flags.h"
#include "gflags/gflags.h"
#include "models/lora.h"
#include "models/safetensors.h"

DEFINE_string(lora, "", "an adapter file (.safetensors, from export_lora or a compatible trainer)");
DEFINE_string(checkpoint, "", "or: a LoRA run's checkpoint (ckpt-*.h5)");
DEFINE_bool(ema, false, "with --checkpoint: merge the EMA of the adapters");
DEFINE_string(out, "", "the merged model to write (.safetensors)");
DEFINE_bool(allow_other_base, false, "merge even when the base's checksum differs from the one the adapters record");

namespace {
int Fail(const std::string& message) {
  std::fprintf(stderr, "merge_lora: %s\n", message.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("merge_lora --model=... [--weights=...] --lora=ADAPTER.safetensors | --checkpoint=CKPT.h5 "
                          "--out=MERGED.safetensors");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_out.empty()) return Fail("--out is required");
  if (FLAGS_lora.empty() == FLAGS_checkpoint.empty()) return Fail("give the adapters as one of --lora or --checkpoint");
  if (FLAGS_model == "toy") return Fail("--model: give the base DiT's preset or config.json");
  auto options = dancegrpo::tools::ModelOptionsFromFlags(1, torch::kCPU);
  // --precision=bf16 keeps a bf16 base in bf16 (its exact values); the merge itself is fp32.
  options.compute_dtype = FLAGS_precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  auto base = dancegrpo::LoadUserDit(options);
  if (!base.ok()) return Fail(std::string(base.status().message()));
  const std::string checksum = dancegrpo::models::BaseChecksum(*base->dit);

  std::map<std::string, dancegrpo::models::LoraLayerWeights> adapters;
  std::string recorded;  // the base checksum the adapters were trained over
  if (!FLAGS_lora.empty()) {
    std::map<std::string, std::string> metadata;
    auto read = dancegrpo::models::ReadLoraFile(FLAGS_lora, &metadata);
    if (!read.ok()) return Fail(std::string(read.status().message()));
    adapters = std::move(*read);
    if (metadata.count("base_checksum")) recorded = metadata.at("base_checksum");
  } else {
    auto info = dancegrpo::ReadCheckpointLora(FLAGS_checkpoint);
    if (!info.ok()) return Fail(std::string(info.status().message()));
    if (!info->lora.enabled()) return Fail(absl::StrCat(FLAGS_checkpoint, " is not a LoRA run's checkpoint"));
    recorded = info->base_checksum;
    auto params = dancegrpo::ReadCheckpointParameters(FLAGS_checkpoint, FLAGS_ema);
    if (!params.ok()) return Fail(std::string(params.status().message()));
    auto layers = dancegrpo::models::LoraLayers(*params, info->lora.alpha);
    if (!layers.ok()) return Fail(absl::StrCat(FLAGS_checkpoint, ": ", layers.status().message()));
    adapters = std::move(*layers);
  }
  if (!recorded.empty() && recorded != checksum && !FLAGS_allow_other_base)
    return Fail(absl::StrCat("the adapters were trained over a base with checksum ", recorded, ", and this base (",
                             base->base_weights, ") has ", checksum,
                             ": merging them into other weights gives a model nobody trained. Give the run's base "
                             "(--model, --weights), or --allow_other_base to merge anyway"));
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : base->dit->named_parameters()) named.emplace_back(p.key(), p.value().detach());
  auto merged = dancegrpo::models::MergeLora(named, adapters);
  if (!merged.ok()) return Fail(std::string(merged.status().message()));
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"merged_from", absl::StrCat(base->base_weights, " + ", FLAGS_lora.empty() ? FLAGS_checkpoint : FLAGS_lora)}};
  if (auto s = dancegrpo::models::WriteSafetensors(FLAGS_out, *merged, metadata); !s.ok())
    return Fail(std::string(s.message()));
  std::printf("merge_lora: %zu adapted layers merged into %s (base %s) -> %s\n", adapters.size(),
              base->base_weights.c_str(), checksum.c_str(), FLAGS_out.c_str());
  return 0;
}
