#include "world/shapes_probe.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/evaluate.h"
#include "dancegrpo/rng.h"
#include "hpc/status_macros.h"
#include "rewards/registry.h"

namespace dancegrpo {
namespace {

namespace w = world;

absl::Status ValidateProbeConfig(const ProbeConfig& c) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError("probe config: " + what); };
  if (c.clips <= 0) return bad(absl::StrCat("clips = ", c.clips, " must be positive"));
  if (c.samples <= 0) return bad(absl::StrCat("samples = ", c.samples, " must be positive"));
  if (c.steps <= 0) return bad(absl::StrCat("steps = ", c.steps, " must be positive"));
  if (c.micro_batch <= 0) return bad(absl::StrCat("micro_batch = ", c.micro_batch, " must be positive"));
  if (c.eta < 0) return bad(absl::StrCat("eta = ", c.eta, " must be >= 0"));
  if (c.sigmas.empty()) return bad("no sigmas; give noise levels in (0, 1], e.g. 0.3,0.7");
  for (double s : c.sigmas)
    if (!(s > 0 && s <= 1)) return bad(absl::StrCat("sigma ", s, " is outside (0, 1]"));
  return absl::OkStatus();
}

std::vector<std::string> Texts(const std::vector<w::ClipSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(w::PromptText(s));
  return out;
}

// Sum of squared velocity errors over one micro-batch.
double SquaredError(models::VelocityModel& model, const torch::Tensor& xs, double sigma,
                    const models::Conditioning& cond, const torch::Tensor& target) {
  auto v = model.Velocity(xs, torch::full({xs.size(0)}, sigma), cond);
  return (v.to(torch::kFloat32) - target).pow(2).sum().item<double>();
}

}  // namespace

const std::vector<std::string>& ProbeAttributes() {
  static const auto* names =
      new std::vector<std::string>{"colour", "count", "motion", "motion_axis", "object", "background"};
  return *names;
}

absl::StatusOr<w::ClipSpec> SwapAttribute(const w::ClipSpec& spec, const std::string& attribute) {
  auto s = spec;
  if (attribute == "colour") {
    s.colour = (s.colour + 1) % w::kColours;
  } else if (attribute == "count") {
    s.count = 3 - s.count;
  } else if (attribute == "motion") {
    s.motion = static_cast<w::Motion>(static_cast<int>(s.motion) ^ 1);  // left <-> right, up <-> down
  } else if (attribute == "motion_axis") {
    s.motion = static_cast<w::Motion>(static_cast<int>(s.motion) ^ 2);  // left <-> up, right <-> down
  } else if (attribute == "object") {
    s.object = 1 - s.object;
  } else if (attribute == "background") {
    s.background = 1 - s.background;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown prompt attribute '", attribute,
                     "'; use colour, count, motion, motion_axis, object or background"));
  }
  return s;
}

absl::StatusOr<std::vector<w::ClipSpec>> AttributeVariants(const w::ClipSpec& spec, const std::string& attribute) {
  struct Attribute {
    const char* name;
    int values;
    void (*set)(w::ClipSpec&, int);
  };
  static const Attribute kAttributes[] = {
      {"colour", w::kColours, [](w::ClipSpec& s, int v) { s.colour = v; }},
      {"count", 2, [](w::ClipSpec& s, int v) { s.count = v + 1; }},
      {"motion", w::kMotions, [](w::ClipSpec& s, int v) { s.motion = static_cast<w::Motion>(v); }},
      // The axis unknown, the sign known: {left, up} or {right, down}.
      {"motion_axis", 2,
       [](w::ClipSpec& s, int v) { s.motion = static_cast<w::Motion>((static_cast<int>(s.motion) & 1) | (v << 1)); }},
      {"object", w::kObjects, [](w::ClipSpec& s, int v) { s.object = v; }},
      {"background", w::kBackgrounds, [](w::ClipSpec& s, int v) { s.background = v; }},
  };
  for (const auto& a : kAttributes) {
    if (attribute != a.name) continue;
    std::vector<w::ClipSpec> out(a.values, spec);
    for (int v = 0; v < a.values; ++v) a.set(out[v], v);
    return out;
  }
  return SwapAttribute(spec, attribute).status();  // the unknown-attribute error
}

torch::Tensor BayesPosteriorMean(const torch::Tensor& x_s, double sigma, const torch::Tensor& candidates,
                                 const torch::Tensor& log_prior) {
  auto c = candidates.to(torch::kFloat64);
  auto log_w = log_prior.to(torch::kFloat64) -
               (x_s.to(torch::kFloat64).unsqueeze(0) - (1 - sigma) * c).pow(2).sum(1) / (2 * sigma * sigma);
  return (torch::softmax(log_w, 0).unsqueeze(1) * c).sum(0);
}

