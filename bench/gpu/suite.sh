#!/usr/bin/env bash
# bench/gpu/suite.sh — the one script for a lent GPU (see bench/gpu/README.md for the exact call).
#
#   1. binaries: the prebuilt build-gpu/bin carried from the build machine (bench/gpu/prepare.sh,
#      recommended), or with --build (or when build-gpu/bin is missing) a CMake build on the device
#      for the card's architecture, with .devlibs/ supplying what the device lacks (cJSON);
#   2. lisa-check: every op CUDA vs CPU, attention at real LISA shapes, then whole models end to end
#      (tiny LISA golden cases on CPU / CUDA F32 / CUDA BF16, the engine, LISA-7B dims) -> check.json;
#   3. bench_gpu_kernels: attention TFLOP/s (SAM windows/global at batch 8 with rel-pos fused,
#      LLaMA prefill, decode) and cuBLASLt GEMMs at LISA shapes;
#   4. bench_gpu_models: SAM ViT-H img/s (batch 1, 8), LLaMA-7B prefill 8 x 330 and decode ms/step
#      (batch 1, 16), LISA-7B samples/s through the engine, on a synthetic LISA-7B drawn on the GPU;
#   5. .peer/torch_peer.py (if carried): the PyTorch peer on the same card (_torch keys);
#   5b. TP=2 when the machine has 2+ GPUs (mpirun -np 2 tp-nccl-check), else "1 GPU: TP=2 skipped";
#   6. merge into $OUT/results.json (card, date, commit, check_failures, ...) and print one table.
# Each step has its own timeout from what is left of a 470 s budget (under 8 minutes with the
# machine's own overhead): lisa-check <= 180 s, kernels <= 70 s, models <= 110 s, peer <= 200 s.
# Files land in $OUT (the device tool's folder; build-gpu/suite-out when unset): results.json,
# check.json, check.log, bench.log (kernels, models and peer output) and build.log with --build;
# the tool returns at most 8 files.
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
clamp() { local v=$1; [ "$v" -gt "$3" ] && v=$3; [ "$v" -lt "$2" ] && v=$2; echo "$v"; } # clamp V LO HI

# Large carried libraries come xz-compressed (prepare.sh); unpack them once (python3's lzma if no xz).
for f in .devlibs/*.xz; do
  [ -e "$f" ] || continue
  out=${f%.xz}
  [ -e "$out" ] && continue
  xz -dc "$f" >"$out.tmp" 2>/dev/null ||
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$out.tmp"
  mv "$out.tmp" "$out"
done
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
    timeout 300 cmake --build build-dev -j"$(nproc)" --target lisa_check bench_gpu_kernels bench_gpu_models; } >"$OUT/build.log" 2>&1 ||
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
CHECK_T=$(clamp $(( $(left) - 290 )) 60 180)
timeout $CHECK_T $BIN/lisa-check $QFLAG --json "$OUT/check.json" >"$OUT/check.log" 2>&1
CHECK_RC=$?
grep -E "^(FAIL|SKIP|TODO)" "$OUT/check.log" | head -40
grep -A4 "mismatch" "$OUT/check.log" | head -20
grep -E "^      (loaded|LISA|engine)" "$OUT/check.log" | head -20
tail -2 "$OUT/check.log"
[ $CHECK_RC = 124 ] && echo "lisa-check timed out after ${CHECK_T}s"

: >"$OUT/bench.log"
step "bench_gpu_kernels $QFLAG (bench.log)"
BENCH_T=$(clamp $(( $(left) - 230 )) 30 70)
{ echo "== bench_gpu_kernels"; timeout $BENCH_T $BIN/bench_gpu_kernels $QFLAG --json "$OUT/kernels.json" 2>&1; } | tee -a "$OUT/bench.log"

step "bench_gpu_models $QFLAG (bench.log)"
MODELS_T=$(clamp $(( $(left) - 140 )) 40 110)
{ echo "== bench_gpu_models"; timeout $MODELS_T $BIN/bench_gpu_models $QFLAG --json "$OUT/models.json" 2>&1; } |
  tee -a "$OUT/bench.log"

if [ -f .peer/torch_peer.py ]; then
  step "torch peer (bench.log)"
  PEER_T=$(clamp $(( $(left) - 10 )) 0 200)
  if [ $PEER_T -gt 30 ]; then
    { echo "== torch_peer.py"; PYTHONUNBUFFERED=1 timeout $PEER_T python3 .peer/torch_peer.py --quick --out "$OUT/peer.json" 2>&1; } |
      tee -a "$OUT/bench.log"
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

step "results ($OUT/results.json)"
python3 bench/gpu/merge_results.py --out "$OUT/results.json" --card "$CARD" --commit "$COMMIT" \
  --check "$OUT/check.json" --check-rc $CHECK_RC --kernels "$OUT/kernels.json" --models "$OUT/models.json" \
  --peer "$OUT/peer.json" --gpu-csv "$OUT/gpu.csv" --elapsed $((SECONDS - T0))
# folded into results.json (the tool returns at most 8 files)
rm -f "$OUT/gpu.csv" "$OUT/kernels.json" "$OUT/models.json" "$OUT/peer.json"
