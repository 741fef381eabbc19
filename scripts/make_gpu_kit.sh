#!/usr/bin/env bash
# make_gpu_kit.sh: bundles what scripts/gpu_check.sh needs besides PyTorch, CUDA and g++
# (Open MPI with its plugins and launcher, Abseil, glog, gflags, GoogleTest, the HDF5, JSON,
# JPEG and PNG headers, and the parallel HDF5, libpng and libjpeg libraries that `train`
# links) from this Debian 12 machine into one relocatable folder, for a
# GPU node that has none of them and cannot install packages.
#
#   scripts/make_gpu_kit.sh [kit-dir]        # default .gpu_kit (ignored by git; ~46 MiB)
#   # on the GPU node, from the repository root:
#   source .gpu_kit/env.sh && scripts/gpu_check.sh
#
# Generic libraries the node may already have (zlib, liblzma, libudev, ...) go to fallback/;
# env.sh uses one only where the node's loader does not know that library, so the node's
# newer copies win.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-.gpu_kit}
L=/usr/lib/x86_64-linux-gnu
I=/usr/include
for need in "$L/openmpi/lib/libmpi.so" "$I/absl" "$I/glog" "$I/gtest" "$I/hdf5/openmpi/hdf5.h" /usr/bin/orterun; do
  [[ -e $need ]] || { echo "make_gpu_kit: $need is missing; run scripts/setup.sh first" >&2; exit 2; }
done
rm -rf "$K"
mkdir -p "$K"/{include/hdf5,lib,fallback,ompi/bin,ompi/lib/x86_64-linux-gnu,ompi/share}
cp -r "$I"/absl "$I"/gtest "$I"/gmock "$I"/glog "$I"/gflags "$I"/nlohmann "$K/include/"
cp -r "$L/openmpi/include" "$K/include/ompi"
cp -r "$I"/hdf5/openmpi/* "$K/include/hdf5/"
cp "$I"/{jpeglib.h,jerror.h,jmorecfg.h,png.h,pngconf.h,pnglibconf.h,zlib.h,zconf.h} "$I/x86_64-linux-gnu/jconfig.h" \
  "$K/include/"
[[ -f /usr/local/cuda/include/nccl.h ]] && cp /usr/local/cuda/include/nccl.h "$K/include/"
cp "$L"/libgtest.a "$L"/libgtest_main.a "$L"/libgmock.a "$K/lib/"
# Open MPI as an install tree under ompi/ (OPAL_PREFIX relocates it), PMIx beside it.
cp -a "$L/openmpi" "$L/pmix2" "$K/ompi/lib/x86_64-linux-gnu/"
rm -rf "$K/ompi/lib/x86_64-linux-gnu/pmix2/include" "$K"/ompi/lib/x86_64-linux-gnu/pmix2/lib/libpmix.a \
  "$K"/ompi/lib/x86_64-linux-gnu/openmpi/lib/{libmpi_java*,libmpi_us*,libmpi_mpifh*}
cp -a /usr/share/openmpi "$K/ompi/share/"
cp /usr/bin/orted /usr/bin/orterun "$K/ompi/bin/"
ln -s orterun "$K/ompi/bin/mpirun"
# Every shared library those need, except the C/C++ runtime the node must have anyway.
skip='^(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libstdc\+\+|libgcc_s|linux-vdso)\.'
generic='^(libz|liblzma|libudev|libuuid|libatomic|libnuma|libnl-3|libnl-route-3|libunwind)\.'
mapfile -t files < <(find "$K/ompi" -name '*.so*' -type f; echo "$K/ompi/bin/orted"; echo "$K/ompi/bin/orterun"
  echo "$L/libglog.so.1"; echo "$L/libmpi.so.40"; ls "$L"/libhdf5_openmpi.so.[0-9]* "$L"/libpng16.so.16 \
  "$L"/libjpeg.so.62 "$L"/libgflags.so.2.2 2>/dev/null)
for f in "${files[@]}"; do ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $1, $3}'; done | sort -u |
  grep -Ev "$skip" | while read -r name path; do
    if [[ $name =~ $generic ]]; then cp -L "$path" "$K/fallback/$name"; else cp -L "$path" "$K/lib/$name"; fi
  done
cp -L "$L/libglog.so.1" "$K/lib/"
for f in "$L"/libhdf5_openmpi.so.[0-9]* "$L"/libpng16.so.16 "$L"/libjpeg.so.62 "$L"/libgflags.so.2.2; do
  [[ -e $f ]] && cp -L "$f" "$K/lib/"
done
ln -sf libpng16.so.16 "$K/lib/libpng.so"
for f in "$L"/libabsl_*.so.[0-9]*; do cp -L "$f" "$K/lib/"; done
for f in "$K"/lib/lib*.so.*; do b=$(basename "$f"); [[ -e $K/lib/${b%%.so.*}.so ]] || ln -s "$b" "$K/lib/${b%%.so.*}.so"; done
cat >"$K/env.sh" <<'EOF'
# Source from the repository root on the GPU node: sets what scripts/gpu_check.sh reads.
K=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for f in "$K"/fallback/*; do
  n=$(basename "$f")
  ldconfig -p | grep -q "^\s*$n " || { [[ -e $K/lib/$n ]] || cp -a "$f" "$K/lib/"; echo "kit: using the carried $n"; }
done
export DEPS_PREFIX=$K MPI_INCLUDE=$K/include/ompi MPI_LIBDIR=$K/lib MPIRUN=$K/ompi/bin/mpirun OPAL_PREFIX=$K/ompi
export LD_LIBRARY_PATH=$K/lib:$K/ompi/lib/x86_64-linux-gnu/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PMIX_MCA_mca_base_component_path=$K/ompi/lib/x86_64-linux-gnu/pmix2/lib/pmix
export PMIX_INSTALL_PREFIX=$K/ompi/lib/x86_64-linux-gnu/pmix2 PMIX_MCA_pcompress_base_silence_warning=1
export PATH=$K/ompi/bin:$PATH
EOF
echo "make_gpu_kit: $(du -sh "$K" | cut -f1) in $K"
