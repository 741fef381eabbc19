#!/usr/bin/env bash
# LoRA end to end on a user's model (the fixtures' sharded Wan-format DiT, bf16), under
# mpirun -np 2 with ZeRO-3 and a KL penalty (its reference is the base: no second model):
#   1. an uninterrupted run; the start line names the adapters; checkpoints hold only them;
#   2. the same run killed on rank 1 mid-update and resumed: bit-identical to (1);
#   3. resuming over other base weights is refused, naming both checksums;
#   4. export_lora writes diffusers/PEFT keys (the head's adapter, outside the blocks, with its
#      alpha / r folded in and no alpha key, as diffusers requires); merge_lora (from the file, and from the
#      checkpoint) writes a full model; evaluate of the merged model equals evaluate of the
#      checkpoint over its base (fp32), and merging into another base is refused;
#   5. plan counts the adapters as the only trained parameters.
set -uo pipefail
make_fixtures="$1"; train="$2"; evaluate="$3"; inspect="$4"; export_lora="$5"; merge_lora="$6"; plan="$7"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/lora_e2e"
rm -rf "${work}"; mkdir -p "${work}"
fail() { echo "LORA E2E FAILED: $*" >&2; exit 1; }
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || fail "make_fixtures"

ITERS=8
BASE=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json")
INPUTS=(--embeddings="${fx}/embeddings.h5" --latent_shape=4,2,8,8 --decoder="${fx}/decoder.pt"
        --rewards="torchscript=${fx}/reward.pt")
# Wan's attention and FFN layers, and the head (outside the blocks: exported without an alpha key).
LORA=(--lora_rank=8 --lora_alpha=16
      --lora_targets=self_attn.q,self_attn.k,self_attn.v,self_attn.o,cross_attn.q,cross_attn.k,cross_attn.v,cross_attn.o,ffn.0,ffn.2,head.head)
ARGS=("${BASE[@]}" "${INPUTS[@]}" "${LORA[@]}" --precision=bf16 --zero_stage=3 --kl_beta=0.01
      --prompts="${fx}/prompts.txt" --iterations="${ITERS}" --prompts_per_iteration=4 --group_size=4 --steps=6
      --eta=0.7 --micro_batch=4 --timestep_fraction=0.5 --lr=3e-2 --clip_range=0.2 --seed=5 --checkpoint_every=4
      --keep_checkpoints=0 --sample_every=0 --tensorboard=false --watchdog_seconds=60)
run() {  # run DIR [extra args]
  local dir="$1"; shift
  mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" "$@" >>"${dir}.log" 2>&1
}

run "${work}/ref" || fail "the uninterrupted run failed: $(tail -5 "${work}/ref.log")"
grep -E "^train: " "${work}/ref.log" | cut -c1-220
grep -qE "trained: LoRA r=8 alpha 16 on 21 layers, base crc32c:[0-9a-f]{8}" "${work}/ref.log" ||
  fail "the start line does not name the adapters"
grep -E "^iter (1|${ITERS})/" "${work}/ref.log"
final="checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
"${inspect}" "${work}/ref/${final}" >"${work}/inspect.txt" 2>&1 || fail "inspect: $(cat "${work}/inspect.txt")"
# 21 adapted layers x (A, B): rank 8; attention, FFN and the head.
grep -qE "^  [0-9]+ parameters in 42 tensors" "${work}/inspect.txt" || fail "the checkpoint does not hold 42 adapter tensors: $(head -2 "${work}/inspect.txt")"
grep -q "lora_rank=8" "${work}/inspect.txt" || fail "the config in the checkpoint lacks lora_rank"

# Killed and resumed: bit-identical.
DGRPO_FAULT="phase=update,iteration=6,rank=1" run "${work}/killed" && fail "the faulted run should have died"
run "${work}/killed" --resume=latest || fail "resume failed: $(tail -5 "${work}/killed.log")"
grep -q "resumed from ${work}/killed/checkpoints/ckpt-000004.h5" "${work}/killed.log" || fail "did not resume iteration 4"
"${inspect}" "${work}/killed/${final}" --compare="${work}/ref/${final}" >"${work}/compare.txt" 2>&1 ||
  fail "killed + resumed differs: $(tail -1 "${work}/compare.txt")"
tail -1 "${work}/compare.txt"

