#!/usr/bin/python3
"""Golden data for `lisa eval` (issue #11, spec docs/inference.md §9).

Writes, under --out (tests/data/eval):

  raster.txt      OpenCV 4.8 cv2.fillPoly / cv2.polylines (thickness 1) on random and adversarial
                  polygons, and LISA's get_mask_from_json (area sort with numpy argsort, outline +
                  fill, ignore = 255, flag skipped) on shape sets, incl. ties and > 17 shapes.
  coco.txt        pycocotools (2.0.x maskApi.c) masks: frPyObjects polygons (and the 4-number
                  bbox quirk), compressed RLE strings, uncompressed counts; parts summed into
                  uint8 as utils/dataset.py ValDataset does.
  reason_seg/ReasonSeg/{val,test}/*.jpg|json, refer_seg/{refcoco,refcoco+,refcocog}/...,
  refer_seg/images/mscoco/images/train2014/*.jpg
                  a tiny synthetic dataset in the real layouts (the refs pickles in protocols
                  2, 0 and 4), with hand-computable masks.
  gt_masks.txt    the reference's GT mask of every query of the tiny dataset (ValDataset code).
  teacher_forced.json
                  the reference evaluation (ValDataset prompts with the answer "[SEG].", one
                  forward over the whole sequence, model_forward(inference=True)'s [SEG] gather,
                  text_hidden_fcs, SAM, postprocess, validate()'s intersectionAndUnionGPU) of the
                  tiny LISA (tests/data/tiny-lisa) on the tiny dataset: per-query intersection
                  and union, gIoU, cIoU.

Run with the reference stack (see tests/golden/README.md), plus pycocotools:

    /usr/bin/python3 -m pip install --break-system-packages pycocotools==2.0.7
    /usr/bin/python3 tests/golden/gen_eval.py --out tests/data/eval

Deterministic: a second run writes the same bytes.
"""

import argparse
import json
import os
import pickle
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from pycocotools import mask as cocomask  # noqa: E402

H, W = 12, 16  # the tiny dataset's images

# ---------------------------------------------------------------------------------------------
# LISA utils/data_processing.py get_mask_from_json, as a function of the parsed JSON (the file
# reading with its cp1252 fallback is the only part left out).
# ---------------------------------------------------------------------------------------------


def mask_from_shapes(inform, height, width):
    area_list = []
    valid_poly_list = []
    for i in inform:
        label_id = i["label"]
        points = i["points"]
        if "flag" == label_id.lower():
            continue
        tmp_mask = np.zeros((height, width), dtype=np.uint8)
        cv2.polylines(tmp_mask, np.array([points], dtype=np.int32), True, 1, 1)
        cv2.fillPoly(tmp_mask, np.array([points], dtype=np.int32), 1)
        tmp_area = tmp_mask.sum()
        area_list.append(tmp_area)
        valid_poly_list.append(i)
    sort_index = np.argsort(area_list)[::-1].astype(np.int32)
    sort_inform = [valid_poly_list[s] for s in list(sort_index)]
    mask = np.zeros((height, width), dtype=np.uint8)
    for i in sort_inform:
        label_id = i["label"]
        points = i["points"]
        label_value = 255 if "ignore" in label_id.lower() else 1
        cv2.polylines(mask, np.array([points], dtype=np.int32), True, label_value, 1)
        cv2.fillPoly(mask, np.array([points], dtype=np.int32), label_value)
    return mask


def mask_rows(m):
    """Rows of '.' (0), '1', 'X' (255) or the digit of other values."""
    ch = {0: ".", 1: "1", 255: "X"}
    return ["".join(ch.get(int(v), str(int(v) % 10)) for v in row) for row in m]


def fmt_num(v):
    return repr(float(v)) if isinstance(v, float) else str(int(v))


# ---------------------------------------------------------------------------------------------
# raster.txt
# ---------------------------------------------------------------------------------------------


