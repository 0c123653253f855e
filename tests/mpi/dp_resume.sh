#!/usr/bin/env bash
# tests/mpi/dp_resume.sh — `lisa annotate` on several ranks under mpirun, with a rank killed
# (kill -9, as when a node dies) and the job restarted (issue #10):
#   1. the reference: the same images annotated by one process;
#   2. mpirun -np NP (groups of TP ranks: NP/TP data-parallel shards, each split TP ways): the
#      last rank is killed once its shard has written its first record; the whole job dies;
#   3. the same mpirun command again: each shard keeps what it had written (byte for byte) and
#      runs only the missing queries;
#   4. `lisa annotate --merge` accepts the shard files (every query once, none missing); the
#      records equal the reference's (all but timings byte for byte without TP; id, answer and
#      tokens with TP, whose mask logits may differ in the last bits).
# usage: dp_resume.sh LISA_TOOL MPIRUN NP TP TESTDATA_DIR
set -euo pipefail
LISA=$1 MPIRUN=$2 NP=$3 TP=$4 DATA=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }

# 4 images (2 per shard): the small test photos under new names
mkdir imgs
for i in 0 1 2 3; do
  if [ $((i % 2)) = 0 ]; then cp "$DATA/images/chelsea_tiny.png" "imgs/img_$i.png"
  else cp "$DATA/images/rocket_portrait.jpg" "imgs/img_$i.jpg"; fi
done
# one at a time: the kill lands between records; no image cache: the copies of one photo would
# otherwise reuse its encoding and a shard's second record follow its first within milliseconds
common=(--model "$DATA/tiny-lisa" --vision-tower "$DATA/tiny-clip" --images imgs --query "the cat"
        --max-new-tokens 4 --threads 1 --max-batch 1 --image-cache-mib 0)
tp_args=()
[ "$TP" -gt 1 ] && tp_args=(--tp "$TP")
N=$((NP / TP))

"$LISA" annotate "${common[@]}" --out ref.jsonl > ref.log 2>&1 || { cat ref.log; fail "reference run"; }
n_ref=$(($(wc -l < ref.jsonl) - 1))

# 2. the job, and the death of its last rank
"$MPIRUN" -np "$NP" --oversubscribe "$LISA" annotate "${common[@]}" "${tp_args[@]}" --out ann.jsonl > job1.log 2>&1 &
job=$!
victim_file="ann.shard-$((N - 1))-of-$N.jsonl"
for _ in $(seq 1 2400); do
  [ -f "$victim_file" ] && [ "$(wc -l < "$victim_file")" -ge 2 ] && break
  sleep 0.05
done
[ -f "$victim_file" ] || { cat job1.log; fail "no records from shard $((N - 1))"; }
victim=""
for p in $(pgrep -P "$job" || true); do # the ranks are mpirun's children (one node)
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$((NP - 1))"; then victim=$p; fi
done
[ -n "$victim" ] || { cat job1.log; fail "rank $((NP - 1)) not found among mpirun's children"; }
kill -9 "$victim"
if wait "$job"; then fail "the job survived the death of rank $((NP - 1))"; fi
echo "killed rank $((NP - 1)) (pid $victim) once its shard had a record"
n_before=0
for k in $(seq 0 $((N - 1))); do
  f="ann.shard-$k-of-$N.jsonl"
  [ -f "$f" ] || { : > "$f.before"; continue; }
  # complete lines only (a line torn by the kill is redone)
  head -c "$(($(wc -c < "$f") - $(tail -c 1 "$f" | tr -d '\n' | wc -c)))" "$f" > "$f.before" || true
  n=$(($(grep -c '' "$f.before") - 1))
  [ "$n" -gt 0 ] && n_before=$((n_before + n))
done
[ "$n_before" -lt "$n_ref" ] || fail "every query was done before the kill: nothing to resume"

# 3. restart: the same command, only the missing queries
"$MPIRUN" -np "$NP" --oversubscribe "$LISA" annotate "${common[@]}" "${tp_args[@]}" --out ann.jsonl > job2.log 2>&1 ||
  { cat job2.log; fail "the restarted job"; }
for k in $(seq 0 $((N - 1))); do
  f="ann.shard-$k-of-$N.jsonl"
  cmp -s -n "$(wc -c < "$f.before")" "$f.before" "$f" || fail "$f: the records kept from before the kill changed"
done

# 4. merged: every query once, nothing missing; records as the reference's
"$LISA" annotate --merge ann.jsonl --shards "$N" > merge.log 2>&1 || { cat merge.log; fail "merge"; }
[ "$(($(wc -l < ann.jsonl) - 1))" -eq "$n_ref" ] || fail "$(($(wc -l < ann.jsonl) - 1)) records, the reference has $n_ref"
body() { grep '"query_index"' "$1" | sed -E 's/,"timings":\{[^}]*\}//' | sort; }
key() { grep '"query_index"' "$1" | sed -E 's/.*("id":"[^"]*").*("answer":"[^"]*","tokens":\[[^]]*\]).*/\1 \2/' | sort; }
if [ "$TP" -gt 1 ]; then
  diff <(key ref.jsonl) <(key ann.jsonl) || fail "answers differ from the reference"
else
  diff <(body ref.jsonl) <(body ann.jsonl) || fail "records differ from the reference"
fi
echo "records before the kill: $n_before of $n_ref; the restart did the rest; merged: $n_ref"
echo "1 passed, 0 failed"
