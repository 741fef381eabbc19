#!/usr/bin/env python3
"""Step 1 of the README's "Train your own model", runnable end to end on a toy scale.

Writes, for the prompts of a prompt file, what `train` reads besides the DiT:
  <out>/embeddings.h5   text embeddings keyed by prompt (h5py; /prompts, /tokens, /lengths)
  <out>/decoder.pt      a torch.jit.script decoder: latents [B, C, F, H, W] -> RGB [B, 3, F, 2H, 2W]
  <out>/reward.pt       a torch.jit.script reward: forward(videos, prompts: List[str]) -> [B]
Here a word-embedding table stands in for the text encoder (umT5 for Wan: docs/hdf5_schema.md
has that snippet), a 1x1x1 convolution for the VAE decoder and a colour score for HPS/CLIP.

  python3 scripts/prepare_inputs_example.py --prompts runs/fixtures/prompts.txt \
      --extra runs/fixtures/heldout.jsonl --text_dim 32 --latent_channels 4 --out runs/py_inputs
Needs torch and h5py (Debian: python3-torch python3-h5py); not used by the build or the tests.
"""
import argparse
import json
import os
from typing import List

import h5py
import numpy as np
import torch


def read_prompts(path):
    with open(path, encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            return [json.loads(l)["prompt"] for l in f if l.strip()]
        return [l.strip() for l in f if l.strip()]


class Decoder(torch.nn.Module):
    def __init__(self, latent_channels: int):
        super().__init__()
        self.proj = torch.nn.Conv3d(latent_channels, 3, kernel_size=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.proj(latents)
        x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        return torch.tanh(x)


class ColourReward(torch.nn.Module):
    def forward(self, videos: torch.Tensor, prompts: List[str]) -> torch.Tensor:
        red = videos[:, 0].mean(dim=[1, 2, 3])
        blue = videos[:, 2].mean(dim=[1, 2, 3])
        return torch.stack([red[i] - blue[i] if "red" in p else blue[i] - red[i] for i, p in enumerate(prompts)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--extra", action="append", default=[], help="more prompt files (e.g. held-out)")
    ap.add_argument("--text_dim", type=int, default=4096)
    ap.add_argument("--latent_channels", type=int, default=16)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)

    prompts = read_prompts(a.prompts)
    for extra in a.extra:
        prompts += [p for p in read_prompts(extra) if p not in prompts]
    prompts.append("")  # the empty prompt, for classifier-free guidance
    words = sorted({w for p in prompts for w in p.split()})
    table = torch.randn(len(words) + 1, a.text_dim)  # row 0: the empty prompt's one token
    ids = [[words.index(w) + 1 for w in p.split()] or [0] for p in prompts]
    lengths = np.array([len(t) for t in ids], dtype=np.int64)
    tokens = np.zeros((len(prompts), lengths.max(), a.text_dim), dtype=np.float32)
    for i, t in enumerate(ids):
        tokens[i, : len(t)] = table[t].numpy()
    with h5py.File(os.path.join(a.out, "embeddings.h5"), "w") as f:
        f.create_dataset("prompts", data=np.array(prompts, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("tokens", data=tokens)
        f.create_dataset("lengths", data=lengths)

    torch.jit.script(Decoder(a.latent_channels)).save(os.path.join(a.out, "decoder.pt"))
    torch.jit.script(ColourReward()).save(os.path.join(a.out, "reward.pt"))
    print(f"wrote {a.out}/embeddings.h5 ({len(prompts)} prompts, width {a.text_dim}), decoder.pt, reward.pt")


if __name__ == "__main__":
    main()
