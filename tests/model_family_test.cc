// The model-family seam proven by a second family: a test-only "block MLP" (tokens through
// residual MLP blocks, no attention) goes through the same seam as the DiT: ModelFamilyFor
// finds it, the memory planner counts it from its module inventory alone, and the trainer
// runs it under ZeRO-3 through hpc::BlockRunner with the same result as whole parameters.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "dancegrpo/plan/memory_plan.h"
#include "dancegrpo/trainable.h"
#include "dancegrpo/trainer.h"
#include "gtest/gtest.h"
#include "hpc/block_runner.h"
#include "models/dit/dit.h"
#include "models/dit/dit_family.h"
#include "models/model_family.h"
#include "tests/tiny_dit_trainer.h"
#include "world/toy_world.h"

namespace dancegrpo {
namespace {

struct BlockMlpConfig {
  int64_t channels = 4, dim = 16, text_dim = 3;
  int blocks = 3;
};

// v = out(h_N), h_{i+1} = h_i + mlp_i(h_i + e(sigma) + text(condition)), h_0 = in(tokens).
class BlockMlp : public models::VelocityModel {
 public:
  explicit BlockMlp(const BlockMlpConfig& c) {
    in_proj = register_module("in_proj", torch::nn::Linear(c.channels, c.dim));
    text_proj = register_module("text_proj", torch::nn::Linear(c.text_dim, c.dim));
    time = register_parameter("time", torch::randn({c.dim}));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int b = 0; b < c.blocks; ++b)
      blocks->push_back(torch::nn::Sequential(torch::nn::Linear(c.dim, 2 * c.dim), torch::nn::Tanh(),
                                              torch::nn::Linear(2 * c.dim, c.dim)));
    out_proj = register_module("out_proj", torch::nn::Linear(c.dim, c.channels));
  }
  torch::Tensor Velocity(const torch::Tensor& x, const torch::Tensor& sigma,
                         const models::Conditioning& condition) override {
    const int64_t b = x.size(0);
    auto h = in_proj->forward(x.flatten(2).transpose(1, 2));                       // [B, L, dim]
    auto e = sigma.to(x.dtype()).view({b, 1, 1}) * time.view({1, 1, -1});         // [B, 1, dim]
    auto text = text_proj->forward(condition.pooled.to(x.dtype())).unsqueeze(1);  // [B, 1, dim]
    const auto modules = Blocks();
    h = runner_.Run(modules, h, {e, text},
                    [modules](int64_t i, const torch::Tensor& h, const std::vector<torch::Tensor>& shared) {
                      auto* mlp = dynamic_cast<torch::nn::SequentialImpl*>(modules[i]);
                      return h + mlp->forward(h + shared[0] + shared[1]);
                    });
    return out_proj->forward(h).transpose(1, 2).reshape(x.sizes());
  }
  std::vector<torch::nn::Module*> Blocks() override {
    std::vector<torch::nn::Module*> out;
    for (size_t i = 0; i < blocks->size(); ++i) out.push_back(blocks[i].get());
    return out;
  }
  hpc::BlockRunner* block_runner() override { return &runner_; }

  torch::nn::Linear in_proj{nullptr}, text_proj{nullptr}, out_proj{nullptr};
  torch::Tensor time;
  torch::nn::ModuleList blocks{nullptr};

