#include "dancegrpo/io/trajectory_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/update.h"
#include "hpc/atomic_file.h"
#include "hpc/h5/h5.h"
#include "hpc/status_macros.h"

namespace dancegrpo {
namespace {

namespace h5 = hpc::h5;

std::string GroupName(int64_t iteration) { return absl::StrFormat("iteration_%06d", iteration); }

std::vector<hsize_t> Dims(const torch::Tensor& t) { return {t.sizes().begin(), t.sizes().end()}; }

template <typename T>
absl::Status Put(hid_t g, const std::string& name, const torch::Tensor& t, int deflate = 0) {
  auto c = t.contiguous();
  return h5::WriteDataset<T>(g, name, Dims(c), c.template data_ptr<T>(), deflate);
}

template <typename T>
absl::Status PutVector(hid_t g, const std::string& name, const std::vector<T>& v) {
  return h5::WriteDataset<T>(g, name, {v.size()}, v.data());
}

template <typename T>
absl::StatusOr<torch::Tensor> Get(hid_t g, const std::string& name, torch::ScalarType type) {
  std::vector<hsize_t> dims;
  DGRPO_ASSIGN_OR_RETURN(auto data, h5::ReadDataset<T>(g, name, &dims));
  std::vector<int64_t> shape(dims.begin(), dims.end());
  return torch::from_blob(data.data(), shape, type).clone();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TrajectoryRecord MakeTrajectoryRecord(const Trajectories& traj, StoredLatents mode, const torch::Tensor& timesteps) {
  TrajectoryRecord r;
  r.iteration = traj.iteration;
  r.sigmas = traj.sigmas;
  r.log_probs = traj.log_probs;
  r.timesteps = timesteps;
  r.prompt_slot = traj.prompt_slot;
  r.member = traj.member;
  const int64_t n = traj.num_samples();
  if (mode == StoredLatents::kAll) {
    r.latents = traj.latents;
    r.latent_index = torch::arange(traj.steps() + 1, torch::kLong).unsqueeze(0).expand({n, traj.steps() + 1}).clone();
    return r;
  }
  const int64_t k = timesteps.size(1);
  r.latent_index = torch::full({n, 2 * k}, -1, torch::kLong);
  auto shape = traj.latents.sizes().vec();
  shape[1] = 2 * k;
  r.latents = torch::zeros(shape, traj.latents.options());
  for (int64_t i = 0; i < n; ++i) {
    std::set<int64_t> needed;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t t = timesteps[i][j].item<int64_t>();
      needed.insert(t);
      needed.insert(t + 1);
    }
    int64_t slot = 0;
    for (int64_t step : needed) {
      r.latent_index[i][slot] = step;
      r.latents[i][slot].copy_(traj.latents[i][step]);
      ++slot;
    }
  }
  return r;
}

absl::StatusOr<TrajectoryRecord> ToTrajectoryRecord(const IterationRecord& it, StoredLatents mode,
                                                    const TrainerConfig& config) {
  const auto& traj = it.trajectories;
  const int64_t n = traj.num_samples();
  DGRPO_ASSIGN_OR_RETURN(const int n_steps,
                         TrainedStepCount(config.steps, config.timestep_fraction, config.sde.window));
  const SdeWindow window = WindowForIteration(config.sde.window, config.seed, traj.iteration, config.steps);
  auto timesteps = torch::empty({n, n_steps}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const auto t = TrainedTimesteps(config.seed, traj.iteration, traj.prompt_slot[i], traj.member[i], config.steps,
                                    n_steps, window);
    for (int j = 0; j < n_steps; ++j) timesteps[i][j] = t[j];
  }
  auto r = MakeTrajectoryRecord(traj, mode, timesteps);
  r.rank = it.rank;
  r.world_size = it.world_size;
  r.seed = config.seed;
  r.micro_batch = config.micro_batch;
  r.first_global_sample = it.first_global_sample;
  const int64_t k_rewards = static_cast<int64_t>(it.scores.size());
  r.reward_names = it.reward_names;
  r.rewards = torch::empty({k_rewards, n}, torch::kFloat64);
  for (int64_t k = 0; k < k_rewards; ++k)
    for (int64_t i = 0; i < n; ++i) r.rewards[k][i] = it.scores[k][i];
  r.advantages = torch::tensor(it.advantages, torch::kFloat64);
  r.trained = it.trained;
  r.prompt_ids = it.prompt_ids;
  r.prompt_texts = it.prompt_texts;
  return r;
}

IterationRecord ToIterationRecord(const TrajectoryRecord& r) {
  IterationRecord it;
  it.rank = r.rank;
  it.world_size = r.world_size;
  it.first_global_sample = r.first_global_sample;
  auto& t = it.trajectories;
  t.iteration = r.iteration;
  t.sigmas = r.sigmas;
  t.log_probs = r.log_probs;
  t.prompt_slot = r.prompt_slot;
  t.member = r.member;
  auto shape = r.latents.sizes().vec();
  shape[1] = static_cast<int64_t>(r.sigmas.size());
  t.latents = torch::zeros(shape, r.latents.options());
  for (int64_t i = 0; i < r.latents.size(0); ++i)
    for (int64_t s = 0; s < r.latents.size(1); ++s) {
      const int64_t step = r.latent_index[i][s].item<int64_t>();
      if (step >= 0) t.latents[i][step].copy_(r.latents[i][s]);
    }
  it.prompt_ids = r.prompt_ids;
  it.prompt_texts = r.prompt_texts;
  it.reward_names = r.reward_names;
  for (size_t k = 0; k < r.reward_names.size(); ++k) {
    const auto row = r.rewards[static_cast<int64_t>(k)].to(torch::kFloat64).contiguous();
    it.scores.emplace_back(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
  }
  const auto adv = r.advantages.to(torch::kFloat64).contiguous();
  it.advantages.assign(adv.data_ptr<double>(), adv.data_ptr<double>() + adv.numel());
  it.trained = r.trained;
  it.replayed = true;
  return it;
}

absl::Status TrajectoryShards::OnIteration(const IterationRecord& record) {
  if (record.replayed) return absl::OkStatus();  // it is in the shards it was read from
  DGRPO_ASSIGN_OR_RETURN(const auto shard, ToTrajectoryRecord(record, writer_->mode(), config_));
  return writer_->Append(shard);
}

std::string TrajectoryWriter::RankDir() const { return absl::StrFormat("%s/rank-%05d", dir_, rank_); }

absl::Status TrajectoryWriter::Append(const TrajectoryRecord& r) {
  if (!file_.valid()) {
    (void)hpc::MakeDirectories(RankDir());  // a failure surfaces when the segment is created
    final_path_ = absl::StrFormat("%s/seg-%06d.h5", RankDir(), r.iteration);
    tmp_path_ = hpc::TemporaryPathFor(final_path_);
    DGRPO_ASSIGN_OR_RETURN(auto f, h5::CreateFile(tmp_path_));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f.id(), "dancegrpo_kind", std::string("trajectory_shard")));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f.id(), "schema_version", int64_t{1}));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f.id(), "rank", int64_t{rank_}));
    DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(f.id(), "stored_latents",
                                             std::string(mode_ == StoredLatents::kAll ? "all" : "trained_steps")));
    file_ = std::move(f);
  }
  DGRPO_ASSIGN_OR_RETURN(auto g, h5::CreateGroup(file_.id(), GroupName(r.iteration)));
  const hid_t id = g.id();
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "iteration", r.iteration));
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "rank", int64_t{r.rank}));
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "world_size", int64_t{r.world_size}));
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "seed", static_cast<int64_t>(r.seed)));
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "micro_batch", int64_t{r.micro_batch}));
  DGRPO_RETURN_IF_ERROR(h5::WriteAttribute(id, "first_global_sample", r.first_global_sample));
  DGRPO_RETURN_IF_ERROR(PutVector<double>(id, "sigmas", r.sigmas));
  DGRPO_RETURN_IF_ERROR(Put<float>(id, "latents", r.latents.to(torch::kFloat32), 4));
  DGRPO_RETURN_IF_ERROR(Put<int64_t>(id, "latent_index", r.latent_index));
  DGRPO_RETURN_IF_ERROR(Put<float>(id, "log_probs", r.log_probs, 4));
  DGRPO_RETURN_IF_ERROR(Put<int64_t>(id, "timesteps", r.timesteps));
  DGRPO_RETURN_IF_ERROR(Put<double>(id, "rewards", r.rewards, 4));
  DGRPO_RETURN_IF_ERROR(h5::WriteStrings(id, "reward_names", r.reward_names));
  DGRPO_RETURN_IF_ERROR(Put<double>(id, "advantages", r.advantages));
  DGRPO_RETURN_IF_ERROR(PutVector<int64_t>(id, "trained", r.trained));
  DGRPO_RETURN_IF_ERROR(PutVector<int64_t>(id, "prompt_ids", r.prompt_ids));
  DGRPO_RETURN_IF_ERROR(PutVector<int64_t>(id, "prompt_slot", r.prompt_slot));
  DGRPO_RETURN_IF_ERROR(PutVector<int64_t>(id, "member", r.member));
  DGRPO_RETURN_IF_ERROR(h5::WriteStrings(id, "prompt_texts", r.prompt_texts));
  if (H5Fflush(file_.id(), H5F_SCOPE_GLOBAL) < 0) return absl::InternalError(absl::StrCat("flush ", tmp_path_));
  return absl::OkStatus();
}

