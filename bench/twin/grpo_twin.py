#!/usr/bin/env python3
"""A whole GRPO iteration of the shapes demo (configs/shapes.flags) in plain PyTorch: the twin
that `train` is timed against (bench/twin/grpo_compare.sh).

One iteration, as dancegrpo/trainer.cc does it: 8 prompts x 8 samples sharing their initial
noise, split over the ranks; a rollout of 10 rectified-flow steps in micro-batches of 8, where a
window of 5 consecutive steps (its first step drawn per iteration) takes DanceGRPO's SDE and
records log-probabilities and the rest take the ODE; the rewards alignment:1, motion_quality:0.2
and jpeg:0.1 as tensor code; per-group advantages; then the clipped-ratio update on every window
step of every sample, one AdamW step (gradient norm clipped to 1) with the gradients averaged
over the ranks. The model is bench/twin/dit_twin.py's VideoDit, loaded from the files
world/tools/shapes_inputs writes (a Wan-format config.json and safetensors, the text
embeddings), so it starts from the same weights as the demo.

What differs from train, on purpose: the noise comes from torch generators (not our keyed
Philox streams; the bits differ, the work does not); the JPEG reward is a tensor stand-in (8x8
DCTs of the 4x-upsampled frames in YCbCr with quality-90 tables, the bytes estimated from the
non-zero coefficients): libjpeg is not a PyTorch op, and the reward is ~1% of the iteration;
the twin writes no trajectories, checkpoints or pictures (train writes its trajectory shards
inside the timed iteration, as the demo asks).

Modes:
  bench      runs ITERATIONS iterations and prints one line per iteration:
             "twin iteration <i> seconds <s> rollout <s> reward <s> update <s> alignment <mean>".
             Under mpirun (Open MPI's environment) the ranks share the batch through
             torch.distributed's gloo backend, as train's ranks do through MPI.
  numerics   reads a trajectory shard that `train --save_trajectories --trajectory_latents=all`
             wrote at iteration 0 (the base weights) and checks that the twin's log-probabilities of
             the recorded steps and its alignment and motion_quality rewards of the final clips match
             train's: the twin runs the same job.
Needs PyTorch and h5py (Debian: python3-torch, python3-h5py). A benchmark, not a test dependency.
  /usr/bin/python3 bench/twin/grpo_twin.py bench --inputs=runs/shapes_inputs --iterations=12 --threads=1
  mpirun -np 2 /usr/bin/python3 bench/twin/grpo_twin.py bench --inputs=runs/shapes_inputs --threads=1
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_twin  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The model: a Wan-format config.json (what train reads) into the twin's config.


def load_model(inputs):
    with open(os.path.join(inputs, "config.json")) as f:
        w = json.load(f)
    c = {
        "dim": w["dim"], "ffn_dim": w["ffn_dim"], "freq_dim": w["freq_dim"], "heads": w["num_heads"],
        "layers": w["num_layers"], "in_channels": w["in_dim"], "out_channels": w["out_dim"],
        "patch": w["patch_size"], "eps": w["eps"], "text_dim": w["text_dim"], "text_len": w.get("text_len", 0),
        "pad_text_to_len": w.get("text_attention", "pad") == "pad" and w.get("text_len", 0) > 0,
        "stem_channels": w.get("stem_channels", 0), "pooled_dim": w.get("pooled_dim", 0),
    }
    model = dit_twin.VideoDit(c)
    weights = dit_twin.load_safetensors(os.path.join(inputs, "dit.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        sys.exit(f"grpo_twin: the weights do not fit the twin: missing {missing}, unexpected {unexpected}")
    return model


class TextTable:
    """The embeddings file, in memory: prompt -> (tokens, mask, pooled)."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            names = [p.decode() if isinstance(p, bytes) else p for p in f["prompts"][()]]
            self.tokens = torch.from_numpy(f["tokens"][()])
            self.mask = torch.from_numpy(f["token_mask"][()]).bool()
            self.pooled = torch.from_numpy(f["pooled"][()]) if "pooled" in f else None
        self.row = {p: i for i, p in enumerate(names)}

    def rows(self, prompts):
        idx = torch.tensor([self.row[p] for p in prompts])
        pooled = self.pooled[idx] if self.pooled is not None else None
        return self.tokens[idx], self.mask[idx], pooled


