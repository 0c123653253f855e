#!/usr/bin/env bash
# bench/gpu/suite.sh — the one script for a lent GPU (see bench/gpu/README.md for the exact call).
#
#   0. smoke (<= 20 s): lisa-check --smoke (one small case of every kernel family) and
#      bench_gpu_kernels --smoke: shows at once whether the binaries start and the kernels launch;
#   1. binaries: the prebuilt build-gpu/bin carried from the build machine (bench/gpu/prepare.sh,
#      recommended), or with --build (or when build-gpu/bin is missing) a CMake build on the device
#      for the card's architecture, with .devlibs/ supplying what the device lacks (cJSON);
#   2. lisa-check: one child process per section (ops, attention, e2e, real), each with its own
#      timeout; a failing section is rerun with CUDA_LAUNCH_BLOCKING=1 up to its first failure -> check.json;
#   3. bench_gpu_kernels: the measured copy bandwidth, attention TFLOP/s (SAM windows/global at batch 8
#      with rel-pos fused, LLaMA prefill, decode) and GEMMs at LISA shapes (small-M rows in GB/s);
#   4. bench_gpu_models: SAM ViT-H img/s (batch 1, 8), the SAM mask decoder, LLaMA-7B prefill 8 x 330
#      and decode ms/step (batch 1, 16), LISA-7B single-request latency and samples/s through the
#      engine, and per-op time tables (SAM batch 8, one decode step, the mask decoder; top 15);
#   5. .peer/torch_peer.py (if carried): the PyTorch peer on the same card (_torch keys), <= 60 s;
#   5b. TP=2 when the machine has 2+ GPUs (mpirun -np 2 tp-nccl-check), else "1 GPU: TP=2 skipped";
#   6. merge into $OUT/results.json (card, date, commit, check_failures, ...) and print one table,
#      then a prepared command that reruns exactly the steps that failed or ran out of time.
# Every step runs under `timeout -k 5` with a limit taken from what is left of a 470 s budget (under 8
# minutes with the machine's own overhead); every program writes its JSON after each case, so a
# step killed by its timeout keeps what it measured. A benchmark whose CUDA context is lost (exit 3)
# is resumed once in a fresh process after the case that broke it.
# Files land in $OUT (the device tool's folder; build-gpu/suite-out when unset): results.json,
# check.json, check.log, bench.log (kernels, models and peer output) and build.log with --build;
# the tool returns at most 8 files.
#
# usage: bash bench/gpu/suite.sh [--quick] [--build] [--steps LIST] [--check-args ARGS] [--models-args ARGS]
#                                [--kernels-args ARGS]
#   --steps: comma-separated subset of smoke,check,kernels,models,peer,tp (default: all)
#   --check-args / --models-args / --kernels-args: extra arguments, e.g. --check-args "--section attention"
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build-gpu/suite-out} # the device tool sets OUT; build*/ is git-ignored
mkdir -p "$OUT"
QUICK=0
BUILD=0
STEPS="smoke,check,kernels,models,peer,tp"
CHECK_ARGS=""
MODELS_ARGS=""
KERNELS_ARGS=""
ARGS_SEEN="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --build) BUILD=1 ;;
    --steps) STEPS=$2; shift ;;
    --check-args) CHECK_ARGS=$2; shift ;;
    --models-args) MODELS_ARGS=$2; shift ;;
    --kernels-args) KERNELS_ARGS=$2; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "suite.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
QFLAG=""
[ $QUICK = 1 ] && QFLAG="--quick"
T0=$SECONDS
step() { echo; echo "== [$((SECONDS - T0)) s] $*"; }
left() { echo $((470 - (SECONDS - T0))); } # seconds left of the ~8 minute budget
clamp() { local v=$1; [ "$v" -gt "$3" ] && v=$3; [ "$v" -lt "$2" ] && v=$2; echo "$v"; } # clamp V LO HI
want() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
RERUN_STEPS="" # steps that failed or timed out: the prepared rerun command at the end
rerun() { case ",$RERUN_STEPS," in *",$1,"*) ;; *) RERUN_STEPS="${RERUN_STEPS:+$RERUN_STEPS,}$1" ;; esac; }
# jkey FILE KEY: a string value of a flat JSON file (empty when absent)
jkey() { python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get(sys.argv[2]) or "")
except Exception: print("")' "$1" "$2" 2>/dev/null; }

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
for m in ("nvidia.cublas", "nvidia.cu13", "nvidia.cuda_runtime", "nvidia.cudnn"):
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

