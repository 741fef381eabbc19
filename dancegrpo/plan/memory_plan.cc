#include "dancegrpo/plan/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "dancegrpo/trainable.h"
#include "hpc/buckets.h"
#include "hpc/usp.h"

namespace dancegrpo {
namespace {

// The process before any model exists: libtorch, Open MPI and HDF5 mapped and initialised
// (measured with `train` on this CPU build: VmRSS after MPI_Init and the first tensor,
// docs/experiments/2026-11-30-zero3-memory.md); on a GPU, plus the CUDA context and cuBLAS
// workspaces (about 0.6 GB on an H100/H200 with CUDA 12-13).
constexpr int64_t kRuntimeCpu = 200'000'000;
constexpr int64_t kRuntimeCuda = 200'000'000 + 600'000'000;

int64_t Ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t Bytes(torch::ScalarType t) { return t == torch::kFloat32 ? 4 : 2; }

// Whether a parameter comes before the blocks in the forward pass (an embedding, whose
// gradient flows back through every block): its module precedes the first block's in the
// family's list, which is in the model's order.
bool BeforeTheBlocks(const std::vector<models::ModuleShape>& modules, const std::string& name) {
  size_t first_block = modules.size(), position = modules.size(), longest = 0;
  for (size_t i = 0; i < modules.size(); ++i) {
    if (modules[i].block >= 0 && first_block == modules.size()) first_block = i;
    const auto& m = modules[i].name;
    if ((name == m || absl::StartsWith(name, m + ".")) && m.size() > longest) longest = m.size(), position = i;
  }
  return position < first_block;
}

}  // namespace

namespace {
absl::StatusOr<MemoryPlan> Plan(const PlanInput& in, bool advise);
}  // namespace

absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& in) { return Plan(in, true); }