def raster_cases():
    rng = np.random.RandomState(1234)
    cases = []  # (name, h, w, kind, shapes[(label, points)])
    # adversarial single polygons
    adv = [
        ("point", [[5, 5]]),
        ("two_points", [[1, 1], [9, 6]]),
        ("horizontal", [[2, 4], [12, 4]]),
        ("vertical", [[7, 1], [7, 9]]),
        ("triangle", [[1, 1], [13, 3], [4, 10]]),
        ("thin_triangle", [[0, 0], [15, 1], [0, 2]]),
        ("concave", [[1, 1], [14, 1], [14, 10], [8, 4], [1, 10]]),
        ("bowtie", [[1, 1], [14, 10], [14, 1], [1, 10]]),
        ("star", [[8, 0], [10, 7], [15, 7], [11, 11], [13, 17], [8, 13], [3, 17], [5, 11],
                  [0, 7], [6, 7]]),
        ("on_border", [[0, 0], [15, 0], [15, 11], [0, 11]]),
        ("outside_all", [[20, 20], [30, 22], [25, 30]]),
        ("outside_left", [[-10, 2], [5, 3], [-4, 9]]),
        ("crossing_all", [[-5, -5], [25, -3], [22, 18], [-6, 16]]),
        ("big_negative", [[-100, -80], [40, 5], [-60, 90]]),
        ("duplicate_pts", [[3, 3], [3, 3], [10, 3], [10, 3], [10, 8], [3, 8]]),
        ("self_overlap", [[2, 2], [12, 2], [12, 8], [2, 8], [2, 2], [12, 2], [12, 8], [2, 8]]),
        ("spiral", [[1, 1], [14, 1], [14, 10], [3, 10], [3, 3], [12, 3], [12, 8], [5, 8],
                    [5, 5], [10, 5], [10, 6]]),
        ("steep_right", [[15, 0], [16, 11], [14, 11]]),
        ("far_right", [[10, 2], [400, 6], [10, 9]]),
        ("below", [[2, 8], [13, 9], [7, 40]]),
    ]
    for name, pts in adv:
        for kind in ("fill", "lines"):
            cases.append(("%s_%s" % (kind, name), 12, 16, kind, [("target", pts)]))
    for k in range(24):
        n = int(rng.randint(3, 9))
        pts = [[int(rng.randint(-4, 20)), int(rng.randint(-4, 16))] for _ in range(n)]
        cases.append(("fill_random%d" % k, 12, 16, "fill", [("target", pts)]))
        if k < 8:
            cases.append(("lines_random%d" % k, 12, 16, "lines", [("target", pts)]))
    for k in range(60):  # far outside too: the clipped-edge rule of CollectPolyEdges
        n = int(rng.randint(3, 9))
        lo, hi = (-6, 22) if k < 40 else (-40, 60)
        pts = [[int(rng.randint(lo, hi)), int(rng.randint(lo - 2, hi - 4))] for _ in range(n)]
        cases.append(("fill_wide%d" % k, 12, 16, "fill", [("target", pts)]))
    # get_mask_from_json: float points (numpy int32 truncation), labels, sorting, ties
    json_sets = [
        ("json_rects", [("target", [[2.9, 2.2], [7.7, 2], [7, 5.99], [2, 5]]),
                        ("ignore", [[6, 4], [9, 4], [9, 7], [6, 7]]),
                        ("flag", [[0, 0], [15, 0], [15, 11]])]),
        ("json_negative_floats", [("target", [[-0.7, -0.2], [10.5, -1.9], [4.2, 8.8]])]),
        ("json_ignore_inside", [("Ignore region", [[4, 3], [8, 3], [8, 7], [4, 7]]),
                                ("target", [[1, 1], [13, 1], [13, 10], [1, 10]])]),
        ("json_labels", [("TARGET", [[1, 1], [5, 1], [5, 5]]), ("FLAG", [[0, 0], [9, 9], [0, 9]]),
                         ("ignore_me", [[3, 3], [12, 4], [6, 10]]), ("other", [[8, 0], [15, 0], [15, 6]])]),
    ]
    # ties: equal-area squares at the same place with alternating labels (argsort tie order),
    # few (insertion sort) and many (quicksort partitions)
    for cnt in (3, 5, 16, 17, 18, 20, 25, 40):
        shapes = []
        for i in range(cnt):
            lab = "ignore" if i % 2 else "target"
            if i % 3 == 2:  # some with other areas, to shuffle the partitions
                o = i % 5
                shapes.append((lab, [[o, o], [o + 3 + i % 4, o], [o + 3 + i % 4, o + 4], [o, o + 4]]))
            else:
                shapes.append((lab, [[4, 3], [9, 3], [9, 7], [4, 7]]))
        json_sets.append(("json_ties%d" % cnt, shapes))
    for k in range(6):
        shapes = []
        for i in range(int(rng.randint(2, 7))):
            n = int(rng.randint(3, 7))
            pts = [[float(np.round(rng.uniform(-3, 19), 2)), float(np.round(rng.uniform(-3, 15), 2))]
                   for _ in range(n)]
            lab = ["target", "ignore", "flag"][int(rng.randint(0, 3))]
            shapes.append((lab, pts))
        json_sets.append(("json_random%d" % k, shapes))
    for name, shapes in json_sets:
        cases.append((name, 12, 16, "json", shapes))
    return cases