if want smoke; then
  step "smoke (<= 20 s): lisa-check --smoke, bench_gpu_kernels --smoke (smoke.log)"
  timeout -k 5 12 $BIN/lisa-check --smoke --no-rerun --json "$OUT/smoke.json" >"$OUT/smoke.log" 2>&1
  SMOKE_RC=$?
  grep -E "^(FAIL|SKIP)|^lisa-check:" "$OUT/smoke.log" | tail -8
  [ $SMOKE_RC = 124 ] && echo "lisa-check --smoke timed out"
  timeout -k 5 8 $BIN/bench_gpu_kernels --smoke 2>&1 | tee -a "$OUT/smoke.log" | tail -5
  [ "${PIPESTATUS[0]}" != 0 ] && rerun smoke
  [ $SMOKE_RC != 0 ] && rerun smoke
fi

CHECK_RC=0
if want check; then
  step "lisa-check $QFLAG $CHECK_ARGS (check.log, check.json; one process per section)"
  CHECK_T=$(clamp $(( $(left) - 290 )) 60 180)
  # each section may take at most 90 s; a failing one is rerun (CUDA_LAUNCH_BLOCKING=1) for <= 30 s
  timeout -k 5 $CHECK_T $BIN/lisa-check $QFLAG --section-timeout 90 --rerun-timeout 30 --json "$OUT/check.json" \
    $CHECK_ARGS >"$OUT/check.log" 2>&1
  CHECK_RC=$?
  grep -E "^(FAIL|SKIP|TODO)" "$OUT/check.log" | head -40
  grep -A4 "mismatch" "$OUT/check.log" | head -20
  grep -E "^      (loaded|LISA|engine)|^== (section|rerun)" "$OUT/check.log" | head -30
  tail -6 "$OUT/check.log"
  [ $CHECK_RC = 124 ] && echo "lisa-check timed out after ${CHECK_T}s"
  [ $CHECK_RC != 0 ] && rerun check
fi

: >"$OUT/bench.log"
# run_bench NAME BIN JSON TIMEOUT ARGS...: runs a benchmark; on exit 3 (CUDA context lost) resumes it
# once after the case named in its JSON (KEY_aborted_after), into JSON.2 (merged later).
run_bench() {
  local name=$1 bin=$2 json=$3 t=$4 key=$5
  shift 5
  { echo "== $name"; timeout -k 5 "$t" "$bin" "$@" --json "$json" 2>&1; } | tee -a "$OUT/bench.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "$name timed out after ${t}s (its JSON keeps what it measured)"
  if [ "$rc" = 3 ]; then
    local at
    at=$(jkey "$json" "$key")
    local t2=$(( $(left) - 100 ))
    if [ -n "$at" ] && [ $t2 -gt 20 ]; then
      echo "$name lost its CUDA context in $at: resuming after it in a fresh process"
      { echo "== $name --after $at"; timeout -k 5 "$t2" "$bin" "$@" --after "$at" --json "$json.2" 2>&1; } | tee -a "$OUT/bench.log"
    fi
  fi
  return "$rc"
}

if want kernels; then
  step "bench_gpu_kernels $QFLAG $KERNELS_ARGS (bench.log)"
  BENCH_T=$(clamp $(( $(left) - 230 )) 30 70)
  run_bench bench_gpu_kernels $BIN/bench_gpu_kernels "$OUT/kernels.json" $BENCH_T kernel_bench_aborted_after $QFLAG $KERNELS_ARGS ||
    rerun kernels
fi

if want models; then
  step "bench_gpu_models $QFLAG $MODELS_ARGS (bench.log)"
  MODELS_T=$(clamp $(( $(left) - 80 )) 40 130)
  run_bench bench_gpu_models $BIN/bench_gpu_models "$OUT/models.json" $MODELS_T model_bench_aborted_after $QFLAG $MODELS_ARGS ||
    rerun models
