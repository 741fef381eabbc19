#!/usr/bin/env bash
# The main job: sets up the machine, builds, and runs the program under mpirun.
# Today: the environment doctor on 2 ranks, then DanceGRPO on the toy target world
# (one process, a few seconds), which prints its reward before and after training.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --config=quiet //dancegrpo/tools:doctor //dancegrpo/tools:toy_grpo
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np "${NP:-2}" --oversubscribe --bind-to none bazel-bin/dancegrpo/tools/doctor --out="${OUT:-out/doctor}"
bazel-bin/dancegrpo/tools/toy_grpo --log_every=100