namespace {
absl::StatusOr<MemoryPlan> Plan(const PlanInput& in, bool advise) {
  if (!in.model) return absl::InvalidArgumentError("no model to plan: set PlanInput::model (a model family)");
  const auto& c = *in.model;
  if (auto valid = ValidateTrainerConfig(in.run); !valid.ok()) return valid;
  if (in.world < 1 || in.run.sequence_parallel < 1 || in.world % in.run.sequence_parallel != 0)
    return absl::InvalidArgumentError(absl::StrCat("sp = ", in.run.sequence_parallel, " does not divide the ", in.world,
                                                   " ranks; use an sp that divides the world (e.g. ",
                                                   std::gcd(in.world, std::max(1, in.run.sequence_parallel)), ")"));
  if (in.run.sequence_parallel > 1 && c.Heads() == 0)
    return absl::InvalidArgumentError(absl::StrCat("sp = ", in.run.sequence_parallel, ": the model (", c.family(),
                                                   ") has no attention heads to split; use --sp=1"));
  // USP: Ulysses inside stages of `ulysses` ranks (it splits the heads), ring attention across
  // the sp / ulysses stages (any head count). 0 = the largest degree dividing sp and the heads.
  const int sp = in.run.sequence_parallel;
  int ulysses = 1;
  if (sp > 1) {
    auto degree = hpc::UlyssesDegree(sp, c.Heads(), in.run.ulysses);
    if (!degree.ok()) return degree.status();
    ulysses = *degree;
  }
  if (in.run.latent_shape.size() != 4) return absl::InvalidArgumentError("latent_shape must be C,F,H,W");
  const int dp = in.world / in.run.sequence_parallel;
  const int64_t global = static_cast<int64_t>(in.run.prompts_per_iteration) * in.run.group_size;
  if (global % dp != 0)
    return absl::InvalidArgumentError(absl::StrCat("the ", global, " samples of an iteration (prompts x group) do not "
                                                   "split over ", dp, " data-parallel ranks; change "
                                                   "--prompts_per_iteration, --group_size or the ranks"));
  const int64_t local = global / dp;
  const int64_t mb = in.run.micro_batch > 0 ? std::min<int64_t>(in.run.micro_batch, local) : local;
  const int64_t rows = mb * ((in.run.cfg_scale != 1.0) ? 2 : 1);  // rows of one policy evaluation
  const int64_t grid = c.Tokens(in.run.latent_shape);
  if (grid % in.run.sequence_parallel != 0)
    return absl::InvalidArgumentError(absl::StrCat("sp = ", in.run.sequence_parallel, " does not divide the ", grid,
                                                   " video tokens; change the clip size or sp"));
  const int64_t L = grid / in.run.sequence_parallel, Lfull = grid;
  const int64_t Lt = in.text_tokens > 0 ? in.text_tokens : c.TextTokens(0);
  const int64_t N = in.world, s = Bytes(in.run.compute_dtype), rb = Bytes(in.run.optimizer.reduce_dtype);
  const int layers = c.NumBlocks();

  // Which parameters are trained.
  const auto base_modules = c.Modules();
  auto modules = base_modules;
  int64_t lora_per_token = 0;  // adapter activations (A x) of one block, per token
  if (in.run.lora.rank > 0) {
    models::LoraConfig lora;
    lora.rank = in.run.lora.rank;
    lora.alpha = in.run.lora.alpha;
    if (!in.run.lora.targets.empty()) lora.targets = in.run.lora.targets;
    const auto linears = c.LinearLayers();
    auto chosen = models::SelectLoraLayers(linears, lora);
    if (!chosen.ok()) return chosen.status();
    for (size_t i = 0; i < linears.size(); ++i) {
      if (!(*chosen)[i]) continue;
      const auto& l = linears[i];
      const int block = models::BlockOfPath(base_modules, l.path);
      modules.push_back({l.path + ".lora_A.weight", in.run.lora.rank * l.in, block});
      modules.push_back({l.path + ".lora_B.weight", l.out * in.run.lora.rank, block});
      if (block == 0) lora_per_token += in.run.lora.rank;
    }
  }
  std::vector<std::string> names;
  for (const auto& m : modules) names.push_back(m.name);
  auto selected = SelectTrainable(names, in.run.trainable);
  if (!selected.ok()) return selected.status();
  MemoryPlan p;
  std::vector<int64_t> block_total(layers, 0), block_trained(layers, 0);
  int64_t rep_total = 0, rep_trained = 0;
  int first_trained_block = layers;
  bool embeddings_trained = false;
  for (size_t i = 0; i < modules.size(); ++i) {
    const auto& m = modules[i];
    p.parameters += m.count;
    if ((*selected)[i]) p.trained_parameters += m.count;
    if (m.block >= 0) {
      block_total[m.block] += m.count;
      if ((*selected)[i]) block_trained[m.block] += m.count, first_trained_block = std::min(first_trained_block, m.block);
    } else {
      rep_total += m.count;
      if ((*selected)[i]) {
        rep_trained += m.count;
        if (BeforeTheBlocks(base_modules, m.name)) embeddings_trained = true;
      }
    }
  }
  p.block_parameters = p.parameters - rep_total;
  const int64_t block_max = layers > 0 ? *std::max_element(block_total.begin(), block_total.end()) : 0;
  const int64_t block_trained_max =
      layers > 0 ? *std::max_element(block_trained.begin(), block_trained.end()) : 0;

  // This rank's optimizer slice (elements): the replicated trained parameters' shard, and
  // under ZeRO-3 one slice per trained block unit.
  int64_t state = 0;
  if (in.run.zero_stage == 2) {
    state = Ceil(p.trained_parameters, N);
  } else {
    state = Ceil(rep_trained, N);
    for (int b = 0; b < layers; ++b) state += Ceil(block_trained[b], N);
  }
  const bool masters = in.run.compute_dtype != torch::kFloat32 || in.run.zero_stage == 3;
  p.masters = masters ? 4 * state : 0;
  p.optimizer = 2 * 4 * state;
  p.ema = in.run.optimizer.ema ? 4 * state : 0;
  p.grad_slice = 4 * state;
  if (in.run.zero_stage == 2) {
    p.params_resident = s * p.parameters;
    p.gradients = s * p.trained_parameters;
  } else {
    p.params_resident = s * rep_total;
    for (int b = 0; b < layers; ++b) {
      const int64_t frozen = block_total[b] - block_trained[b];
      p.params_resident += s * Ceil(frozen, N);
      if (in.run.compute_dtype != torch::kFloat32) p.params_resident += s * Ceil(block_trained[b], N);  // compute beside master
    }
    p.params_gathered = 2 * s * block_max;  // the block in use and the next one, prefetched
    // The replicated trained parameters' gradients, and one block's full gradient with its
    // reduce-scatter bucket (hpc/buckets.h) and the collective's temporaries.
    const int64_t message =
        block_trained_max > 0 ? rb * N * std::min<int64_t>(Ceil(block_trained_max, N), hpc::BucketElementsPerRank(N)) : 0;
    p.gradients = s * rep_trained + s * block_trained_max + message +
                  hpc::ReduceScatterTemporaryBytes(message, N, in.run.device.is_cuda());
  }

  // Activations of one evaluation, counted per block from its operations (dit.cc):
  //  per video token, tensors autograd keeps: self-attention 13 x dim (norm1 in/out,
  //  modulated input, q, k, v, RMSNorm'd q and k, RoPE'd q and k, attention out, o, gated y),
  //  cross-attention 5 x dim (norm3, q, normed q, attention out, o), feed-forward
  //  4 x dim + 2 x ffn (norm2, modulated input, hidden, GELU, out, gated), residuals 2 x dim;
  //  per text token: k, v and normed k of the context (3 x dim);
  //  attention matrices without a fused kernel (libtorch 1.13 on the CPU): scores and softmax
  //  for self [h/sp, L, L] and cross [h/sp, L, Lt] attention.
  models::ActivationQuery q;
  q.tokens = L;
  q.full_tokens = Lfull;
  q.text_tokens = Lt;
  q.sequence_parallel = in.run.sequence_parallel;
  q.ulysses = ulysses;
  q.dtype_bytes = static_cast<int>(s);
  q.extra_per_token = lora_per_token;
  q.fused_attention = in.run.device.is_cuda();  // scaled_dot_product_attention (libtorch 2.x) keeps no L x L matrix
  const int64_t per_block = rows * s * c.BlockActivations(q);
  const int64_t block_input = rows * s * c.BlockInput(q);
  const int64_t backward_extra = rows * s * c.BackwardWorkingSet(q);  // one block's backward at a time
  const int blocks_with_grad = embeddings_trained ? layers : layers - first_trained_block;
  p.activations_no_ckpt = per_block * blocks_with_grad + (blocks_with_grad > 0 ? backward_extra : 0);
  // Checkpointing keeps each block's input, and recomputes one block at a time; its backward
  // holds that block's activations and their gradients (as large again, at most).
  p.activations_ckpt = block_input * blocks_with_grad + 2 * per_block + backward_extra;
  const bool ckpt = in.checkpointing || in.run.zero_stage == 3;  // ZeRO-3 trains with recompute
  p.activations = blocks_with_grad > 0 ? (ckpt ? p.activations_ckpt : p.activations_no_ckpt) : 0;
  // A no-grad forward: the context and the widest block temporaries.
  q.extra_per_token = 0;
  p.rollout_activations = rows * s * c.ForwardWorkingSet(q);

  // Sequence-parallel traffic, bytes each rank sends, per block and sample: Ulysses moves the
  // (U - 1) / U of q, k, v (forward) and the output (back) that other ranks of its stage hold,
  // in the compute dtype, and as much again backward; the ring passes the fp32 key/value
  // blocks R - 1 times forward, and backward again with their fp32 gradients (R times).
  p.ulysses = ulysses;
  if (sp > 1) {
    const int ring = sp / ulysses;
    const double width = static_cast<double>(L) * c.AttentionWidth();  // elements of one q/k/v block per rank
    const double a2a = ulysses > 1 ? 4.0 * (ulysses - 1) / ulysses * width * s : 0.0;
    p.sp_forward_bytes = static_cast<int64_t>(a2a + (ring - 1) * 2.0 * width * 4);
    p.sp_backward_bytes = static_cast<int64_t>(a2a + ((ring - 1) * 2.0 + ring * 2.0) * width * 4);
    auto trained_steps = TrainedStepCount(in.run.steps, in.run.timestep_fraction, in.run.sde.window);
    const double rollout_evals = static_cast<double>(local) * in.run.steps;
    const double update_evals = static_cast<double>(local) * (trained_steps.ok() ? *trained_steps : in.run.steps);
    const double per_row = (in.run.cfg_scale != 1.0) ? 2.0 : 1.0;
    // Every block runs forward in the rollout and the update; the blocks with gradients run
    // backward, and forward once more under checkpointing.
    const double backward_blocks = blocks_with_grad, recompute = ckpt ? 1.0 : 0.0;
    p.sp_iteration_bytes =
        per_row * (layers * (rollout_evals + update_evals) * p.sp_forward_bytes +
                   backward_blocks * update_evals * (recompute * p.sp_forward_bytes + p.sp_backward_bytes));
  }

  // Trajectories: latents of every step, log-probs, final x0, the text rows.
  const int64_t latent = in.run.latent_shape[0] * in.run.latent_shape[1] * in.run.latent_shape[2] * in.run.latent_shape[3];
  p.trajectories = local * (4 * latent * (in.run.steps + 2) + 4 * in.run.steps + 4 * Lt * c.TextDim());

  // Optimizer step buffers. ZeRO-2: the flat fp32 gradient (and its reduce-dtype copy) of
  // every trained parameter; fp32 parameters are flattened again to take the slice. Both
  // stages: the fp64 norm and AdamW's denominator over the slice.
  // The step's temporaries are bucketed (hpc/buckets.h: fp64 squares, AdamW's denominator),
  // and so are the reduce-scatters (with their temporaries, on the CPU) and all-gathers.
  const int64_t bucket = std::min<int64_t>(state, hpc::BucketElementsPerRank(N));
  const int64_t step_tmp = 8 * bucket + 8 * bucket;
  // A reduce-scatter of the replicated gradients: the bucket's contiguous message and the
  // collective's temporaries.
  auto reduce = [&](int64_t per_rank) -> int64_t {
    if (per_rank == 0) return 0;
    const int64_t message = rb * N * std::min(per_rank, hpc::BucketElementsPerRank(N));
    return message + hpc::ReduceScatterTemporaryBytes(message, N, in.run.device.is_cuda());
  };
  if (in.run.zero_stage == 2) {
    const int64_t flat = 4 * N * Ceil(p.trained_parameters, N);
    p.communication =
        std::max(flat + (rb != 4 ? rb * p.trained_parameters : 0) + reduce(state), flat + 4 * state) + step_tmp;
  } else {
    p.communication = 4 * N * Ceil(rep_trained, N) + reduce(Ceil(rep_trained, N)) + step_tmp;
  }
  p.runtime = in.run.device.is_cuda() ? kRuntimeCuda : kRuntimeCpu;

  const int64_t steady = p.runtime + p.params_resident + p.masters + p.optimizer + p.ema + p.grad_slice;
  // Load: the whole fp32 model exists (ZeRO-3: on one rank at a time, which then keeps its
  // slices), plus the fp32 copies that seed mixed-precision masters (ZeRO-2).
  int64_t load = p.runtime + 4 * p.parameters;
  if (in.run.zero_stage == 3) {
    load += p.params_resident + p.masters;  // the slices, made while the model is whole
  } else {
    load += p.masters + p.optimizer + p.ema + p.grad_slice;
    if (in.run.compute_dtype != torch::kFloat32) load += 4 * p.trained_parameters;  // fp32 copies seeding the masters
  }
  // The decoder runs after the policy's rollout (its activations are freed), one micro-batch
  // at a time; the decoded clips of every local sample stay until they are scored.
  const int64_t decode_mb = in.decode_per_sample_bytes > 0 ? in.decode_fixed_bytes + mb * in.decode_per_sample_bytes +
                                                                   (local - mb) * in.decode_clip_bytes
                                                             : 0;
  p.decode = decode_mb;
  const int64_t rollout = steady + p.params_gathered + std::max(p.rollout_activations, decode_mb) + p.trajectories;
  // Update: the forward holds the block in use and the prefetched one; the backward one
  // block, its gradient and the reduce bucket (ZeRO-3); then the optimizer step's buffers.
  int64_t update = steady + p.trajectories + std::max(p.activations, p.communication);
  if (in.run.zero_stage == 3) {
    const int64_t replicated_grads = s * rep_trained;
    const int64_t backward = s * block_max + (p.gradients - replicated_grads);
    update = steady + p.trajectories + replicated_grads +
             std::max(std::max(p.params_gathered, backward) + p.activations, p.communication);
  } else {
    update += p.gradients;
  }
  // Checkpoint: the slice's master, moments and EMA copied out for writing, one at a time;
  // parallel HDF5's collective write of a filtered (checksummed) dataset then holds the
  // rank's chunks twice more (gathered, and through the Fletcher-32 filter): three slices in
  // all (measured, docs/experiments/2026-11-30-zero3-memory.md). ZeRO-2 fp32 flattens the
  // parameters to take the slice.
  // On a GPU the values are copied to host memory segment by segment: none of it is on the device.
  const int64_t checkpoint = steady + p.trajectories + (in.run.device.is_cuda() ? 0 : 3 * 4 * state) +
                             (in.run.zero_stage == 2 && in.run.compute_dtype == torch::kFloat32 ? 4 * p.trained_parameters : 0);
  p.phases = {{"load", load}, {"rollout", rollout}, {"update", update}, {"checkpoint", checkpoint}};
  for (const auto& ph : p.phases) {  // on a GPU, loading happens in host memory
    if (ph.bytes > p.peak && !(in.run.device.is_cuda() && ph.name == "load")) p.peak = ph.bytes, p.peak_phase = ph.name;
  }
  const int rpn = in.ranks_per_node > 0 ? std::min(in.ranks_per_node, in.world) : in.world;
  p.after_load = in.run.zero_stage == 3 ? p.runtime + p.params_resident + p.masters : load;
  p.node_load = (rpn - 1) * p.after_load + load;
  int64_t device_peak = 0;  // the phases after loading (loading is checked per node)
  for (const auto& ph : p.phases)
    if (ph.name != "load") device_peak = std::max(device_peak, ph.bytes);
  p.device_peak = device_peak;
  const bool device_ok = in.device_bytes <= 0 || device_peak <= in.device_bytes;
  const bool host_ok = in.host_bytes <= 0 || p.node_load <= in.host_bytes;

  if (!device_ok || !host_ok) p.fits = false;
  if (!p.fits && advise) {
    // The cheapest change that fits, in order of cost: checkpointing (recompute), ZeRO-3,
    // a smaller micro-batch, more sp (needs more ranks per sample), freezing.
    struct Option {
      std::string what;
      PlanInput changed;
    };
    std::vector<Option> options;
    if (!ckpt) {
      auto o = in;
      o.checkpointing = true;
      options.push_back({"--activation_checkpointing", o});
    }
    if (in.run.zero_stage == 2) {
      auto o = in;
      o.run.zero_stage = 3;
      o.checkpointing = true;
      options.push_back({"--zero_stage=3 (with activation checkpointing)", o});
    }
    if (in.decode_tiled_per_sample_bytes > 0 && in.decode_tiled_per_sample_bytes < in.decode_per_sample_bytes) {
      auto o = in;
      o.decode_per_sample_bytes = in.decode_tiled_per_sample_bytes;
      o.decode_tiled_per_sample_bytes = 0;
      options.push_back({absl::StrCat("a tiled decode, ", in.decode_tiling_flag), o});
    }
    if (mb > 1) {
      auto o = in;
      o.run.micro_batch = 1;
      options.push_back({"--micro_batch=1", o});
    }
    if (in.run.compute_dtype == torch::kFloat32) {
      auto o = in;
      o.run.compute_dtype = torch::kBFloat16;
      options.push_back({"--precision=bf16 (fp32 masters and moments stay)", o});
    }
    for (int more = sp * 2; more <= in.world && c.Heads() > 0; more *= 2) {
      if (in.world % more != 0 || grid % more != 0) continue;
      auto o = in;
      o.run.sequence_parallel = more;
      o.run.ulysses = 0;  // the largest Ulysses degree dividing sp and the heads, ring for the rest
      options.push_back({absl::StrCat("--sp=", more, " (", hpc::UspLayout(more, *hpc::UlyssesDegree(more, c.Heads(), 0)), ")"), o});
    }
    for (const auto& o : options) {
      auto q = Plan(o.changed, false);
      if (q.ok() && q->fits) {
        p.advice = absl::StrCat("the cheapest change that fits: ", o.what, " (", FormatBytes(q->device_peak),
                                " per rank)");
        break;
      }
    }
    for (int more = 2; p.advice.empty() && more <= 16; more *= 2) {
      // More ranks of the same kind, on more nodes (and proportionally more prompts, so each
      // rank keeps its samples), under ZeRO-3: only it divides the parameters by the ranks.
      auto o = in;
      o.world = in.world * more;
      o.run.prompts_per_iteration = in.run.prompts_per_iteration * more;
      o.run.zero_stage = 3;
      o.checkpointing = true;
      auto q = Plan(o, false);
      if (q.ok() && q->fits)
        p.advice = absl::StrCat(
            "the cheapest change that fits: ", o.world, " ranks",
            rpn < o.world ? absl::StrCat(" (", o.world / rpn, " nodes of ", rpn, ")") : std::string(),
            in.run.zero_stage == 2 ? " with --zero_stage=3" : "", ", ", FormatBytes(q->device_peak), " per rank; ",
            "--prompts_per_iteration=", o.run.prompts_per_iteration, " keeps each rank's samples");
    }
    if (p.advice.empty()) {
      // Nothing above fits: say how many ranks of this memory the state itself needs.
      const int64_t per_param = (masters ? 4 : 0) + 8 + (in.run.optimizer.ema ? 4 : 0) + 4;  // master, moments, EMA, grad slice
      const double total_state = static_cast<double>(per_param) * p.trained_parameters;
      p.advice = absl::StrCat("no layout of these ", in.world, " ranks fits: the trained parameters' fp32 state alone ",
                              "is ", FormatBytes(total_state), " (", per_param, " bytes per trained parameter); ",
                              "train fewer parameters (LoRA, e.g. --lora_rank=32; or --trainable, e.g. the last blocks), or use more ranks");
    }
    // Full fine-tuning that does not fit these ranks may fit them as LoRA (a different run: it
    // trains adapters, not the model), so say so beside the advice.
    if (in.run.lora.rank == 0 && in.run.trainable.empty()) {
      for (int stage : {in.run.zero_stage, 3}) {
        auto o = in;
        o.run.lora.rank = 32;
        o.run.lora.alpha = 64;
        o.run.zero_stage = stage;
        o.checkpointing = in.checkpointing || stage == 3;
        auto q = Plan(o, false);
        if (q.ok() && q->fits) {
          absl::StrAppend(&p.advice, "; or, on these ", in.world, " ranks, LoRA adapters instead of the whole model: "
                          "--lora_rank=32", stage != in.run.zero_stage ? " --zero_stage=3" : "", " (",
                          FormatBytes(q->device_peak), " per rank)");
          break;
        }
      }
    }
  }
  return p;
}
}  // namespace

