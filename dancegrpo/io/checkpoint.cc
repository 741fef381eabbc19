#include "dancegrpo/io/checkpoint.h"

#include <cstring>

#include <dirent.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "hpc/atomic_file.h"
#include "hpc/comm/mpi_communicator.h"
#include "hpc/fault_injection.h"
#include "hpc/h5/h5.h"
#include "hpc/h5/sharded_vector.h"
#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {

namespace h5 = hpc::h5;
constexpr int kMaxDims = 8;
constexpr int64_t kSchemaVersion = 1;
const char* kVectors[] = {"model/flat", "optimizer/exp_avg", "optimizer/exp_avg_sq", "ema/flat"};

MPI_Comm CommOf(const hpc::Communicator& world) {
  if (const auto* mpi = dynamic_cast<const hpc::MpiCommunicator*>(&world)) return mpi->comm();
  return MPI_COMM_NULL;
}

std::string Versions() {
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string mpi_line(mpi, len);
  mpi_line = mpi_line.substr(0, mpi_line.find(','));
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return absl::StrCat("libtorch ", TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, "; HDF5 ", maj, ".", min, ".", rel,
                      "; ", mpi_line);
}

absl::Status PutText(hid_t loc, const std::string& name, const std::string& text) {
  std::vector<uint8_t> bytes(text.begin(), text.end());
  if (bytes.empty()) bytes.push_back('\n');
  return h5::WriteChecked<uint8_t>(loc, name, {bytes.size()}, bytes.data());
}

absl::StatusOr<std::string> GetText(hid_t loc, const std::string& name) {
  DGRPO_ASSIGN_OR_RETURN(auto bytes, h5::ReadDataset<uint8_t>(loc, name));
  return std::string(bytes.begin(), bytes.end());
}

std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      int64_t it = 0;
      if (absl::StartsWith(n, "ckpt-") && absl::EndsWith(n, ".h5") && n.size() == 14 &&
          absl::SimpleAtoi(n.substr(5, 6), &it))
        out.emplace_back(it, dir + "/" + n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<h5::Handle> OpenCheckpoint(const std::string& path) {
  auto f = h5::OpenFile(path);
  if (!f.ok()) return f.status();
  auto kind = h5::ReadStringAttribute(f->id(), "dancegrpo_kind");
  if (!kind.ok() || *kind != "checkpoint")
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a DanceGRPO checkpoint (no dancegrpo_kind = ",
                                                   "checkpoint attribute); pass a ckpt-*.h5 written by train"));
  // The layout is logical (the trained parameters end to end), the same for every ZeRO stage
  // and rank count, so schema 1 is still what ZeRO-3 writes. A later, incompatible layout
  // bumps kSchemaVersion; a reader meets it with a message, not a misread.
  auto schema = h5::ReadIntAttribute(f->id(), "schema_version");
  if (schema.ok() && *schema > kSchemaVersion)
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has checkpoint schema ", *schema, ", newer than this build reads (", kSchemaVersion,
        "): it was written by a newer DanceGRPO-HPC; resume it with that version, or upgrade this one"));
  auto complete = h5::ReadIntAttribute(f->id(), "complete");
  if (!complete.ok() || *complete != 1)
    return absl::DataLossError(absl::StrCat(path, " is an incomplete checkpoint; resume from an earlier one"));
  return f;
}

absl::Status InFile(const std::string& path, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("checkpoint ", path, ": ", s.message()));
}

// The model's trained parameters: names and full shapes.
struct ParameterList {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
};
ParameterList ListOf(const torch::OrderedDict<std::string, torch::Tensor>& named) {
  ParameterList out;
  for (const auto& p : named) out.names.push_back(p.key()), out.shapes.push_back(p.value().sizes().vec());
  return out;
}
ParameterList ListOf(Trainer& trainer) {  // from the optimizer: ZeRO-3 parameters hold no data between uses
  ParameterList out;
  const auto& named = trainer.trained_parameters();
  for (size_t i = 0; i < named.size(); ++i)
    out.names.push_back(named[i].key()), out.shapes.push_back(trainer.optimizer().shape(i));
  return out;
}

