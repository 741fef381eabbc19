#!/usr/bin/env bash
# End to end through Wan2.1's VAE, native: the fixtures' 4-channel DiT trains under mpirun -np 2
# with --decoder=wan-vae:<a small Wan-architecture VAE> (tests/fixtures/wan_vae/diffusers, the
# same weights the numerics test checks against Wan's own vae.py) and a pixel reward (the
# fixtures' TorchScript reward scores the decoded clips), in fp32 and then bf16:
#   1. an uninterrupted run, whose start line names the VAE and its 4F - 3 frames;
#   2. the same run killed (SIGKILL on rank 1 in the 5th update) and resumed: bit-identical;
#   3. evaluate with the tiled decoder (tile smaller than the clip) and --save_videos: MP4s;
#   4. a decoder given as the .pth is refused naming the conversion script.
set -uo pipefail
make_fixtures="$1"; train="$2"; evaluate="$3"; inspect="$4"; vae="$5"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/wan_vae_e2e"
rm -rf "${work}"; mkdir -p "${work}"
fail() { echo "WAN VAE E2E FAILED: $*" >&2; exit 1; }
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || fail "make_fixtures"
vae_dir="$(dirname "${vae}")"   # .../wan_vae/diffusers

ITERS=6
for precision in fp32 bf16; do
  MODEL=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
         --embeddings="${fx}/embeddings.h5" --latent_shape=4,3,3,5 --decoder="wan-vae:${vae_dir}"
         --rewards="torchscript=${fx}/reward.pt" --precision="${precision}")
  ARGS=("${MODEL[@]}" --prompts="${fx}/prompts.txt" --iterations="${ITERS}" --prompts_per_iteration=4 --group_size=2
        --steps=4 --eta=0.7 --micro_batch=4 --timestep_fraction=0.5 --lr=3e-3 --clip_range=0.2 --seed=5
        --checkpoint_every=2 --keep_checkpoints=0 --sample_every=3 --watchdog_seconds=60)
  run() {  # run DIR [extra args]
    local dir="$1"; shift
    mpirun -np 2 --oversubscribe --bind-to none "${train}" --out="${dir}" "${ARGS[@]}" "$@" >>"${dir}.log" 2>&1
  }
  ref="${work}/ref_${precision}"; killed="${work}/killed_${precision}"
  run "${ref}" || fail "${precision}: the uninterrupted run failed: $(tail -5 "${ref}.log")"
  grep -E "^iter (1|${ITERS})/" "${ref}.log"
  final="checkpoints/ckpt-$(printf %06d ${ITERS}).h5"
  [ -f "${ref}/${final}" ] || fail "${precision}: no final checkpoint"
  # The start line names the decoder and its frame rule: 3 latent frames -> 9 video frames
  # (every decoded clip is checked against it).
  grep -qF "decoder: the Wan VAE ${vae_dir}/diffusion_pytorch_model.safetensors (diffusers' names), ${precision}, video frames 1 + 4 (F - 1) = 9" "${ref}.log" ||
    fail "${precision}: the start line does not name the Wan VAE and its 9 frames: $(head -1 "${ref}.log")"
  for f in samples/iter_000003.png samples/iter_000003.gif; do [ -s "${ref}/${f}" ] || fail "${precision}: no ${f}"; done
  DGRPO_FAULT="phase=update,iteration=4,rank=1" run "${killed}" && fail "${precision}: the faulted run should have died"
  run "${killed}" --resume=latest || fail "${precision}: resume failed: $(tail -5 "${killed}.log")"
  grep -q "resumed from ${killed}/checkpoints/ckpt-000004.h5" "${killed}.log" || fail "${precision}: did not resume from iteration 4"
  "${inspect}" "${killed}/${final}" --compare="${ref}/${final}" >"${work}/compare.txt" 2>&1 || \
    fail "${precision}: inspect: $(cat "${work}/compare.txt")"
  grep -q "bit-identical" "${work}/compare.txt" || fail "${precision}: killed + resumed differs: $(tail -1 "${work}/compare.txt")"
  echo "${precision}: killed + resumed bit-identical"
done

# evaluate through the tiled decoder (16-pixel tiles every 8: 3 x 5 tiles of a 24 x 40 clip).
"${evaluate}" "${MODEL[@]/wan-vae:${vae_dir}/wan-vae:${vae_dir},tile=16,stride=8}" --prompts="${fx}/heldout.jsonl" \
  --checkpoint="${work}/ref_bf16/${final}" --samples_per_prompt=2 --steps=4 --out="${work}/eval" --save_videos >"${work}/eval.txt" 2>&1 ||
  fail "evaluate (tiled): $(tail -5 "${work}/eval.txt")"
grep -E '^\| torchscript' "${work}/eval.txt" || fail "evaluate printed no reward row: $(tail -5 "${work}/eval.txt")"
# --save_videos: every clip as MP4 (heldout.jsonl's prompts x 2, base and trained), 9 frames each
# (checked by decoding one back: dancegrpo/io:mp4_test checks the codec itself).
n_prompts=$(grep -c . "${fx}/heldout.jsonl")
for who in base trained; do
  n=$(ls "${work}/eval/videos/${who}"/*.mp4 2>/dev/null | wc -l)
  [ "${n}" -eq $((2 * n_prompts)) ] || fail "videos/${who}: ${n} MP4 files, expected $((2 * n_prompts))"
done
[ "$(head -c 8 "${work}/eval/videos/trained/p000_s00.mp4" | tail -c 4)" = "ftyp" ] || fail "p000_s00.mp4 is not an MP4"
ls "${ref}/samples/iter_000003/"*.mp4 >/dev/null || fail "the run wrote no samples/iter_000003/*.mp4"

# The .pth is refused, naming the conversion.
"${evaluate}" "${MODEL[@]/wan-vae:${vae_dir}/wan-vae:${vae_dir}/../wan_vae.pth}" --prompts="${fx}/heldout.jsonl" \
  >"${work}/pth.txt" 2>&1 && fail "evaluate accepted a .pth decoder"
grep -q "pth_to_safetensors.py" "${work}/pth.txt" || fail "the .pth refusal does not name the script: $(cat "${work}/pth.txt")"
echo "wan vae e2e: 1 passed, 0 failed (fp32 and bf16 kill + resume bit-identical; tiled evaluate; .pth refused)"
