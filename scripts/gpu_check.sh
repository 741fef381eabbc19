#!/usr/bin/env bash
# gpu_check.sh: builds the NCCL conformance suite and nccl_probe without Bazel and runs
# them on this GPU node. For GPU machines that carry a CUDA PyTorch (pip or libtorch)
# but no Bazel; on a machine with Bazel use `bazel build --config=cuda` instead.
#
#   scripts/gpu_check.sh [build-dir]
#
# A node without Open MPI, Abseil, glog or GoogleTest: make a kit on a Debian 12 machine
# with scripts/make_gpu_kit.sh, copy it over, and `source .gpu_kit/env.sh` first.
#
# Inputs (environment; defaults in brackets):
#   TORCH_DIR    a CUDA libtorch: holds include/ and lib/ [the torch package of python3]
#   CUDA_HOME    the CUDA toolkit [/usr/local/cuda]
#   NCCL_HOME    NCCL headers and library [python3's nvidia.nccl package, the one torch loads,
#                else CUDA_HOME]
#   DEPS_PREFIX  include/ and lib/ with Abseil, glog, gflags and GoogleTest [/usr]
#   MPI_INCLUDE  the directory of mpi.h [from `mpicxx --showme:incdirs`]
#   MPI_LIBDIR   the directory of libmpi.so [from `mpicxx --showme:libdirs`]
#   MPIRUN       Open MPI's launcher [mpirun]
#   NP_MAX       the most ranks to try [4]
#   TRAIN_ONLY   1: build, then run section 5 alone (a short device lease) [0]
#
# What it runs, each check printed as PASS/FAIL/SKIP:
#   1. nccl_probe and the NCCL conformance suite with one rank per visible GPU
#      (ranks = min(GPUs, NP_MAX); at least 1);
#   2. the MPI conformance suite at 2 ranks, against this libtorch;
#   3. on a node with fewer GPUs than 2 ranks: that `mpirun -np 2 nccl_probe` fails on both
#      ranks with the one-GPU-per-rank message (NCCL allows one rank per GPU);
#   4. this libtorch (2.x) against the code written for 1.13 and 2.x: every .cc of the tree
#      compiles (-fsyntax-only; needs the HDF5, nlohmann-json, libjpeg, libpng, giflib, protobuf
#      and Boost.CRC headers, and protoc or the kit's generated tensorboard.pb.*
#      in DEPS_PREFIX/include, HDF5's under include/hdf5 if not directly there), and the DiT
#      tests (2.x attention path) and the Ulysses sp=2 vs sp=1 test pass on the CPU;
#   5. `train` on CUDA in bf16 (NCCL data plane), under ZeRO-2 and ZeRO-3: the wan2.1-1.3b preset with random weights,
#      a latent-space TorchScript reward, TRAIN_LATENT latents (default 16,21,60,104: Wan's
#      480x832 at 81 frames), TRAIN_ITERS iterations (5); prints s/iteration and MFU against
#      PEAK_TFLOPS (989, H100/H200 SXM dense bf16); and the same model's bf16 forward+backward
#      MFU from bench/dit_bench; and Wan2.1's VAE decoder (bench/vae_bench, random weights) on a whole
#      16x21x60x104 latent in bf16, tiled and untiled (set SKIP_TRAIN=1 to leave section 5 out).
# Exit status: 0 when no check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
mkdir -p "$BUILD"

die() { echo "gpu_check: $*" >&2; exit 2; }

TORCH_DIR=${TORCH_DIR:-$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)}
[[ -f "$TORCH_DIR/include/torch/csrc/api/include/torch/torch.h" ]] ||
  die "no libtorch at TORCH_DIR='$TORCH_DIR'; set TORCH_DIR to a directory with include/ and lib/"