// The stored parameters' names and full shapes.
absl::StatusOr<ParameterList> StoredParameters(hid_t f) {
  DGRPO_ASSIGN_OR_RETURN(const std::string names_text, GetText(f, "model/names"));
  DGRPO_ASSIGN_OR_RETURN(auto shapes, h5::ReadDataset<int64_t>(f, "model/shapes"));
  ParameterList out;
  out.names = absl::StrSplit(names_text, '\n');
  if (shapes.size() != out.names.size() * kMaxDims)
    return absl::DataLossError("model/names and model/shapes disagree");
  for (size_t i = 0; i < out.names.size(); ++i) {
    out.shapes.emplace_back();
    for (int d = 0; d < kMaxDims && shapes[i * kMaxDims + d] >= 0; ++d) out.shapes.back().push_back(shapes[i * kMaxDims + d]);
  }
  return out;
}

absl::Status CheckParameters(hid_t f, const ParameterList& model) {
  DGRPO_ASSIGN_OR_RETURN(const ParameterList stored, StoredParameters(f));
  const auto& names = stored.names;
  if (names.size() != model.names.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "it holds ", names.size(), " parameter tensors but this model trains ", model.names.size(),
        ": the model shape, --trainable or the LoRA options (--lora_rank, --lora_targets) changed; resume with the "
        "config it was written with, or start a new run"));
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != model.names[i] || stored.shapes[i] != model.shapes[i]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "parameter ", i, " is '", names[i], "' [", absl::StrJoin(stored.shapes[i], ", "), "] there but '",
          model.names[i], "' [", absl::StrJoin(model.shapes[i], ", "),
          "] in this model: the model shape changed; resume with the config it was written with, or start a "
          "new run"));
    }
  }
  return absl::OkStatus();
}

// The LoRA config and base pointer a checkpoint records (model group attributes).
absl::StatusOr<LoraCheckpointInfo> ReadLoraInfo(hid_t f) {
  DGRPO_ASSIGN_OR_RETURN(auto group, h5::OpenGroup(f, "model"));
  LoraCheckpointInfo info;
  auto rank = h5::ReadIntAttribute(group.id(), "lora_rank");
  if (rank.ok()) {
    info.lora.rank = *rank;
    DGRPO_ASSIGN_OR_RETURN(info.lora.alpha, h5::ReadDoubleAttribute(group.id(), "lora_alpha"));
    DGRPO_ASSIGN_OR_RETURN(info.lora.targets, h5::ReadStringAttribute(group.id(), "lora_targets"));
  }
  auto weights = h5::ReadStringAttribute(group.id(), "base_weights");
  if (weights.ok()) info.base_weights = *weights;
  auto checksum = h5::ReadStringAttribute(group.id(), "base_checksum");
  if (checksum.ok()) info.base_checksum = *checksum;
  return info;
}


// The stored weights (the EMA's with use_ema when there is one), one fp32 tensor per shape.
absl::StatusOr<std::vector<torch::Tensor>> ReadWeights(hid_t f, const std::vector<std::vector<int64_t>>& shapes,
                                                       bool use_ema) {
  int64_t total = 0;
  for (const auto& shape : shapes) total += c10::multiply_integers(shape);
  const char* source = use_ema && h5::Exists(f, "ema/flat") ? "ema/flat" : "model/flat";
  DGRPO_ASSIGN_OR_RETURN(auto flat, h5::ReadVectorSlice(f, source, 0, total));
  std::vector<torch::Tensor> out;
  int64_t offset = 0;
  for (const auto& shape : shapes) {
    out.push_back(torch::from_blob(flat.data() + offset, shape, torch::kFloat32).clone());
    offset += out.back().numel();
  }
  return out;
}

}  // namespace

absl::StatusOr<LoraCheckpointInfo> ReadCheckpointLora(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  auto info = ReadLoraInfo(file.id());
  if (!info.ok()) return InFile(path, info.status());
  return info;
}

