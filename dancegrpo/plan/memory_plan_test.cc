#include "dancegrpo/plan/memory_plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hpc/buckets.h"
#include "models/dit/dit.h"
#include "models/dit/dit_family.h"

namespace dancegrpo {
namespace {

// The DiT config of a plan's model (a models::DitFamily here).
const models::DitConfig& Dit(const PlanInput& in) {
  return static_cast<const models::DitFamily&>(*in.model).config();
}

// The planner's parameter inventory is the model's own, module by module.
void ExpectSameInventory(const models::DitConfig& c) {
  models::VideoDit dit(c);
  std::map<std::string, int64_t> real;
  for (const auto& p : dit.named_parameters()) {
    const std::string& name = p.key();
    std::string module = name.substr(0, name.find('.'));
    if (module == "blocks") {
      const size_t second = name.find('.', 7);
      module = name.substr(0, name.find('.', second + 1));
    }
    real[module] += p.value().numel();
  }
  std::map<std::string, int64_t> planned;
  int64_t total = 0;
  for (const auto& m : models::DitFamily(c).Modules()) planned[m.name] += m.count, total += m.count;
  EXPECT_EQ(planned, real);
  EXPECT_EQ(total, models::DitParameterCount(c));
}

TEST(MemoryPlan, InventoryMatchesTheModel) {
  ExpectSameInventory(*models::DitPreset("tiny"));
  auto c = *models::DitPreset("tiny");
  c.stem_channels = 4;
  c.pooled_dim = 8;
  ExpectSameInventory(c);
}

PlanInput Wan13(int world) {
  PlanInput in;
  in.model = models::DitFamily::Make(*models::DitPreset("wan2.1-1.3b"));
  in.run.latent_shape = {16, 1, 8, 8};
  in.world = world;
  in.run.group_size = 2;
  in.run.prompts_per_iteration = world / 2;
  in.run.micro_batch = 1;
  in.run.steps = 3;
  return in;
}

TEST(MemoryPlan, ClosedFormsOfTheStates) {
  auto in = Wan13(4);
  const int64_t P = models::DitParameterCount(Dit(in));
  auto z2 = *PlanMemory(in);
  EXPECT_EQ(z2.parameters, P);
  EXPECT_EQ(z2.params_resident, 4 * P) << "ZeRO-2 fp32: every parameter on every rank";
  EXPECT_EQ(z2.masters, 0) << "fp32 parameters are their own masters";
  EXPECT_EQ(z2.optimizer, 8 * ((P + 3) / 4));
  EXPECT_EQ(z2.gradients, 4 * P);
  in.run.compute_dtype = torch::kBFloat16;
  auto bf = *PlanMemory(in);
  EXPECT_EQ(bf.params_resident, 2 * P);
  EXPECT_EQ(bf.masters, 4 * ((P + 3) / 4));
  // ZeRO-3: the state is the same size; the blocks are held in slices and one at a time.
  in.run.zero_stage = 3;
  auto z3 = *PlanMemory(in);
  const int64_t block = (P - (P - z3.block_parameters)) / Dit(in).layers;
  EXPECT_EQ(z3.params_gathered, 2 * 2 * block) << "bf16: the block in use and the prefetched one";
  EXPECT_LT(z3.params_resident, bf.params_resident / 3);
  EXPECT_NEAR(static_cast<double>(z3.masters), static_cast<double>(bf.masters), 4.0 * 4 * Dit(in).layers);
  // Full fine-tuning: 16 bytes per parameter over the ranks, whatever the stage.
  const double state = z3.masters + z3.optimizer + z3.grad_slice;
  EXPECT_NEAR(state * 4, 16.0 * P, 16.0 * 4 * (Dit(in).layers + 1));
}

// ZeRO-3's gradient reduce-scatter: one block's gradient, the bucket's message (32 MB of fp32
// for all ranks together, whatever the world: hpc/buckets.h) and on the CPU the MPI
// collective's temporaries (two messages on the tree's root); none on a GPU.
TEST(MemoryPlan, ReduceScatterBucketsDoNotGrowWithTheWorld) {
  for (int world : {2, 8, 64}) {
    auto in = Wan13(world);
    in.run.prompts_per_iteration = 1;
    in.run.group_size = world;
    in.run.zero_stage = 3;
    auto p = PlanMemory(in);
    ASSERT_TRUE(p.ok()) << p.status();
    const int64_t layers = Dit(in).layers, block = p->block_parameters / layers;
    const int64_t replicated = p->parameters - p->block_parameters;
    const int64_t per_rank = std::min<int64_t>((block + world - 1) / world, hpc::BucketElementsPerRank(world));
    const int64_t message = 4 * world * per_rank;
    EXPECT_LE(message, 32 << 20) << world << " ranks";
    EXPECT_EQ(p->gradients, 4 * replicated + 4 * block + message + 2 * message) << world << " ranks";
    in.run.device = torch::Device(torch::kCUDA, 0);
    auto gpu = PlanMemory(in);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    EXPECT_EQ(gpu->gradients, 4 * replicated + 4 * block + message) << "NCCL holds no temporaries";
  }
  EXPECT_EQ(hpc::BucketElementsPerRank(1), int64_t{1} << 22);
  EXPECT_EQ(hpc::BucketElementsPerRank(2), int64_t{1} << 22);
  EXPECT_EQ(hpc::BucketElementsPerRank(8), int64_t{1} << 20);
  EXPECT_EQ(hpc::BucketElementsPerRank(3), (int64_t{1} << 23) / 3);
  EXPECT_EQ(hpc::BucketElementsPerRank(1 << 24), 1) << "at least one element";
}

TEST(MemoryPlan, ActivationsFollowTheShapes) {
  auto in = Wan13(2);
  in.run.latent_shape = {16, 5, 16, 16};
  in.run.prompts_per_iteration = 2;
  auto one = *PlanMemory(in);
  in.run.micro_batch = 2;
  auto two = *PlanMemory(in);
  EXPECT_EQ(two.activations_no_ckpt, 2 * one.activations_no_ckpt);
  EXPECT_LT(one.activations_ckpt, one.activations_no_ckpt / 4);
  // Freezing the first 20 of 30 blocks (and the embeddings) leaves 10 blocks to back-propagate.
  in.run.micro_batch = 1;
  in.run.trainable = "blocks.20-29";
  auto frozen = *PlanMemory(in);
  EXPECT_EQ(frozen.activations_no_ckpt * 3, one.activations_no_ckpt);
  EXPECT_LT(frozen.trained_parameters, frozen.parameters / 2);
}

TEST(MemoryPlan, RefusesWhatCannotFitAndNamesTheCheapestFix) {
  // Four ranks on this 24 GB machine: 6 GB each, the model loaded one rank at a time.
  auto in = Wan13(4);
  in.device_bytes = 6e9;
  in.host_bytes = 24e9;
  in.ranks_per_node = 4;
  // Full fine-tuning of 1.3B: 22.7 GB of state; no layout of one such machine fits, two do.
  in.run.zero_stage = 3;
  auto full = *PlanMemory(in);
  EXPECT_FALSE(full.fits);
  EXPECT_NE(full.advice.find("8 ranks"), std::string::npos) << full.advice;
  // 14B on 6 GB ranks: not even 16 of them hold its state, which is then named.
  auto alone = in;
  alone.model = models::DitFamily::Make(*models::DitPreset("wan2.1-14b"));
  alone.world = 1;
  alone.ranks_per_node = 1;
  alone.run.prompts_per_iteration = 1;
  alone.host_bytes = 6e9;
  auto one = *PlanMemory(alone);
  EXPECT_FALSE(one.fits);
  EXPECT_NE(one.advice.find("16 bytes per trained parameter"), std::string::npos) << one.advice;
  // The last ten blocks under ZeRO-2: every rank holds the whole model: stage 3 is the fix.
  in.run.zero_stage = 2;
  in.run.trainable = "blocks.20-29";
  auto z2 = *PlanMemory(in);
  EXPECT_FALSE(z2.fits);
  EXPECT_NE(z2.advice.find("--zero_stage=3"), std::string::npos) << z2.advice;
  in.run.zero_stage = 3;
  auto z3 = *PlanMemory(in);
  EXPECT_TRUE(z3.fits) << FormatPlan(in, z3);
}

TEST(MemoryPlan, BadLayoutsNameTheNumbers) {
  auto in = Wan13(4);
  in.run.sequence_parallel = 3;
  auto s = PlanMemory(in);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("sp = 3 does not divide the 4 ranks"), std::string::npos)
      << s.status();
  in.run.sequence_parallel = 1;
  in.run.zero_stage = 1;
  EXPECT_FALSE(PlanMemory(in).ok());
  in.run.zero_stage = 3;
  in.run.trainable = "nonexistent";
  EXPECT_FALSE(PlanMemory(in).ok());
}

// USP: 12 heads at sp = 8 run as Ulysses 4 x ring 2 by default; a Ulysses degree that does
// not divide the heads is refused naming the one that does; the traffic is the closed form.
TEST(MemoryPlan, SequenceParallelForAnyHeadCount) {
  auto in = Wan13(8);
  in.run.latent_shape = {16, 4, 16, 16};  // 4 x 8 x 8 = 256 tokens, 32 per rank at sp 8
  in.run.sequence_parallel = 8;
  in.run.prompts_per_iteration = 1;
  in.run.group_size = 2;
  auto usp = PlanMemory(in);
  ASSERT_TRUE(usp.ok()) << usp.status();
  EXPECT_EQ(usp->ulysses, 4);
  EXPECT_NE(FormatPlan(in, *usp).find("sp 8: Ulysses 4 x ring 2"), std::string::npos) << FormatPlan(in, *usp);
  const double block = 32.0 * 1536;  // elements of one q, k or v block per rank
  const double a2a = 4 * 0.75 * block * 4, kv = 2 * block * 4;  // fp32 run: 4 bytes an element
  EXPECT_EQ(usp->sp_forward_bytes, static_cast<int64_t>(a2a + kv));
  EXPECT_EQ(usp->sp_backward_bytes, static_cast<int64_t>(a2a + kv + 2 * kv));
  in.run.ulysses = 8;
  auto refused = PlanMemory(in);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("use --ulysses=4"), std::string::npos) << refused.status();
  in.run.ulysses = 1;  // ring alone: no all-to-all
  auto ring = *PlanMemory(in);
  EXPECT_EQ(ring.sp_forward_bytes, static_cast<int64_t>(7 * 2 * block * 4));
  // On the CPU (no fused kernel) Ulysses keeps [h/sp, L, L] scores per block; the ring keeps
  // its fp32 output and log-sum-exp and holds one key block's scores at a time.
  auto longer = Wan13(4);
  longer.run.latent_shape = {16, 8, 32, 32};  // 2048 tokens
  longer.run.sequence_parallel = 4;
  longer.run.prompts_per_iteration = 1;
  longer.run.group_size = 4;
  longer.run.ulysses = 4;
  auto ulysses4 = *PlanMemory(longer);
  longer.run.ulysses = 1;
  auto ring4 = *PlanMemory(longer);
  EXPECT_EQ(ulysses4.sp_forward_bytes, static_cast<int64_t>(4 * 0.75 * 512 * 1536 * 4));
  // Per block, Ulysses keeps 2 x [3, 2048, 2048] scores; the ring keeps its output [12, 512, 128]
  // and log-sum-exp [12, 512], and its backward holds 2 x [12, 512, 512] score blocks and 11 blocks of
  // [512, 1536] (fp32 run: 4 bytes an element; 30 blocks, one micro-batch).
  const double ulysses_kept = 2.0 * 3 * 2048 * 2048, ring_kept = 512.0 * 1536 + 12 * 512;
  const double ring_backward = 2.0 * 12 * 512 * 512 + 11.0 * 512 * 1536;
  EXPECT_EQ(ulysses4.activations_no_ckpt - ring4.activations_no_ckpt,
            static_cast<int64_t>(4 * (30 * (ulysses_kept - ring_kept) - ring_backward)));
  EXPECT_LT(ring4.activations_no_ckpt, ulysses4.activations_no_ckpt * 2 / 3);
  EXPECT_LT(ring4.rollout_activations, ulysses4.rollout_activations);
}

}  // namespace
}  // namespace dancegrpo

