#!/usr/bin/env bash
# A served reward overlapped with the rollout: the fixtures' DiT trains with the fixtures'
# TorchScript reward served by scripts/reward_server/server.py, which sleeps S ms before every
# request (a slow reward model), S set to the measured rollout time of one micro-batch. Rows:
# the rollout + scoring phase per iteration (metrics' rollout_seconds + reward_seconds) and
# the whole iteration, with the requests sent as each micro-batch is drawn (the default) and
# with overlap=0 (each request sent when its scores are needed), beside max(rollout, scoring)
# and their sum (medians over the iterations after the first). Prints numbers; never fails on time.
#   bench/served_reward_bench.sh                  # about 2 minutes on 2 cores
#   MICRO_BATCHES=8 STEPS=6 ITERS=4 bench/served_reward_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-6} MICRO_BATCHES=${MICRO_BATCHES:-16} STEPS=${STEPS:-40}
work=${WORK:-/tmp/served_reward_bench}
bazel build --config=quiet //dancegrpo/tools:train //tests/fixtures:make_fixtures
rm -rf "${work}"; mkdir -p "${work}"
bazel-bin/tests/fixtures/make_fixtures --out="${work}/fx" >/dev/null
fx="${work}/fx"
ARGS=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
      --embeddings="${fx}/embeddings.h5" --prompts="${fx}/prompts.txt" --latent_shape=4,2,8,8
      --decoder="${fx}/decoder.pt" --iterations="${ITERS}" --prompts_per_iteration="${MICRO_BATCHES}"
      --group_size=2 --micro_batch=2 --steps="${STEPS}" --checkpoint_every=0 --threads=1 --seed=1)
run() {  # run NAME [train flags]
  local name="$1"; shift
  bazel-bin/dancegrpo/tools/train "${ARGS[@]}" --out="${work}/${name}" "$@" >"${work}/${name}.log" 2>&1 ||
    { tail -5 "${work}/${name}.log"; echo "served_reward_bench: ${name} failed" >&2; exit 1; }
}
# Medians over the iterations after the first (a shared machine has slow outliers): rollout,
# reward, whole iteration (seconds).
stats() {
  /usr/bin/python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
med = lambda k: statistics.median(r[k] for r in rows)
print(f"{med('rollout_seconds'):.3f} {med('reward_seconds'):.3f} {med('seconds'):.3f}")
PY
}
run local --rewards="torchscript=${fx}/reward.pt"
read -r rollout local_reward local_total < <(stats "${work}/local/metrics.jsonl")
delay_ms=$(awk -v r="${rollout}" -v m="${MICRO_BATCHES}" 'BEGIN { printf "%d", r / m * 1000 }')
/usr/bin/python3 scripts/reward_server/server.py \
  --scorer=scripts/reward_server/examples/torchscript_reward.py:TorchScriptReward --scorer_arg="${fx}/reward.pt" \
  --model_name=redness --port=0 --port_file="${work}/port" --delay_ms="${delay_ms}" >"${work}/server.log" 2>&1 &
server=$!
trap 'kill ${server} 2>/dev/null' EXIT
for _ in $(seq 600); do [ -s "${work}/port" ] && break; sleep 0.1; done
port=$(cat "${work}/port")
run sync --rewards="oip=127.0.0.1:${port}/redness?overlap=0"
run overlap --rewards="oip=127.0.0.1:${port}/redness"
read -r s_roll s_rew s_total < <(stats "${work}/sync/metrics.jsonl")
read -r o_roll o_rew o_total < <(stats "${work}/overlap/metrics.jsonl")
scoring=$(awk -v d="${delay_ms}" -v m="${MICRO_BATCHES}" 'BEGIN { print d * m / 1000 }')
echo "served_reward_bench: ${MICRO_BATCHES} micro-batches of 2 samples, ${STEPS} steps, 1 rank; server delay ${delay_ms} ms a request"
echo "  rollout alone (in-process reward): ${rollout} s; scoring alone: ${MICRO_BATCHES} x ${delay_ms} ms = ${scoring} s"
awk -v r="${rollout}" -v s="${scoring}" 'BEGIN { m = r > s ? r : s; printf "  max(rollout, scoring) = %.3f s, their sum = %.3f s\n", m, r + s }'
printf '  %-28s %18s %16s %12s\n' mode "rollout+scoring s" "vs max" "iteration s"
for row in "overlap=0 (sent when needed):${s_roll}:${s_rew}:${s_total}" "overlapped (default):${o_roll}:${o_rew}:${o_total}"; do
  IFS=: read -r name ro re tot <<<"${row}"
  awk -v n="${name}" -v ro="${ro}" -v re="${re}" -v t="${tot}" -v r="${rollout}" -v s="${scoring}" \
    'BEGIN { m = r > s ? r : s; printf "  %-28s %18.3f %15.0f%% %12.3f\n", n, ro + re, 100 * (ro + re) / m, t }'
done
