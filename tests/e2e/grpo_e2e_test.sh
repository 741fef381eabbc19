#!/usr/bin/env bash
# End to end: a short GRPO job on the shapes world under mpirun -np 2, from the shipped base
# checkpoint, through the general path (shapes_inputs writes the world as a user's model
# inputs), with a fixed seed; its policy must beat the base on the training split's
# alignment reward (same evaluation noise keys for both), and its pictures must exist.
set -uo pipefail
train="$1"; evaluate="$2"; base="$3"; flags="$4"; shapes_inputs="$5"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
out="${TEST_TMPDIR:-$(mktemp -d)}/e2e"
inputs="${TEST_TMPDIR:-$(mktemp -d)}/shapes_inputs"
fail() { echo "E2E FAILED: $*" >&2; exit 1; }
"${shapes_inputs}" --base="${base}" --out="${inputs}" || fail "shapes_inputs"
MODEL=(--model="${inputs}/config.json" --weights="${inputs}/dit.safetensors" --embeddings="${inputs}/embeddings.h5"
       --latent_shape="$(cat "${inputs}/latent_shape.txt")")
ITERS=40
mpirun -np 2 --oversubscribe --bind-to none "${train}" --flagfile="${flags}" "${MODEL[@]}" \
  --prompts="${inputs}/train.jsonl" --out="${out}" \
  --iterations="${ITERS}" --sample_every=20 --checkpoint_every=20 >"${out}.log" 2>&1 || fail "training: $(tail -5 "${out}.log")"
grep -E "iter (1|20|40)/" "${out}.log"
final="${out}/checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
"${evaluate}" "${MODEL[@]}" --prompts="${inputs}/train.jsonl" --checkpoint="${final}" --samples_per_prompt=2 \
  --rewards=alignment >"${out}.eval" 2>&1 || fail "evaluate: $(cat "${out}.eval")"
cat "${out}.eval"
read -r b t <<<"$(grep -E '^\| alignment' "${out}.eval" | awk -F'|' '{print $3, $4}')"
awk -v b="${b}" -v t="${t}" 'BEGIN { exit !(t > b) }' || fail "alignment did not improve: base ${b}, trained ${t}"
for f in reward_curves.png samples/iter_000000.png samples/iter_000020.png metrics.jsonl; do
  [ -s "${out}/${f}" ] || fail "missing ${f}"
done
head -c 8 "${out}/reward_curves.png" | od -c | head -1 | grep -q "P   N   G" || fail "reward_curves.png is not a PNG"
[ "$(wc -l <"${out}/metrics.jsonl")" -eq "${ITERS}" ] || fail "metrics.jsonl should have ${ITERS} lines"
echo "e2e: 1 passed, 0 failed (alignment on the training split: base ${b} -> trained ${t})"