absl::Status TrajectoryWriter::CommitSegment() {
  if (!file_.valid()) return absl::OkStatus();
  file_.Close();
  return hpc::CommitFile(tmp_path_, final_path_);
}

std::vector<std::string> ListTrajectorySegments(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& rank_dir : ListDir(dir)) {
    if (!absl::StartsWith(rank_dir, "rank-")) continue;
    for (const auto& f : ListDir(dir + "/" + rank_dir))
      if (absl::StartsWith(f, "seg-") && absl::EndsWith(f, ".h5")) out.push_back(dir + "/" + rank_dir + "/" + f);
  }
  return out;
}

absl::Status DiscardTrajectoriesFrom(const std::string& dir, int64_t iteration) {
  for (const auto& rank_dir : ListDir(dir)) {
    if (!absl::StartsWith(rank_dir, "rank-")) continue;
    for (const auto& f : ListDir(dir + "/" + rank_dir)) {
      const std::string path = dir + "/" + rank_dir + "/" + f;
      int64_t start = -1;
      const bool temporary = absl::StartsWith(f, ".seg-");
      const bool later = absl::StartsWith(f, "seg-") && absl::SimpleAtoi(f.substr(4, 6), &start) && start >= iteration;
      if ((temporary || later) && std::remove(path.c_str()) != 0)
        return absl::InternalError(absl::StrCat("cannot remove stale trajectory segment ", path));
    }
  }
  return absl::OkStatus();
}