 private:
  hpc::BlockRunner runner_;
};

int64_t Linear(int64_t in, int64_t out) { return in * out + out; }

class BlockMlpFamily : public models::ModelFamily {
 public:
  explicit BlockMlpFamily(BlockMlpConfig c) : c_(c) {}
  std::string family() const override { return "block-mlp"; }
  std::string name() const override { return "block-mlp"; }
  std::shared_ptr<models::VelocityModel> Build() const override { return std::make_shared<BlockMlp>(c_); }
  std::vector<models::ModuleShape> Modules() const override {
    std::vector<models::ModuleShape> out = {{"in_proj", Linear(c_.channels, c_.dim), -1},
                                            {"text_proj", Linear(c_.text_dim, c_.dim), -1},
                                            {"time", c_.dim, -1}};
    for (int b = 0; b < c_.blocks; ++b)
      out.push_back({absl::StrCat("blocks.", b), Linear(c_.dim, 2 * c_.dim) + Linear(2 * c_.dim, c_.dim), b});
    out.push_back({"out_proj", Linear(c_.dim, c_.channels), -1});
    return out;
  }
  std::vector<models::LinearLayerShape> LinearLayers() const override {
    std::vector<models::LinearLayerShape> out = {{"in_proj", c_.channels, c_.dim}, {"text_proj", c_.text_dim, c_.dim}};
    for (int b = 0; b < c_.blocks; ++b) {
      out.push_back({absl::StrCat("blocks.", b, ".0"), c_.dim, 2 * c_.dim});
      out.push_back({absl::StrCat("blocks.", b, ".2"), 2 * c_.dim, c_.dim});
    }
    out.push_back({"out_proj", c_.dim, c_.channels});
    return out;
  }
  int NumBlocks() const override { return c_.blocks; }
  int Heads() const override { return 0; }
  int64_t LatentChannels() const override { return c_.channels; }
  int64_t TextDim() const override { return c_.text_dim; }
  int64_t Tokens(const std::vector<int64_t>& s) const override { return s[1] * s[2] * s[3]; }
  int64_t TextTokens(int64_t) const override { return 1; }
  double ForwardFlops(int64_t batch, int64_t tokens, int64_t) const override {
    return 2.0 * batch * tokens * (2 * c_.channels * c_.dim + c_.blocks * 4 * c_.dim * c_.dim);
  }
  int64_t BlockActivations(const models::ActivationQuery& q) const override { return q.tokens * 6 * c_.dim; }
  int64_t BlockInput(const models::ActivationQuery& q) const override { return q.tokens * c_.dim; }
  int64_t ForwardWorkingSet(const models::ActivationQuery& q) const override { return q.tokens * 3 * c_.dim; }

 private:
  BlockMlpConfig c_;
};

const bool kRegistered = models::RegisterModelFamily(
    "block-mlp", [](const std::string& name) -> absl::StatusOr<std::shared_ptr<const models::ModelFamily>> {
      if (name != "block-mlp") return absl::NotFoundError("only 'block-mlp'");
      return std::make_shared<BlockMlpFamily>(BlockMlpConfig{});
    });

int64_t Numel(torch::nn::Module& m, const std::string& prefix = "") {
  int64_t n = 0;
  for (const auto& p : m.named_parameters())
    if (prefix.empty() || p.key().rfind(prefix + ".", 0) == 0) n += p.value().numel();
  return n;
}

TEST(ModelFamily, EachFamilyIsFoundByItsConfigAndAnUnknownOneNamesThemAll) {
  auto mlp = models::ModelFamilyFor("block-mlp");
  ASSERT_TRUE(mlp.ok()) << mlp.status();
  EXPECT_EQ((*mlp)->family(), "block-mlp");
  auto dit = models::ModelFamilyFor("tiny");
  ASSERT_TRUE(dit.ok()) << dit.status();
  EXPECT_EQ((*dit)->family(), "wan-dit");
  auto unknown = models::ModelFamilyFor("no-such-model");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("block-mlp"), std::string::npos) << unknown.status();
  EXPECT_NE(unknown.status().message().find("wan-dit"), std::string::npos) << unknown.status();
  // A config the DiT recognises as its own but cannot read speaks for itself.
  auto broken = models::ModelFamilyFor("/nonexistent/config.json");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().message().find("block-mlp"), std::string::npos) << broken.status();
}

// Both families: the inventory a planner reads equals the parameters of the built model,
// module by module, and every linear layer listed exists with its shape.
TEST(ModelFamily, TheInventoryIsTheBuiltModelsParameters) {
  for (const std::string name : {"block-mlp", "tiny"}) {
    const auto family = *models::ModelFamilyFor(name);
    auto model = family->Build();
    int64_t listed = 0;
    for (const auto& m : family->Modules()) {
      const auto* whole = model->named_parameters().find(m.name);  // a bare parameter ("time")
      const int64_t built = whole ? whole->numel() : Numel(*model, m.name);
      EXPECT_EQ(m.count, built) << name << " " << m.name;
      listed += m.count;
    }
    EXPECT_EQ(listed, Numel(*model)) << name;
    const auto params = model->named_parameters();
    for (const auto& l : family->LinearLayers()) {
      const auto* w = params.find(l.path + ".weight");
      ASSERT_NE(w, nullptr) << name << " " << l.path;
      EXPECT_EQ(w->sizes(), torch::IntArrayRef({l.out, l.in})) << name << " " << l.path;
    }
    EXPECT_EQ(model->Blocks().size(), static_cast<size_t>(family->NumBlocks())) << name;
  }
}