fi

if want peer; then
  if [ -f .peer/torch_peer.py ]; then
    step "torch peer, <= 60 s (bench.log)"
    PEER_T=$(clamp $(( $(left) - 10 )) 0 60)
    if [ $PEER_T -gt 20 ]; then
      { echo "== torch_peer.py"; PYTHONUNBUFFERED=1 timeout -k 5 $PEER_T python3 .peer/torch_peer.py --quick --out "$OUT/peer.json" 2>&1; } |
        tee -a "$OUT/bench.log"
      [ "${PIPESTATUS[0]}" != 0 ] && rerun peer
    else
      echo "no time left for the torch peer"
      rerun peer
    fi
  else
    step "torch peer: .peer/torch_peer.py not carried (bench/gpu/prepare.sh copies it): _torch keys null"
  fi
fi

# TP=2 (issue #10): the NCCL communicator on two GPUs (tests/gpu/tp_nccl_check.c), when the lent
# machine has them; today's lent machines have one. Output on stdout only (the file limit).
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
if ! want tp; then
  :
elif [ "$NGPU" -lt 2 ]; then
  step "$NGPU GPU: TP=2 skipped"
elif [ ! -x $BIN/tp-nccl-check ] || ! command -v mpirun >/dev/null; then
  step "TP=2 skipped: $BIN/tp-nccl-check or mpirun missing (build with NCCL and MPI: -DLISA_NCCL=ON -DLISA_MPI=ON)"
else
  step "TP=2: tp-nccl-check on 2 of $NGPU GPUs"
  TP_T=$(( $(left) - 10 )); [ $TP_T -gt 90 ] && TP_T=90
  if [ $TP_T -gt 20 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 5 $TP_T mpirun -np 2 $BIN/tp-nccl-check 2>&1 | tail -6
  else
    echo "no time left for TP=2"
  fi
fi

step "results ($OUT/results.json)"
RERUN_CMD=""
if [ -n "$RERUN_STEPS" ]; then
  RERUN_CMD="bash bench/gpu/suite.sh --steps $RERUN_STEPS${QFLAG:+ $QFLAG}"
  [ -n "$CHECK_ARGS" ] && RERUN_CMD="$RERUN_CMD --check-args '$CHECK_ARGS'"
  [ -n "$MODELS_ARGS" ] && RERUN_CMD="$RERUN_CMD --models-args '$MODELS_ARGS'"
  [ -n "$KERNELS_ARGS" ] && RERUN_CMD="$RERUN_CMD --kernels-args '$KERNELS_ARGS'"
fi
python3 bench/gpu/merge_results.py --out "$OUT/results.json" --card "$CARD" --commit "$COMMIT" \
  --check "$OUT/check.json" --check-rc $CHECK_RC --smoke "$OUT/smoke.json" \
  --kernels "$OUT/kernels.json" --kernels "$OUT/kernels.json.2" --models "$OUT/models.json" --models "$OUT/models.json.2" \
  --peer "$OUT/peer.json" --gpu-csv "$OUT/gpu.csv" --elapsed $((SECONDS - T0)) --steps "$STEPS" --rerun "$RERUN_CMD"
# folded into results.json (the tool returns at most 8 files)
rm -f "$OUT/gpu.csv" "$OUT/kernels.json" "$OUT/models.json" "$OUT/kernels.json.2" "$OUT/models.json.2" "$OUT/peer.json" \
  "$OUT/smoke.json"
echo
if [ -n "$RERUN_CMD" ]; then
  echo "steps that failed or ran out of time: $RERUN_STEPS. To rerun only them (a fresh machine needs the same carry):"
  echo "  run(command=\"$RERUN_CMD\", carry=[\"build-gpu/bin\", \".devlibs\", \".peer\"], timeout_s=540)"
  echo "  single parts: build-gpu/bin/lisa-check --section attention | --filter NAME; bench_gpu_kernels --only KEY;"
  echo "  bench_gpu_models --only sam_b8,llm (with LD_LIBRARY_PATH=\$PWD/.devlibs)"
else
  echo "every step finished (args: ${ARGS_SEEN:-none})"
fi
