#!/usr/bin/python3
"""Golden data for core/mask.c: COCO RLE from pycocotools and chat.py's overlay from numpy.

    /usr/bin/python3 tests/golden/gen_rle.py --out tests/data/rle/rle_cases.json

Needs numpy, pycocotools (2.0.x: `pip install --break-system-packages pycocotools`) and
safetensors (to read the real masks from tests/data/golden).  Deterministic: a second run writes
the same bytes.

Cases:
  - random masks of many shapes and densities (salt-and-pepper: many short runs), and blobby
    ones (thresholded smoothed noise: long runs, multi-character deltas in the counts string);
  - empty and full masks, 1x1, single rows and columns, one pixel at either end;
  - the real SAM / LISA masks of tests/data/golden (referenced by file, tensor and index, not
    copied), the large ones with long runs.
Each case records pycocotools' `encode` counts string, `toBbox` and `area` (and `decode` is
checked to give the mask back here).  Masks are stored as strings of '0'/'1', row-major.

Overlay: chat.py's expression
    save_img[pred_mask] = (image_np * 0.5 + pred_mask[:, :, None].astype(np.uint8)
                           * np.array([255, 0, 0]) * 0.5)[pred_mask]
applied to (a) a 16x16 picture holding every byte value in every channel with a checkerboard
mask, (b) tests/data/images/chelsea_tiny.png with a random mask.  Pictures are hex strings of
the RGB bytes.
"""

import argparse
import json
import os

import numpy as np
from importlib.metadata import version
from pycocotools import mask as mask_util
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))


def rle_case(name, m, source=None):
    m = np.ascontiguousarray(m.astype(np.uint8))
    h, w = m.shape
    rle = mask_util.encode(np.asfortranarray(m))
    back = mask_util.decode(rle)
    assert (back == m).all(), name
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    area = int(mask_util.area(rle))
    assert area == int(m.sum()), name
    case = {"name": name, "h": int(h), "w": int(w), "counts": rle["counts"].decode("ascii"),
            "bbox": bbox, "area": area}
    if source is None:
        case["mask"] = "".join("1" if v else "0" for v in m.reshape(-1))
    else:
        case["source"] = source
    return case


def blobby(rng, h, w, thresh):
    noise = rng.standard_normal((h, w))
    k = np.ones(7) / 7.0
    for _ in range(3):  # separable box blur, 3 passes
        noise = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, noise)
        noise = np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, noise)
    return noise > thresh * noise.std()  # thresh in units of the blurred noise's std


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(DATA, "rle", "rle_cases.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240611)
    cases = []
    # shapes that hurt: 1x1, single row/column, odd sizes
    for (h, w) in [(1, 1), (1, 7), (7, 1), (3, 5), (17, 23), (64, 48), (37, 100)]:
        for p in (0.1, 0.5, 0.9):
            cases.append(rle_case("random_%dx%d_p%.1f" % (h, w, p), rng.random((h, w)) < p))
    for (h, w, t) in [(40, 60, 0.0), (96, 80, 0.3), (50, 120, -0.2)]:
        cases.append(rle_case("blobby_%dx%d" % (h, w), blobby(rng, h, w, t)))
    for (h, w) in [(1, 1), (5, 9), (30, 45)]:
        cases.append(rle_case("empty_%dx%d" % (h, w), np.zeros((h, w), bool)))
        cases.append(rle_case("full_%dx%d" % (h, w), np.ones((h, w), bool)))
    one = np.zeros((9, 11), bool)
    one[0, 0] = True
    cases.append(rle_case("first_pixel_9x11", one))
    one = np.zeros((9, 11), bool)
    one[8, 10] = True
    cases.append(rle_case("last_pixel_9x11", one))
    col = np.zeros((6, 5), bool)
    col[:, 2] = True
    cases.append(rle_case("one_column_6x5", col))
    row = np.zeros((6, 5), bool)
    row[3, :] = True
    cases.append(rle_case("one_row_6x5", row))
    # a 1-run that wraps from one column into the next: toBbox's full-height quirk
    wrap = np.zeros((8, 6), bool)
    wrap[6:, 1] = True
    wrap[:2, 2] = True
    cases.append(rle_case("wrap_8x6", wrap))
    # the real masks of the golden files (SAM alone, LISA end to end)
    for fname in ("sam_chelsea.safetensors", "sam_rocket_portrait.safetensors", "sam_chelsea_tiny.safetensors",
                  "lisa_rocket_portrait.safetensors"):
        t = load_file(os.path.join(DATA, "golden", fname))["mask"]
        for i in range(t.shape[0]):
            cases.append(rle_case("%s_%d" % (fname.split(".")[0], i), t[i],
                                  source={"file": "golden/" + fname, "tensor": "mask", "index": i}))

    overlays = []
    img = np.arange(16 * 16 * 3, dtype=np.int64)
    img = np.stack([img[0::3] % 256, (img[1::3] * 7) % 256, (255 - img[2::3] % 256)], axis=-1)
    img = img[:256].reshape(16, 16, 3).astype(np.uint8)
    img[:, :, 0] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img[:, :, 1] = np.arange(256, dtype=np.uint8)[::-1].reshape(16, 16)
    m = (np.add.outer(np.arange(16), np.arange(16)) % 2 == 0) | (np.arange(16)[:, None] < 8)
    overlays.append(("all_values_16x16", img, m))
    import cv2  # opencv-python-headless 4.8, as chat.py decodes
    chelsea = cv2.cvtColor(cv2.imread(os.path.join(DATA, "images", "chelsea_tiny.png")), cv2.COLOR_BGR2RGB)
    overlays.append(("chelsea_tiny_random", chelsea, rng.random(chelsea.shape[:2]) < 0.4))
    ov_out = []
    for name, image_np, pred_mask in overlays:
        save_img = image_np.copy()
        save_img[pred_mask] = (image_np * 0.5 + pred_mask[:, :, None].astype(np.uint8) * np.array([255, 0, 0])
                               * 0.5)[pred_mask]
        ov_out.append({"name": name, "h": int(image_np.shape[0]), "w": int(image_np.shape[1]),
                       "rgb": image_np.tobytes().hex(), "overlay": save_img.tobytes().hex(),
                       "mask": "".join("1" if v else "0" for v in pred_mask.reshape(-1))})

    out = {"generator": "tests/golden/gen_rle.py", "pycocotools": version("pycocotools"),
           "numpy": np.__version__, "cases": cases, "overlays": ov_out}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")
    print("wrote %s: %d RLE cases, %d overlays (%d bytes)" % (args.out, len(cases), len(ov_out),
                                                           os.path.getsize(args.out)))


if __name__ == "__main__":
    main()
