// The memory planner: what one rank of a run holds, term by term and phase by phase, from
// the model's own shapes and the run's layout (before anything is allocated), whether that
// fits the device, and if not the cheapest change that would.
//
// Terms (bytes per rank; N ranks, sp sequence-parallel, s = bytes of the compute dtype):
//   parameters     ZeRO-2: every parameter in the compute dtype. ZeRO-3: the replicated ones
//                  (embeddings, head) plus 1/N of every block (compute slices; fp32 trained
//                  slices are their own masters), and two whole blocks while in use (the
//                  current one and the next, prefetched).
//   masters        fp32 slices of the trained parameters (mixed precision, and ZeRO-3).
//   optimizer      AdamW's two fp32 moments over this rank's slice (and the EMA).
//   gradients      ZeRO-2: a full gradient of every trained parameter in the compute dtype,
//                  plus the fp32 summed slice; ZeRO-3: the fp32 slice, plus one block's.
//   activations    one micro-batch's block activations, counted tensor by tensor from the
//                  block's operations (see memory_plan.cc), times the blocks kept: all of
//                  them without checkpointing, inputs only plus one block with it.
//   trajectories   every local sample's latents at every step, log-probs, text embeddings.
//   decode         the decoder on one micro-batch (weights, cache, a chunk's working set, the
//                  clip) after the rollout's activations are gone, and every decoded clip.
//   communication  the optimizer's flat gradient and gather buffers during a step.
//   runtime        the process itself (libtorch, MPI, HDF5; on a GPU the CUDA context):
//                  a measured constant, the only one.
// Phases: load (the full fp32 model exists on one rank at a time while it is sharded),
// rollout, update (backward and optimizer step), checkpoint.
#ifndef DANCEGRPO_DANCEGRPO_PLAN_MEMORY_PLAN_H_
#define DANCEGRPO_DANCEGRPO_PLAN_MEMORY_PLAN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "c10/core/ScalarType.h"
#include "dancegrpo/trainer_config.h"
#include "models/model_family.h"
#include "models/lora.h"

namespace dancegrpo {

struct PlanInput {
  // The model, through its family (models/model_family.h): its modules, linear layers,
  // heads, tokens and block activations.
  std::shared_ptr<const models::ModelFamily> model;
  // The run as train would run it: layout (micro_batch, group_size, prompts_per_iteration,
  // steps, sequence_parallel, zero_stage), precision, trainable patterns (module
  // granularity), LoRA (adapters on the targeted linears, the only trained parameters; the
  // base frozen in the compute dtype), EMA, guidance (cfg_scale != 1 doubles the batch of
  // each evaluation), latent_shape [C, F, H, W] and device (cuda: a CUDA context, no host
  // check of the device). Its defaults are the run's (trainer_config.h).
  TrainerConfig run;
  int64_t text_tokens = 0;  // 0: the model's own (ModelFamily::TextTokens)
  int world = 1;
  bool checkpointing = false;  // activation checkpointing
  // What to check against (0 = no check): each rank's device memory (on the CPU: its share
  // of the node, host_bytes / ranks_per_node), and the host memory of a node, which its
  // ranks_per_node ranks share; the model is loaded there, one rank at a time under ZeRO-3.
  double device_bytes = 0;
  double host_bytes = 0;
  int ranks_per_node = 0;  // 0 = all ranks on one node
  // The decoder (after the rollout, one micro-batch at a time): what it holds whatever the
  // batch (weights), what it needs per clip of a micro-batch (cache, a chunk's working set,
  // the clip: models::vae::PlanWanVaeDecode for the native Wan VAE), and one decoded clip, kept
  // for every local sample until scored. All 0: no decoder, or one plan cannot see into
  // (TorchScript). decode_tiled_per_sample_bytes: the same with spatial tiling, when tiling is
  // off (0: no such option); decode_tiling_flag names it in the advice.
  int64_t decode_fixed_bytes = 0;
  int64_t decode_per_sample_bytes = 0;
  int64_t decode_clip_bytes = 0;
  int64_t decode_tiled_per_sample_bytes = 0;
  std::string decode_tiling_flag;
};

struct PlanPhase {
  std::string name;
  int64_t bytes = 0;
};

struct MemoryPlan {
  int64_t parameters = 0, trained_parameters = 0, block_parameters = 0;  // counts (all blocks)
  // Per-rank bytes.
  int64_t params_resident = 0;    // held between uses
  int64_t params_gathered = 0;    // the block in use and the prefetched next (ZeRO-3)
  int64_t masters = 0;
  int64_t optimizer = 0;          // moments
  int64_t ema = 0;
  int64_t gradients = 0;          // held through the update
  int64_t grad_slice = 0;         // the fp32 summed slice
  int64_t activations = 0;        // one micro-batch, as configured
  int64_t activations_no_ckpt = 0, activations_ckpt = 0;
  int64_t rollout_activations = 0;  // no-grad forward working set
  int64_t decode = 0;               // the decoder on one micro-batch, and every local clip
  int64_t trajectories = 0;
  int64_t communication = 0;      // step buffers
  // Sequence parallelism (sp > 1): the Ulysses degree in use (ring degree sp / ulysses), and
  // the bytes this rank sends for self-attention: per block and sample, forward and
  // backward, and over one iteration (rollout, and the update's forward, recompute and
  // backward). Traffic, not held memory.
  int ulysses = 1;
  int64_t sp_forward_bytes = 0, sp_backward_bytes = 0;
  double sp_iteration_bytes = 0;
  int64_t runtime = 0;
  std::vector<PlanPhase> phases;  // load, rollout, update, checkpoint
  int64_t peak = 0;               // per rank
  std::string peak_phase;
  int64_t device_peak = 0;        // the largest phase after loading (what --memory_gb bounds)
  int64_t after_load = 0;         // a rank that has sharded its copy, waiting for the others
  int64_t node_load = 0;          // host memory of a node while its ranks load
  bool fits = true;
  std::string advice;             // empty when it fits
};

// Fails for a layout that cannot run: sp or the world not dividing, a Ulysses degree that does
// not divide the heads (naming the one that does), a stage other than 2/3, a trainable pattern
// that matches nothing.
absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& input);

// The table `plan` prints.
std::string FormatPlan(const PlanInput& input, const MemoryPlan& plan);

// Bytes with a unit: "5.68 GB" (decimal), "812 MB".
std::string FormatBytes(double bytes);

}  // namespace dancegrpo

#endif  // DANCEGRPO_DANCEGRPO_PLAN_MEMORY_PLAN_H_