[[ -f "$TORCH_DIR/lib/libtorch_cuda.so" ]] || die "$TORCH_DIR/lib has no libtorch_cuda.so: this libtorch is CPU-only"
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
[[ -f "$CUDA_HOME/include/cuda_runtime.h" ]] || die "no cuda_runtime.h under CUDA_HOME=$CUDA_HOME"
if [[ -z "${NCCL_HOME:-}" ]]; then
  NCCL_HOME=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null || true)
  [[ -e "$NCCL_HOME/lib/libnccl.so.2" ]] || NCCL_HOME=$CUDA_HOME
fi
NCCL_LIB=$(for d in "$NCCL_HOME"/lib64 "$NCCL_HOME"/lib; do [[ -e $d/libnccl.so.2 ]] && echo "$d"; done | head -1)
[[ -n "$NCCL_LIB" ]] || die "no libnccl.so.2 under NCCL_HOME=$NCCL_HOME (lib or lib64)"
# The header may live apart from the library (some wheels ship the library alone).
NCCL_INCLUDE=${NCCL_INCLUDE:-$(for d in "$NCCL_HOME/include" "$CUDA_HOME/include" "${DEPS_PREFIX:-/usr}/include"; do
  [[ -f $d/nccl.h ]] && echo "$d"; done | head -1)}
[[ -f "$NCCL_INCLUDE/nccl.h" ]] || die "no nccl.h in NCCL_HOME/include, CUDA_HOME/include or DEPS_PREFIX/include"
CUDA_LIB=$(ls -d "$CUDA_HOME"/lib64 "$CUDA_HOME"/targets/x86_64-linux/lib 2>/dev/null | head -1)
DEPS_PREFIX=${DEPS_PREFIX:-/usr}
MPI_INCLUDE=${MPI_INCLUDE:-$(mpicxx --showme:incdirs 2>/dev/null | cut -d' ' -f1)}
MPI_LIBDIR=${MPI_LIBDIR:-$(mpicxx --showme:libdirs 2>/dev/null | cut -d' ' -f1)}
[[ -f "$MPI_INCLUDE/mpi.h" ]] || die "no mpi.h in MPI_INCLUDE='$MPI_INCLUDE'"
MPIRUN=${MPIRUN:-mpirun}
NP_MAX=${NP_MAX:-4}
CXX=${CXX:-g++}
# The project is C++17; a libtorch whose headers need a newer standard is reported, then used.
CXX_STD=${CXX_STD:-c++17}
echo '#include <torch/torch.h>' >"$BUILD/std_probe.cc"
if ! "$CXX" -std="$CXX_STD" -fsyntax-only -I"$TORCH_DIR/include" -I"$TORCH_DIR/include/torch/csrc/api/include" \
  "$BUILD/std_probe.cc" 2>"$BUILD/std_probe.log"; then
  echo "NOTE: this libtorch's headers do not compile as $CXX_STD:"; grep -m3 error "$BUILD/std_probe.log"
  CXX_STD=c++20
fi

echo "gpu_check: $CXX_STD, torch $TORCH_DIR, CUDA $CUDA_HOME, NCCL $NCCL_LIB ($NCCL_INCLUDE), deps $DEPS_PREFIX, MPI $MPI_INCLUDE"
CXXFLAGS=(-std=$CXX_STD -O1 -g0 -fPIC -DOMPI_SKIP_MPICXX -DDANCEGRPO_WITH_CUDA=1 -DDANCEGRPO_WITH_NCCL=1
  -I. -I"$DEPS_PREFIX/include" -I"$TORCH_DIR/include" -I"$TORCH_DIR/include/torch/csrc/api/include" -I"$CUDA_HOME/include"
  -I"$NCCL_INCLUDE" -I"$MPI_INCLUDE")
