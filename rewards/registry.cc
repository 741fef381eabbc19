#include "rewards/registry.h"

#include <cmath>
#include <map>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"

namespace dancegrpo::rewards {
namespace {

struct Entry {
  RewardInfo info;
  RewardFactory factory;
};

// Function-local: registrations run during other libraries' static initialisation.
std::map<std::string, Entry>& Registry() {
  static auto* registry = new std::map<std::string, Entry>();
  return *registry;
}
struct SetEntry {
  RewardInfo info;
  RewardSetFactory factory;
};
std::map<std::string, SetEntry>& SetRegistry() {
  static auto* registry = new std::map<std::string, SetEntry>();
  return *registry;
}
std::mutex& RegistryMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}

std::string Usage(const RewardInfo& info) { return info.takes_argument ? info.name + "=<path>" : info.name; }

}  // namespace

void RegisterReward(const RewardInfo& info, RewardFactory factory) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  CHECK(!info.name.empty() && info.name.find_first_of("=:,") == std::string::npos)
      << "reward name '" << info.name << "' is empty or holds '=', ':' or ','";
  const bool added = Registry().emplace(info.name, Entry{info, std::move(factory)}).second;
  CHECK(added) << "the reward '" << info.name << "' is registered twice";
}

void RegisterRewardSet(const RewardInfo& info, RewardSetFactory factory) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  CHECK(!info.name.empty() && info.name.find_first_of("=:,") == std::string::npos)
      << "reward set name '" << info.name << "' is empty or holds '=', ':' or ','";
  CHECK(!Registry().count(info.name)) << "'" << info.name << "' is registered as a reward and as a reward set";
  const bool added = SetRegistry().emplace(info.name, SetEntry{info, std::move(factory)}).second;
  CHECK(added) << "the reward set '" << info.name << "' is registered twice";
}

std::vector<RewardInfo> RegisteredRewardSets() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<RewardInfo> out;
  for (const auto& [name, entry] : SetRegistry()) out.push_back(entry.info);
  return out;
}

std::vector<RewardInfo> RegisteredRewards() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<RewardInfo> out;
  for (const auto& [name, entry] : Registry()) out.push_back(entry.info);
  return out;
}

absl::StatusOr<std::shared_ptr<Reward>> MakeReward(const std::string& spec, const torch::Device& device) {
  const auto eq = spec.find('=');
  const std::string name = spec.substr(0, eq);
  RewardArgs args{eq == std::string::npos ? "" : spec.substr(eq + 1), device};
  Entry entry;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto it = Registry().find(name);
    if (it == Registry().end()) {
      std::vector<std::string> known;
      for (const auto& [n, e] : Registry()) known.push_back(Usage(e.info));
      if (SetRegistry().count(name))
        return absl::InvalidArgumentError(absl::StrCat("'", name, "' is a reward set (", SetRegistry()[name].info.help,
                                                       "); give it in --rewards"));
      for (const auto& [n, e] : SetRegistry()) known.push_back(n + "=...");
      return absl::InvalidArgumentError(absl::StrCat("unknown reward '", name, "'; use one of ",
                                                     absl::StrJoin(known, ", ")));
    }
    entry = it->second;
  }
  if (entry.info.takes_argument && args.argument.empty())
    return absl::InvalidArgumentError(absl::StrCat("reward '", name, "' needs an argument: ", Usage(entry.info), " (",
                                                   entry.info.help, ")"));
  if (!entry.info.takes_argument && eq != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("reward '", name, "' takes no argument; write '", name, "'"));
  return entry.factory(args);
}

absl::StatusOr<std::vector<WeightedReward>> ParseRewardSpec(const std::string& spec, const torch::Device& device) {
  std::vector<WeightedReward> out;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::string name(item);
    const auto eq = name.find('=');
    RewardSetFactory set;
    if (eq != std::string::npos) {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      auto it = SetRegistry().find(name.substr(0, eq));
      if (it != SetRegistry().end()) set = it->second.factory;
    }
    if (set) {
      auto rewards = set(RewardArgs{name.substr(eq + 1), device});
      if (!rewards.ok()) return rewards.status();
      out.insert(out.end(), rewards->begin(), rewards->end());
      continue;
    }
    double weight = 1.0;
    const auto colon = name.rfind(':');
    if (colon != std::string::npos) {
      if (!absl::SimpleAtod(name.substr(colon + 1), &weight) || !std::isfinite(weight))
        return absl::InvalidArgumentError(absl::StrCat("reward weight in '", item, "' is not a number"));
      name = name.substr(0, colon);
    }
    auto r = MakeReward(name, device);
    if (!r.ok()) return r.status();
    out.push_back({*r, weight});
  }
  if (out.empty()) return absl::InvalidArgumentError("no rewards given; e.g. --rewards=alignment:1,motion_quality:0.3");
  return out;
}

}  // namespace dancegrpo::rewards
