#!/usr/bin/env bash
# The main job: sets up the machine, builds, and runs the program under mpirun.
# Until the GRPO trainer lands, this is the environment doctor on 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
bazel build --config=quiet //dancegrpo/tools:doctor
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np "${NP:-2}" --oversubscribe --bind-to none bazel-bin/dancegrpo/tools/doctor --out="${OUT:-out/doctor}"