# DEPS_PREFIX's headers come before libtorch's: a pip torch ships an old google/protobuf of its
# own, which must not shadow the protobuf that train links (found on the H200, torch 2.11).
# FFmpeg (MP4 samples) only where its headers are: the kit does not carry it (its libraries
# and theirs are ~60 MiB), so elsewhere train writes PNG and GIF samples only.
if [[ -f "$DEPS_PREFIX/include/libavformat/avformat.h" || -f /usr/include/x86_64-linux-gnu/libavformat/avformat.h ]]; then
  AVLIBS=(-lavformat -lavcodec -lavutil -lswscale)
else
  CXXFLAGS+=(-DDANCEGRPO_NO_MP4); AVLIBS=()
fi
# TensorBoard's messages: the kit carries them generated (DEPS_PREFIX/gen), else this node's protoc.
GEN="$BUILD/gen"
mkdir -p "$GEN/dancegrpo/io"
if [[ -f "$DEPS_PREFIX/gen/dancegrpo/io/tensorboard.pb.cc" ]]; then
  cp "$DEPS_PREFIX"/gen/dancegrpo/io/tensorboard.pb.* "$GEN/dancegrpo/io/"
elif command -v protoc >/dev/null; then
  protoc --proto_path=. --cpp_out="$GEN" dancegrpo/io/tensorboard.proto || die "protoc failed on dancegrpo/io/tensorboard.proto"
else
  echo "NOTE: no protoc and no kit: the files that use TensorBoard's messages will not compile"
fi
CXXFLAGS+=(-I"$GEN")
SOURCES=(hpc/mpi_error.cc hpc/nccl_bootstrap.cc hpc/comm/communicator.cc hpc/comm/mpi_communicator.cc hpc/comm/agree.cc
  hpc/comm/nccl_communicator.cc hpc/comm/communicator_conformance.cc hpc/comm/nccl_communicator_test.cc
  hpc/comm/mpi_communicator_test.cc tests/mpi_gtest_main.cc hpc/tools/nccl_probe.cc)
t0=$(date +%s)
pids=()
for src in "${SOURCES[@]}"; do
  obj="$BUILD/$(echo "$src" | tr / _).o"
  "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$obj" 2>"$obj.log" &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "gpu_check: compiling ${SOURCES[$i]} failed:" >&2
    head -40 "$BUILD/$(echo "${SOURCES[$i]}" | tr / _).o.log" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1
o() { for s in "$@"; do echo "$BUILD/$(echo "$s" | tr / _).o"; done; }
ABSL=$(ls "$DEPS_PREFIX"/lib/libabsl_*.so "$DEPS_PREFIX"/lib/x86_64-linux-gnu/libabsl_*.so 2>/dev/null | sed 's|.*/lib\(absl_[^.]*\)\.so$|-l\1|' | sort -u)
ABSL_DIR=$(dirname "$(ls "$DEPS_PREFIX"/lib/libabsl_base.so "$DEPS_PREFIX"/lib/x86_64-linux-gnu/libabsl_base.so 2>/dev/null | head -1)")
GTEST=$(ls "$DEPS_PREFIX"/lib/libgtest.a "$DEPS_PREFIX"/lib/x86_64-linux-gnu/libgtest.a 2>/dev/null | head -1)
LDFLAGS=(-L"$TORCH_DIR/lib" -L"$NCCL_LIB" -L"$CUDA_LIB" -L"$ABSL_DIR" -L"$MPI_LIBDIR"
  -Wl,-rpath,"$TORCH_DIR/lib:$NCCL_LIB:$CUDA_LIB:$ABSL_DIR:$MPI_LIBDIR"
  -Wl,--no-as-needed -ltorch -ltorch_cuda -ltorch_cpu -lc10_cuda -lc10 -Wl,--as-needed
  -l:libnccl.so.2 -lcudart $ABSL -lmpi -lpthread -ldl)
COMMON=$(o hpc/mpi_error.cc hpc/nccl_bootstrap.cc hpc/comm/communicator.cc hpc/comm/mpi_communicator.cc \
  hpc/comm/nccl_communicator.cc)