namespace dancegrpo {
namespace {

// The planner's list of linear layers (where LoRA can go) is the model's own.
TEST(MemoryPlanLora, LinearLayersMatchTheModel) {
  auto c = *models::DitPreset("tiny");
  c.pooled_dim = 8;
  models::VideoDit dit(c);
  std::vector<std::string> real;
  for (const auto& m : dit.named_modules("", false)) {
    auto* layer = dynamic_cast<models::LoraLinearImpl*>(m.value().get());
    if (layer == nullptr) continue;
    real.push_back(absl::StrCat(m.key(), " ", layer->weight.size(1), "x", layer->weight.size(0)));
  }
  std::vector<std::string> planned;
  for (const auto& l : models::DitFamily(c).LinearLayers()) planned.push_back(absl::StrCat(l.path, " ", l.in, "x", l.out));
  std::sort(real.begin(), real.end());
  std::sort(planned.begin(), planned.end());
  EXPECT_EQ(planned, real);
}

TEST(MemoryPlanLora, AdaptersAreTheOnlyTrainedState) {
  PlanInput in;
  in.model = models::DitFamily::Make(*models::DitPreset("wan2.1-1.3b"));
  in.run.latent_shape = {16, 1, 8, 8};
  in.world = 4;
  in.run.group_size = 2;
  in.run.prompts_per_iteration = 2;
  in.run.micro_batch = 1;
  in.run.steps = 3;
  in.run.compute_dtype = torch::kBFloat16;
  const int64_t P = models::DitParameterCount(Dit(in));
  const int64_t d = Dit(in).dim, f = Dit(in).ffn_dim, r = 32;
  in.run.lora.rank = r;
  in.run.lora.alpha = 64;
  auto p = PlanMemory(in);
  ASSERT_TRUE(p.ok()) << p.status();
  // Default targets: 8 attention linears d x d and the FFN's d x f and f x d, every block.
  const int64_t T = Dit(in).layers * r * (8 * 2 * d + 2 * (d + f));
  EXPECT_EQ(p->trained_parameters, T);
  EXPECT_EQ(p->parameters, P + T);
  EXPECT_EQ(p->params_resident, 2 * (P + T)) << "ZeRO-2: the frozen base and the adapters in bf16 on every rank";
  EXPECT_EQ(p->optimizer, 8 * ((T + 3) / 4)) << "moments of the adapters only";
  EXPECT_EQ(p->masters, 4 * ((T + 3) / 4));
  EXPECT_EQ(p->gradients, 2 * T);
  // Full fine-tuning of the same run holds 16 bytes per parameter of state on top.
  auto full = in;
  full.run.lora.rank = 0;
  auto q = PlanMemory(full);
  ASSERT_TRUE(q.ok());
  EXPECT_GT(q->optimizer + q->masters, 20 * (p->optimizer + p->masters)) << "r = 32 adapters are 3% of the model";
  // Bad LoRA configs are the trainer's errors.
  in.run.lora.rank = 2000;
  EXPECT_NE(std::string(PlanMemory(in).status().message()).find("above the width"), std::string::npos);
  in.run.lora.rank = 8;
  in.run.lora.targets = "nope";
  EXPECT_NE(std::string(PlanMemory(in).status().message()).find("'nope' matches no linear layer"), std::string::npos);
  in.run.lora.targets = "";
  in.run.trainable = "head";
  EXPECT_NE(std::string(PlanMemory(in).status().message()).find("drop --trainable"), std::string::npos);
}

}  // namespace
}  // namespace dancegrpo

