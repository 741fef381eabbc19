#!/usr/bin/env bash
# A reward served over the Open Inference Protocol (scripts/reward_server/server.py hosting the
# fixtures' TorchScript reward, on 127.0.0.1 with a free port) beside a local rule reward,
# under mpirun -np 2:
#   1. the run equals the same run with the reward in-process (torchscript=), bit for bit;
#   2. the server killed mid-run: the job stops cleanly on every rank naming the endpoint, no
#      checkpoint after the failure; the server started again on the same port, --resume=latest
#      finishes bit-identical to the uninterrupted run.
set -uo pipefail
make_fixtures="$1"; train="$2"; inspect="$3"
export HOME="${TEST_TMPDIR:-/tmp}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
work="${TEST_TMPDIR:-$(mktemp -d)}/served_reward"
rm -rf "${work}"; mkdir -p "${work}"
server_pid=""
cleanup() { [ -n "${server_pid}" ] && kill -9 "${server_pid}" 2>/dev/null; }
trap cleanup EXIT
fail() { echo "SERVED REWARD FAILED: $*" >&2; exit 1; }
fx="${work}/fixtures"
"${make_fixtures}" --out="${fx}" >/dev/null || fail "make_fixtures"

start_server() {  # start_server PORT (0: a free one); sets server_pid and port
  rm -f "${work}/port"
  /usr/bin/python3 scripts/reward_server/server.py \
    --scorer=scripts/reward_server/examples/torchscript_reward.py:TorchScriptReward \
    --scorer_arg="${fx}/reward.pt" --model_name=redness --port="$1" --port_file="${work}/port" \
    >>"${work}/server.log" 2>&1 &
  server_pid=$!
  disown "${server_pid}"  # no job-control notice when the test kills it
  for _ in $(seq 600); do [ -s "${work}/port" ] && break; sleep 0.1; done
  [ -s "${work}/port" ] || fail "the reward server did not start: $(tail -5 "${work}/server.log")"
  port=$(cat "${work}/port")
}
start_server 0
echo "ok   reward server on 127.0.0.1:${port}"

ITERS=6
ARGS=(--model="${fx}/config.json" --weights="${fx}/diffusion_pytorch_model.safetensors.index.json"
      --embeddings="${fx}/embeddings.h5" --prompts="${fx}/prompts.txt" --latent_shape=4,2,8,8
      --decoder="${fx}/decoder.pt" --iterations="${ITERS}" --prompts_per_iteration=2 --group_size=2 --steps=3
      --micro_batch=2 --checkpoint_every=1 --keep_checkpoints=0 --watchdog_seconds=60 --threads=1 --seed=3)
final="checkpoints/ckpt-$(printf %06d "${ITERS}").h5"
served="oip=127.0.0.1:${port}/redness?deadline=10&retries=2&backoff=0.2"
timeout 600 mpirun -np 2 "${train}" "${ARGS[@]}" --rewards="torchscript=${fx}/reward.pt,motion_quality:0.3" \
  --out="${work}/local" >"${work}/local.log" 2>&1 || { tail -20 "${work}/local.log"; fail "the in-process run"; }
timeout 600 mpirun -np 2 "${train}" "${ARGS[@]}" --rewards="${served},motion_quality:0.3" \
  --out="${work}/served" >"${work}/served.log" 2>&1 || { tail -20 "${work}/served.log"; fail "the served run"; }
"${inspect}" "${work}/served/${final}" --compare="${work}/local/${final}" >"${work}/compare1.txt" 2>&1 ||
  fail "inspect: $(cat "${work}/compare1.txt")"
grep -q "bit-identical" "${work}/compare1.txt" || fail "served != in-process: $(tail -1 "${work}/compare1.txt")"
echo "ok   2 ranks, served reward + local rule reward: bit-identical to the reward in-process"

# The server killed once the second checkpoint is written.
( while [ ! -f "${work}/killed/checkpoints/ckpt-000002.h5" ]; do sleep 0.05; done; kill -9 "${server_pid}" ) &
watcher=$!
timeout 600 mpirun -np 2 "${train}" "${ARGS[@]}" --rewards="${served},motion_quality:0.3" \
  --out="${work}/killed" >"${work}/killed.log" 2>&1
rc=$?
wait "${watcher}"
[ "${rc}" -eq 124 ] && fail "train hung after the server died"
[ "${rc}" -ne 0 ] || fail "train finished although its reward server was killed"
grep -q "MPI_ABORT\|terminate called\|Aborted" "${work}/killed.log" && fail "aborted instead of stopped: $(tail -5 "${work}/killed.log")"
grep -qE "stopped in iteration [0-9]+ on every rank: .*127.0.0.1:${port}: UNAVAILABLE" "${work}/killed.log" ||
  { tail -8 "${work}/killed.log"; fail "no message naming the endpoint"; }
stopped=$(sed -nE 's/.*stopped in iteration ([0-9]+) on every rank.*/\1/p' "${work}/killed.log" | head -1)
echo "ok   server killed: stopped on every rank in iteration ${stopped}: $(grep -m1 -o 'reward .*UNAVAILABLE' "${work}/killed.log" | cut -c1-120)"
ls "${work}/killed/checkpoints" | grep -q "ckpt-$(printf %06d $((stopped + 1)))" && fail "a checkpoint after the failure"
start_server "${port}"
timeout 600 mpirun -np 2 "${train}" "${ARGS[@]}" --rewards="${served},motion_quality:0.3" --resume=latest \
  --out="${work}/killed" >"${work}/resumed.log" 2>&1 || { tail -20 "${work}/resumed.log"; fail "the resumed run"; }
"${inspect}" "${work}/killed/${final}" --compare="${work}/served/${final}" >"${work}/compare2.txt" 2>&1 ||
  fail "inspect: $(cat "${work}/compare2.txt")"
grep -q "bit-identical" "${work}/compare2.txt" || fail "resumed != uninterrupted: $(tail -1 "${work}/compare2.txt")"
echo "ok   server back on the same port: --resume=latest finished bit-identical to the uninterrupted run"
echo "served reward: passed"
