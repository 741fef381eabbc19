#include "dancegrpo/trainable.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "models/lora.h"

namespace dancegrpo {
namespace {

struct Component {
  std::string text;      // matched literally, unless a range
  int64_t lo = -1, hi = -1;
};

bool Matches(const std::vector<Component>& pattern, const std::vector<std::string>& name) {
  if (pattern.size() > name.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const auto& c = pattern[i];
    if (c.lo >= 0) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(name[i], &v) || v < c.lo || v > c.hi) return false;
    } else if (c.text != name[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<bool>> SelectTrainable(const std::vector<std::string>& names, const std::string& spec) {
  if (std::any_of(names.begin(), names.end(), models::IsLoraParameter)) {
    if (!spec.empty())
      return absl::InvalidArgumentError(absl::StrCat(
          "--trainable=", spec, " with LoRA: a LoRA run trains its adapters and nothing else; choose the layers that "
          "get adapters with --lora_targets (e.g. blocks.20.self_attn.q), and drop --trainable"));
    std::vector<bool> out(names.size());
    for (size_t i = 0; i < names.size(); ++i) out[i] = models::IsLoraParameter(names[i]);
    return out;
  }
  std::vector<bool> out(names.size(), spec.empty());
  if (spec.empty()) return out;
  std::vector<std::vector<std::string>> split;
  std::set<std::string> top;
  for (const auto& n : names) {
    split.push_back(absl::StrSplit(n, '.'));
    top.insert(split.back()[0]);
  }
  for (absl::string_view raw : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    const std::string item(absl::StripAsciiWhitespace(raw));
    std::vector<Component> pattern;
    for (absl::string_view part : absl::StrSplit(item, '.')) {
      Component c;
      c.text = std::string(part);
      const auto dash = c.text.find('-');
      if (dash != std::string::npos) {
        if (!absl::SimpleAtoi(c.text.substr(0, dash), &c.lo) || !absl::SimpleAtoi(c.text.substr(dash + 1), &c.hi) ||
            c.lo < 0 || c.hi < c.lo)
          return absl::InvalidArgumentError(absl::StrCat("--trainable: '", item, "' has the range '", c.text,
                                                         "'; write A-B with integers A <= B, e.g. blocks.24-29"));
      }
      if (c.text.empty())
        return absl::InvalidArgumentError(absl::StrCat("--trainable: '", item, "' has an empty component"));
      pattern.push_back(c);
    }
    bool any = false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (Matches(pattern, split[i])) {
        out[i] = true;
        any = true;
      }
    }
    if (!any)
      return absl::InvalidArgumentError(absl::StrCat("--trainable: '", item, "' matches no parameter; the model's "
                                                     "top-level modules are ",
                                                     absl::StrJoin(top, ", "), " (e.g. blocks.28-29,head)"));
  }
  return out;
}

std::vector<std::vector<std::string>> BlockParameterNames(models::VelocityModel& policy) {
  std::map<const torch::nn::Module*, std::string> prefix;
  for (const auto& item : policy.named_modules("", /*include_self=*/false)) prefix[item.value().get()] = item.key();
  std::vector<std::vector<std::string>> out;
  for (const auto* block : policy.Blocks()) {
    std::vector<std::string> names;
    for (const auto& p : block->named_parameters()) names.push_back(absl::StrCat(prefix[block], ".", p.key()));
    out.push_back(std::move(names));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<hpc::ShardedParameters>> ShardPolicy(models::VelocityModel& policy,
                                                                    const std::string& trainable,
                                                                    std::shared_ptr<hpc::Communicator> comm,
                                                                    torch::ScalarType dtype, torch::Device device) {
  auto* runner = policy.block_runner();
  const auto groups = BlockParameterNames(policy);
  if (groups.empty() || runner == nullptr)
    return absl::InvalidArgumentError(
        "--zero_stage=3 shards a model block by block, and this model has no blocks (the toy model); use "
        "--zero_stage=2 or a DiT (--model=<preset or config.json>)");
  if (runner->shards()) return absl::FailedPreconditionError("the policy's parameters are already sharded");
  const auto named = policy.named_parameters();
  std::vector<std::string> names;
  for (const auto& p : named) names.push_back(p.key());
  auto selected = SelectTrainable(names, trainable);
  if (!selected.ok()) return selected.status();
  std::vector<hpc::ShardedParameters::UnitSpec> units;
  for (size_t g = 0; g < groups.size(); ++g) {
    hpc::ShardedParameters::UnitSpec parts[2];  // trained, frozen
    for (const auto& name : groups[g]) {
      const auto* p = named.find(name);
      if (p == nullptr) return absl::InternalError(absl::StrCat("no parameter '", name, "'"));
      if (!p->is_floating_point() || !p->device().is_cpu())
        return absl::FailedPreconditionError("ZeRO-3 shards CPU weights (shard before moving the model)");
      const size_t index = static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
      auto& part = parts[(*selected)[index] ? 0 : 1];
      part.names.push_back(name);
      part.params.push_back(*p);
    }
    for (int k = 0; k < 2; ++k) {
      if (parts[k].params.empty()) continue;
      parts[k].group = static_cast<int>(g);
      parts[k].trained = k == 0;
      units.push_back(std::move(parts[k]));
    }
  }
  auto sharded = hpc::ShardedParameters::Shard(std::move(units), std::move(comm), dtype, device);
  if (!sharded.ok()) return sharded.status();
  runner->set_shards(*sharded);
  return sharded;
}

absl::StatusOr<std::shared_ptr<models::VelocityModel>> LoadInLayout(
    const TrainerConfig& config, hpc::Communicator& world, std::shared_ptr<hpc::Communicator> shard_comm,
    const std::function<absl::StatusOr<std::shared_ptr<models::VelocityModel>>()>& load) {
  if (config.zero_stage != 3) return load();
  absl::StatusOr<std::shared_ptr<models::VelocityModel>> policy = absl::UnknownError("not loaded");
  auto turn = [&]() -> absl::Status {
    policy = load();
    if (!policy.ok()) return policy.status();
    // Keep this rank's slices of the blocks and drop the whole model.
    return ShardPolicy(**policy, config.trainable, shard_comm, config.compute_dtype, config.device).status();
  };
  if (auto s = hpc::ShardTurns(world, turn); !s.ok()) return s;
  return policy;
}

}  // namespace dancegrpo