def write_raster(path):
    lines = ["# cv2 %s, numpy %s: fillPoly / polylines(closed, thickness 1) / get_mask_from_json"
             % (cv2.__version__, np.__version__),
             "# case NAME H W KIND NSHAPES; shape LABEL NPTS x y ...; then H rows ('.'=0 '1'=1 'X'=255)"]
    for name, h, w, kind, shapes in raster_cases():
        if kind == "json":
            m = mask_from_shapes([{"label": lab, "points": pts} for lab, pts in shapes], h, w)
        else:
            m = np.zeros((h, w), dtype=np.uint8)
            pts = np.array([shapes[0][1]], dtype=np.int32)
            if kind == "fill":
                cv2.fillPoly(m, pts, 1)
            else:
                cv2.polylines(m, pts, True, 1, 1)
        lines.append("case %s %d %d %s %d" % (name, h, w, kind, len(shapes)))
        for lab, pts in shapes:
            lines.append("shape %s %d %s" % (lab.replace(" ", "_"), len(pts),
                                              " ".join("%s %s" % (fmt_num(x), fmt_num(y)) for x, y in pts)))
        lines.extend(mask_rows(m))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# coco.txt: pycocotools masks as ValDataset builds them
# ---------------------------------------------------------------------------------------------


def valdataset_mask(segmentation, h, w):
    """utils/dataset.py ValDataset.__getitem__ (refer_seg branch), for one annotation."""
    if len(segmentation) == 0:
        m = np.zeros((h, w, 1))
    else:
        if type(segmentation[0]) == list:  # polygon
            rle = cocomask.frPyObjects(segmentation, h, w)
        else:
            rle = [dict(r) for r in segmentation]
            for i in range(len(rle)):
                if not isinstance(rle[i]["counts"], bytes):
                    rle[i]["counts"] = rle[i]["counts"].encode()
        m = cocomask.decode(rle)
    m = np.sum(m, axis=2)
    return m.astype(np.uint8)


def coco_cases():
    rng = np.random.RandomState(99)
    cases = []
    cases.append(("rect_int", 12, 16, [[2, 2, 8, 2, 8, 6, 2, 6]]))
    cases.append(("rect_half", 12, 16, [[2.5, 2.5, 8.5, 2.5, 8.5, 6.5, 2.5, 6.5]]))
    cases.append(("two_parts_overlap", 12, 16, [[1, 1, 9, 1, 9, 7, 1, 7], [5, 4, 14, 4, 14, 11, 5, 11]]))
    cases.append(("triangle", 12, 16, [[0.3, 0.7, 15.2, 3.9, 6.6, 11.8]]))
    cases.append(("outside", 12, 16, [[-5, -5, 30, -2, 25, 30, -3, 20]]))
    # (a first part of exactly 4 numbers makes frPyObjects take the bbox path, which raises a
    # TypeError on a list: the reference cannot evaluate such an annotation)
    cases.append(("short_second_part", 12, 16, [[1, 1, 9, 1, 5, 8], [3, 3, 4, 4], [7, 2]]))
    cases.append(("odd_length", 12, 16, [[1, 1, 10, 2, 4, 9, 7]]))
    cases.append(("bowtie", 12, 16, [[1, 1, 14, 10, 14, 1, 1, 10]]))
    for k in range(12):
        n = int(rng.randint(3, 10))
        poly = [float(np.round(v, 2)) for v in rng.uniform(-2, 18, size=2 * n)]
        cases.append(("random%d" % k, 12, 16, [poly]))
    # compressed RLE strings of random masks (big counts too)
    for k, (h, w) in enumerate([(12, 16), (7, 5), (64, 90)]):
        m = (rng.uniform(size=(h, w)) < 0.3).astype(np.uint8)
        if k == 2:
            m[:] = 0
            m[5:60, 3:88] = 1
            m[20:30, 10:40] = 0
        r = cocomask.encode(np.asfortranarray(m))
        cases.append(("rle%d" % k, h, w, [{"size": [h, w], "counts": r["counts"].decode()}]))
    m1 = np.zeros((12, 16), np.uint8)
    m1[2:9, 3:11] = 1
    m2 = np.zeros((12, 16), np.uint8)
    m2[5:12, 0:6] = 1
    cases.append(("rle_two_parts", 12, 16, [
        {"size": [12, 16], "counts": cocomask.encode(np.asfortranarray(m1))["counts"].decode()},
        {"size": [12, 16], "counts": cocomask.encode(np.asfortranarray(m2))["counts"].decode()}]))
    cases.append(("empty", 12, 16, []))
    return cases


