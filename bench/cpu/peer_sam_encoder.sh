#!/usr/bin/env bash
# bench/cpu/peer_sam_encoder.sh — the SAM ViT-B image encoder on this machine's CPU: our CPU backend
# (build/bin/bench_sam_encoder) and the PyTorch reference (segment_anything 1.0's ImageEncoderViT,
# torch 1.13 from Debian, fp32, random weights), timed in ONE run with the same thread count, so
# the ratio means something on a noisy machine. Needs python3-torch and segment-anything (the
# golden-data stack, tests/golden/README.md); not part of CI.
# The two alternate ROUNDS times (this machine's speed drifts by up to ~1.5x over minutes, with no
# steal time shown): each round's ratio is printed, then the median.
#   usage: bash bench/cpu/peer_sam_encoder.sh [BUILD_DIR] [THREADS] [RUNS] [ROUNDS]
set -euo pipefail
build=${1:-build} threads=${2:-$(nproc)} runs=${3:-1} rounds=${4:-3}
cd "$(dirname "$0")/../.."
[ -x "$build/bin/bench_sam_encoder" ] || { echo "no $build/bin/bench_sam_encoder: build first (bash tools/test.sh)"; exit 1; }
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg); threads=$threads runs=$runs"
ratios=""
for round in $(seq "$rounds"); do
echo "== round $round"
echo "== ours: $build/bin/bench_sam_encoder --threads $threads --runs $runs"
ours=$("$build/bin/bench_sam_encoder" --threads "$threads" --runs "$runs" | tee /dev/stderr | awk '/^vit-b/ {for (i=1;i<=NF;i++) if ($i=="ms" && $(i+1)=="best") {print $(i-1); exit}}')
echo "== torch: segment_anything ImageEncoderViT (ViT-B), fp32, torch.no_grad"
torch_ms=$(OMP_NUM_THREADS=$threads /usr/bin/python3 - "$threads" "$runs" <<'PY'
import sys, time, torch
from functools import partial
from segment_anything.modeling import ImageEncoderViT
threads, runs = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
# build_sam_vit_b's encoder (segment_anything/build_sam.py: _build_sam with 768/12/12/[2,5,8,11])
enc = ImageEncoderViT(depth=12, embed_dim=768, img_size=1024, mlp_ratio=4,
                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=12, patch_size=16,
                      qkv_bias=True, use_rel_pos=True, global_attn_indexes=[2, 5, 8, 11], window_size=14,
                      out_chans=256).eval()
x = torch.randn(1, 3, 1024, 1024)
with torch.no_grad():
    enc(x)  # warm-up
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter(); enc(x); best = min(best, time.perf_counter() - t)
print(f"torch {torch.__version__} threads={torch.get_num_threads()} best of {runs}: {best*1e3:.1f} ms", file=sys.stderr)
print(f"{best*1e3:.1f}")
PY
)
awk -v o="$ours" -v t="$torch_ms" 'BEGIN {printf "round: ours %.1f ms, torch %.1f ms, torch/ours = %.2fx\n", o, t, t/o}'
ratios="$ratios $(awk -v o="$ours" -v t="$torch_ms" 'BEGIN {printf "%.3f", t/o}')"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{r[NR]=$1} END {printf "SAM ViT-B encoder, 1024x1024, fp32 CPU, %d rounds: torch/ours ratios %s; median %.2fx (> 1: ours faster)\n", NR, "'"$ratios"'", r[int((NR+1)/2)]}'
