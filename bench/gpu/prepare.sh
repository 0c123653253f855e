#!/usr/bin/env bash
# bench/gpu/prepare.sh — run HERE (the build machine) before calling the device tool: builds the GPU
# binaries for Hopper (sm_90a) into build-gpu/, stages what the device machine lacks, and prints the
# carry list for the device tool's `run` call (see bench/gpu/README.md).
#
#   build-gpu/bin/   lisa-check, bench_gpu_kernels, bench_gpu_models   (carried: build-gpu/bin)
#   .devlibs/        shared libraries the binaries need that are not core system or CUDA-toolkit
#                    libraries (found by ldd, so libcjson/libopenblas/... appear once the library
#                    uses them), libcudart, the commit id, and headers+libs for an on-device build
#   .peer/           torch_peer.py (the PyTorch peer; never committed: .peer/ is git-ignored)
#
# usage: bench/gpu/prepare.sh [ARCH]      ARCH: CMake CUDA architecture, default 90a (H100/H200)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ARCH=${1:-90a}
JOBS=$(nproc 2>/dev/null || echo 2)

echo "== configure + build build-gpu for sm_${ARCH}"
cmake -S . -B build-gpu -DLISA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLISA_TESTS=OFF -DLISA_NCCL=OFF \
      -DLISA_MPI=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-gpu -j"$JOBS" --target lisa_check bench_gpu_kernels bench_gpu_models

echo "== stage .peer/ and .devlibs/"
mkdir -p .peer .devlibs/lib .devlibs/include
# The PyTorch peer (the reference stack timed on the same card) is not part of this repository:
# LISA_TORCH_PEER names its script, or it is already in .peer/torch_peer.py (git-ignored).
if [ -n "${LISA_TORCH_PEER:-}" ] && [ -f "$LISA_TORCH_PEER" ]; then cp "$LISA_TORCH_PEER" .peer/torch_peer.py; fi
[ -f .peer/torch_peer.py ] || echo "warning: no .peer/torch_peer.py (set LISA_TORCH_PEER=path): no torch peer in this run"
# Runtime libraries: everything ldd resolves except the core C/C++ runtime (the device's are newer),
# the CUDA driver and cuBLAS/cuBLASLt (hundreds of MiB; the device's CUDA 13 toolkit has them).
core='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libgcc_s\.so|libstdc\+\+\.so|libcuda\.so|libcublas\.so|libcublasLt\.so|libresolv\.so|libutil\.so)'
for bin in build-gpu/bin/lisa-check build-gpu/bin/bench_gpu_kernels build-gpu/bin/bench_gpu_models; do
  ldd "$bin" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
    if ! echo "$name" | grep -Eq "$core"; then cp -L "$path" ".devlibs/$name"; fi
  done
done
# For `suite.sh --build` (configure on the device): headers and link-time libraries the device may
# lack. cJSON is known missing there; png/jpeg/zlib are small insurance. One file per soname plus a
# relative dev symlink (symlinks inside a carried folder travel as links). OpenBLAS (36 MiB) is not
# staged for the build unless the binaries already need it at run time (then it is in .devlibs/).
stage_hdr() { for h in "$@"; do if [ -e "$h" ]; then cp -L "$h" .devlibs/include/; fi; done; }
stage_lib() { # stage_lib DEVNAME: copies the soname file, links DEVNAME to it
  local dev=$1 real soname
  real=$(readlink -f "/usr/lib/x86_64-linux-gnu/$dev" 2>/dev/null) || return 0
  [ -e "$real" ] || return 0
  soname=$(objdump -p "$real" 2>/dev/null | awk '/SONAME/{print $2}')
  soname=${soname:-$(basename "$real")}
  cp -L "$real" ".devlibs/lib/$soname"
  [ "$soname" = "$dev" ] || ln -sf "$soname" ".devlibs/lib/$dev"
}
mkdir -p .devlibs/include/cjson
cp -L /usr/include/cjson/cJSON.h .devlibs/include/cjson/ 2>/dev/null || echo "warning: cJSON headers not found"
stage_lib libcjson.so
stage_hdr /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/zlib.h /usr/include/zconf.h \
          /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h /usr/include/x86_64-linux-gnu/jconfig.h \
          /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
          /usr/include/x86_64-linux-gnu/openblas-pthread/openblas_config.h \
          /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h \
          /usr/include/x86_64-linux-gnu/openblas-openmp/openblas_config.h
stage_lib libpng16.so
stage_lib libz.so
stage_lib libjpeg.so
if [ -e .devlibs/libopenblas.so.0 ]; then ln -sf ../libopenblas.so.0 .devlibs/lib/libopenblas.so; fi
# Large libraries travel xz-compressed (OpenBLAS: 36 MiB -> ~5 MiB, since the CPU backend that
# lisa-check compares against uses it); suite.sh unpacks them before anything runs.
for f in .devlibs/*.so*; do
  if [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %s "$f")" -gt $((8 << 20)) ]; then
    xz -T0 -6 -f "$f" && echo "compressed $f -> $f.xz ($(du -h "$f.xz" | cut -f1))"
  fi
done
( git rev-parse HEAD; git diff --quiet HEAD -- . ':!bench/results' || echo dirty ) | paste -sd- > .devlibs/commit
echo "sm_${ARCH} $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nvcc --version | tail -1)" > .devlibs/build-info

echo "== sizes (the device tool carries at most 64 MiB in all, working tree included)"
tree_kib=$(git ls-files -z | xargs -0 du -k 2>/dev/null | awk '{s+=$1} END {print s}')
carry_kib=$(du -sk build-gpu/bin .devlibs .peer | awk '{s+=$1} END {print s}')
du -sh build-gpu/bin .devlibs .peer
echo "tracked files: $((tree_kib / 1024)) MiB, carried: $((carry_kib / 1024)) MiB, total $(((tree_kib + carry_kib) / 1024)) MiB"
if [ $((tree_kib + carry_kib)) -gt $((60 * 1024)) ]; then echo "error: over the 64 MiB transfer limit" >&2; exit 1; fi
echo
echo "carry: [\"build-gpu/bin\", \".devlibs\", \".peer\"]"
echo "command: bash bench/gpu/suite.sh"