def uncompressed_cases():
    """Uncompressed RLE (iscrowd-style {"counts": [ints]}): pycocotools frPyObjects semantics."""
    out = []
    for name, h, w, counts in [("unc_a", 12, 16, [5, 10, 30, 2, 145]), ("unc_b", 4, 3, [0, 3, 4, 5])]:
        rle = cocomask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        out.append((name, h, w, {"size": [h, w], "counts": counts}, cocomask.decode(rle)))
    return out


def write_coco(path):
    lines = ["# pycocotools %s: ValDataset masks (np.sum over parts, uint8), rows as in raster.txt"
             % getattr(cocomask, "__version__", "2.0.x"),
             "# case NAME H W KIND; json SEGMENTATION; then H rows (digits for values > 1)"]
    for name, h, w, seg in coco_cases():
        m = valdataset_mask(seg, h, w)
        lines.append("case %s %d %d seg" % (name, h, w))
        lines.append("json " + json.dumps(seg, separators=(",", ":")))
        lines.extend(mask_rows(m))
    for name, h, w, obj, m in uncompressed_cases():
        lines.append("case %s %d %d uncompressed" % (name, h, w))
        lines.append("json " + json.dumps(obj, separators=(",", ":")))
        lines.extend(mask_rows(m))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# The tiny dataset
# ---------------------------------------------------------------------------------------------


def tiny_image(seed):
    rng = np.random.RandomState(seed)
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = rng.randint(30, 220, size=3)
    y0, x0 = rng.randint(0, 6), rng.randint(0, 8)
    img[y0:y0 + 6, x0:x0 + 8] = rng.randint(0, 255, size=3)
    return img  # RGB