namespace dancegrpo {
namespace {

// The decoder's term: its micro-batch's peak after the rollout, then every local clip; where
// only a tiled decode fits, the advice says so.
TEST(MemoryPlan, CountsTheDecodeAndSuggestsTiling) {
  auto in = Wan13(2);
  in.run.prompts_per_iteration = 2;  // 2 samples per rank
  in.run.micro_batch = 2;
  in.run.zero_stage = 3;
  in.run.lora.rank = 8;  // a small state, so that the decode decides
  in.run.lora.alpha = 8;
  const auto without = *PlanMemory(in);
  in.decode_fixed_bytes = int64_t{300} << 20;
  in.decode_per_sample_bytes = int64_t{10} << 30;
  in.decode_clip_bytes = int64_t{100} << 20;
  in.decode_tiled_per_sample_bytes = int64_t{2} << 30;
  in.decode_tiling_flag = "--decoder=wan-vae:vae,tile=256,stride=192";
  auto with = *PlanMemory(in);
  EXPECT_EQ(with.decode, (int64_t{300} << 20) + 2 * (int64_t{10} << 30));  // the micro-batch holds both samples
  const auto rollout = [](const MemoryPlan& p) {
    return std::find_if(p.phases.begin(), p.phases.end(), [](const PlanPhase& ph) { return ph.name == "rollout"; })->bytes;
  };
  EXPECT_EQ(rollout(with) - rollout(without), with.decode - std::min(with.decode, without.rollout_activations));
  EXPECT_NE(FormatPlan(in, with).find("decode"), std::string::npos);
  // 12 GB per rank: the untiled decode (20.3 GB) does not fit; a tiled one does, and beats
  // --micro_batch=1 (10.4 GB of decode) in the advice's order only if it fits first.
  in.device_bytes = 12e9;
  auto tight = *PlanMemory(in);
  EXPECT_FALSE(tight.fits);
  EXPECT_NE(tight.advice.find("a tiled decode, --decoder=wan-vae:vae,tile=256,stride=192"), std::string::npos)
      << tight.advice;
  // micro-batch 1 keeps one sample's decode and the other's clip.
  in.run.micro_batch = 1;
  in.device_bytes = 0;
  EXPECT_EQ(PlanMemory(in)->decode, (int64_t{300} << 20) + (int64_t{10} << 30) + (int64_t{100} << 20));
}

}  // namespace
}  // namespace dancegrpo
