#!/usr/bin/env bash
# Bad input to `train` gets a clear error naming the file or flag and the fix, and a non-zero
# exit: never a crash, a hang, or a run that "succeeds" on garbage (e.g. --lr=nan used to train
# and write a checkpoint of NaN weights with exit code 0).
set -uo pipefail
make_fixtures="$1"; train="$2"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/user_model_errors"
rm -rf "${work}"; mkdir -p "${work}"
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || { echo "make_fixtures failed"; exit 1; }
GOOD=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
      --embeddings="${fx}/embeddings.h5" --prompts="${fx}/prompts.txt" --latent_shape=4,2,8,8
      --decoder="${fx}/decoder.pt" --rewards="torchscript=${fx}/reward.pt" --iterations=1 --prompts_per_iteration=2
      --group_size=2 --steps=3 --micro_batch=2 --watchdog_seconds=30)
passed=0; failed=0
# expect NAME NEEDLE [args...]: train must fail, and its output must contain NEEDLE.
expect() {
  local name="$1" needle="$2"; shift 2
  local out="${work}/${name}"
  timeout 120 mpirun -np 1 "${train}" "${GOOD[@]}" --out="${out}" "$@" >"${out}.log" 2>&1
  local rc=$?
  if [ "${rc}" -ne 0 ] && grep -qF -- "${needle}" "${out}.log"; then
    passed=$((passed + 1)); echo "ok   ${name}: $(grep -F -m1 -- "${needle}" "${out}.log" | cut -c1-160)"
  else
    failed=$((failed + 1)); echo "FAIL ${name} (rc ${rc}, wanted '${needle}'):"; tail -3 "${out}.log"
  fi
  if [ -d "${out}/checkpoints" ] && ls "${out}/checkpoints" | grep -q ckpt; then
    failed=$((failed + 1)); echo "FAIL ${name}: a checkpoint was written"
  fi
}

# The good configuration runs (so the failures below are the flags' doing).
if timeout 300 mpirun -np 1 "${train}" "${GOOD[@]}" --out="${work}/good" >"${work}/good.log" 2>&1; then
  passed=$((passed + 1)); echo "ok   good configuration trains"
  # The BLAS kernels it chose, in the start line and in every metrics line.
  if grep -qE "BLAS: (OpenBLAS [A-Za-z0-9]+ kernels|a BLAS that is not OpenBLAS) \(.*GEMM self-check passed\)" "${work}/good.log" &&
     { ! grep -q "BLAS: OpenBLAS" "${work}/good.log" || grep -q '"blas_kernels": "' "${work}/good/metrics.jsonl"; }; then
    passed=$((passed + 1)); echo "ok   $(grep -o 'BLAS: .*' "${work}/good.log" | head -1)"
  else
    failed=$((failed + 1)); echo "FAIL the start line or metrics.jsonl does not name the BLAS kernels:"; grep "^train:" "${work}/good.log"
  fi
  # The learning rate, in the start line and in every metrics line.
  if grep -qE "^train: .* iterations, lr [0-9.e-]+," "${work}/good.log" && grep -q '"lr": ' "${work}/good/metrics.jsonl"; then
    passed=$((passed + 1)); echo "ok   $(grep -oE 'iterations, lr [0-9.e-]+' "${work}/good.log" | head -1)"
  else
    failed=$((failed + 1)); echo "FAIL the start line or metrics.jsonl does not give the learning rate"
  fi
else
  failed=$((failed + 1)); echo "FAIL good configuration:"; tail -5 "${work}/good.log"
fi

expect lr_nan "learning rate" --lr=nan
expect lr_zero "learning rate" --lr=0
expect lr_negative "learning rate" --lr=-1e-4
expect lr_schedule_unknown "--lr_schedule=linear: use constant or cosine" --lr_schedule=linear
expect lr_final_fraction "--lr_final_fraction=2" --lr_schedule=cosine --lr_final_fraction=2
expect keep_negative "--keep_checkpoints=-1 is negative" --keep_checkpoints=-1
expect micro_negative "--micro_batch=-2 is negative" --micro_batch=-2
expect no_gpu "no GPU is visible" --device=cuda
expect precision "use fp32 or bf16" --precision=fp16
expect blas_kernels "--blas_kernels=fastest is unknown; use auto or openblas" --blas_kernels=fastest
printf 'a red ball on grass\na purple cow\n' >"${work}/missing.txt"
expect missing_prompt "'a purple cow'" --prompts="${work}/missing.txt"
sed 's/"num_layers": 2/"num_layers": 3/' "${fx}/config.json" >"${work}/deeper.json"
expect weights_mismatch "blocks.2." --model="${work}/deeper.json"
sed 's/"text_dim": 32/"text_dim": 64/' "${fx}/config.json" >"${work}/wide.json"
expect embeddings_width "text_dim is 64" --model="${work}/wide.json" --weights=
sed 's/"text_len": 16/"text_len": 4/' "${fx}/config.json" >"${work}/short.json"
expect embeddings_length "text_len 4" --model="${work}/short.json"
expect decoder_shape "[B, 3, F, H, W]" --decoder="${fx}/bad_decoder.pt"
expect decoder_nan "non-finite" --decoder="${fx}/nan_decoder.pt"
# A reward model or decoder that raises (torch::jit::JITException) is an error naming it, not a
# crash (it used to end in std::terminate and exit 134).
expect reward_raises "stopped in iteration 0 on every rank: reward 'torchscript:raising_reward.pt': torchscript:raising_reward.pt failed: RuntimeError: AssertionError: reward server down" \
  --rewards="torchscript=${fx}/raising_reward.pt" --prompts_per_iteration=8
expect decoder_raises "raising_decoder.pt failed on latents [1, 4, 2, 8, 8]: RuntimeError: AssertionError: decoder out of memory" \
  --decoder="${fx}/raising_decoder.pt"
expect latent_channels "in_dim" --latent_shape=3,2,8,8
expect unknown_model "neither a preset" --model=wan9
expect group_of_one "group_size = 1" --group_size=1
expect trainable_unknown "'blocks.9' matches no parameter" --trainable=blocks.9
expect zero_stage "--zero_stage=4: use 2 or 3" --zero_stage=4
expect sp_divide "sp = 3 does not divide the 1 ranks" --sp=3
expect toy_zero3 "has no blocks" --model=toy --zero_stage=3
expect does_not_fit "this run does not fit" --memory_gb=0.05
expect memory_negative "--memory_gb=-1" --memory_gb=-1
# LoRA
expect lora_option_without_rank "--lora_alpha is given but --lora_rank is 0" --lora_alpha=16
expect lora_rank_negative "--lora_rank=-4 is negative" --lora_rank=-4
expect lora_rank_too_wide "rank 64 is above the width of 'blocks.0.self_attn.q' (48 in, 48 out)" --lora_rank=64
expect lora_target_unknown "this model's linear layers are (* = any block): blocks.*.cross_attn.k" \
  --lora_rank=4 --lora_targets=attn.qkv
expect lora_dropout "ratio would not be 1" --lora_rank=4 --lora_dropout=0.05
expect lora_and_trainable "drop --trainable" --lora_rank=4 --trainable=blocks.1
expect lora_toy "the toy model has none" --lora_rank=4 --model=toy
echo "user model errors: ${passed} passed, ${failed} failed"
[ "${failed}" -eq 0 ]
