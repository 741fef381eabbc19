#!/usr/bin/env bash
# scripts/wan_vae/pth_to_safetensors.py on the fixture's Wan-layout .pth gives, byte for byte, the
# .safetensors that //models/vae:wan_vae_test loads and checks against Wan's own decode;
# --decoder_only keeps conv2.* and decoder.* alone; bad input is refused naming the file.
set -uo pipefail
py=/usr/bin/python3; script=scripts/wan_vae/pth_to_safetensors.py; fx=tests/fixtures/wan_vae
out="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }
cp "${fx}/wan_vae.pth" "${out}/wan_vae.pth"  # the same basename: it is recorded in the metadata
"${py}" "${script}" "${out}/wan_vae.pth" "${out}/full.safetensors" || fail "the conversion failed"
cmp "${out}/full.safetensors" "${fx}/wan_vae.safetensors" || fail "the output differs from the fixture"
echo "ok   wan_vae.pth -> the fixture's wan_vae.safetensors, byte for byte"
[ -e "${out}/full.safetensors.tmp" ] && fail "a temporary file was left"
"${py}" "${script}" --decoder_only "${out}/wan_vae.pth" "${out}/decoder.safetensors" || fail "--decoder_only failed"
"${py}" - "${out}/decoder.safetensors" "${out}/full.safetensors" <<'PY' || fail "--decoder_only kept the wrong tensors"
import json, struct, sys
def names(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return {k for k in json.loads(f.read(n)) if k != "__metadata__"}
dec, full = names(sys.argv[1]), names(sys.argv[2])
want = {k for k in full if k.startswith("decoder.") or k.startswith("conv2.")}
assert dec == want and len(dec) < len(full), (len(dec), len(want), len(full))
print(f"ok   --decoder_only: {len(dec)} of {len(full)} tensors (conv2.* and decoder.*)")
PY
"${py}" -c "import torch; torch.save({'a': torch.zeros(2)}, '${out}/other.pth')"
msg=$("${py}" "${script}" "${out}/other.pth" "${out}/x.safetensors" 2>&1) && fail "a non-Wan state dict was converted"
grep -q "has no decoder.conv1.weight" <<<"${msg}" || fail "no clear error for a non-Wan state dict: ${msg}"
echo "ok   a state dict without Wan's names is refused: ${msg}"
"${py}" -c "import torch; torch.save([1, 2], '${out}/list.pth')"
msg=$("${py}" "${script}" "${out}/list.pth" "${out}/x.safetensors" 2>&1) && fail "a list was converted"
grep -q "not a state dict" <<<"${msg}" || fail "no clear error for a list: ${msg}"
[ -e "${out}/x.safetensors" ] && fail "an output was written for bad input"
echo "pth_to_safetensors: passed"
