// shapes_inputs: writes the shapes world as a user's inputs to `train` and `evaluate`, so the
// demo takes the same path as any Wan-format model:
//   <out>/config.json        the DiT's config (Wan's fields, plus stem_channels, pooled_dim and
//                            text_attention = mask)
//   <out>/dit.safetensors    the base DiT's weights, under the model's own names
//   <out>/embeddings.h5      every prompt's text embedding (and the empty prompt's), from the
//                            base's text encoder, which GRPO keeps frozen
//   <out>/train.jsonl        the training split's prompts, {"prompt": ..., "id": spec id}
//   <out>/heldout.jsonl      the held-out split's
//   <out>/latent_shape.txt   C,F,H,W of the clips (the latents are the clips: no decoder)
//
//   bazel-bin/world/tools/shapes_inputs --base=configs/base/shapes_base.safetensors --out=runs/shapes_inputs
#include <sys/stat.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "gflags/gflags.h"
#include "hpc/atomic_file.h"
#include "models/dit/dit_config.h"
#include "models/safetensors.h"
#include "models/text/precomputed_text_encoder.h"
#include "world/shapes_setup.h"
#include "world/shapes_world.h"

DEFINE_string(base, "configs/base/shapes_base.safetensors", "the shapes base (pretrain's output)");
DEFINE_string(out, "runs/shapes_inputs", "output directory");

namespace {

int Fail(const std::string& m) {
  std::fprintf(stderr, "shapes_inputs: %s\n", m.c_str());
  return 1;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  const std::string tmp = dancegrpo::hpc::TemporaryPathFor(path);
  std::ofstream(tmp) << text;
  return dancegrpo::hpc::CommitFile(tmp, path);
}

std::string PromptLines(const std::vector<dancegrpo::rewards::Prompt>& prompts) {
  std::string out;
  for (const auto& p : prompts) out += nlohmann::json{{"prompt", p.text}, {"id", p.id}}.dump() + "\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("write the shapes world as train/evaluate inputs");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  try {
    auto models = dancegrpo::MakeShapesModels(1);
    if (auto s = dancegrpo::LoadShapesBase(models, FLAGS_base); !s.ok()) return Fail(std::string(s.message()));
    if (auto s = dancegrpo::hpc::MakeDirectories(FLAGS_out); !s.ok()) return Fail(std::string(s.message()));
    const std::string dir = FLAGS_out + "/";
    if (auto s = WriteText(dir + "config.json", dancegrpo::models::DitConfigToJson(dancegrpo::ShapesDitConfig()));
        !s.ok())
      return Fail(s.ToString());
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& p : models.dit->named_parameters()) tensors.emplace_back(p.key(), p.value());
    if (auto s = dancegrpo::models::WriteSafetensors(dir + "dit.safetensors", tensors, {{"source", FLAGS_base}});
        !s.ok())
      return Fail(s.ToString());

    const auto train = dancegrpo::ShapesPrompts(false), heldout = dancegrpo::ShapesPrompts(true);
    std::vector<std::string> texts = {""};  // the null prompt, for classifier-free guidance
    for (const auto* split : {&train, &heldout})
      for (const auto& p : *split) texts.push_back(p.text);
    torch::NoGradGuard no_grad;
    auto encoded = models.text->Encode(texts);
    if (!encoded.ok()) return Fail(encoded.status().ToString());
    if (auto s = dancegrpo::models::WritePrecomputedTextEmbeddings(dir + "embeddings.h5", texts, *encoded); !s.ok())
      return Fail(s.ToString());
    if (auto s = WriteText(dir + "train.jsonl", PromptLines(train)); !s.ok()) return Fail(s.ToString());
    if (auto s = WriteText(dir + "heldout.jsonl", PromptLines(heldout)); !s.ok()) return Fail(s.ToString());
    if (auto s = WriteText(dir + "latent_shape.txt", absl::StrJoin(dancegrpo::world::ClipShape(), ",") + "\n");
        !s.ok())
      return Fail(s.ToString());
    std::printf("shapes_inputs: wrote %s{config.json, dit.safetensors, embeddings.h5 (%zu prompts), train.jsonl "
                "(%zu), heldout.jsonl (%zu), latent_shape.txt}\n",
                dir.c_str(), texts.size(), train.size(), heldout.size());
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  }
  return 0;
}