# ---------------------------------------------------------------------------------------------
# Rewards, as tensor code (rewards/video_rewards.cc).

COUNTS, COLOURS = ["one", "two"], ["red", "green", "blue", "yellow"]
MOTIONS, BACKGROUNDS = ["left", "right", "up", "down"], ["black", "white"]
PALETTE = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]], dtype=torch.float32)
BACKGROUND_RGB = torch.tensor([[-1, -1, -1], [1, 1, 1]], dtype=torch.float32)
DIRECTION = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=torch.float32)


def parse_prompts(prompts):
    """[B, 4] long: count, colour, motion, background."""
    rows = []
    for p in prompts:
        w = p.split()
        rows.append([COUNTS.index(w[0]) + 1, COLOURS.index(w[1]), MOTIONS.index(w[4]), BACKGROUNDS.index(w[7])])
    return torch.tensor(rows)


def components_per_frame(fg):
    """fg [N, H, W] bool -> the number of 4-connected components of at least 2 pixels, [N]."""
    n, h, w = fg.shape
    index = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w).expand(n, h, w)
    labels = torch.where(fg, index, torch.zeros(()))
    while True:  # every pixel takes its component's largest index
        p = torch.nn.functional.pad(labels, (1, 1, 1, 1))
        grown = torch.stack([labels, p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]]).amax(0)
        grown = torch.where(fg, grown, torch.zeros(()))
        if torch.equal(grown, labels):
            break
        labels = grown
    flat = labels.view(n, -1)
    roots = fg.view(n, -1) & (flat == index.reshape(n, -1))
    sizes = (flat.unsqueeze(1) == index.reshape(n, -1).unsqueeze(2)).sum(2)  # [N, HW]: pixels per label
    return (roots & (sizes >= 2)).sum(1)


def alignment(clips, spec):
    """The mean of colour, count and motion (rewards/video_rewards.cc), [B] float64."""
    b, _, f, h, w = clips.shape
    clips = clips.float()
    bg = BACKGROUND_RGB[spec[:, 3]].view(b, 3, 1, 1, 1)
    fg = (clips - bg).pow(2).sum(1) > 1.0  # [B, F, H, W]
    d = (clips.unsqueeze(1) - PALETTE.view(1, 4, 3, 1, 1, 1)).pow(2).sum(2)  # [B, 4, F, H, W]
    nearest = d.argmin(1)
    total = fg.sum((1, 2, 3))
    matched = (fg & (nearest == spec[:, 1].view(b, 1, 1, 1))).sum((1, 2, 3))
    colour = torch.where(total > 0, matched.double() / total.clamp(min=1), torch.zeros((), dtype=torch.float64))
    objects = components_per_frame(fg.view(b * f, h, w)).view(b, f)
    count = (objects == spec[:, 0].view(b, 1)).double().mean(1)
    area = fg.sum((2, 3)).double()  # [B, F]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    cx = (fg * xs).sum((2, 3)) / area.clamp(min=1)
    cy = (fg * ys).sum((2, 3)) / area.clamp(min=1)
    dirs = DIRECTION[spec[:, 2]].double()
    along = (cx[:, -1] - cx[:, 0]) * dirs[:, 0] + (cy[:, -1] - cy[:, 0]) * dirs[:, 1]
    motion = (along / (f - 1)).clamp(0, 1)
    motion = torch.where((area[:, 0] > 0) & (area[:, -1] > 0), motion, torch.zeros((), dtype=torch.float64))
    return (colour + count + motion) / 3


def motion_quality(clips):
    clip = clips.float().clamp(-1, 1)  # [B, C, F, H, W]
    smooth = 1.0 - (clip[:, :, 1:] - clip[:, :, :-1]).abs().mean((1, 2, 3, 4)).double() / 2.0
    median = clip.flatten(3).median(3).values[..., None, None]  # [B, C, F, 1, 1]
    area = ((clip - median).pow(2).sum(1) > 1.0).float().sum((2, 3))  # [B, F]
    mean = area.mean(1)
    rel_std = torch.where(mean > 0, area.std(1) / mean.clamp(min=1e-30), torch.zeros(()))
    return smooth / (1.0 + rel_std.double())


def _dct_matrix():
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.float()