absl::StatusOr<int64_t> ReadCheckpointIteration(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  auto iteration = h5::ReadIntAttribute(file.id(), "iteration");
  if (!iteration.ok()) return InFile(path, iteration.status());
  return iteration;
}

absl::StatusOr<std::string> ReadCheckpointConfig(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  auto text = GetText(file.id(), "config");
  if (!text.ok()) return InFile(path, text.status());
  return text;
}

absl::Status CheckBaseChecksum(const LoraCheckpointInfo& info, const std::string& checksum) {
  if (info.base_checksum.empty() || checksum.empty() || info.base_checksum == checksum) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "it was trained over other base weights: ", info.base_weights.empty() ? "(unrecorded)" : info.base_weights,
      " with checksum ", info.base_checksum, ", and this run's base has checksum ", checksum,
      ". Its adapters or trained layers only make sense over their own base: resume with that base (--weights and "
      "--model as when it was written), or start a new run (a new --out)"));
}

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadCheckpointParameters(const std::string& path,
                                                                                          bool use_ema) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  auto read = [&]() -> absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> {
    DGRPO_ASSIGN_OR_RETURN(const ParameterList stored, StoredParameters(file.id()));
    DGRPO_ASSIGN_OR_RETURN(auto weights, ReadWeights(file.id(), stored.shapes, use_ema));
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (size_t i = 0; i < weights.size(); ++i) out.emplace_back(stored.names[i], std::move(weights[i]));
    return out;
  };
  auto result = read();
  if (!result.ok()) return InFile(path, result.status());
  return result;
}

std::string CheckpointPath(const std::string& dir, int64_t iteration) {
  return absl::StrFormat("%s/ckpt-%06d.h5", dir, iteration);
}

