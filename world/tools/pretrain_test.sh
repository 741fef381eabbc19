#!/usr/bin/env bash
# pretrain: the same seed gives the same bytes; --final_lr_fraction and a noise band change the run;
# --max_seconds stops early and still writes the checkpoint; bad flags exit 2 naming the fix.
set -uo pipefail
bin=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*"; exit 1; }
run() { "$bin" --steps=3 --batch=2 "$@" >"$tmp/log" 2>&1; }

run --out="$tmp/a.safetensors" || fail "pretrain failed: $(cat "$tmp/log")"
run --out="$tmp/b.safetensors" || fail "second run failed"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" || fail "same seed, different checkpoints"
run --out="$tmp/c.safetensors" --final_lr_fraction=0.5 || fail "cosine run failed"
# The header's note names the flags, so compare the tensor bytes after the header
# (safetensors: an 8-byte little-endian header length, the JSON header, then the data).
weights() { tail -c +$((9 + $(od -An -tu8 -N8 "$1" | tr -d ' '))) "$1"; }
cmp -s <(weights "$tmp/a.safetensors") <(weights "$tmp/c.safetensors") &&
  fail "--final_lr_fraction=0.5 did not change the weights"
run --out="$tmp/e.safetensors" --noise_min=0.6 --noise_max=0.8 || fail "noise-band run failed"
cmp -s <(weights "$tmp/a.safetensors") <(weights "$tmp/e.safetensors") &&
  fail "--noise_min=0.6 --noise_max=0.8 did not change the weights"
run --out="$tmp/f.safetensors" --noise_min=0 --noise_max=1 || fail "explicit full band failed"
cmp -s <(weights "$tmp/a.safetensors") <(weights "$tmp/f.safetensors") ||
  fail "--noise_min=0 --noise_max=1 should equal the default"

"$bin" --steps=100000 --batch=2 --max_seconds=1 --out="$tmp/d.safetensors" >"$tmp/log" 2>&1 || fail "max_seconds run failed"
grep -q "stopping at step [0-9]*: --max_seconds=1 reached" "$tmp/log" || fail "no early stop: $(tail -2 "$tmp/log")"
[[ -s "$tmp/d.safetensors" ]] || fail "no checkpoint after the early stop"

expect_error() {  # expect_error TEXT FLAGS...
  local text=$1
  shift
  run --out="$tmp/x.safetensors" "$@"
  local rc=$?
  [[ $rc == 2 ]] || fail "$* exited $rc, expected 2"
  grep -q -- "$text" "$tmp/log" || fail "$*: message lacks '$text': $(cat "$tmp/log")"
}
expect_error "must be in (0, 1]" --final_lr_fraction=0
expect_error "must be positive" --batch=0
expect_error "must satisfy 0 <= min < max <= 1" --noise_min=0.8 --noise_max=0.6
expect_error "must satisfy 0 <= min < max <= 1" --noise_max=1.5
expect_error "is not a device; use cpu, cuda or cuda:N" --device=bogus
if ! command -v nvidia-smi >/dev/null 2>&1; then
  expect_error "sees no CUDA GPU; use --device=cpu" --device=cuda
fi
echo "PASS"
