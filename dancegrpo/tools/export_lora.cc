// export_lora: writes a LoRA run's adapters as a safetensors file that diffusers
// (WanPipeline.load_lora_weights), ComfyUI and PEFT-style loaders read: for every adapted
// layer <prefix><layer>.lora_A.weight [r, in] and .lora_B.weight [out, r], Wan2.1's original
// layer names, prefix "diffusion_model." by default; block layers also carry .alpha (the scale
// is alpha / r), layers outside the blocks (head, embeddings) have alpha / r folded into A and
// no alpha key, which is what diffusers' Wan conversion requires (models/lora_keys.h). It warns
// about adapters diffusers cannot place. The file's metadata names the base weights and their
// checksum, which merge_lora checks.
//   export_lora --checkpoint=runs/lora/checkpoints/ckpt-000250.h5 --out=runs/lora/adapter.safetensors
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "dancegrpo/io/checkpoint.h"
#include "gflags/gflags.h"
#include "models/lora.h"
#include "models/lora_keys.h"
#include "models/safetensors.h"

DEFINE_string(checkpoint, "", "a checkpoint of a LoRA run (ckpt-*.h5)");
DEFINE_string(out, "", "the adapter file to write (.safetensors)");
DEFINE_bool(ema, false, "export the EMA of the adapters (when the run kept one)");
DEFINE_string(prefix, dancegrpo::models::kLoraFilePrefix, "prefix of every key (diffusers and ComfyUI: diffusion_model.)");
DEFINE_string(dtype, "fp32", "fp32 | bf16 | fp16: the stored dtype of A and B");

namespace {
int Fail(const std::string& message) {
  std::fprintf(stderr, "export_lora: %s\n", message.c_str());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("export_lora --checkpoint=CKPT.h5 --out=ADAPTER.safetensors");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_checkpoint.empty() || FLAGS_out.empty()) return Fail("--checkpoint and --out are required");
  const std::map<std::string, torch::ScalarType> dtypes = {
      {"fp32", torch::kFloat32}, {"bf16", torch::kBFloat16}, {"fp16", torch::kFloat16}};
  if (!dtypes.count(FLAGS_dtype)) return Fail(absl::StrCat("--dtype=", FLAGS_dtype, " is unknown; use fp32, bf16 or fp16"));
  auto info = dancegrpo::ReadCheckpointLora(FLAGS_checkpoint);
  if (!info.ok()) return Fail(std::string(info.status().message()));
  if (!info->lora.enabled())
    return Fail(absl::StrCat(FLAGS_checkpoint, " is not a LoRA run's checkpoint (it holds full weights); use it "
                             "directly with --weights-style loading, or train with --lora_rank"));
  auto params = dancegrpo::ReadCheckpointParameters(FLAGS_checkpoint, FLAGS_ema);
  if (!params.ok()) return Fail(std::string(params.status().message()));
  auto layers = dancegrpo::models::LoraLayers(*params, info->lora.alpha);
  if (!layers.ok()) return Fail(absl::StrCat(FLAGS_checkpoint, ": ", layers.status().message()));
  bool any_block = false;
  for (const auto& [layer, w] : *layers) {
    any_block = any_block || dancegrpo::models::LoraLayerInBlock(layer);
    if (!dancegrpo::models::DiffusersWanConvertsLayer(layer))
      std::fprintf(stderr,
                   "export_lora: warning: diffusers' Wan LoRA loader does not know layer '%s' (not one of Wan2.1's); "
                   "ComfyUI and merge_lora apply it, diffusers refuses the file\n",
                   layer.c_str());
  }
  if (!any_block)
    std::fprintf(stderr,
                 "export_lora: warning: no adapter is inside a block; diffusers' Wan LoRA loader needs at least one "
                 "(ComfyUI and merge_lora do not)\n");
  auto tensors = dancegrpo::models::LoraFileTensors(*layers, FLAGS_prefix);
  for (auto& [name, t] : tensors)
    if (t.dim() == 2) t = t.to(dtypes.at(FLAGS_dtype));
  const std::map<std::string, std::string> metadata = {
      {"format", "LoRA for Wan2.1-style DiTs (original layer names; lora_A/lora_B, alpha on block layers, "
                 "alpha / r folded into lora_A elsewhere), written by DanceGRPO-HPC"},
      {"lora_rank", std::to_string(info->lora.rank)},
      {"lora_alpha", absl::StrCat(info->lora.alpha)},
      {"lora_targets", info->lora.targets},
      {"base_weights", info->base_weights},
      {"base_checksum", info->base_checksum},
      {"source_checkpoint", FLAGS_checkpoint}};
  if (auto s = dancegrpo::models::WriteSafetensors(FLAGS_out, tensors, metadata); !s.ok())
    return Fail(std::string(s.message()));
  std::printf("export_lora: %zu layers (rank %ld, alpha %g) from %s -> %s\n", layers->size(),
              static_cast<long>(info->lora.rank), info->lora.alpha, FLAGS_checkpoint.c_str(), FLAGS_out.c_str());
  return 0;
}