absl::StatusOr<PromptProbe> ProbePromptFollowing(models::VelocityModel& model, models::PromptEncoder& encoder,
                                                 const std::vector<w::ClipSpec>& specs, const ProbeConfig& c) {
  DGRPO_RETURN_IF_ERROR(ValidateProbeConfig(c));
  if (specs.empty()) return absl::InvalidArgumentError("probe: no prompt specs to draw clips from");
  torch::NoGradGuard no_grad;
  PromptProbe probe;
  probe.sigmas = c.sigmas;
  probe.loss_true.assign(c.sigmas.size(), 0.0);
  probe.bayes_true.assign(c.sigmas.size(), 0.0);
  const auto& attributes = ProbeAttributes();
  for (const auto& a : attributes)
    probe.attributes.push_back({a, std::vector<double>(c.sigmas.size(), 0.0), std::vector<double>(c.sigmas.size(), 0.0)});
  // The world's clips for a set of equally likely specs: candidates [K, D] and their log prior
  // (each spec 1/|specs|, each of its clips 1/K_spec), cached by the specs' ids.
  std::map<std::vector<int64_t>, std::pair<torch::Tensor, torch::Tensor>> support;
  auto support_of = [&](const std::vector<w::ClipSpec>& options) -> const std::pair<torch::Tensor, torch::Tensor>& {
    std::vector<int64_t> key;
    for (const auto& o : options) key.push_back(o.id());
    auto it = support.find(key);
    if (it != support.end()) return it->second;
    std::vector<torch::Tensor> clips, log_prior;
    for (const auto& o : options) {
      auto k = w::EnumerateClips(o).flatten(1);
      log_prior.push_back(torch::full({k.size(0)}, -std::log(static_cast<double>(k.size(0) * options.size())),
                                      torch::kFloat64));
      clips.push_back(std::move(k));
    }
    return support.emplace(key, std::make_pair(torch::cat(clips), torch::cat(log_prior))).first->second;
  };
  // The Bayes-optimal loss of one clip: |x0 - E[x0 | x_s]|^2 / sigma^2, summed over elements.
  auto bayes = [&](const torch::Tensor& x0, const torch::Tensor& xs, double sigma,
                   const std::vector<w::ClipSpec>& options) {
    const auto& [candidates, log_prior] = support_of(options);
    auto mean = BayesPosteriorMean(xs.flatten(), sigma, candidates, log_prior);
    return (x0.flatten().to(torch::kFloat64) - mean).pow(2).sum().item<double>() / (sigma * sigma);
  };

  // Attribute sensitivity on ground-truth clips.
  double elements = 0;
  for (int begin = 0; begin < c.clips; begin += c.micro_batch) {
    const int b = std::min(c.micro_batch, c.clips - begin);
    std::vector<w::ClipSpec> batch;
    std::vector<torch::Tensor> clips, noises;
    for (int i = begin; i < begin + b; ++i) {
      batch.push_back(specs[i % specs.size()]);
      const RandomKey key{c.seed, RandomStream::kProbe, -1, i, -1, -1};
      clips.push_back(w::Render(batch.back(), KeyedSeed(key)));
      noises.push_back(KeyedNormal(key, clips.back().sizes()));
    }
    auto x = torch::stack(clips), noise = torch::stack(noises);
    auto target = noise - x;
    elements += static_cast<double>(x.numel());
    DGRPO_ASSIGN_OR_RETURN(auto cond_true, encoder.Encode(Texts(batch)));
    std::vector<models::Conditioning> cond_swapped;
    for (const auto& a : attributes) {
      std::vector<w::ClipSpec> swapped;
      for (const auto& s : batch) {
        DGRPO_ASSIGN_OR_RETURN(auto t, SwapAttribute(s, a));
        swapped.push_back(t);
      }
      DGRPO_ASSIGN_OR_RETURN(auto cond, encoder.Encode(Texts(swapped)));
      cond_swapped.push_back(std::move(cond));
    }
    for (size_t k = 0; k < c.sigmas.size(); ++k) {
      const double s = c.sigmas[k];
      auto xs = (1 - s) * x + s * noise;
      probe.loss_true[k] += SquaredError(model, xs, s, cond_true, target);
      for (size_t a = 0; a < attributes.size(); ++a)
        probe.attributes[a].loss_swapped[k] += SquaredError(model, xs, s, cond_swapped[a], target);
      for (int i = 0; i < b; ++i) {
        probe.bayes_true[k] += bayes(x[i], xs[i], s, {batch[i]});
        for (size_t a = 0; a < attributes.size(); ++a) {
          DGRPO_ASSIGN_OR_RETURN(auto options, AttributeVariants(batch[i], attributes[a]));
          probe.attributes[a].bayes_unknown[k] += bayes(x[i], xs[i], s, options);
        }
      }
    }
  }
  for (auto* losses : {&probe.loss_true, &probe.bayes_true})
    for (auto& l : *losses) l /= elements;
  for (auto& a : probe.attributes) {
    for (auto& l : a.loss_swapped) l /= elements;
    for (auto& l : a.bayes_unknown) l /= elements;
  }

  // Motion direction of generated clips (the evaluation sampler, one clip per prompt).
  std::vector<rewards::Prompt> prompts;
  std::vector<w::ClipSpec> asked;
  for (int i = 0; i < c.samples; ++i) {
    asked.push_back(specs[i % specs.size()]);
    prompts.push_back({i, w::PromptText(asked.back())});
  }
  DGRPO_ASSIGN_OR_RETURN(auto motion, rewards::MakeReward("motion"));
  EvalConfig ec;
  ec.seed = c.seed;
  ec.samples_per_prompt = 1;
  ec.steps = c.steps;
  ec.shift = 1.0;
  ec.sde.eta = c.eta;
  ec.micro_batch = c.micro_batch;
  ec.latent_shape = w::ClipShape();
  DGRPO_ASSIGN_OR_RETURN(auto generated, EvaluatePolicy(model, encoder, prompts, {{motion, 1.0}}, ec));
  std::vector<std::vector<double>> by_direction;
  for (int d = 0; d < w::kMotions; ++d) {
    std::vector<rewards::Prompt> as_d;
    for (int i = 0; i < c.samples; ++i) {
      auto s = asked[i];
      s.motion = static_cast<w::Motion>(d);
      as_d.push_back({i, w::PromptText(s)});
    }
    DGRPO_ASSIGN_OR_RETURN(auto scores, motion->Score(generated.clips, as_d));
    by_direction.push_back(std::move(scores));
  }
  constexpr double kMoves = 2.0 / 3.0;
  auto& st = probe.direction;
  for (int i = 0; i < c.samples; ++i) {
    const double a = by_direction[static_cast<int>(asked[i].motion)][i];
    double best = 0;
    for (int d = 0; d < w::kMotions; ++d) best = std::max(best, by_direction[d][i]);
    st.asked += a / c.samples;
    st.best += best / c.samples;
    st.moves += (best >= kMoves) / static_cast<double>(c.samples);
    st.moves_asked += (a >= kMoves) / static_cast<double>(c.samples);
  }
  return probe;
}