absl::StatusOr<std::string> SaveCheckpoint(Trainer& trainer, const std::string& dir, int keep_last) {
  auto& world = *trainer.grid().world;
  auto& opt = trainer.optimizer();
  const MPI_Comm comm = CommOf(world);
  if (comm == MPI_COMM_NULL && world.size() > 1)
    return absl::FailedPreconditionError("multi-rank checkpoints need the MPI communicator");
  const int64_t iteration = trainer.iteration();
  const int64_t total = opt.total_elements();
  const ParameterList params = ListOf(trainer);
  // Each rank writes only its own state: the segments of the logical vector it holds
  // (one range under ZeRO-2; about one per block and unit under ZeRO-3).
  std::vector<h5::Range> ranges;
  for (const auto& g : opt.Segments()) ranges.push_back({g.logical_offset, g.count});
  // One vector at a time, in host memory: the segments' values end to end.
  auto pick = [&](const torch::Tensor& state) {
    std::vector<torch::Tensor> parts;
    for (const auto& g : opt.Segments()) parts.push_back(state.narrow(0, g.state_offset, g.count).cpu());
    return parts.empty() ? torch::zeros({0}, torch::kFloat32) : torch::cat(parts).contiguous();
  };
  auto master = pick(opt.MasterShard());
  {
    // A checkpoint never holds non-finite weights: find the first one over all ranks.
    int64_t first_bad = std::numeric_limits<int64_t>::max();
    const auto bad = torch::nonzero(torch::isfinite(master).logical_not());
    if (bad.numel() > 0) {
      int64_t index = bad[0][0].item<int64_t>();
      for (const auto& g : opt.Segments()) {
        if (index < g.count) {
          first_bad = g.logical_offset + index;
          break;
        }
        index -= g.count;
      }
    }
    auto flag = torch::tensor({first_bad}, torch::kInt64);
    DGRPO_RETURN_IF_ERROR(world.AllReduce(flag, hpc::ReduceOp::kMin));
    first_bad = flag.item<int64_t>();
    if (first_bad != std::numeric_limits<int64_t>::max()) {
      std::string name = "?";
      int64_t offset = 0;
      for (size_t i = 0; i < params.names.size(); ++i) {
        const int64_t numel = c10::multiply_integers(params.shapes[i]);
        if (first_bad < offset + numel) {
          name = absl::StrCat(params.names[i], " (element ", first_bad - offset, ")");
          break;
        }
        offset += numel;
      }
      return absl::DataLossError(absl::StrCat(
          "refusing to write a checkpoint before iteration ", iteration, ": parameter ", name,
          " is not finite. The run diverged; resume from the last checkpoint with a lower --lr, or check the "
          "rewards and --max_grad_norm"));
    }
  }
  absl::Status made = absl::OkStatus();
  if (world.rank() == 0) made = hpc::MakeDirectories(dir);
  auto made_flag = torch::tensor({made.ok() ? 0 : 1}, torch::kInt64);
  DGRPO_RETURN_IF_ERROR(world.AllReduce(made_flag, hpc::ReduceOp::kMax));
  if (!made.ok()) return made;
  if (made_flag.item<int64_t>() != 0) return absl::InternalError(absl::StrCat("rank 0 could not create ", dir));
  DGRPO_RETURN_IF_ERROR(world.Barrier());
  const std::string path = CheckpointPath(dir, iteration);
  const std::string tmp = absl::StrFormat("%s/.ckpt-%06d.h5.partial", dir, iteration);
  {
    DGRPO_ASSIGN_OR_RETURN(auto file, h5::CreateFile(tmp, comm));
    const hid_t f = file.id();
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "dancegrpo_kind", std::string("checkpoint")));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "schema_version", kSchemaVersion));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "iteration", iteration));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "seed", static_cast<int64_t>(trainer.config().seed)));
    DGRPO_RETURN_IF_ERROR(
        h5::WriteAttribute(f, "prompts_consumed", iteration * trainer.config().prompts_per_iteration));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "world_size", int64_t{world.size()}));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "optimizer_step", opt.steps_taken()));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "rng", std::string("counter-based: keys (seed, iteration, prompt, "
                                                                   "sample, step); nothing else to restore")));
    DGRPO_RETURN_IF_ERROR(PutText(f, "config", DescribeConfig(trainer.config())));
    DGRPO_RETURN_IF_ERROR(PutText(f, "versions", Versions()));

    DGRPO_ASSIGN_OR_RETURN(auto model, h5::CreateGroup(f, "model"));
    DGRPO_ASSIGN_OR_RETURN(auto optimizer, h5::CreateGroup(f, "optimizer"));
    // The trained parameters only: frozen ones never change and come from the run's --weights.
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "trainable", trainer.config().trainable));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "zero_stage", int64_t{opt.zero_stage()}));
    // A checkpoint of part of a model points at the rest: the base weights and their checksum.
    const auto& config = trainer.config();
    if (!config.base_weights.empty())
      DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "base_weights", config.base_weights));
    if (!config.base_checksum.empty())
      DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "base_checksum", config.base_checksum));
    if (config.lora.enabled()) {
      DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "lora_rank", config.lora.rank));
      DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "lora_alpha", config.lora.alpha));
      DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(model.id(), "lora_targets", config.lora.targets));
    }
    std::vector<int64_t> offsets, shapes;
    int64_t offset = 0;
    for (const auto& shape : params.shapes) {
      offsets.push_back(offset);
      offset += c10::multiply_integers(shape);
      for (int d = 0; d < kMaxDims; ++d) shapes.push_back(d < static_cast<int>(shape.size()) ? shape[d] : -1);
    }
    DGRPO_RETURN_IF_ERROR(PutText(model.id(), "names", absl::StrJoin(params.names, "\n")));
    DGRPO_RETURN_IF_ERROR(h5::WriteChecked<int64_t>(model.id(), "offsets", {offsets.size()}, offsets.data()));
    DGRPO_RETURN_IF_ERROR(h5::WriteChecked<int64_t>(
        model.id(), "shapes", {static_cast<hsize_t>(params.names.size()), kMaxDims}, shapes.data()));

    DGRPO_RETURN_IF_ERROR(h5::WriteShardedRanges(f, "model/flat", total, ranges, master.data_ptr<float>()));
    master = torch::Tensor();
    auto write = [&](const char* name, const torch::Tensor& state) -> absl::Status {
      const auto values = pick(state);
      return h5::WriteShardedRanges(f, name, total, ranges, values.data_ptr<float>());
    };
    DGRPO_RETURN_IF_ERROR(write("optimizer/exp_avg", opt.exp_avg()));
    DGRPO_RETURN_IF_ERROR(write("optimizer/exp_avg_sq", opt.exp_avg_sq()));
    if (opt.ema_shard().defined()) {
      DGRPO_ASSIGN_OR_RETURN(auto ema, h5::CreateGroup(f, "ema"));
      DGRPO_RETURN_IF_ERROR(write("ema/flat", opt.ema_shard()));
    }
    hpc::FaultPoint("checkpoint", iteration);
    // Written last: a reader that finds complete = 1 knows every dataset was written.
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f, "complete", int64_t{1}));
  }  // collective close
  DGRPO_RETURN_IF_ERROR(world.Barrier());
  absl::Status commit = absl::OkStatus();
  if (world.rank() == 0) {
    hpc::FaultPoint("commit", iteration);
    commit = hpc::CommitFile(tmp, path);
    if (commit.ok() && keep_last > 0) {
      auto all = ListCheckpoints(dir);
      for (size_t i = 0; i + keep_last < all.size(); ++i) std::remove(all[i].second.c_str());
    }
  }
  // Every rank learns whether the commit worked.
  auto ok = torch::tensor({commit.ok() ? 0 : 1}, torch::kInt64);
  DGRPO_RETURN_IF_ERROR(world.AllReduce(ok, hpc::ReduceOp::kMax));
  if (!commit.ok()) return commit;
  if (ok.item<int64_t>() != 0) return absl::InternalError(absl::StrCat("rank 0 could not commit ", path));
  return path;
}

