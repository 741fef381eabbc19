#!/usr/bin/python3
"""PyTorch eager twin of the native Wan VAE decoder: Wan2.1's own vae.py (fetched, with the
shims of scripts/wan_vae/make_reference.py) decoding random latents with random weights in
Wan2.1's layout, timed, with the decode's peak RSS. bench/vae_bench.sh runs it beside
//bench:vae_bench on the same shapes, threads and kernels (Debian's torch 1.13 = our libtorch).

  /usr/bin/python3 bench/twin/wan_vae_twin.py --wan_vae_py=/tmp/wan_vae.py --latents=3,12,12
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "wan_vae"))
from make_reference import load_wan_vae, randomise  # noqa: E402


def rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wan_vae_py", required=True)
    ap.add_argument("--latents", default="3,12,12", help="F,H,W")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    f, h, w = (int(v) for v in args.latents.split(","))
    wan = load_wan_vae(args.wan_vae_py)
    torch.set_grad_enabled(False)
    base = rss_kb("VmRSS")
    model = wan.WanVAE_(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                        temperal_downsample=[False, True, True], dropout=0.0).eval()
    model.encoder = torch.nn.Module()  # the decoder side only, as the trainer holds it
    randomise(model, torch.Generator().manual_seed(1))
    mean, std = torch.zeros(16), torch.ones(16)
    z = torch.randn(args.batch, 16, f, h, w)
    seconds = 0.0
    for r in range(args.repeats + (1 if args.repeats > 1 else 0)):
        t0 = time.perf_counter()
        out = model.decode(z, [mean, 1.0 / std]).clamp(-1, 1)
        if r > 0 or args.repeats == 1:
            seconds += time.perf_counter() - t0
    seconds /= args.repeats
    peak = (rss_kb("VmHWM") - base) * 1024
    print(f"twin latents {f}x{h}x{w} batch {args.batch} fp32: {seconds:.2f} s/decode, decode RSS {peak / 1e6:.0f} MB, "
          f"threads {torch.get_num_threads()}, video {tuple(out.shape)}")


if __name__ == "__main__":
    main()
