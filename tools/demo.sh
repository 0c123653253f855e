#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds the engine (Release), writes a tiny
# random-weight LISA checkpoint, runs `lisa segment` on the bundled photographs (tests/data/images:
# CC0 / public domain, see its README.md), then annotates all of them as a dataset with
# `lisa annotate` (the batching engine: the main job), three questions per photo (each photo is
# encoded once for its three), and has a two-turn `lisa chat` about one photo.
#
# Everything lands in demo-out/ (or $DEMO_OUT):
#   tiny-lisa/                      the checkpoint (xinlai/LISA-7B-v1 layout, vision tower inside)
#   <photo>_mask.png                the [SEG] mask, 0/255 gray
#   <photo>_overlay.png             the photo with the mask tinted red (as LISA's chat.py draws it)
#   chelsea.json                    `lisa segment --json` output (answer, token ids, COCO RLE mask)
#   annotations.jsonl               `lisa annotate` records, one per (image, query), masks as COCO RLE
#   photos.jsonl                    the annotate manifest: one item per photo, three queries each
#   annotations/                    their masks and overlays (<image>_q0.png, <image>_q0_overlay.png)
#   chat/                           the chat's masks and overlays (chelsea_q0_mask_0.png, ...)
#
# The tiny model has random weights, shaped only so that it answers "Sure, [SEG] ." to anything:
# its masks are meaningless. To run a real checkpoint, see README.md ("Running a real checkpoint").
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"
BUILD_DIR=${BUILD_DIR:-build-release}
OUT=${DEMO_OUT:-demo-out}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target lisa_cli
LISA="$BUILD_DIR/bin/lisa"

mkdir -p "$OUT"
# this script's own outputs from an earlier run (annotate would resume the old run otherwise)
rm -rf "$OUT/tiny-lisa" "$OUT/annotations" "$OUT/annotations.jsonl" "$OUT/photos.jsonl" "$OUT/chat"
"$LISA" make-tiny --out "$OUT/tiny-lisa"
echo

photos=(chelsea.png coffee.png rocket.jpg rocket_portrait.jpg)
queries=(
  "Can you segment the cat in this image?"
  "What in this picture would keep a drink warm? Please output segmentation mask."
  "Please segment the rocket in this image."
  "Where is the smoke? Please output segmentation mask."
)
for i in "${!photos[@]}"; do
  photo=${photos[$i]}
  stem=${photo%.*}
  echo "== $photo: ${queries[$i]}"
  "$LISA" segment --model "$OUT/tiny-lisa" --image "tests/data/images/$photo" --query "${queries[$i]}" \
    --out "$OUT/${stem}_mask.png" --overlay "$OUT/${stem}_overlay.png"
  echo
done
"$LISA" segment --model "$OUT/tiny-lisa" --image tests/data/images/chelsea.png \
  --query "Can you segment the cat in this image?" --json > "$OUT/chelsea.json"

echo "== lisa annotate: every photo in tests/data/images as one dataset, three questions each"
# one manifest item per photo with its questions: each photo is decoded and encoded once, and its
# prompt prefix through the image prefilled once, for all three
for f in tests/data/images/*.png tests/data/images/*.jpg; do
  id=$(basename "${f%.*}")
  printf '{"id": "%s", "image": "%s", "queries": ["%s", "%s", "%s"]}\n' "$id" "$PWD/$f" \
    "What is the main object in this image? Please output segmentation mask." \
    "Segment the background." "Which part of this picture is the brightest? Please output segmentation mask."
done > "$OUT/photos.jsonl"
"$LISA" annotate --model "$OUT/tiny-lisa" --manifest "$OUT/photos.jsonl" \
  --out "$OUT/annotations.jsonl" --masks-dir "$OUT/annotations" --overlays --max-new-tokens 32
echo "$(($(wc -l < "$OUT/annotations.jsonl") - 1)) records in $OUT/annotations.jsonl (line 1 is the run header)"
echo

echo "== lisa chat: two questions about one photo (the second reuses its encoding), then Ctrl-D"
printf '%s\n%s\n%s\n\n' "Can you segment the cat in this image?" tests/data/images/chelsea.png \
  "What is the cat lying on? Please output segmentation mask." |
  "$LISA" chat --model "$OUT/tiny-lisa" --out-dir "$OUT/chat" --max-new-tokens 32
echo

cat <<EOF
Done. Masks and overlays are in $(cd "$OUT" && pwd)/ (*_mask.png, *_overlay.png; chelsea.json
holds the --json output with the mask as COCO RLE); the annotation run's records are in
annotations.jsonl and its masks and overlays in annotations/; the chat's in chat/.

These masks are MEANINGLESS: the tiny checkpoint has random weights (only its answer is shaped).
With a real LISA checkpoint (see README.md, "Running a real checkpoint"):
  $LISA segment --model /path/to/LISA-7B-v1 --vision-tower /path/to/clip-vit-large-patch14 \\
      --image photo.jpg --query "What would keep me dry in the rain?" --out mask.png --overlay overlay.png
EOF