absl::StatusOr<std::string> LatestCheckpoint(const std::string& dir) {
  auto all = ListCheckpoints(dir);
  if (all.empty()) return absl::NotFoundError(absl::StrCat("no committed checkpoint (ckpt-*.h5) in ", dir));
  return all.back().second;
}

absl::StatusOr<ResumeReport> LoadCheckpoint(Trainer& trainer, const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  const hid_t f = file.id();
  ResumeReport report;
  torch::Tensor masters;
  bool ema_from_masters = false;
  // Reads only (no collectives), so that a rank that fails cannot leave the others waiting.
  auto load = [&]() -> absl::Status {
    DGRPO_ASSIGN_OR_RETURN(report.iteration, h5::ReadIntAttribute(f, "iteration"));
    DGRPO_ASSIGN_OR_RETURN(const int64_t world_size, h5::ReadIntAttribute(f, "world_size"));
    report.saved_world_size = static_cast<int>(world_size);
    DGRPO_ASSIGN_OR_RETURN(const int64_t step, h5::ReadIntAttribute(f, "optimizer_step"));
    DGRPO_ASSIGN_OR_RETURN(const auto info, ReadLoraInfo(f));
    DGRPO_RETURN_IF_ERROR(CheckBaseChecksum(info, trainer.config().base_checksum));
    DGRPO_RETURN_IF_ERROR(CheckParameters(f, ListOf(trainer)));
    auto& opt = trainer.optimizer();
    // Each rank reads only the segments of the logical vectors that its state holds.
    std::vector<h5::Range> ranges;
    for (const auto& g : opt.Segments()) ranges.push_back({g.logical_offset, g.count});
    auto load_state = [&](const char* name, torch::Tensor& dst) -> absl::Status {
      DGRPO_ASSIGN_OR_RETURN(auto values, h5::ReadVectorRanges(f, name, ranges));
      dst.zero_();
      int64_t at = 0;
      for (const auto& g : opt.Segments()) {
        dst.narrow(0, g.state_offset, g.count)
            .copy_(torch::from_blob(values.data() + at, {g.count}, torch::kFloat32));
        at += g.count;
      }
      return absl::OkStatus();
    };
    masters = torch::zeros({opt.shard_size()}, torch::kFloat32);
    DGRPO_RETURN_IF_ERROR(load_state("model/flat", masters));
    DGRPO_RETURN_IF_ERROR(load_state("optimizer/exp_avg", opt.exp_avg()));
    DGRPO_RETURN_IF_ERROR(load_state("optimizer/exp_avg_sq", opt.exp_avg_sq()));
    if (opt.ema_shard().defined()) {
      if (h5::Exists(f, "ema/flat")) {
        DGRPO_RETURN_IF_ERROR(load_state("ema/flat", opt.ema_shard()));
      } else {
        report.config_changes.push_back("ema: off -> on (the EMA starts from the restored weights)");
        ema_from_masters = true;
      }
    }
    opt.set_steps_taken(step);
    DGRPO_ASSIGN_OR_RETURN(const std::string saved_config, GetText(f, "config"));
    const auto before = ParseDescribedConfig(saved_config), now = ParseDescribedConfig(DescribeConfig(trainer.config()));
    for (const auto& [key, value] : now) {
      auto it = before.find(key);
      const std::string old = it == before.end() ? "(unset)" : it->second;
      if (old != value && key != "iterations") report.config_changes.push_back(absl::StrCat(key, ": ", old, " -> ", value));
    }
    return absl::OkStatus();
  };
  const absl::Status read = InFile(path, load());
  auto failed = torch::tensor({read.ok() ? 0 : 1}, torch::kInt64);
  DGRPO_RETURN_IF_ERROR(trainer.grid().world->AllReduce(failed, hpc::ReduceOp::kMax));
  if (!read.ok()) return read;
  if (failed.item<int64_t>() != 0)
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": another rank could not read its slice (see its "
                                            "log); the file is corrupt or truncated, resume from an earlier one"));
  // Collective: the masters set every compute copy (an all-gather of the replicated ones).
  DGRPO_RETURN_IF_ERROR(trainer.optimizer().LoadMasterShard(masters));
  if (ema_from_masters) trainer.optimizer().ema_shard().copy_(trainer.optimizer().MasterShard());
  trainer.set_iteration(report.iteration);
  if (trainer.grid().world->rank() == 0) {
    for (const auto& change : report.config_changes)
      LOG(WARNING) << "resuming " << path << " with a changed config: " << change;
  }
  return report;
}