TEST(ModelFamily, ThePlannerCountsASecondFamilyFromItsInventory) {
  const auto family = *models::ModelFamilyFor("block-mlp");
  auto model = family->Build();
  PlanInput in;
  in.model = family;
  in.run.latent_shape = {4, 2, 4, 4};
  in.run.trainable = "blocks.1";
  auto plan = PlanMemory(in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->parameters, Numel(*model));
  EXPECT_EQ(plan->trained_parameters, Numel(*model, "blocks.1"));
  EXPECT_EQ(plan->block_parameters, Numel(*model, "blocks"));
  // fp32, ZeRO-2, one rank: AdamW's two moments over the trained parameters.
  EXPECT_EQ(plan->optimizer, 8 * Numel(*model, "blocks.1"));
  // LoRA on one block's layers: r x (in + out) parameters each, all trained.
  in.run.trainable = "";
  in.run.lora.rank = 2;
  in.run.lora.alpha = 2;
  in.run.lora.targets = "blocks.0.0,blocks.0.2";
  auto lora = PlanMemory(in);
  ASSERT_TRUE(lora.ok()) << lora.status();
  EXPECT_EQ(lora->trained_parameters, 2 * (16 + 32) + 2 * (32 + 16));
  // No attention heads to split: sequence parallelism is refused, naming the fix.
  in.run.lora = {};
  in.world = 2;
  in.run.sequence_parallel = 2;
  auto sp = PlanMemory(in);
  ASSERT_FALSE(sp.ok());
  EXPECT_NE(sp.status().message().find("sp"), std::string::npos) << sp.status();
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeBlockMlpTrainer(const TrainerConfig& c) {
  constexpr int kTargets = 3;
  torch::manual_seed(c.seed);
  auto policy = (*models::ModelFamilyFor("block-mlp"))->Build();
  return Trainer::Create(c, policy, nullptr, std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                         {{std::make_shared<toy::TargetRegionReward>(kTargets, c.latent_shape, c.seed), 1.0}},
                         toy::TargetPrompts(kTargets));
}

// ZeRO-3 through the block runner: the second family's blocks are sharded, gathered,
// recomputed and reduce-scattered with no code of its own, and train as whole parameters do.
TEST(ModelFamily, ASecondFamilyTrainsUnderZero3AsWithWholeParameters) {
  auto c = testing::TinyDitConfig();
  auto whole = MakeBlockMlpTrainer(c);
  ASSERT_TRUE(whole.ok()) << whole.status();
  c.zero_stage = 3;
  auto sharded = MakeBlockMlpTrainer(c);
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  ASSERT_NE((*sharded)->sharded_parameters(), nullptr);
  EXPECT_EQ((*sharded)->sharded_parameters()->units().size(), 3u) << "one unit per block, all trained";
  EXPECT_TRUE((*sharded)->policy().block_runner()->checkpointing()) << "ZeRO-3 recomputes blocks in backward";
  for (int i = 0; i < 2; ++i) {
    auto a = (*whole)->Step();
    auto b = (*sharded)->Step();
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    if (i == 0) {
      EXPECT_EQ(a->reward_mean, b->reward_mean) << "the same rollout: gathered parameters are the same values";
    }
  }
  EXPECT_GT((*sharded)->sharded_parameters()->gathers(), 0);
  const double diff = testing::RelativeDiff(testing::Masters(**sharded), testing::Masters(**whole));
  EXPECT_LT(diff, testing::kEquivalenceTolerance);
  const double moved = testing::RelativeDiff(testing::Masters(**whole), [&] {
    auto fresh = MakeBlockMlpTrainer(c);
    return testing::Masters(**fresh);
  }());
  EXPECT_GT(moved, 1e-4) << "the runs trained: the comparison is not between untouched weights";
}

// One place decides the layout: a policy loaded sharded is refused by a ZeRO-2 run, naming the fix.
TEST(ModelFamily, AShardedPolicyIsRefusedByAZero2Run) {
  auto c = testing::TinyDitConfig();
  constexpr int kTargets = 3;
  auto policy = (*models::ModelFamilyFor("block-mlp"))->Build();
  ASSERT_TRUE(ShardPolicy(*policy, "", std::make_shared<hpc::LocalCommunicator>(), torch::kFloat32, torch::kCPU).ok());
  auto t = Trainer::Create(c, policy, nullptr, std::make_shared<toy::OneHotPromptEncoder>(kTargets), nullptr,
                           {{std::make_shared<toy::TargetRegionReward>(kTargets, c.latent_shape, c.seed), 1.0}},
                           toy::TargetPrompts(kTargets));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--zero_stage=3"), std::string::npos) << t.status();
}

}  // namespace
}  // namespace dancegrpo