TESTLIBS=("$GTEST" -lglog -lgflags)
"$CXX" -o "$BUILD/nccl_communicator_test" $COMMON $(o hpc/comm/communicator_conformance.cc \
  hpc/comm/nccl_communicator_test.cc tests/mpi_gtest_main.cc) "${TESTLIBS[@]}" "${LDFLAGS[@]}" || exit 1
"$CXX" -o "$BUILD/mpi_communicator_test" $COMMON $(o hpc/comm/communicator_conformance.cc hpc/comm/agree.cc \
  hpc/comm/mpi_communicator_test.cc tests/mpi_gtest_main.cc) "${TESTLIBS[@]}" "${LDFLAGS[@]}" || exit 1
"$CXX" -o "$BUILD/nccl_probe" $(o hpc/mpi_error.cc hpc/nccl_bootstrap.cc hpc/tools/nccl_probe.cc) \
  "${LDFLAGS[@]}" || exit 1
echo "gpu_check: built in $(($(date +%s) - t0)) s"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 GTEST_COLOR=no
RUN=("$MPIRUN" --oversubscribe --bind-to none)
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
NP=$((GPUS < NP_MAX ? GPUS : NP_MAX))
((NP >= 1)) || NP=1
echo "gpu_check: $GPUS GPU(s) visible; NCCL checks at $NP rank(s)"
nvidia-smi -L 2>/dev/null
bad=0
check() {  # check NAME CMD...: runs CMD, prints PASS/FAIL with the tail of its log
  local name=$1 log="$BUILD/$1.log"
  shift
  if timeout 300 "$@" >"$log" 2>&1; then echo "PASS $name"; else echo "FAIL $name (exit $?)"; bad=1; fi
  tail -25 "$log" | sed "s/^/  [$name] /"
}
DIT=(models/dit/dit.cc models/dit/dit_config.cc models/dit/cpu_attention.cc models/dit/cpu_ops.cc models/dit/ring_attention.cc models/lora.cc
  models/lora_keys.cc models/safetensors.cc hpc/atomic_file.cc hpc/crc32c.cc hpc/seqpar.cc hpc/usp.cc models/timestep_embedding.cc
  models/velocity_model.cc hpc/block_runner.cc hpc/sharding.cc hpc/zero3.cc hpc/memory.cc)
ALLFLAGS=("${CXXFLAGS[@]}" -I"$DEPS_PREFIX/include/hdf5" -I"$DEPS_PREFIX/include/hdf5/openmpi")
if [[ "${TRAIN_ONLY:-0}" != 1 ]]; then  # TRAIN_ONLY=1: build, then section 5 alone
check nccl_probe_np$NP "${RUN[@]}" -np "$NP" -x NCCL_DEBUG=VERSION "$BUILD/nccl_probe"
check nccl_conformance_np$NP "${RUN[@]}" -np "$NP" -x NCCL_DEBUG=WARN "$BUILD/nccl_communicator_test"
check mpi_conformance_np2 "${RUN[@]}" -np 2 "$BUILD/mpi_communicator_test"
if ((GPUS < 2)); then
  # Two ranks on one GPU: must fail on every rank with the one-GPU-per-rank message.
  log="$BUILD/two_ranks_one_gpu.log"
  timeout 120 "${RUN[@]}" -np 2 "$BUILD/nccl_probe" >"$log" 2>&1
  rc=$?
  n=$(grep -c "one GPU per rank\|could not take GPU" "$log")
  if ((rc != 0 && rc != 124 && n == 2)); then echo "PASS two_ranks_one_gpu_is_refused"; else
    echo "FAIL two_ranks_one_gpu_is_refused (exit $rc, $n of 2 ranks named the problem)"; bad=1; fi
  sed 's/^/  [two_ranks_one_gpu] /' "$log" | head -12
else
  echo "SKIP two_ranks_one_gpu_is_refused ($GPUS GPUs: every rank has its own)"
fi