namespace {
absl::StatusOr<h5::Handle> OpenShard(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto f, h5::OpenFile(path));
  auto kind = h5::ReadStringAttribute(f.id(), "dancegrpo_kind");
  if (!kind.ok() || *kind != "trajectory_shard")
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a DanceGRPO trajectory shard (no dancegrpo_kind = ",
                                                   "trajectory_shard attribute)"));
  return f;
}
}  // namespace

absl::StatusOr<std::vector<int64_t>> ListStoredIterations(const std::string& path) {
  DGRPO_ASSIGN_OR_RETURN(auto f, OpenShard(path));
  std::vector<int64_t> out;
  hsize_t n = 0;
  H5Gget_num_objs(f.id(), &n);
  for (hsize_t i = 0; i < n; ++i) {
    char name[64];
    H5Gget_objname_by_idx(f.id(), i, name, sizeof(name));
    int64_t it = 0;
    if (absl::StartsWith(name, "iteration_") && absl::SimpleAtoi(std::string(name).substr(10), &it)) out.push_back(it);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<TrajectoryRecord> ReadTrajectoryRecord(const std::string& path, int64_t iteration) {
  DGRPO_ASSIGN_OR_RETURN(auto f, OpenShard(path));
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ", iteration ", iteration, ": ", s.message()));
  };
  auto g = h5::OpenGroup(f.id(), GroupName(iteration));
  if (!g.ok()) return fail(g.status());
  const hid_t id = g->id();
  TrajectoryRecord r;
  r.iteration = iteration;
  auto read = [&]() -> absl::Status {
    DGRPO_ASSIGN_OR_RETURN(const int64_t rank, h5::ReadIntAttribute(id, "rank"));
    DGRPO_ASSIGN_OR_RETURN(const int64_t world, h5::ReadIntAttribute(id, "world_size"));
    DGRPO_ASSIGN_OR_RETURN(const int64_t seed, h5::ReadIntAttribute(id, "seed"));
    DGRPO_ASSIGN_OR_RETURN(const int64_t micro, h5::ReadIntAttribute(id, "micro_batch"));
    DGRPO_ASSIGN_OR_RETURN(r.first_global_sample, h5::ReadIntAttribute(id, "first_global_sample"));
    r.rank = static_cast<int>(rank);
    r.world_size = static_cast<int>(world);
    r.seed = static_cast<uint64_t>(seed);
    r.micro_batch = static_cast<int>(micro);
    DGRPO_ASSIGN_OR_RETURN(r.sigmas, h5::ReadDataset<double>(id, "sigmas"));
    DGRPO_ASSIGN_OR_RETURN(r.latents, Get<float>(id, "latents", torch::kFloat32));
    DGRPO_ASSIGN_OR_RETURN(r.latent_index, Get<int64_t>(id, "latent_index", torch::kInt64));
    DGRPO_ASSIGN_OR_RETURN(r.log_probs, Get<float>(id, "log_probs", torch::kFloat32));
    DGRPO_ASSIGN_OR_RETURN(r.timesteps, Get<int64_t>(id, "timesteps", torch::kInt64));
    DGRPO_ASSIGN_OR_RETURN(r.rewards, Get<double>(id, "rewards", torch::kFloat64));
    DGRPO_ASSIGN_OR_RETURN(r.reward_names, h5::ReadStrings(id, "reward_names"));
    DGRPO_ASSIGN_OR_RETURN(r.advantages, Get<double>(id, "advantages", torch::kFloat64));
    DGRPO_ASSIGN_OR_RETURN(r.trained, h5::ReadDataset<int64_t>(id, "trained"));
    DGRPO_ASSIGN_OR_RETURN(r.prompt_ids, h5::ReadDataset<int64_t>(id, "prompt_ids"));
    DGRPO_ASSIGN_OR_RETURN(r.prompt_slot, h5::ReadDataset<int64_t>(id, "prompt_slot"));
    DGRPO_ASSIGN_OR_RETURN(r.member, h5::ReadDataset<int64_t>(id, "member"));
    DGRPO_ASSIGN_OR_RETURN(r.prompt_texts, h5::ReadStrings(id, "prompt_texts"));
    const int64_t n = r.latents.size(0);
    if (r.log_probs.size(0) != n || r.latent_index.size(0) != n || static_cast<int64_t>(r.prompt_texts.size()) != n ||
        r.log_probs.size(1) + 1 != static_cast<int64_t>(r.sigmas.size()))
      return absl::DataLossError("datasets disagree on the sample count or the number of steps");
    return absl::OkStatus();
  };
  if (auto s = read(); !s.ok()) return fail(s);
  return r;
}

}  // namespace dancegrpo
