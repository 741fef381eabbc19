#!/usr/bin/env bash
# train, plan and evaluate read one run configuration (dancegrpo/tools/run_flags.h): with the
# same command line, each prints the same settings (--print_config), defaults included.
set -uo pipefail
train="$1"; plan="$2"; evaluate="$3"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="${TEST_TMPDIR:-$(mktemp -d)}/run_config"
rm -rf "${work}"; mkdir -p "${work}"
fail() { echo "RUN CONFIG TEST FAILED: $*" >&2; exit 1; }
check() {  # check NAME [args...]: the three tools print the same settings
  local name="$1"; shift
  for tool in train plan evaluate; do
    "${!tool}" --print_config "$@" >"${work}/${name}.${tool}" 2>"${work}/${name}.${tool}.err" ||
      fail "${tool} --print_config $*: $(cat "${work}/${name}.${tool}.err")"
  done
  [ -s "${work}/${name}.train" ] || fail "train printed no settings"
  for tool in plan evaluate; do
    diff "${work}/${name}.train" "${work}/${name}.${tool}" >"${work}/${name}.diff" ||
      fail "${name}: train and ${tool} see other settings: $(cat "${work}/${name}.diff")"
  done
  echo "ok   ${name}: $(wc -l <"${work}/${name}.train") settings agree"
}
check defaults
grep -qx "group_size=8" "${work}/defaults.train" || fail "group_size default: $(grep group_size "${work}/defaults.train")"
check given --model=small --group_size=6 --steps=12 --eta=0.5 --sde=flowgrpo --shift=3 --lr=1e-4 --precision=bf16 \
  --sde_window_size=4 --sde_window_random --lora_rank=8 --zero_stage=3 --micro_batch=2 --seed=9
grep -qx "noise_level=0.7" "${work}/given.train" || fail "noise_level: $(grep noise_level "${work}/given.train")"
grep -qx "lora_alpha=16" "${work}/given.train" || fail "LoRA alpha 0 should mean 2 x rank"
# A bad setting is refused by all three, with the same message.
for tool in train plan evaluate; do
  "${!tool}" --print_config --micro_batch=-3 >"${work}/bad.${tool}" 2>&1 && fail "${tool} accepted --micro_batch=-3"
  grep -qF -- "--micro_batch=-3 is negative" "${work}/bad.${tool}" || fail "${tool}: $(cat "${work}/bad.${tool}")"
done
echo "ok   a bad setting is refused by train, plan and evaluate alike"