# --- 4. the tree against this libtorch
# rewards/oip/ (the Open Inference Protocol client) needs gRPC and its generated stubs, which
# the GPU kit does not carry; it has no libtorch-version-specific code.
mapfile -t ALL < <(find dancegrpo models rewards world hpc tests bench tools -name '*.cc' -not -path 'rewards/oip/*' | sort)
printf '%s\n' "${ALL[@]}" | xargs -P "$(nproc)" -I{} sh -c \
  'out="$0/syntax_$(echo {} | tr / _).log"; "$@" -fsyntax-only {} >"$out" 2>&1 || echo "SYNTAX-FAIL {}"' \
  "$BUILD" "$CXX" "${ALLFLAGS[@]}" >"$BUILD/syntax.txt"
nfail=$(grep -c SYNTAX-FAIL "$BUILD/syntax.txt")
if ((nfail == 0)); then echo "PASS compile_all_${#ALL[@]}_files_with_this_libtorch"; else
  echo "FAIL compile_all_with_this_libtorch ($nfail of ${#ALL[@]} files)"; bad=1
  grep SYNTAX-FAIL "$BUILD/syntax.txt" | while read -r _ f; do
    echo "  [$f]"; grep -m5 "error" "$BUILD/syntax_$(echo "$f" | tr / _).log" | sed 's/^/    /'; done
fi
# The DiT and what it links: its fused CPU kernels, LoRA (every linear is a LoraLinear; the
# adapter files need safetensors, atomic writes and CRC-32C).
pids=()
for src in "${DIT[@]}" models/dit/dit_test.cc models/dit/dit_seqpar_test.cc models/dit/dit_usp_test.cc tests/smoke/torch_autograd_test.cc; do
  "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$BUILD/$(echo "$src" | tr / _).o" 2>"$BUILD/$(echo "$src" | tr / _).o.log" &
  pids+=($!)
done
ok=1
for p in "${pids[@]}"; do wait "$p" || ok=0; done
MAIN=$(ls "$DEPS_PREFIX"/lib/libgtest_main.a "$DEPS_PREFIX"/lib/x86_64-linux-gnu/libgtest_main.a 2>/dev/null | head -1)
if ((ok)) &&
  "$CXX" -o "$BUILD/dit_test" $(o "${DIT[@]}" hpc/comm/communicator.cc models/dit/dit_test.cc) "$MAIN" \
    "${TESTLIBS[@]}" "${LDFLAGS[@]}" &&
  "$CXX" -o "$BUILD/torch_autograd_test" $(o tests/smoke/torch_autograd_test.cc) "$MAIN" "${TESTLIBS[@]}" \
    "${LDFLAGS[@]}" &&
  "$CXX" -o "$BUILD/dit_seqpar_test" $COMMON $(o "${DIT[@]}" models/dit/dit_seqpar_test.cc models/dit/dit_usp_test.cc tests/mpi_gtest_main.cc) \
    "${TESTLIBS[@]}" "${LDFLAGS[@]}"; then
  check torch_autograd_test "$BUILD/torch_autograd_test"
  check dit_test "$BUILD/dit_test"
  check dit_seqpar_np2 "${RUN[@]}" -np 2 "$BUILD/dit_seqpar_test"