absl::Status LoadModelWeights(const std::string& path, torch::nn::Module& model, bool use_ema) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  const hid_t f = file.id();
  auto named = model.named_parameters();
  // A run that trained some parameters (--trainable) stored only those: they are loaded over
  // the model's own values (its base weights), which the frozen parameters keep.
  // A LoRA run stored only its adapters: the model must carry the same adapters (AttachLora
  // with the checkpoint's config, ReadCheckpointLora).
  std::string trainable;
  {
    DGRPO_ASSIGN_OR_RETURN(auto group, h5::OpenGroup(f, "model"));
    auto attr = h5::ReadStringAttribute(group.id(), "trainable");
    if (attr.ok()) trainable = *attr;
  }
  auto info = ReadLoraInfo(f);
  if (!info.ok()) return InFile(path, info.status());
  const bool lora = info->lora.enabled();
  if (lora && !models::HasLora(model))
    return InFile(path, absl::FailedPreconditionError(
                            "it holds LoRA adapters and this model has none: attach them first (ReadCheckpointLora)"));
  if (!trainable.empty() || lora) {
    auto stored = StoredParameters(f);
    if (!stored.ok()) return InFile(path, stored.status());
    torch::OrderedDict<std::string, torch::Tensor> subset;
    for (const auto& name : stored->names) {
      const auto* p = named.find(name);
      if (p == nullptr)
        return InFile(path, absl::FailedPreconditionError(absl::StrCat(
                                "it trained '", name, "' (", lora ? "LoRA" : absl::StrCat("--trainable=", trainable),
                                "), which this model lacks")));
      subset.insert(name, *p);
    }
    named = std::move(subset);
  }
  const ParameterList list = ListOf(named);
  DGRPO_RETURN_IF_ERROR(InFile(path, CheckParameters(f, list)));
  auto weights = ReadWeights(f, list.shapes, use_ema);
  if (!weights.ok()) return InFile(path, weights.status());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < named.size(); ++i) named[i].value().copy_((*weights)[i]);
  return absl::OkStatus();
}