def write_jpg(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# ReasonSeg: labelme-style JSON. Rectangles with integer corners fill [x0..x1] x [y0..y1].
REASONSEG = {
    "val": [
        ("vis_a", 1, {"text": ["the red box", "an unused second instruction"], "is_sentence": False,
                      "shapes": [{"label": "target", "points": rect(2, 2, 7, 5), "group_id": None,
                                  "shape_type": "polygon", "flags": {}},
                                 {"label": "ignore", "points": rect(6, 4, 9, 7), "group_id": None,
                                  "shape_type": "polygon", "flags": {}},
                                 {"label": "flag", "points": rect(0, 0, 15, 11), "group_id": None,
                                  "shape_type": "polygon", "flags": {}}]}),
        ("vis_b", 2, {"text": ["What would you sit on here?"], "is_sentence": True,
                      "shapes": [{"label": "ignore", "points": rect(0, 0, 3, 3), "group_id": None,
                                  "shape_type": "polygon", "flags": {}}]}),
    ],
    "test": [
        ("tst_c", 3, {"text": ["  Which part keeps the rain out? "], "is_sentence": True,
                      "shapes": [{"label": "target", "points": rect(4, 1, 11, 6), "group_id": None,
                                  "shape_type": "polygon", "flags": {}}]}),
        ("tst_d", 4, {"text": ["the lamp"], "is_sentence": False,
                      "shapes": [{"label": "target", "points": rect(0, 6, 5, 11), "group_id": None,
                                  "shape_type": "polygon", "flags": {}},
                                 {"label": "target", "points": [[10, 2], [15, 2], [15, 9]],
                                  "group_id": None, "shape_type": "polygon", "flags": {}}]}),
        ("tst_e", 5, {"text": ["Where is the door handle?"], "is_sentence": True,
                      "shapes": [{"label": "target", "points": rect(12, 8, 14, 10), "group_id": None,
                                  "shape_type": "polygon", "flags": {}}]}),
    ],
}

# refCOCO family: COCO instances + refs. Polygons with integer corners cover [x0, x1) x [y0, y1).
IMAGES = [
    {"id": 11, "file_name": "COCO_train2014_000000000011.jpg", "height": H, "width": W},
    {"id": 12, "file_name": "COCO_train2014_000000000012.jpg", "height": H, "width": W},
    {"id": 13, "file_name": "COCO_train2014_000000000013.jpg", "height": H, "width": W},
]


def anns():
    blob = np.zeros((H, W), np.uint8)
    blob[6:10, 9:15] = 1  # 4 x 6 = 24 pixels
    blob_rle = cocomask.encode(np.asfortranarray(blob))["counts"].decode()
    return [
        {"id": 101, "image_id": 11, "category_id": 1, "iscrowd": 0, "area": 24.0, "bbox": [2, 2, 6, 4],
         "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]]},
        {"id": 102, "image_id": 11, "category_id": 1, "iscrowd": 0, "area": 24.0, "bbox": [9, 6, 6, 4],
         "segmentation": [{"size": [H, W], "counts": blob_rle}]},
        {"id": 103, "image_id": 11, "category_id": 2, "iscrowd": 0, "area": 0.0, "bbox": [0, 0, 0, 0],
         "segmentation": []},
        {"id": 201, "image_id": 12, "category_id": 3, "iscrowd": 0, "area": 60.0, "bbox": [1, 1, 9, 7],
         "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5], [4, 3, 10, 3, 10, 8, 4, 8]]},
        {"id": 202, "image_id": 12, "category_id": 3, "iscrowd": 0, "area": 30.0, "bbox": [10, 0, 6, 5],
         "segmentation": [[10, 0, 16, 0, 16, 5, 10, 5]]},
        {"id": 301, "image_id": 13, "category_id": 4, "iscrowd": 0, "area": 12.0, "bbox": [0, 0, 4, 3],
         "segmentation": [[0, 0, 4, 0, 4, 3, 0, 3]]},
    ]


def sent(sid, text):
    return {"tokens": text.lower().split(), "raw": text, "sent_id": sid, "sent": text}


REFS = [
    {"sent_ids": [0, 1], "file_name": "COCO_train2014_000000000011_101.jpg", "ann_id": 101, "ref_id": 0,
     "image_id": 11, "split": "val", "sentences": [sent(0, "The Left Box "), sent(1, "box on the left")],
     "category_id": 1},
    {"sent_ids": [2], "file_name": "COCO_train2014_000000000011_102.jpg", "ann_id": 102, "ref_id": 1,
     "image_id": 11, "split": "val", "sentences": [sent(2, "blob at the bottom")], "category_id": 1},
    {"sent_ids": [3], "file_name": "COCO_train2014_000000000011_103.jpg", "ann_id": 103, "ref_id": 2,
     "image_id": 11, "split": "val", "sentences": [sent(3, "nothing at all")], "category_id": 2},
    {"sent_ids": [4], "file_name": "COCO_train2014_000000000012_201.jpg", "ann_id": 201, "ref_id": 3,
     "image_id": 12, "split": "val", "sentences": [sent(4, "two parts")], "category_id": 3},
    {"sent_ids": [5, 6], "file_name": "COCO_train2014_000000000012_202.jpg", "ann_id": 202, "ref_id": 4,
     "image_id": 12, "split": "testA", "sentences": [sent(5, "top right"), sent(6, "corner")],
     "category_id": 3},
    {"sent_ids": [7], "file_name": "COCO_train2014_000000000013_301.jpg", "ann_id": 301, "ref_id": 5,
     "image_id": 13, "split": "train", "sentences": [sent(7, "train only")], "category_id": 4},
    {"sent_ids": [8], "file_name": "COCO_train2014_000000000013_301.jpg", "ann_id": 301, "ref_id": 6,
     "image_id": 13, "split": "testB", "sentences": [sent(8, "Top Left")], "category_id": 4},
]


def write_dataset(root):
    rs = os.path.join(root, "reason_seg", "ReasonSeg")
    for split, items in REASONSEG.items():
        for name, seed, js in items:
            write_jpg(os.path.join(rs, split, name + ".jpg"), tiny_image(seed))
            with open(os.path.join(rs, split, name + ".json"), "w") as f:
                json.dump(js, f, indent=1)
                f.write("\n")
    refer = os.path.join(root, "refer_seg")
    for im in IMAGES:
        write_jpg(os.path.join(refer, "images", "mscoco", "images", "train2014", im["file_name"]),
                  tiny_image(im["id"]))
    instances = {"info": {"description": "lisa eval tiny dataset"}, "images": IMAGES,
                 "annotations": anns(),
                 "categories": [{"id": i, "name": "c%d" % i, "supercategory": "x"} for i in range(1, 5)]}
    for ds, split_by, proto in [("refcoco", "unc", 2), ("refcoco+", "unc", 0), ("refcocog", "umd", 4)]:
        d = os.path.join(refer, ds)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "instances.json"), "w") as f:
            json.dump(instances, f, separators=(",", ":"))
        with open(os.path.join(d, "refs(%s).p" % split_by), "wb") as f:
            f.write(pickle.dumps(REFS, protocol=proto))


# ---------------------------------------------------------------------------------------------
# ValDataset: queries and GT masks of the tiny dataset, exactly as the reference iterates them
# ---------------------------------------------------------------------------------------------


def val_items(root, dataset, split):
    """[(image_path, [(text, is_sentence, gt_mask)])] per ValDataset (sorted by path / image id:
    the reference's glob and set orders are arbitrary and do not change the metrics)."""
    out = []
    if dataset == "reasonseg":
        d = os.path.join(root, "reason_seg", "ReasonSeg", split)
        for name in sorted(os.listdir(d)):
            if not name.endswith(".jpg"):
                continue
            image_path = os.path.join(d, name)
            img = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
            with open(image_path.replace(".jpg", ".json")) as f:
                anno = json.load(f)
            m = mask_from_shapes(anno["shapes"], *img.shape[:2])
            out.append((image_path, [(anno["text"][0].strip(), bool(anno["is_sentence"]), m)]))
        return out
    ds, split_by = {"refcoco": ("refcoco", "unc"), "refcoco+": ("refcoco+", "unc"),
                    "refcocog": ("refcocog", "umd")}[dataset]
    refer = os.path.join(root, "refer_seg")
    with open(os.path.join(refer, ds, "refs(%s).p" % split_by), "rb") as f:
        refs = pickle.load(f)
    with open(os.path.join(refer, ds, "instances.json")) as f:
        inst = json.load(f)
    annotations = {a["id"]: a for a in inst["annotations"]}
    imgs = {i["id"]: i for i in inst["images"]}
    if split in ("testA", "testB", "testC"):
        sel = [r for r in refs if split[-1] in r["split"]]
    elif split == "test":
        sel = [r for r in refs if "test" in r["split"]]
    else:
        sel = [r for r in refs if r["split"] == split]
    img2refs = {}
    for r in sel:
        img2refs.setdefault(r["image_id"], []).append(r)
    for image_id in sorted(img2refs):
        info = imgs[image_id]
        path = os.path.join(refer, "images", "mscoco", "images", "train2014", info["file_name"])
        queries = []
        for r in img2refs[image_id]:
            for s in r["sentences"]:
                text = s["sent"].strip().lower().strip()
                m = valdataset_mask(annotations[r["ann_id"]]["segmentation"], info["height"], info["width"])
                queries.append((text, False, m))
        out.append((path, queries))
    return out


SPLITS = [("reasonseg", "val"), ("reasonseg", "test"), ("refcoco", "val"), ("refcoco", "testA"),
          ("refcoco", "testB"), ("refcoco+", "val"), ("refcocog", "test")]


def write_gt(root, path):
    lines = ["# GT masks of every query of the tiny dataset (ValDataset), rows as in raster.txt",
             "# query DATASET SPLIT IMAGE(relative to the data root) H W TEXT"]
    for dataset, split in SPLITS:
        for image_path, queries in val_items(root, dataset, split):
            for text, _, m in queries:
                lines.append("query %s %s %s %d %d %s" % (dataset, split, os.path.relpath(image_path, root),
                                                        m.shape[0], m.shape[1], text))
                lines.extend(mask_rows(m))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# teacher_forced.json: the reference evaluation of the tiny LISA on the tiny dataset
# ---------------------------------------------------------------------------------------------


def intersection_and_union(output, target, K=2, ignore_index=255):
    """utils/utils.py intersectionAndUnionGPU."""
    import torch
    output = output.reshape(-1).clone()
    target = target.reshape(-1)
    output[target == ignore_index] = ignore_index
    intersection = output[output == target]
    area_intersection = torch.histc(intersection.float(), bins=K, min=0, max=K - 1)
    area_output = torch.histc(output.float(), bins=K, min=0, max=K - 1)
    area_target = torch.histc(target.float(), bins=K, min=0, max=K - 1)
    area_union = area_output + area_target - area_intersection
    return area_intersection, area_union


def write_teacher_forced(root, data_dir, path):
    import gen_golden as gg
    import torch
    ref = gg.Reference(os.path.join(data_dir, "tiny-lisa"), os.path.join(data_dir, "tiny-clip"))
    result = {"generator": "tests/golden/gen_eval.py", "model": "tests/data/tiny-lisa", "splits": {}}
    for dataset, split in SPLITS:
        queries_out = []
        sum_i = sum_u = 0.0
        sum_iou = 0.0
        for image_path, queries in val_items(root, dataset, split):
            image_np = ref.decode_image(image_path)
            clip_px = ref.clip_preprocess(image_np)
            sam_px, resize_hw = ref.sam_preprocess(image_np)
            with torch.no_grad():
                img_emb = ref.encode_image(sam_px)
                for text, is_sentence, gt in queries:
                    if is_sentence:
                        q = " {} Please output segmentation mask.".format(text)
                    else:
                        q = " What is {} in this image? Please output segmentation mask.".format(text)
                    # ValDataset: the assistant turn is "[SEG]." -> "... ASSISTANT: [SEG].</s>"
                    prompt = "<image>\n" + q
                    prompt = prompt.replace("<image>", "<im_start><image><im_end>")
                    prompt = gg.SYSTEM + " USER: " + prompt + " ASSISTANT: [SEG].</s>"
                    chunks = [ref.tok(c).input_ids for c in prompt.split("<image>")]
                    ids = torch.tensor([chunks[0][0]] + chunks[0][1:] + [gg.IMAGE_TOKEN_INDEX] + chunks[1][1:])
                    h, _, _ = ref.llm_forward(ids, clip_px)
                    # model_forward(inference=True): seg_token_mask = ids[1:] == seg, padded with
                    # one zero at the end and 255 zeros in front (the position before [SEG])
                    seg = torch.cat([torch.zeros(255, dtype=torch.bool), ids[1:] == ref.seg_token_idx,
                                     torch.zeros(1, dtype=torch.bool)])
                    assert seg.shape[0] == h.shape[1]
                    pred_emb = ref.extras.text_hidden_fcs[0](h)[0][seg]
                    pos = seg.nonzero()[:, 0]
                    assert pred_emb.shape[0] == 1, text
                    _, _, logits, _, _ = ref.decode_masks(img_emb, pred_emb.unsqueeze(1), resize_hw,
                                                          image_np.shape[:2])
                    pred = (logits[0] > 0).int()
                    target = torch.from_numpy(gt).int()
                    inter, union = intersection_and_union(pred, target)
                    i_fg, u_fg = float(inter[1]), float(union[1])
                    iou = i_fg / (u_fg + 1e-5) + (1.0 if u_fg == 0 else 0.0)
                    near = int(((logits[0].abs() < 1e-3) & (target != 255)).sum())
                    queries_out.append({"image": os.path.relpath(image_path, root), "text": text,
                                        "n_ids": int(ids.shape[0]), "seg_position": int(pos[0]),
                                        "intersection": int(i_fg), "union": int(u_fg),
                                        "pred_pixels": int(pred.sum()), "near_zero_logits": near})
                    sum_i += i_fg
                    sum_u += u_fg
                    sum_iou += iou
        n = len(queries_out)
        result["splits"]["%s/%s" % (dataset, split)] = {
            "queries": queries_out, "giou": sum_iou / (n + 1e-5), "ciou": sum_i / (sum_u + 1e-10)}
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="tests/data/eval")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data"), help="tests/data (tiny models)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    print("opencv", cv2.__version__, "numpy", np.__version__)
    write_raster(os.path.join(out, "raster.txt"))
    write_coco(os.path.join(out, "coco.txt"))
    write_dataset(out)
    write_gt(out, os.path.join(out, "gt_masks.txt"))
    write_teacher_forced(out, os.path.abspath(args.data), os.path.join(out, "teacher_forced.json"))


if __name__ == "__main__":
    main()
