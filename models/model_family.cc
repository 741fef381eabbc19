#include "models/model_family.h"

#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dancegrpo::models {
namespace {

std::map<std::string, ModelFamilyParser>& Registry() {
  static auto* registry = new std::map<std::string, ModelFamilyParser>();
  return *registry;
}
std::mutex& RegistryMutex() {
  static auto* m = new std::mutex();
  return *m;
}

}  // namespace

bool RegisterModelFamily(const std::string& family, ModelFamilyParser parser) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[family] = std::move(parser);
  return true;
}

absl::StatusOr<std::shared_ptr<const ModelFamily>> ModelFamilyFor(const std::string& preset_or_path) {
  std::map<std::string, ModelFamilyParser> parsers;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    parsers = Registry();
  }
  if (parsers.empty()) return absl::InternalError("no model family is linked in");
  std::string errors;
  absl::Status first = absl::OkStatus();
  for (const auto& [family, parse] : parsers) {
    auto parsed = parse(preset_or_path);
    if (parsed.ok()) return parsed;
    // A family that recognised the config but found it wrong speaks for it.
    if (!absl::IsNotFound(parsed.status())) return parsed.status();
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", family, ": ", parsed.status().message());
  }
  return absl::NotFoundError(absl::StrCat("'", preset_or_path, "' is no known model: ", errors));
}

int BlockOfPath(const std::vector<ModuleShape>& modules, const std::string& path) {
  size_t best = 0;
  int block = -1;
  for (const auto& m : modules) {
    const bool prefix = path == m.name || absl::StartsWith(path, m.name + ".");
    if (prefix && m.name.size() > best) best = m.name.size(), block = m.block;
  }
  return block;
}

}  // namespace dancegrpo::models
