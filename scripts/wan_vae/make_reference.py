#!/usr/bin/python3
"""Reference outputs of Wan2.1's own VAE decoder, for //models/vae:wan_vae_test.

Runs Wan2.1's `wan/modules/vae.py` (fetched from github.com/Wan-Video/Wan2.1, not copied here)
under Debian's python3-torch 1.13 and writes, in the --out folder:
  wan_vae.pth              the decoder's parameters under Wan's own names, saved by torch.save as
                           Wan2.1_VAE.pth is (random, every one non-zero, the attention's
                           zero-initialised projection included), plus conv1.* (the encoder
                           side's quant conv) as a real file has it
  diffusers/config.json, diffusers/diffusion_pytorch_model.safetensors
                           the same weights under diffusers' AutoencoderKLWan names (the renaming
                           written here from diffusers' module tree, independently of the C++ one)
  reference.h5 with
  /config/<key>            dim, z_dim, dim_mult, num_res_blocks, temperal_downsample,
                           latents_mean, latents_std (datasets)
  /cases/<k>/latents       normalised latents [B, z_dim, F, H, W] (what the DiT produces)
  /cases/<k>/video         WanVAE_.decode(latents, [mean, 1/std]) in float32, not clamped
  /layout_names, /layout_shapes   every decoder tensor of the real Wan2.1 VAE (dim 96,
                           z_dim 16) in vae.py's order, its shape padded with zeros to 5: the
                           names and shapes the loader must expect

torch 1.13 has no F.scaled_dot_product_attention and Debian has no einops, so both are supplied
here before vae.py is imported: attention written out (softmax(q k^T / sqrt(d)) v) and the four
`rearrange` patterns vae.py uses as permute/reshape. Nothing else of vae.py is changed.

  git -C <Wan2.1 clone> show HEAD:wan/modules/vae.py > /tmp/wan_vae.py
  /usr/bin/python3 scripts/wan_vae/make_reference.py --wan_vae_py=/tmp/wan_vae.py \
      --out=tests/fixtures/wan_vae
"""
import argparse
import collections
import importlib.util
import json
import math
import os
import struct
import sys
import types

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def _rearrange(x, pattern, **sizes):
    """The four patterns of vae.py, as permute/reshape."""
    p = " ".join(pattern.split())
    if p == "b c t h w -> (b t) c h w":
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if p in ("(b t) c h w -> b c t h w", "(b t) c h w-> b c t h w"):
        t = sizes["t"]
        bt, c, h, w = x.shape
        return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
    raise NotImplementedError(f"rearrange pattern {pattern!r} is not one vae.py uses")


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    assert attn_mask is None and dropout_p == 0.0 and not is_causal
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.softmax(dim=-1) @ v