absl::StatusOr<CheckpointSummary> VerifyCheckpoint(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto file, OpenCheckpoint(path));
  const hid_t f = file.id();
  CheckpointSummary s;
  auto read = [&]() -> absl::Status {
    DGRPO_ASSIGN_OR_RETURN(s.iteration, h5::ReadIntAttribute(f, "iteration"));
    DGRPO_ASSIGN_OR_RETURN(s.world_size, h5::ReadIntAttribute(f, "world_size"));
    DGRPO_ASSIGN_OR_RETURN(s.config, GetText(f, "config"));
    DGRPO_ASSIGN_OR_RETURN(s.versions, GetText(f, "versions"));
    DGRPO_ASSIGN_OR_RETURN(auto offsets, h5::ReadDataset<int64_t>(f, "model/offsets"));
    DGRPO_RETURN_IF_ERROR(h5::ReadDataset<int64_t>(f, "model/shapes").status());
    DGRPO_RETURN_IF_ERROR(GetText(f, "model/names").status());
    s.tensors = static_cast<int64_t>(offsets.size());
    s.has_ema = h5::Exists(f, "ema/flat");
    for (const char* name : kVectors) {
      if (!h5::Exists(f, name)) {
        if (std::string(name) == "ema/flat") continue;
        return absl::DataLossError(absl::StrCat("dataset '", name, "' is missing"));
      }
      DGRPO_ASSIGN_OR_RETURN(auto dims, h5::DatasetShape(f, name));
      s.parameters = static_cast<int64_t>(dims[0]);
      DGRPO_RETURN_IF_ERROR(h5::ReadVectorSlice(f, name, 0, s.parameters).status());
    }
    return absl::OkStatus();
  };
  DGRPO_RETURN_IF_ERROR(InFile(path, read()));
  return s;
}

absl::StatusOr<double> CompareCheckpoints(const std::string& a, const std::string& b) {
  DGRPO_ASSIGN_OR_RETURN(auto fa, OpenCheckpoint(a));
  DGRPO_ASSIGN_OR_RETURN(auto fb, OpenCheckpoint(b));
  double worst = 0;
  for (const char* name : kVectors) {
    const bool in_a = h5::Exists(fa.id(), name), in_b = h5::Exists(fb.id(), name);
    if (in_a != in_b) return absl::InvalidArgumentError(absl::StrCat("only one checkpoint has '", name, "'"));
    if (!in_a) continue;
    DGRPO_ASSIGN_OR_RETURN(auto da, h5::DatasetShape(fa.id(), name));
    DGRPO_ASSIGN_OR_RETURN(auto db, h5::DatasetShape(fb.id(), name));
    if (da != db) return absl::InvalidArgumentError(absl::StrCat("'", name, "' differs in size"));
    DGRPO_ASSIGN_OR_RETURN(auto va, h5::ReadVectorSlice(fa.id(), name, 0, static_cast<int64_t>(da[0])));
    DGRPO_ASSIGN_OR_RETURN(auto vb, h5::ReadVectorSlice(fb.id(), name, 0, static_cast<int64_t>(db[0])));
    double diff = 0, scale = 0;
    for (size_t i = 0; i < va.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(va[i] - vb[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(vb[i])));
    }
    worst = std::max(worst, scale > 0 ? diff / scale : diff);
  }
  return worst;
}

}  // namespace dancegrpo