DCT = _dct_matrix()
LUMA_Q = torch.tensor([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                       14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                       92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
                      dtype=torch.float32).view(8, 8)
CHROMA_Q = torch.full((8, 8), 99.0)
CHROMA_Q[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                                dtype=torch.float32)


def jpeg_proxy(clips):
    """1 - estimated bytes / raw bytes per frame (a stand-in for libjpeg at quality 90)."""
    scale = 0.2  # quality 90: the tables at 2 - 0.02 * 90
    x = ((clips.float().clamp(-1, 1) + 1) * 127.5).round()
    x = x.repeat_interleave(4, 3).repeat_interleave(4, 4)  # [B, 3, F, 4H, 4W]
    r, g, bl = x[:, 0], x[:, 1], x[:, 2]
    ycc = [0.299 * r + 0.587 * g + 0.114 * bl - 128, -0.168736 * r - 0.331264 * g + 0.5 * bl,
           0.5 * r - 0.418688 * g - 0.081312 * bl]
    nonzero = 0
    for ch, plane in enumerate(ycc):
        if ch > 0:  # 4:2:0
            plane = torch.nn.functional.avg_pool2d(plane, 2)
        b, f, h, w = plane.shape
        ph, pw = -h % 8, -w % 8
        plane = torch.nn.functional.pad(plane, (0, pw, 0, ph), mode="replicate")
        blocks = plane.unfold(2, 8, 8).unfold(3, 8, 8)  # [B, F, h/8, w/8, 8, 8]
        coef = DCT @ blocks @ DCT.T
        q = (LUMA_Q if ch == 0 else CHROMA_Q) * scale
        nonzero = nonzero + (torch.round(coef / q.clamp(min=1)) != 0).sum((2, 3, 4, 5))
    raw = x.shape[3] * x.shape[4] * 3
    estimated = 600 + 1.5 * nonzero.double()  # headers and tables, ~12 bits a coefficient
    return (1.0 - estimated / raw).mean(1)


REWARDS = {"alignment": lambda c, s: alignment(c, s), "motion_quality": lambda c, s: motion_quality(c),
           "jpeg": lambda c, s: jpeg_proxy(c)}


# ---------------------------------------------------------------------------------------------
# The SDE (dancegrpo/sde.cc) and the iteration.

LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def sde_step(x, v, sigma, sigma_next, eta, noise=None, given_next=None):
    s = sigma.view(-1, 1, 1, 1, 1)
    sn = sigma_next.view(-1, 1, 1, 1, 1)
    d = sn - s
    x0 = x - s * v
    score = -(x - (1.0 - s) * x0) / s.pow(2)
    mean = x + d * v + (-0.5 * eta * eta * score) * d
    std = eta * torch.sqrt(s - sn)
    nxt = given_next if given_next is not None else (mean + std * noise).detach()
    lp = -(nxt - mean).pow(2) / (2.0 * std.pow(2)) - torch.log(std) - LOG_SQRT_2PI
    return nxt, lp.mean((1, 2, 3, 4)), x0


def sigma_schedule(steps, shift):
    t = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return (shift * t / (1 + (shift - 1) * t)).tolist()


class Twin:
    def __init__(self, a):
        self.a = a
        self.model = load_model(a.inputs)
        self.text = TextTable(os.path.join(a.inputs, "embeddings.h5"))
        with open(os.path.join(a.inputs, "train.jsonl")) as f:
            self.prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
        self.sigmas = sigma_schedule(a.steps, a.shift)
        self.rewards = []
        for item in a.rewards.split(","):
            name, _, weight = item.partition(":")
            self.rewards.append((name, float(weight or 1)))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=1e-4)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        total = a.prompts_per_iteration * a.group_size
        if total % self.world:
            sys.exit(f"grpo_twin: {total} samples do not split over {self.world} ranks")
        self.per_rank = total // self.world

    def iteration(self, it):
        a, g = self.a, self.a.group_size
        gen = torch.Generator().manual_seed(a.seed * 1_000_003 + it)
        prompt_ids = torch.randperm(len(self.prompts), generator=gen)[:a.prompts_per_iteration].tolist()
        window = int(torch.randint(0, a.steps - a.sde_window_size, (1,), generator=gen))
        stochastic = set(range(window, window + a.sde_window_size))
        first = self.rank * self.per_rank
        samples = list(range(first, first + self.per_rank))
        texts = [self.prompts[prompt_ids[s // g]] for s in samples]
        tokens, mask, pooled = self.text.rows(texts)
        init = torch.randn((a.prompts_per_iteration,) + tuple(a.latent_shape), generator=gen)
        n = len(samples)

        # Rollout (no grad): latents [n, T+1, ...], log-probs [n, T].
        t0 = time.perf_counter()
        latents = torch.empty((n, a.steps + 1) + tuple(a.latent_shape))
        log_probs = torch.zeros(n, a.steps)
        final = torch.empty((n,) + tuple(a.latent_shape))
        with torch.no_grad():
            for b0 in range(0, n, a.micro_batch):
                rows = slice(b0, min(n, b0 + a.micro_batch))
                b = rows.stop - rows.start
                x = init[[samples[i] // g for i in range(rows.start, rows.stop)]]
                latents[rows, 0] = x
                for i in range(a.steps):
                    sigma = torch.full((b,), self.sigmas[i])
                    sigma_next = torch.full((b,), self.sigmas[i + 1])
                    pooled_rows = pooled[rows] if pooled is not None else None
                    v = self.model(x, sigma, tokens[rows], mask[rows], pooled_rows).float()
                    if i in stochastic:
                        noise = torch.randn(x.shape, generator=gen)
                        x, lp, x0 = sde_step(x, v, sigma, sigma_next, a.eta, noise=noise)
                        log_probs[rows, i] = lp
                    else:
                        x0 = x - sigma.view(-1, 1, 1, 1, 1) * v
                        x = x + (sigma_next - sigma).view(-1, 1, 1, 1, 1) * v
                    latents[rows, i + 1] = x
                final[rows] = x0
        t1 = time.perf_counter()

        # Rewards and per-group advantages (the groups lie within a rank here, as in the demo).
        spec = parse_prompts(texts)
        adv = torch.zeros(n, dtype=torch.float64)
        means = []
        for name, weight in self.rewards:
            r = REWARDS[name](final, spec)
            means.append(r.mean().item())
            grouped = r.view(-1, g)
            adv += (weight * (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-8)).view(-1)
        adv = adv.clamp(-5, 5).float()
        t2 = time.perf_counter()

        # The clipped update over every window step of every sample, one AdamW step.
        trained = sorted(stochastic)
        norm = 1.0 / (self.per_rank * self.world * len(trained))
        self.opt.zero_grad()
        for b0 in range(0, n, a.micro_batch):
            rows = torch.arange(b0, min(n, b0 + a.micro_batch))
            order = [torch.randperm(len(trained), generator=gen).tolist() for _ in rows]
            pooled_rows = pooled[rows] if pooled is not None else None
            for k in range(len(trained)):
                t = torch.tensor([trained[o[k]] for o in order])
                x, x_next = latents[rows, t], latents[rows, t + 1]
                sigma = torch.tensor(self.sigmas, dtype=torch.float32)[t]
                sigma_next = torch.tensor(self.sigmas, dtype=torch.float32)[t + 1]
                v = self.model(x, sigma, tokens[rows], mask[rows], pooled_rows).float()
                _, lp, _ = sde_step(x, v, sigma, sigma_next, a.eta, given_next=x_next)
                ratio = torch.exp(lp - log_probs[rows, t])
                unclipped = -adv[rows] * ratio
                clipped = -adv[rows] * torch.clamp(ratio, 1 - a.clip_range, 1 + a.clip_range)
                (torch.max(unclipped, clipped).sum() * norm).backward()
        if self.world > 1:  # one flat all-reduce, as a bucketed DDP would
            grads = [p.grad for p in self.model.parameters()]
            flat = torch.cat([gr.reshape(-1) for gr in grads])
            dist.all_reduce(flat)
            offset = 0
            for gr in grads:
                gr.copy_(flat[offset:offset + gr.numel()].view_as(gr))
                offset += gr.numel()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.max_grad_norm)
        self.opt.step()
        t3 = time.perf_counter()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2, means[0]


def numerics(a):
    """The twin's log-probs and rule rewards of a trajectory shard train wrote at iteration 0."""
    model = load_model(a.inputs)
    text = TextTable(os.path.join(a.inputs, "embeddings.h5"))
    with h5py.File(a.trajectories, "r") as f:
        group = f[sorted(k for k in f.keys() if k.startswith("iteration_"))[0]]
        if group.attrs["iteration"] != 0:
            sys.exit("grpo_twin numerics: needs the shard of iteration 0 (the base weights)")
        index = torch.from_numpy(group["latent_index"][()])
        if not bool((index[0] == torch.arange(index.shape[1])).all()):
            sys.exit("grpo_twin numerics: needs --trajectory_latents=all")
        latents = torch.from_numpy(group["latents"][()])
        log_probs = torch.from_numpy(group["log_probs"][()])
        sigmas = torch.from_numpy(group["sigmas"][()]).float()
        names = [s.decode() if isinstance(s, bytes) else s for s in group["reward_names"][()]]
        rewards = torch.from_numpy(group["rewards"][()])
        texts = [s.decode() if isinstance(s, bytes) else s for s in group["prompt_texts"][()]]
    tokens, mask, pooled = text.rows(texts)
    steps = log_probs.shape[1]
    worst_lp = 0.0
    with torch.no_grad():
        for i in range(steps):
            if not bool((log_probs[:, i] != 0).any()):
                continue  # an ODE step: nothing recorded
            n = latents.shape[0]
            v = model(latents[:, i], sigmas[i].expand(n), tokens, mask, pooled).float()
            _, lp, _ = sde_step(latents[:, i], v, sigmas[i].expand(n), sigmas[i + 1].expand(n), a.eta,
                                given_next=latents[:, i + 1])
            worst_lp = max(worst_lp, ((lp - log_probs[:, i]).abs() / log_probs[:, i].abs().clamp(min=1e-6)).max().item())
    final = latents[:, steps]
    spec = parse_prompts(texts)
    ok = worst_lp <= a.tolerance
    print(f"numerics: log-probs of {latents.shape[0]} samples' SDE steps: max relative |train - twin| = {worst_lp:.3g}")
    for k, name in enumerate(names):
        if name not in ("alignment", "motion_quality"):
            twin = REWARDS[name](final, spec) if name in REWARDS else None
            if twin is not None:
                corr = torch.corrcoef(torch.stack([twin, rewards[k]]))[0, 1].item()
                print(f"numerics: {name}: the twin's stand-in, correlation with train's {corr:.3f} (not checked)")
            continue
        diff = (REWARDS[name](final, spec) - rewards[k]).abs().max().item()
        print(f"numerics: {name}: max |train - twin| = {diff:.3g}")
        ok = ok and diff <= 1e-5
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bench", "numerics"])
    ap.add_argument("--inputs", default="runs/shapes_inputs", help="what world/tools/shapes_inputs wrote")
    ap.add_argument("--trajectories", help="numerics: a shard train wrote (rank-00000/seg-000000.h5)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = PyTorch's default")
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latent_shape", default="3,4,10,10")
    ap.add_argument("--rewards", default="alignment:1,motion_quality:0.2,jpeg:0.1")
    ap.add_argument("--prompts_per_iteration", type=int, default=8)
    ap.add_argument("--group_size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--shift", type=float, default=1.0)
    ap.add_argument("--eta", type=float, default=0.7)
    ap.add_argument("--sde_window_size", type=int, default=5)
    ap.add_argument("--micro_batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--clip_range", type=float, default=1e-4)
    ap.add_argument("--max_grad_norm", type=float, default=1.0)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="numerics: largest relative log-prob difference")
    a = ap.parse_args()
    a.latent_shape = [int(s) for s in a.latent_shape.split(",")]
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.mode == "numerics":
        if not a.trajectories:
            sys.exit("grpo_twin numerics: give --trajectories=<a shard of iteration 0>")
        numerics(a)
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + os.environ.get("TWIN_PORT", "29517"),
                                rank=int(os.environ["OMPI_COMM_WORLD_RANK"]), world_size=world)
    twin = Twin(a)
    if twin.rank == 0:
        print(f"twin threads {torch.get_num_threads()} ranks {twin.world} torch {torch.__version__}", flush=True)
    for it in range(a.iterations):
        total, rollout, reward, update, align = twin.iteration(it)
        if twin.rank == 0:
            print(f"twin iteration {it} seconds {total:.4f} rollout {rollout:.4f} reward {reward:.4f} "
                  f"update {update:.4f} alignment {align:.4f}", flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