def load_wan_vae(path):
    einops = types.ModuleType("einops")
    einops.rearrange = _rearrange
    sys.modules.setdefault("einops", einops)
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa
    spec = importlib.util.spec_from_file_location("wan_vae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise(model, generator):
    """Every parameter random and non-zero, scaled so activations stay O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(fan_in))
            # No exact zeros anywhere (a zero would hide a parameter the loader ignores).
            p.copy_(torch.where(p == 0, torch.full_like(p, 1e-3), p))


def diffusers_name(name, num_res_blocks):
    """Wan2.1's decoder-side name -> diffusers' AutoencoderKLWan name (None: not a decoder tensor)."""
    residual = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight",
                "residual.2.bias": "conv1.bias", "residual.3.gamma": "norm2.gamma",
                "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
                "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}
    if name.startswith("conv2."):
        return "post_quant_conv." + name[len("conv2."):]
    if name.startswith("conv1."):
        return "quant_conv." + name[len("conv1."):]
    parts = name.split(".")
    if parts[0] != "decoder":
        return None
    if parts[1] == "conv1":
        return "decoder.conv_in." + parts[2]
    if parts[1] == "head":
        return {"0": "decoder.norm_out.", "2": "decoder.conv_out."}[parts[2]] + parts[3]
    tail = ".".join(parts[3:])
    if parts[1] == "middle":
        i = int(parts[2])
        if i == 1:
            return "decoder.mid_block.attentions.0." + tail
        return f"decoder.mid_block.resnets.{i // 2}." + residual[tail]
    if parts[1] == "upsamples":
        k = int(parts[2])
        per_block = num_res_blocks + 2  # the resnets, then one resample
        block, j = divmod(k, per_block)
        if j <= num_res_blocks:
            return f"decoder.up_blocks.{block}.resnets.{j}." + residual[tail]
        return f"decoder.up_blocks.{block}.upsamplers.0." + tail
    raise KeyError(name)


def write_safetensors(path, tensors):
    """The safetensors layout, by hand (Debian has no python3-safetensors)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wan_vae_py", required=True, help="Wan2.1's wan/modules/vae.py")
    ap.add_argument("--out", required=True, help="folder for the fixture files")
    ap.add_argument("--dim", type=int, default=4, help="base channels (Wan2.1: 96)")
    ap.add_argument("--z_dim", type=int, default=4, help="latent channels (Wan2.1: 16)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    wan = load_wan_vae(args.wan_vae_py)
    torch.manual_seed(args.seed)
    cfg = dict(dim=args.dim, z_dim=args.z_dim, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
               temperal_downsample=[False, True, True], dropout=0.0)
    model = wan.WanVAE_(**cfg).eval()
    gen = torch.Generator().manual_seed(args.seed)
    randomise(model, gen)
    mean = torch.randn(args.z_dim, generator=gen) * 0.5
    std = 0.5 + torch.rand(args.z_dim, generator=gen) * 2.5
    scale = [mean, 1.0 / std]

    # The real Wan2.1 VAE's decoder layout (names and shapes only).
    real = wan.WanVAE_(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                       temperal_downsample=[False, True, True], dropout=0.0)
    layout = {k: tuple(v.shape) for k, v in real.state_dict().items()
              if k.startswith("decoder.") or k.startswith("conv2.")}
    del real

    os.makedirs(os.path.join(args.out, "diffusers"), exist_ok=True)
    weights = collections.OrderedDict(
        (k, v.clone()) for k, v in model.state_dict().items()
        if k.startswith("decoder.") or k.startswith("conv2.") or k.startswith("conv1."))
    torch.save(weights, os.path.join(args.out, "wan_vae.pth.tmp"))
    os.replace(os.path.join(args.out, "wan_vae.pth.tmp"), os.path.join(args.out, "wan_vae.pth"))
    write_safetensors(os.path.join(args.out, "diffusers", "diffusion_pytorch_model.safetensors"),
                      collections.OrderedDict((diffusers_name(k, cfg["num_res_blocks"]), v) for k, v in weights.items()))
    with open(os.path.join(args.out, "diffusers", "config.json"), "w") as f:
        json.dump({"_class_name": "AutoencoderKLWan", "attn_scales": [], "base_dim": args.dim,
                   "dim_mult": cfg["dim_mult"], "dropout": 0.0, "latents_mean": mean.tolist(),
                   "latents_std": std.tolist(), "num_res_blocks": cfg["num_res_blocks"],
                   "temperal_downsample": cfg["temperal_downsample"], "z_dim": args.z_dim}, f, indent=2)

    cases = [  # (batch, F, H, W): every F the issue names, odd H and W
        (2, 1, 3, 5),
        (2, 2, 5, 3),
        (2, 3, 3, 5),
        (1, 5, 3, 3),
    ]
    path = os.path.join(args.out, "reference.h5")
    with h5py.File(path + ".tmp", "w") as f:
        c = f.create_group("config")
        c.create_dataset("dim", data=np.array([args.dim], dtype=np.int64))
        c.create_dataset("z_dim", data=np.array([args.z_dim], dtype=np.int64))
        c.create_dataset("dim_mult", data=np.array(cfg["dim_mult"], dtype=np.int64))
        c.create_dataset("num_res_blocks", data=np.array([cfg["num_res_blocks"]], dtype=np.int64))
        c.create_dataset("temperal_downsample", data=np.array(cfg["temperal_downsample"], dtype=np.int64))
        c.create_dataset("latents_mean", data=mean.numpy().astype(np.float32))
        c.create_dataset("latents_std", data=std.numpy().astype(np.float32))
        names = list(layout)
        f.create_dataset("layout_names", data=np.array(names, dtype=h5py.string_dtype()))
        shapes = np.zeros((len(names), 5), dtype=np.int64)  # padded with zeros
        for i, k in enumerate(names):
            shapes[i, :len(layout[k])] = layout[k]
        f.create_dataset("layout_shapes", data=shapes)
        cg = f.create_group("cases")
        for i, (b, t, h, wd) in enumerate(cases):
            z = torch.randn(b, args.z_dim, t, h, wd, generator=gen)
            with torch.no_grad():
                video = model.decode(z, scale)
            assert video.shape == (b, 3, 4 * t - 3, 8 * h, 8 * wd), video.shape
            g = cg.create_group(str(i))
            g.create_dataset("latents", data=z.numpy())
            g.create_dataset("video", data=video.numpy())
            print(f"case {i}: latents {tuple(z.shape)} -> video {tuple(video.shape)}, "
                  f"|video| max {video.abs().max():.3f} mean {video.abs().mean():.3f}")
    os.replace(path + ".tmp", path)
    print(f"wrote {args.out}: reference.h5, wan_vae.pth, diffusers/")


if __name__ == "__main__":
    main()