# Another base: the same architecture with random weights (no --weights).
mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${work}/ref" "${ARGS[@]}" --weights= \
  --iterations=$((ITERS + 1)) --resume=latest >"${work}/other_base.log" 2>&1 && fail "resuming over another base ran"
grep -q "it was trained over other base weights: ${fx}/diffusion_pytorch_model.safetensors.index.json with checksum" \
  "${work}/other_base.log" || fail "no clear refusal of another base: $(tail -3 "${work}/other_base.log")"

# Export, merge, evaluate.
"${export_lora}" --checkpoint="${work}/ref/${final}" --out="${work}/adapter.safetensors" || fail "export_lora"
# (the header as a file first: grep -q on a pipe would SIGPIPE head under pipefail)
head -c 20000 "${work}/adapter.safetensors" >"${work}/adapter_header.txt"
for key in diffusion_model.blocks.0.self_attn.q.lora_A.weight diffusion_model.blocks.1.ffn.2.lora_B.weight \
           diffusion_model.blocks.1.cross_attn.o.alpha diffusion_model.head.head.lora_A.weight \
           '"base_checksum":"crc32c:'; do
  grep -qF "${key}" "${work}/adapter_header.txt" || fail "the adapter file has no ${key}"
done
# diffusers' Wan conversion refuses an alpha outside the blocks ("state_dict should be empty").
grep -qF "diffusion_model.head.head.alpha" "${work}/adapter_header.txt" && fail "the head's adapter has an alpha key"
"${merge_lora}" "${BASE[@]}" --lora="${work}/adapter.safetensors" --out="${work}/merged.safetensors" ||
  fail "merge_lora --lora"
"${merge_lora}" "${BASE[@]}" --checkpoint="${work}/ref/${final}" --out="${work}/merged_ckpt.safetensors" ||
  fail "merge_lora --checkpoint"
"${merge_lora}" --model="${fx}/config.json" --lora="${work}/adapter.safetensors" --out="${work}/wrong.safetensors" \
  >"${work}/wrong.log" 2>&1 && fail "merging into another base ran"
grep -q "the adapters were trained over a base with checksum" "${work}/wrong.log" || fail "no clear refusal: $(cat "${work}/wrong.log")"
# The training sampler given explicitly: a merged model has no checkpoint to take it from.
EVAL=("${INPUTS[@]}" --prompts="${fx}/heldout.jsonl" --samples_per_prompt=4 --steps=6 --eta=0.7 --precision=fp32)
"${evaluate}" "${BASE[@]}" "${EVAL[@]}" --checkpoint="${work}/ref/${final}" >"${work}/eval_ckpt.txt" 2>&1 ||
  fail "evaluate --checkpoint: $(cat "${work}/eval_ckpt.txt")"
for m in merged merged_ckpt; do
  "${evaluate}" --model="${fx}/config.json" --weights="${work}/${m}.safetensors" "${EVAL[@]}" >"${work}/eval_${m}.txt" 2>&1 ||
    fail "evaluate the ${m} model: $(cat "${work}/eval_${m}.txt")"
done
cat "${work}/eval_ckpt.txt"
read -r base trained <<<"$(grep -E '^\| torchscript' "${work}/eval_ckpt.txt" | awk -F'|' '{print $3, $4}')"
for m in merged merged_ckpt; do
  merged=$(grep -E '^\| torchscript' "${work}/eval_${m}.txt" | awk -F'|' '{print $3}')
  awk -v a="${merged}" -v b="${trained}" 'BEGIN { d = a - b; exit !(d <= 2e-4 && d >= -2e-4) }' ||
    fail "the ${m} model scores ${merged}, the checkpoint over its base ${trained}"
done
awk -v b="${base}" -v t="${trained}" 'BEGIN { exit !(t != b) }' || fail "the adapters changed nothing (${base} -> ${trained})"

# plan: the adapters are the trained parameters.
"${plan}" --model="${fx}/config.json" --latent_shape=4,2,8,8 --lora_rank=8 --memory_gb=1 >"${work}/plan.txt" 2>&1 ||
  fail "plan: $(cat "${work}/plan.txt")"
grep -qE "trained: LoRA r=8" "${work}/plan.txt" || fail "plan does not show the LoRA: $(head -2 "${work}/plan.txt")"
echo "lora e2e: 1 passed, 0 failed (held-out reward base ${base} -> LoRA ${trained} = merged; kill + resume bit-identical)"