else
  echo "FAIL build_dit_tests"; bad=1
  cat "$BUILD"/*dit*.o.log "$BUILD"/*autograd*.o.log 2>/dev/null | grep -m10 error
fi
fi  # TRAIN_ONLY
# --- 5. train on CUDA in bf16, and the DiT's forward+backward MFU
if [[ "${SKIP_TRAIN:-0}" == 1 ]]; then echo "SKIP train_cuda_bf16 (SKIP_TRAIN=1)"; exit $bad; fi
TRAIN_SRC=(dancegrpo/advantage.cc dancegrpo/rng.cc dancegrpo/rollout.cc dancegrpo/schedule.cc dancegrpo/sde.cc
  dancegrpo/scored_rollout.cc dancegrpo/trainer.cc dancegrpo/trainer_config.cc dancegrpo/update.cc
  dancegrpo/trainable.cc dancegrpo/io/checkpoint.cc dancegrpo/io/images.cc dancegrpo/io/inputs.cc
  dancegrpo/io/run_report.cc dancegrpo/io/sample_writer.cc dancegrpo/io/mp4.cc dancegrpo/io/trajectory_store.cc dancegrpo/io/tensorboard.cc
  dancegrpo/plan/memory_plan.cc dancegrpo/tools/model_flags.cc dancegrpo/tools/run_flags.cc
  dancegrpo/tools/run_setup.cc hpc/blas_kernels.cc hpc/comm/agree.cc hpc/torch_error.cc hpc/fault_injection.cc hpc/topology.cc hpc/h5/h5.cc hpc/h5/sharded_vector.cc models/mlp_velocity.cc models/model_family.cc
  models/dit/dit_family.cc models/torchscript_decoder.cc models/decoder_frames.cc models/vae/wan_vae.cc models/text/precomputed_text_encoder.cc
  rewards/reward.cc rewards/registry.cc rewards/video_rewards.cc world/toy_world.cc world/shapes_world.cc
  world/shapes_rewards.cc "$GEN/dancegrpo/io/tensorboard.pb.cc")
pids=()
ALSO=()
[[ "${TRAIN_ONLY:-0}" == 1 ]] && ALSO=("${DIT[@]}")  # section 4 built these otherwise
for src in "${TRAIN_SRC[@]}" ${ALSO[@]+"${ALSO[@]}"} dancegrpo/tools/train.cc tests/fixtures/make_fixtures.cc bench/dit_bench.cc \
  bench/vae_bench.cc; do
  "$CXX" "${ALLFLAGS[@]}" -O2 -c "$src" -o "$BUILD/$(echo "$src" | tr / _).o" 2>"$BUILD/$(echo "$src" | tr / _).o.log" &
  pids+=($!)
done
ok=1
for p in "${pids[@]}"; do wait "$p" || ok=0; done
HDF5_LIB=$(ls "$DEPS_PREFIX"/lib/libhdf5_openmpi.so* "$DEPS_PREFIX"/lib/x86_64-linux-gnu/libhdf5_openmpi.so* 2>/dev/null | head -1)
EXTRA=(-L"$(dirname "${HDF5_LIB:-/usr/lib/libhdf5_openmpi.so}")" "-l:$(basename "${HDF5_LIB:-libhdf5_openmpi.so}")"
  -lpng16 -ljpeg -lgif ${AVLIBS[@]+"${AVLIBS[@]}"} -lprotobuf -lglog -lgflags -ldl)
if ((ok)) &&
  "$CXX" -o "$BUILD/train" $COMMON $(o "${TRAIN_SRC[@]}" "${DIT[@]}" dancegrpo/tools/train.cc) "${EXTRA[@]}" \
    "${LDFLAGS[@]}" 2>"$BUILD/link_train.log" &&
  "$CXX" -o "$BUILD/make_fixtures" $(o "${DIT[@]}" hpc/comm/communicator.cc \
    models/text/precomputed_text_encoder.cc hpc/h5/h5.cc tests/fixtures/make_fixtures.cc) "${EXTRA[@]}" \
    "${LDFLAGS[@]}" 2>"$BUILD/link_fixtures.log" &&
  "$CXX" -o "$BUILD/dit_bench" $(o "${DIT[@]}" hpc/comm/communicator.cc hpc/blas_kernels.cc bench/dit_bench.cc) "${EXTRA[@]}" \
    "${LDFLAGS[@]}" 2>"$BUILD/link_bench.log" &&
  "$CXX" -o "$BUILD/vae_bench" $(o "${DIT[@]}" hpc/comm/communicator.cc models/vae/wan_vae.cc \
    models/torchscript_decoder.cc hpc/torch_error.cc hpc/blas_kernels.cc bench/vae_bench.cc) "${EXTRA[@]}" \
    "${LDFLAGS[@]}" 2>"$BUILD/link_vae_bench.log"; then
  PEAK=${PEAK_TFLOPS:-989}
  "$BUILD/make_fixtures" --out="$BUILD/fixtures" --text_dim=4096 >/dev/null
  check train_cuda_bf16 "${RUN[@]}" -np 1 "$BUILD/train" --model=wan2.1-1.3b --embeddings="$BUILD/fixtures/embeddings.h5" \
    --prompts="$BUILD/fixtures/prompts.txt" --latent_shape="${TRAIN_LATENT:-16,21,60,104}" \
    --rewards="torchscript=$BUILD/fixtures/latent_reward.pt" --device=cuda --precision=bf16 --activation_checkpointing \
    --iterations="${TRAIN_ITERS:-5}" --prompts_per_iteration=1 --group_size=2 --steps=6 --timestep_fraction=0.4 \
    --micro_batch=1 --lr=1e-5 --peak_tflops="$PEAK" --out="$BUILD/train_run" --sample_every=0 --checkpoint_every=0
  grep -E "s/iteration|MFU" "$BUILD/train_cuda_bf16.log" | sed 's/^/  [train_cuda_bf16] /'
  # ZeRO-3 on CUDA (one GPU: world 1, but the whole path: slices on the device, NCCL gathers,
  # bucketed reduce-scatter), the last 10 blocks trained, checked against the plan for 139 GB.
  check train_cuda_bf16_zero3 "${RUN[@]}" -np 1 "$BUILD/train" --model=wan2.1-1.3b \
    --embeddings="$BUILD/fixtures/embeddings.h5" --prompts="$BUILD/fixtures/prompts.txt" \
    --latent_shape="${TRAIN_LATENT:-16,21,60,104}" --rewards="torchscript=$BUILD/fixtures/latent_reward.pt" \
    --device=cuda --precision=bf16 --zero_stage=3 --trainable=blocks.20-29,head --memory_gb=139 --iterations=2 \
    --prompts_per_iteration=1 --group_size=2 --steps=6 --timestep_fraction=0.4 --micro_batch=1 --lr=1e-5 \
    --peak_tflops="$PEAK" --out="$BUILD/train_run_zero3" --sample_every=0 --checkpoint_every=0
  grep -E "s/iteration|MFU|measured|load|rollout|update|checkpoint " "$BUILD/train_cuda_bf16_zero3.log" | \
    sed 's/^/  [train_cuda_bf16_zero3] /'
  check dit_bench_cuda_bf16 "$BUILD/dit_bench" --device=cuda --precision=bf16 --preset=wan2.1-1.3b \
    --latent="${TRAIN_LATENT:-16,21,60,104}" --peak_tflops="$PEAK"
  # Wan2.1's VAE decoder (random weights, its layout) on a whole 81 x 480 x 832 clip, bf16, tiled
  # as diffusers tiles it, then untiled: seconds per decode (docs/experiments: the GPU's row).
  check vae_bench_cuda_bf16_tiled "$BUILD/vae_bench" --device=cuda --dtype=bf16 --latents=21,60,104 --tile=256 --stride=192
  check vae_bench_cuda_bf16 "$BUILD/vae_bench" --device=cuda --dtype=bf16 --latents=21,60,104
  grep -h "vae_bench latents" "$BUILD"/vae_bench_cuda_bf16*.log | sed 's/^/  [vae_bench] /' 
else
  echo "FAIL build_train"; bad=1
  cat "$BUILD"/link_*.log 2>/dev/null | grep -m10 -i "error\|undefined"
  for src in "${TRAIN_SRC[@]}" dancegrpo/tools/train.cc; do grep -m3 error "$BUILD/$(echo "$src" | tr / _).o.log"; done
fi
exit $bad
