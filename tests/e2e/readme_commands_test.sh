#!/usr/bin/env bash
# The README's commands, run as a new user would run them: every ```sh block of README.md is
# taken as it is written, with bazel-bin/ pointing at this test's binaries, in a scratch
# directory. Skipped: the two top-level commands (setup and the demo, which CI and the demo run
# themselves) and `bazel build` lines (the binaries come from this test's data). A README
# command that stops working fails this test.
set -uo pipefail
readme="$1"
root="${TEST_SRCDIR:?}/${TEST_WORKSPACE:-dancegrpo_hpc}"
export HOME="${TEST_TMPDIR}" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
work="${TEST_TMPDIR}/readme"
rm -rf "${work}"; mkdir -p "${work}"
# The README runs from the repository's root (its fixtures, the reward server and its protocol).
for d in tests scripts rewards; do ln -s "${root}/${d}" "${work}/${d}"; done
fail() { echo "README COMMANDS FAILED: $*" >&2; exit 1; }

# The ```sh blocks, one file each, with line continuations kept.
awk -v dir="${work}" '
  /^```sh$/ { n++; inside = 1; file = sprintf("%s/block_%02d.sh", dir, n); next }
  /^```$/ && inside { inside = 0; close(file); next }
  inside { print > file }' "${readme}"
blocks=("${work}"/block_*.sh)
[ "${#blocks[@]}" -ge 4 ] || fail "found only ${#blocks[@]} sh blocks in ${readme}"
ran=0
for block in "${blocks[@]}"; do
  if grep -qE '^\./scripts/(demo|setup)\.sh' "${block}"; then
    echo "skip $(basename "${block}"): $(head -1 "${block}") (run by CI and the demo)"
    continue
  fi
  # bazel-bin/X -> this test's X; `bazel build` lines dropped.
  sed -e '/^bazel build/d' -e "s#bazel-bin/#${root}/#g" "${block}" >"${block}.run"
  echo "=== $(basename "${block}"):"; sed 's/^/    /' "${block}.run" | sed "s#${root}/#bazel-bin/#g"
  (cd "${work}" && bash -euo pipefail "${block}.run") >"${block}.log" 2>&1 ||
    fail "$(basename "${block}") exited $?: $(tail -15 "${block}.log")"
  tail -3 "${block}.log" | sed 's/^/    > /'
  ran=$((ran + 1))
done
[ "${ran}" -ge 3 ] || fail "only ${ran} README blocks ran"
echo "README commands: ${ran} blocks ran, 0 failed"