namespace {
// " a / b (+x%) |"; no percentage where both losses are below what the table prints.
std::string Cell(double a, double b) {
  if (a < 5e-5 && b < 5e-5) return absl::StrFormat(" %.4f / %.4f |", a, b);
  return absl::StrFormat(" %.4f / %.4f (%+.1f%%) |", a, b, 100.0 * (b / a - 1.0));
}
}  // namespace

std::string FormatPromptProbe(const PromptProbe& p) {
  // One row per attribute, one " a / b (gap) |" cell per sigma.
  auto table = [&](const std::string& corner, const std::string& before, const std::string& after,
                   const std::vector<double>& a, std::vector<double> AttributeSensitivity::*b) {
    std::string t = "| " + corner + " |";
    for (double s : p.sigmas) absl::StrAppend(&t, " ", before, absl::StrFormat("%.2f", s), after, " |");
    t += "\n|---|";
    for (size_t k = 0; k < p.sigmas.size(); ++k) t += "---|";
    t += "\n";
    for (const auto& row : p.attributes) {
      absl::StrAppend(&t, "| ", row.attribute, " |");
      for (size_t k = 0; k < p.sigmas.size(); ++k) t += Cell(a[k], (row.*b)[k]);
      t += "\n";
    }
    return t;
  };
  std::string out = table("attribute swapped", "loss at s=", ": true / swapped", p.loss_true,
                          &AttributeSensitivity::loss_swapped);
  out += "\nBayes-optimal loss (the exact posterior mean over the world's clips): full prompt / without the word\n";
  out += table("word unknown", "s=", "", p.bayes_true, &AttributeSensitivity::bayes_unknown);
  const auto& d = p.direction;
  absl::StrAppend(&out, absl::StrFormat("\ngenerated clips: motion score in the asked direction %.3f, best over the four "
                                        "directions %.3f; moving (>= 2/3 of the travel) in some direction %.0f%%, in "
                                        "the asked one %.0f%%\n",
                                        d.asked, d.best, 100 * d.moves, 100 * d.moves_asked));
  return out;
}

}  // namespace dancegrpo
