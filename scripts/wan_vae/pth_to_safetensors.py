#!/usr/bin/python3
"""Converts Wan2.1's VAE checkpoint (Wan2.1_VAE.pth, a torch.save'd state dict) to .safetensors,
which `--decoder=wan-vae:FILE` reads. libtorch cannot read the .pth itself (its unpickler refuses
the OrderedDict a state dict is), so this one step runs in Python; it needs only Debian's
python3-torch (no safetensors package: the format is written here).

  /usr/bin/python3 scripts/wan_vae/pth_to_safetensors.py Wan2.1_VAE.pth Wan2.1_VAE.safetensors

Names are kept as they are (Wan's own: decoder.conv1, decoder.upsamples.N..., conv2); tensors
keep their dtype (F32, BF16 or F16). --decoder_only drops the encoder (about half the file).
The output is written to a temporary file, then renamed.
"""
import argparse
import collections
import json
import os
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: the same 2 bytes through int16
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", help="Wan2.1_VAE.pth")
    ap.add_argument("out", help="where to write the .safetensors file")
    ap.add_argument("--decoder_only", action="store_true", help="keep conv2.* and decoder.* only")
    args = ap.parse_args()

    state = torch.load(args.pth, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        sys.exit(f"{args.pth}: not a state dict (a mapping of names to tensors); is it Wan2.1_VAE.pth?")
    if "decoder.conv1.weight" not in state:
        sys.exit(f"{args.pth}: has no decoder.conv1.weight, so it is not a Wan2.1 VAE state dict "
                 f"(first names: {', '.join(list(state)[:5])})")
    header, blobs, offset = collections.OrderedDict(), [], 0
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            sys.exit(f"{args.pth}: '{name}' is a {type(t).__name__}, not a tensor")
        if args.decoder_only and not (name.startswith("decoder.") or name.startswith("conv2.")):
            continue
        if t.dtype not in DTYPES:
            sys.exit(f"{args.pth}: '{name}' is {t.dtype}; only float32, bfloat16 and float16 are supported")
        data = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt", "source": os.path.basename(args.pth)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(blobs)} tensors, {offset / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