std::string FormatBytes(double b) {
  if (b >= 1e9) return absl::StrFormat("%.2f GB", b / 1e9);
  if (b >= 1e6) return absl::StrFormat("%.0f MB", b / 1e6);
  return absl::StrFormat("%.0f kB", b / 1e3);
}

std::string FormatPlan(const PlanInput& in, const MemoryPlan& p) {
  std::string out;
  const auto& c = *in.model;
  absl::StrAppendFormat(&out, "plan: %s (%.2f B parameters, %.4g B trained%s), latents %s, text %d tokens\n",
                        c.name().empty() ? c.family() : c.name(), p.parameters / 1e9, p.trained_parameters / 1e9,
                        in.run.lora.rank > 0 ? absl::StrCat(": LoRA r=", in.run.lora.rank) : std::string(),
                        absl::StrJoin(in.run.latent_shape, "x"), in.text_tokens > 0 ? in.text_tokens : c.TextTokens(0));
  const int sp = in.run.sequence_parallel;
  const std::string layout = sp > 1 ? absl::StrCat(": ", hpc::UspLayout(sp, p.ulysses)) : "";
  absl::StrAppendFormat(&out,
                        "      %d ranks (dp %d x sp %d%s), ZeRO-%d, %s, checkpointing %s, micro-batch %d, group %d, "
                        "%d steps\n",
                        in.world, in.world / sp, sp, layout, in.run.zero_stage, in.run.compute_dtype == torch::kFloat32 ? "fp32" : "bf16",
                        in.checkpointing || in.run.zero_stage == 3 ? "on" : "off", in.run.micro_batch, in.run.group_size, in.run.steps);
  auto row = [&](const char* name, int64_t bytes, const std::string& note) {
    absl::StrAppendFormat(&out, "  %-28s %10s  %s\n", name, FormatBytes(static_cast<double>(bytes)), note);
  };
  out += "per rank:\n";
  row("parameters (held)", p.params_resident, in.run.zero_stage == 3 ? "replicated + 1/N of every block" : "every parameter");
  if (in.run.zero_stage == 3) row("parameters (gathered)", p.params_gathered, "the block in use and the next (prefetch)");
  row("fp32 masters", p.masters, "");
  row("optimizer moments", p.optimizer, "AdamW m and v over this rank's slice");
  if (p.ema) row("EMA", p.ema, "");
  row("gradients", p.gradients, in.run.zero_stage == 3 ? "replicated + one block" : "every trained parameter");
  row("gradient slice (fp32)", p.grad_slice, "summed over ranks");
  row("activations (micro-batch)", p.activations,
      absl::StrCat("without checkpointing ", FormatBytes(p.activations_no_ckpt), ", with ",
                   FormatBytes(p.activations_ckpt)));
  row("rollout activations", p.rollout_activations, "no-grad forward");
  if (p.decode > 0)
    row("decode", p.decode,
        absl::StrCat("the decoder on one micro-batch, after the rollout; then every clip until scored",
                     in.decode_tiled_per_sample_bytes > 0 ? absl::StrCat(" (", in.decode_tiling_flag, ": ",
                                                                         FormatBytes(static_cast<double>(
                                                                             in.decode_fixed_bytes +
                                                                             in.decode_tiled_per_sample_bytes)),
                                                                         " a clip)")
                                                          : ""));
  row("trajectories", p.trajectories, "latents of every step, log-probs, text rows");
  row("communication", p.communication, "optimizer step buffers");
  if (sp > 1)
    absl::StrAppendFormat(&out, "  %-28s %10s  per block and sample: forward %s, backward %s%s\n",
                          "sequence-parallel traffic", FormatBytes(p.sp_iteration_bytes),
                          FormatBytes(static_cast<double>(p.sp_forward_bytes)),
                          FormatBytes(static_cast<double>(p.sp_backward_bytes)),
                          p.ulysses < sp ? " (the ring's key/value blocks travel in fp32)" : "");
  row("runtime", p.runtime, in.run.device.is_cuda() ? "process + CUDA context" : "process (libtorch, MPI, HDF5)");
  out += "phases:\n";
  for (const auto& ph : p.phases)
    absl::StrAppendFormat(&out, "  %-28s %10s%s\n", ph.name, FormatBytes(static_cast<double>(ph.bytes)),
                          ph.name == p.peak_phase          ? "  <- peak"
                          : in.run.device.is_cuda() && ph.name == "load"   ? "  (host memory)"
                                                           : "");
  const int rpn = in.ranks_per_node > 0 ? std::min(in.ranks_per_node, in.world) : in.world;
  absl::StrAppendFormat(&out, "  %-28s %10s  %d rank(s) of a node: %s\n", "load, node total",
                        FormatBytes(static_cast<double>(p.node_load)), rpn,
                        in.run.zero_stage == 3 ? "one holds the fp32 model while the others hold their slices"
                                           : "every rank holds the fp32 model");
  if (in.device_bytes > 0 || in.host_bytes > 0) {
    std::string limits;
    if (in.device_bytes > 0) limits = absl::StrCat(FormatBytes(in.device_bytes), " per rank");
    if (in.host_bytes > 0) absl::StrAppend(&limits, limits.empty() ? "" : ", ", FormatBytes(in.host_bytes), " per node");
    absl::StrAppendFormat(&out, "fits %s: %s\n", limits, p.fits ? "yes" : "NO");
    if (!p.fits) absl::StrAppend(&out, "  ", p.advice, "\n");
  }
  return out;
}

}  // namespace dancegrpo
