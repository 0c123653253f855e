#!/usr/bin/env bash
# tests/mpi/dp_resume.sh — a multi-rank job (lisa eval, generate mode) under mpirun, with a rank
# killed (kill -9, as when a node dies) and the job restarted with --resume (issue #10):
#   1. the reference: the same split in one process;
#   2. mpirun -np NP (groups of TP ranks: NP/TP data-parallel shards, each split TP ways): the
#      last rank is killed once its shard has recorded its first query; the job dies;
#   3. mpirun again with --resume: each shard keeps what it had recorded (byte for byte) and runs
#      only the missing queries;
#   4. the merged records hold every query once; answers equal the reference's (whole records
#      byte for byte without TP; answer, [SEG] count and image with TP, whose mask logits may
#      differ in the last bits).
# usage: dp_resume.sh LISA_TOOL MPIRUN NP TP TESTDATA_DIR
set -euo pipefail
LISA=$1 MPIRUN=$2 NP=$3 TP=$4 DATA=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }

# a ReasonSeg split of 4 images (2 per shard): the test images under new names
mkdir -p ds/ReasonSeg/val
src=("$DATA"/eval/reason_seg/ReasonSeg/val/vis_a "$DATA"/eval/reason_seg/ReasonSeg/val/vis_b
     "$DATA"/eval/reason_seg/ReasonSeg/test/tst_c "$DATA"/eval/reason_seg/ReasonSeg/test/tst_d)
for i in 0 1 2 3; do
  s=${src[$((i % 4))]}
  cp "$s.jpg" "ds/ReasonSeg/val/img_$i.jpg"
  cp "$s.json" "ds/ReasonSeg/val/img_$i.json"
done
common=(--model "$DATA/tiny-lisa" --vision-tower "$DATA/tiny-clip" --dataset reasonseg --data ds --split val
        --mode generate --max-new-tokens 4 --threads 1)
tp_args=()
[ "$TP" -gt 1 ] && tp_args=(--tp "$TP")
N=$((NP / TP))

"$LISA" eval "${common[@]}" --records ref.jsonl > ref.log 2>&1 || { cat ref.log; fail "reference run"; }
n_ref=$(($(wc -l < ref.jsonl) - 1))

# 2. the job, and the death of its last rank
"$MPIRUN" -np "$NP" --oversubscribe "$LISA" eval "${common[@]}" "${tp_args[@]}" > job1.log 2>&1 &
job=$!
victim_file="lisa-eval-reasonseg-val-$((N - 1))-of-$N.records.jsonl"
for _ in $(seq 1 1200); do
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
echo "killed rank $((NP - 1)) (pid $victim) after its shard recorded its first query"
declare -A before
n_before=0
for f in lisa-eval-reasonseg-val-*-of-$N.records.jsonl; do
  # complete lines only (a line torn by the kill is redone)
  head -c "$(($(wc -c < "$f") - $(tail -c 1 "$f" | tr -d '\n' | wc -c)))" "$f" > "$f.before" || true
  n=$(($(grep -c '' "$f.before") - 1))
  [ "$n" -lt 0 ] && n=0
  before[$f]=$n
  n_before=$((n_before + n))
done
[ "$n_before" -lt "$n_ref" ] || fail "every query was done before the kill: nothing to resume"

# 3. restart: only the missing queries
"$MPIRUN" -np "$NP" --oversubscribe "$LISA" eval "${common[@]}" "${tp_args[@]}" --resume > job2.log 2>&1 ||
  { cat job2.log; fail "the resumed job"; }
for f in lisa-eval-reasonseg-val-*-of-$N.records.jsonl; do
  sz=$(wc -c < "$f.before")
  cmp -s -n "$sz" "$f.before" "$f" || fail "$f: the records kept from before the kill changed"
done

# 4. merged: every query once, answers as the reference's
"$LISA" eval --merge lisa-eval-reasonseg-val-*-of-$N.records.jsonl --out merged.json > merge.log 2>&1 ||
  { cat merge.log; fail "merge"; }
cat lisa-eval-reasonseg-val-*-of-$N.records.jsonl | grep '"id"' > all.jsonl
dups=$(grep -o '"id":"[^"]*"' all.jsonl | sort | uniq -d)
[ -z "$dups" ] || fail "queries recorded twice: $dups"
[ "$(wc -l < all.jsonl)" -eq "$n_ref" ] || fail "$(wc -l < all.jsonl) queries recorded, the reference has $n_ref"
key() { sed -E 's/.*("id":"[^"]*").*("n_seg":[0-9]+).*("answer":"[^"]*").*/\1 \2 \3/' "$1" | sort; }
if [ "$TP" -gt 1 ]; then
  diff <(key ref.jsonl | grep '"id"') <(key all.jsonl) || fail "answers differ from the reference"
else
  diff <(grep '"id"' ref.jsonl | sort) <(sort all.jsonl) || fail "records differ from the reference"
fi
echo "shard records before the kill: ${before[*]}; resumed to $n_ref queries in all"
echo "1 passed, 0 failed"
