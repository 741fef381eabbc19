#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the main job need.
# Idempotent: packages already present are left alone; safe to re-run. Prints what it did.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap          # Bazel 4.2.3 (offline; WORKSPACE shims rules_cc/rules_java)
  g++ pkg-config
  libtorch-dev             # libtorch 1.13, CPU
  libopenblas0-openmp      # without it libtorch uses the reference BLAS (~15x slower GEMM)
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools   # parallel (MPI-IO) HDF5, and h5dump
  libabsl-dev libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev
  libjpeg62-turbo-dev      # JPEG codec for the image-quality reward
  nlohmann-json3-dev       # JSON headers of .safetensors files
  libpng-dev               # reward curves and sample grids as PNG
  libgif-dev               # sample clips as animated GIF (giflib)
  libavformat-dev libavcodec-dev libswscale-dev  # sample clips as H.264 MP4 (FFmpeg, libx264)
  libprotobuf-dev protobuf-compiler  # TensorBoard event files (Event/Summary messages)
  libgrpc++-dev protobuf-compiler-grpc  # the Open Inference Protocol client (served rewards)
  python3-grpcio python3-protobuf       # scripts/reward_server/ (the reference server, its tests)
  python3-torch            # the reference server's TorchScript example; scripts/wan_vae/pth_to_safetensors.py
  libboost-dev             # header-only Boost.CRC: CRC-32C of TensorBoard's record framing
  libtcmalloc-minimal4     # tcmalloc, preloaded by demo.sh: 20-30% faster DiT, more memory (docs/experiments/2026-11-30-dit-speed.md)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: not root and no sudo; install as root: ${PACKAGES[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed"; then
    :
  else
    missing+=("${pkg}")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed; nothing to do."
else
  echo "setup.sh: installing ${#missing[@]} missing package(s): ${missing[*]}"
  ${SUDO} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup.sh: installed ${missing[*]}"
fi

# Report which BLAS libtorch will load (libblas.so.3 is a Debian alternative).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "${blas}" in
  *openblas*) echo "setup.sh: BLAS = OpenBLAS (${blas})" ;;
  *) echo "setup.sh: WARNING: BLAS = ${blas:-none}; libtorch GEMM will be ~15x slower than with OpenBLAS" >&2 ;;
esac
# Which kernels OpenBLAS picks by itself. Debian's OpenBLAS does not know some newer Xeons and
# falls back to generic SSE3 ("Prescott") kernels, about 6x slower for fp32 GEMM; train and
# evaluate then switch to the best kernels the CPU runs after a GEMM self-check
# (--blas_kernels, hpc/blas_kernels.h) and name them in their start line.
if command -v python3 >/dev/null; then
  core=$(OPENBLAS_VERBOSE=2 python3 -c "import ctypes; ctypes.CDLL('libopenblas.so.0')" 2>&1 | sed -n 's/^Core: //p' | head -1)
  if [ "${core}" = "Prescott" ] && grep -qw avx2 /proc/cpuinfo && [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    echo "setup.sh: OpenBLAS picks its generic Prescott kernels on this CPU; train and evaluate choose faster" \
      "ones themselves after a GEMM self-check (their start line names them)"
  elif [ -n "${core}" ]; then
    echo "setup.sh: OpenBLAS kernels: ${core}"
  fi
fi
echo "setup.sh: bazel-bootstrap $(dpkg-query -W -f='${Version}' bazel-bootstrap), $(mpirun --version 2>/dev/null | head -1)"
