#!/usr/bin/env bash
# bench/gpu/suite.sh — the one script for a lent GPU (see bench/gpu/README.md for the exact call).
#
#   1. binaries: the prebuilt build-gpu/bin carried from the build machine (bench/gpu/prepare.sh,
#      recommended), or with --build (or when build-gpu/bin is missing) a CMake build on the device
#      for the card's architecture, with .devlibs/ supplying what the device lacks (cJSON);
#   2. lisa-check: every op CUDA vs CPU + attention at real LISA shapes -> check.json;
#   3. bench_gpu_kernels: attention TFLOP/s (SAM windows/global at batch 8 with rel-pos fused,
#      LLaMA prefill, decode) and cuBLASLt GEMMs at LISA shapes -> kernels.json;
#   4. .peer/torch_peer.py (if carried): the PyTorch peer on the same card -> peer.json (_torch keys);
#   5. TP=2 when the machine has 2+ GPUs (mpirun -np 2 tp-nccl-check), else "1 GPU: TP=2 skipped";
#      model benchmarks (SAM ViT-H img/s, LLaMA-7B prefill/decode, LISA-7B samples/s): TODO, they
#      need models/ (not yet written); their keys are null;
#   6. merge into $OUT/results.json (card, date, commit, check_failures, ...) and print one table.
# Each step has its own timeout; the whole run stays under 8 minutes. Files land in $OUT (the device
# tool's folder; build-gpu/suite-out when unset): at most 8 files (the tool's limit).
#
# usage: bash bench/gpu/suite.sh [--quick] [--build]
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build-gpu/suite-out} # the device tool sets OUT; build*/ is git-ignored
mkdir -p "$OUT"
QUICK=0
BUILD=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    --build) BUILD=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "suite.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
QFLAG=""
[ $QUICK = 1 ] && QFLAG="--quick"
T0=$SECONDS
step() { echo; echo "== [$((SECONDS - T0)) s] $*"; }
left() { echo $((470 - (SECONDS - T0))); } # seconds left of the ~8 minute budget

# Libraries: carried ones first, then the toolkit, then the CUDA wheels of the device's PyTorch.
export LD_LIBRARY_PATH="$ROOT/.devlibs:$ROOT/.devlibs/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
NVLIB=$(python3 - <<'PY' 2>/dev/null
import importlib.util, os
out = []
for m in ("nvidia.cublas", "nvidia.cu13", "nvidia.cuda_runtime"):
    try:
        spec = importlib.util.find_spec(m)
    except Exception:
        continue
    for d in (spec.submodule_search_locations or []) if spec else []:
        for sub in ("lib", "lib64"):
            p = os.path.join(d, sub)
            if os.path.isdir(p):
                out.append(p)
print(":".join(out))
PY
)
[ -n "$NVLIB" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$NVLIB"

step "GPU"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu \
  --format=csv 2>&1 | tee "$OUT/gpu.csv"
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
CARD=${CARD:-unknown}
COMMIT=$(cat .devlibs/commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)

BIN=build-gpu/bin
if [ $BUILD = 1 ] || [ ! -x $BIN/lisa-check ]; then
  ARCH=${CC:-90}
  [ "$ARCH" = 90 ] && ARCH=90a
  step "configure + build on the device for sm_$ARCH (build.log)"
  GEN=""
  command -v ninja >/dev/null && GEN="-G Ninja"
  { timeout 120 cmake -S . -B build-dev $GEN -DLISA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLISA_TESTS=OFF \
      -DLISA_NCCL=OFF -DLISA_MPI=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$ROOT/.devlibs" &&
    timeout 300 cmake --build build-dev -j"$(nproc)" --target lisa_check bench_gpu_kernels; } >"$OUT/build.log" 2>&1 ||
    { echo "build failed:"; tail -25 "$OUT/build.log"; }
  BIN=build-dev/bin
  COMMIT=$(git rev-parse HEAD 2>/dev/null || echo "$COMMIT")
fi
if [ ! -x $BIN/lisa-check ]; then
  echo "suite.sh: no $BIN/lisa-check (run bench/gpu/prepare.sh here and carry build-gpu/bin, or --build)" >&2
  exit 1
fi
if ldd $BIN/lisa-check | grep -q "not found"; then
  echo "missing shared libraries (add them to .devlibs/):"; ldd $BIN/lisa-check | grep "not found"
fi

step "lisa-check $QFLAG (check.log, check.json)"
CHECK_T=$(( $(left) - 300 )); [ $CHECK_T -gt 200 ] && CHECK_T=200; [ $CHECK_T -lt 60 ] && CHECK_T=60
timeout $CHECK_T $BIN/lisa-check $QFLAG --json "$OUT/check.json" >"$OUT/check.log" 2>&1
CHECK_RC=$?
grep -E "^(FAIL|SKIP|TODO)" "$OUT/check.log" | head -40
grep -A4 "mismatch" "$OUT/check.log" | head -20
tail -2 "$OUT/check.log"
[ $CHECK_RC = 124 ] && echo "lisa-check timed out after ${CHECK_T}s"

step "bench_gpu_kernels $QFLAG (kernels.log, kernels.json)"
BENCH_T=$(( $(left) - 200 )); [ $BENCH_T -gt 120 ] && BENCH_T=120; [ $BENCH_T -lt 30 ] && BENCH_T=30
timeout $BENCH_T $BIN/bench_gpu_kernels $QFLAG --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.log"

if [ -f .peer/torch_peer.py ]; then
  step "torch peer (peer.log, peer.json)"
  PEER_T=$(( $(left) - 15 )); [ $PEER_T -gt 240 ] && PEER_T=240
  if [ $PEER_T -gt 30 ]; then
    PYTHONUNBUFFERED=1 timeout $PEER_T python3 .peer/torch_peer.py --quick --out "$OUT/peer.json" 2>&1 | tee "$OUT/peer.log"
  else
    echo "no time left for the torch peer"
  fi
else
  step "torch peer: .peer/torch_peer.py not carried (bench/gpu/prepare.sh copies it): _torch keys null"
fi

# TP=2 (issue #10): the NCCL communicator on two GPUs (tests/gpu/tp_nccl_check.c), when the lent
# machine has them; today's lent machines have one. Output on stdout only (the file limit).
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$NGPU" -lt 2 ]; then
  step "$NGPU GPU: TP=2 skipped"
elif [ ! -x $BIN/tp-nccl-check ] || ! command -v mpirun >/dev/null; then
  step "TP=2 skipped: $BIN/tp-nccl-check or mpirun missing (build with NCCL and MPI: -DLISA_NCCL=ON -DLISA_MPI=ON)"
else
  step "TP=2: tp-nccl-check on 2 of $NGPU GPUs"
  TP_T=$(( $(left) - 10 )); [ $TP_T -gt 90 ] && TP_T=90
  if [ $TP_T -gt 20 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout $TP_T mpirun -np 2 $BIN/tp-nccl-check 2>&1 | tail -6
  else
    echo "no time left for TP=2"
  fi
fi

step "model benchmarks: SAM ViT-H, LLaMA-7B, LISA-7B need models/ (not yet written): keys null"

step "results ($OUT/results.json)"
python3 bench/gpu/merge_results.py --out "$OUT/results.json" --card "$CARD" --commit "$COMMIT" \
  --check "$OUT/check.json" --check-rc $CHECK_RC --kernels "$OUT/kernels.json" --peer "$OUT/peer.json" \
  --gpu-csv "$OUT/gpu.csv" --elapsed $((SECONDS - T0))
rm -f "$OUT/gpu.csv" # folded into results.json (the tool returns at most 8 files)
