#!/usr/bin/env python3
"""A plain-PyTorch twin of our VideoDit (models/dit/dit.cc), as llm.c ships train_gpt2.py.

It loads the files `dit_bench --dump=DIR` writes (config.json, weights.safetensors with our
parameter names, io.safetensors with one input and our output) and
  numerics  runs the same forward and prints how far our output is from the twin's;
  bench     times forward and forward+backward the way dit_bench does (same batch, clip and
            threads), printing one line per pass: "twin <pass> <seconds per call>".
It needs PyTorch (Debian: python3-torch, 1.13, the same kernels as our libtorch; on a GPU
machine its PyTorch 2.x). A benchmark, not a test dependency.
  /usr/bin/python3 bench/twin/dit_twin.py numerics --dump=/tmp/small
  /usr/bin/python3 bench/twin/dit_twin.py bench --dump=/tmp/small --threads=1 --seconds=2
"""
import argparse
import json
import math
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


class RmsNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_tables(head_dim, grid):
    c = head_dim // 2
    pairs = [c - 2 * (c // 3), c // 3, c // 3]
    L = grid[0] * grid[1] * grid[2]
    idx = torch.arange(L)
    pos = [idx.div(grid[1] * grid[2], rounding_mode="floor"), idx.div(grid[2], rounding_mode="floor") % grid[1],
           idx % grid[2]]
    angles = []
    for a in range(3):
        axis_dim = 2 * pairs[a]
        freqs = 1.0 / torch.pow(10000.0, torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)
        angles.append(torch.outer(pos[a].double(), freqs))
    theta = torch.cat(angles, 1)
    return torch.cos(theta).float(), torch.sin(theta).float()


def apply_rope(x, cos, sin):
    b, l, h, d = x.shape
    pairs = x.float().reshape(b, l, h, d // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).reshape(b, l, h, d).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim, heads, eps):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RmsNorm(dim, eps), RmsNorm(dim, eps)

    def forward(self, x, context=None, mask=None, rope=None):
        src = x if context is None else context
        b, lq, lk = x.shape[0], x.shape[1], src.shape[1]
        d = x.shape[2] // self.heads
        q = self.norm_q(self.q(x)).view(b, lq, self.heads, d)
        k = self.norm_k(self.k(src)).view(b, lk, self.heads, d)
        v = self.v(src).view(b, lk, self.heads, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        out = torch.matmul(torch.softmax(scores, -1), v)
        return self.o(out.transpose(1, 2).reshape(b, lq, self.heads * d))


def mlp(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.GELU(approximate="tanh"), nn.Linear(h, o))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c["dim"], c["heads"], c["eps"])
        self.cross_attn = Attention(c["dim"], c["heads"], c["eps"])
        self.norm1 = nn.LayerNorm(c["dim"], c["eps"], elementwise_affine=False)
        self.norm2 = nn.LayerNorm(c["dim"], c["eps"], elementwise_affine=False)
        self.norm3 = nn.LayerNorm(c["dim"], c["eps"], elementwise_affine=True)
        self.ffn = mlp(c["dim"], c["ffn_dim"], c["dim"])
        self.modulation = nn.Parameter(torch.zeros(1, 6, c["dim"]))

    def forward(self, x, e0, context, mask, rope):
        e = (self.modulation + e0).chunk(6, 1)
        y = self.self_attn(self.norm1(x) * (1 + e[1]) + e[0], rope=rope)
        x = x + y * e[2]
        x = x + self.cross_attn(self.norm3(x), context, mask)
        y = self.ffn(self.norm2(x) * (1 + e[4]) + e[3])
        return x + y * e[5]


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        p = c["patch"]
        self.norm = nn.LayerNorm(c["dim"], c["eps"], elementwise_affine=False)
        self.head = nn.Linear(c["dim"], c["out_channels"] * p[0] * p[1] * p[2])
        self.modulation = nn.Parameter(torch.zeros(1, 2, c["dim"]))


class VideoDit(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        s, p = c["stem_channels"], c["patch"]
        if s > 0:
            self.stem1 = nn.Conv3d(c["in_channels"], s, 3, padding=1)
            self.stem2 = nn.Conv3d(s, s, 3, padding=1)
        self.patch_embedding = nn.Conv3d(c["in_channels"] + s, c["dim"], p, stride=p)
        self.text_embedding = mlp(c["text_dim"], c["dim"], c["dim"])
        self.time_embedding = nn.Sequential(nn.Linear(c["freq_dim"], c["dim"]), nn.SiLU(), nn.Linear(c["dim"], c["dim"]))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c["dim"], 6 * c["dim"]))
        if c["pooled_dim"] > 0:
            self.pooled_embedding = nn.Linear(c["pooled_dim"], c["dim"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.head = Head(c)

    def forward(self, x, sigma, tokens, token_mask, pooled=None):
        c, p = self.c, self.c["patch"]
        b, _, f, h, w = x.shape
        grid = [-(-f // p[0]), -(-h // p[1]), -(-w // p[2])]
        dtype = self.patch_embedding.weight.dtype
        xp = F.pad(x.to(dtype), (0, grid[2] * p[2] - w, 0, grid[1] * p[1] - h, 0, grid[0] * p[0] - f))
        if c["stem_channels"] > 0:
            xp = torch.cat([xp, F.gelu(self.stem2(F.gelu(self.stem1(xp))))], 1)
        t = self.patch_embedding(xp).flatten(2).transpose(1, 2)
        half = c["freq_dim"] // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        args = (sigma * 1000.0).float()[:, None] * freqs[None, :]
        e = self.time_embedding(torch.cat([torch.cos(args), torch.sin(args)], 1).to(dtype))
        if c["pooled_dim"] > 0:
            e = e + self.pooled_embedding(pooled.to(e.dtype))
        e0 = self.time_projection(e).view(b, 6, c["dim"])
        text, mask = tokens, None
        if c["pad_text_to_len"]:
            text = text * token_mask.to(text.dtype)[..., None]
            text = F.pad(text, (0, 0, 0, c["text_len"] - text.shape[1]))
        else:
            mask = token_mask.bool()
        context = self.text_embedding(text.to(dtype))
        rope = rope_tables(c["dim"] // c["heads"], grid)
        for block in self.blocks:
            t = block(t, e0, context, mask, rope)
        mod = (self.head.modulation + e[:, None, :]).chunk(2, 1)
        out = self.head.head(self.head.norm(t) * (1 + mod[1]) + mod[0])
        o = c["out_channels"]
        out = out.view(b, grid[0], grid[1], grid[2], p[0], p[1], p[2], o).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, o, grid[0] * p[0], grid[1] * p[1], grid[2] * p[2])
        return out[:, :, :f, :h, :w]


def load(dump):
    with open(dump + "/config.json") as f:
        c = json.load(f)
    model = VideoDit(c)
    weights = load_safetensors(dump + "/weights.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        sys.exit(f"dit_twin: the weights do not fit the twin: missing {missing}, unexpected {unexpected}")
    io = load_safetensors(dump + "/io.safetensors")
    return model, io


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["numerics", "bench"])
    ap.add_argument("--dump", required=True, help="the directory dit_bench --dump wrote")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = PyTorch's default")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum measuring time per pass")
    ap.add_argument("--tolerance", type=float, default=1e-5, help="numerics: largest accepted max|ours - twin| / max|twin|")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    model, io = load(a.dump)
    args = (io["x"], io["sigma"], io["tokens"], io["token_mask"], io.get("pooled"))
    if a.mode == "numerics":
        with torch.no_grad():
            v = model(*args)
        ours = io["velocity"]
        diff = (ours - v).abs().max().item()
        rel = diff / max(v.abs().max().item(), 1e-30)
        same = torch.equal(ours, v)
        print(f"numerics: max|ours - twin| = {diff:.3g}, relative {rel:.3g}{' (bit-identical)' if same else ''}")
        sys.exit(0 if rel <= a.tolerance else 1)

    def per_call(fn):
        fn()  # warm-up
        reps, start = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= a.seconds:
                return elapsed / reps

    def forward():
        with torch.no_grad():
            model(*args)

    def forward_backward():
        model.zero_grad()
        model(*args).float().pow(2).mean().backward()

    print(f"twin threads {torch.get_num_threads()} torch {torch.__version__}")
    print(f"twin forward {per_call(forward):.6f}")
    print(f"twin fwd+bwd {per_call(forward_backward):.6f}")


if __name__ == "__main__":
    main()
