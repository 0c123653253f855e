#!/usr/bin/env bash
# bench/reuse_bench.sh — encode once, ask many (issue #17), measured with `lisa annotate` on the tiny
# model: 12 queries as 3 pictures x 4 queries (multi-query manifest items: each picture decoded and
# encoded once, its KV prefix through the image reused) against the same 12 queries on 12 different
# pictures (flips and crops of the bundled photos, bench/reuse_images.py), plus the 3 x 4 run
# without reuse (--image-cache-mib 0), whose records must equal the reuse run's (timings aside).
# Each configuration runs ROUNDS times, alternating (this machine's speed drifts); prints the
# samples/s and per-stage lines of every run and the ratio of the medians.
#
#   bash bench/reuse_bench.sh [BUILD_DIR [ROUNDS]]      (default build-release, 2 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-release}
ROUNDS=${2:-2}
LISA="$BUILD/bin/lisa"
[ -x "$LISA" ] || { echo "no $LISA: build it first (cmake --build $BUILD --target lisa_cli)"; exit 1; }
TMP=$(mktemp -d /tmp/lisa-reuse-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
python3 bench/reuse_images.py "$TMP/img" 12 >/dev/null
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
Q = ["What is the main object in this image? Please output segmentation mask.",
     "Segment the animal.",
     "What would keep a drink warm? Please output segmentation mask.",
     "Where is the floor? Please output segmentation mask."]
with open(f"{tmp}/three_by_four.jsonl", "w") as f:
    for i in range(3):
        f.write(json.dumps({"id": f"p{i}", "image": f"img/v{i:02d}.png", "queries": Q}) + "\n")
with open(f"{tmp}/twelve.jsonl", "w") as f:
    for i in range(12):
        f.write(json.dumps({"id": f"p{i}", "image": f"img/v{i:02d}.png", "query": Q[i % 4]}) + "\n")
PY
MODEL=(--model tests/data/tiny-lisa --vision-tower tests/data/tiny-clip --backend cpu --max-new-tokens 32)
run() { # name manifest extra...
  local name=$1 man=$2; shift 2
  rm -f "$TMP/$name.jsonl"
  OMP_WAIT_POLICY=passive "$LISA" annotate "${MODEL[@]}" --manifest "$TMP/$man" --out "$TMP/$name.jsonl" "$@" \
    > "$TMP/$name.log" 2> "$TMP/$name.err" || { cat "$TMP/$name.err"; exit 1; }
  local sps; sps=$(sed -n 's/.* queries in .* s: \([0-9.]*\) samples\/s/\1/p' "$TMP/$name.log")
  echo "$sps" >> "$TMP/$man-$*.sps"
  printf '%-34s %s samples/s\n' "$name" "$sps"
  grep -A2 "per-stage ms" "$TMP/$name.log" | tail -n 2 | sed 's/^/    /'
}
echo "lisa annotate on the tiny model (CPU), 12 queries; $(nproc) cores; build $BUILD"
for r in $(seq 1 "$ROUNDS"); do
  run "12 pictures x 1 query (round $r)" twelve.jsonl
  run "3 pictures x 4 queries (round $r)" three_by_four.jsonl
  run "3 x 4 without reuse (round $r)" three_by_four.jsonl --image-cache-mib 0
done
cp "$TMP/3 pictures x 4 queries (round 1).jsonl" "$TMP/with.jsonl"
cp "$TMP/3 x 4 without reuse (round 1).jsonl" "$TMP/without.jsonl"
python3 - "$TMP" <<'PY'
import json, statistics, sys
tmp = sys.argv[1]
def records(path):
    out = {}
    for line in open(path).read().splitlines()[1:]:
        r = json.loads(line)
        r.pop("timings", None)
        out[(r["id"], r["query_index"])] = r
    return out
a, b = records(f"{tmp}/with.jsonl"), records(f"{tmp}/without.jsonl")
assert len(a) == 12 and a == b, "the records with and without reuse differ"
med = lambda name: statistics.median(float(x) for x in open(f"{tmp}/{name}.sps").read().split())
x, y = med("three_by_four.jsonl-"), med("twelve.jsonl-")
print(f"records with reuse == records without reuse: 12 of 12 identical (timings aside)")
print(f"median samples/s: 3 x 4 {x:.3f}, 12 x 1 {y:.3f}: {x / y:.2f}x "
      f"(3 x 4 without reuse {med('three_by_four.jsonl---image-cache-mib 0'):.3f})")
PY
