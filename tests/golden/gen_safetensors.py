#!/usr/bin/python3
"""Writes the safetensors test corpus (tests/data/safetensors/) with the reference `safetensors`
Python package (0.3+; run with Debian's /usr/bin/python3 after `pip install transformers==4.31.0`,
which pulls it in):

  good.safetensors          every supported dtype, 0-4 dims, an empty tensor, metadata
  sharded/                  model.safetensors.index.json + two shards (HF layout)
  bad/*.safetensors         malformed files, each with the error the loader must report
                            (bad/EXPECTED.txt: file, status name, substring of the message)

Tensor values follow formulas the C test recomputes (value[i] = (i % 251) - 125 scaled per dtype),
so the test does not trust the writer it checks. Deterministic: rerunning gives identical bytes.
"""
import json, os, struct, sys
import numpy as np
import torch
from safetensors.torch import save_file

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "safetensors")
os.makedirs(os.path.join(out, "bad"), exist_ok=True)
os.makedirs(os.path.join(out, "sharded"), exist_ok=True)


def pattern(shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    v = (np.arange(n) % 251) - 125
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        t = torch.tensor(v, dtype=torch.float64) * 0.125
    elif dtype == torch.uint8:
        t = torch.tensor(v + 125)
    elif dtype == torch.bool:
        t = torch.tensor(v % 2 == 0)
    else:
        t = torch.tensor(v * 1000003)
    return t.to(dtype).reshape(shape)


good = {
    "f32.matrix": pattern((37, 19), torch.float32),
    "f16.vec": pattern((769,), torch.float16),
    "bf16.4d": pattern((2, 3, 5, 7), torch.bfloat16),
    "i32.3d": pattern((3, 4, 5), torch.int32),
    "i64.vec": pattern((11,), torch.int64),
    "u8.img": pattern((4, 6, 3), torch.uint8),
    "bool.mask": pattern((9,), torch.bool),
    "scalar": pattern((), torch.float32),
    "empty": torch.zeros((0, 4), dtype=torch.float32),
    "model.visual_model.image_encoder.pos_embed": pattern((1, 4, 4, 8), torch.float32),
}
save_file(good, os.path.join(out, "good.safetensors"), metadata={"format": "pt", "note": "lisa test corpus"})

shard1 = {k: good[k] for k in ["f32.matrix", "f16.vec", "bf16.4d"]}
shard2 = {k: good[k] for k in ["i32.3d", "i64.vec", "u8.img"]}
save_file(shard1, os.path.join(out, "sharded", "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
save_file(shard2, os.path.join(out, "sharded", "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
wm = {k: "model-00001-of-00002.safetensors" for k in shard1}
wm.update({k: "model-00002-of-00002.safetensors" for k in shard2})
total = sum(t.numel() * t.element_size() for t in list(shard1.values()) + list(shard2.values()))
with open(os.path.join(out, "sharded", "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2, sort_keys=True)

# ---- bad files --------------------------------------------------------------------------------
base = open(os.path.join(out, "good.safetensors"), "rb").read()
hlen = struct.unpack("<Q", base[:8])[0]
header = json.loads(base[8:8 + hlen])
data = base[8 + hlen:]


def raw(name, header_bytes, data_bytes, hl=None):
    hl = len(header_bytes) if hl is None else hl
    with open(os.path.join(out, "bad", name), "wb") as f:
        f.write(struct.pack("<Q", hl) + header_bytes + data_bytes)


def with_header(name, h, d=data):
    raw(name, json.dumps(h).encode(), d)


expected = []


def expect(name, status, needle):
    expected.append(f"{name}\t{status}\t{needle}")


open(os.path.join(out, "bad", "empty.safetensors"), "wb").close()
expect("empty.safetensors", "LISA_ERR_FORMAT", "empty file")
open(os.path.join(out, "bad", "short.safetensors"), "wb").write(b"\x05\x00\x00")
expect("short.safetensors", "LISA_ERR_FORMAT", "too short")
open(os.path.join(out, "bad", "truncated.safetensors"), "wb").write(base[: len(base) - 100])
expect("truncated.safetensors", "LISA_ERR_FORMAT", "outside the")
open(os.path.join(out, "bad", "truncated_header.safetensors"), "wb").write(base[: 8 + hlen // 2])
expect("truncated_header.safetensors", "LISA_ERR_FORMAT", "does not fit")
raw("huge_header_len.safetensors", b"{}", b"", hl=1 << 40)
expect("huge_header_len.safetensors", "LISA_ERR_FORMAT", "exceeds")
raw("not_json.safetensors", b"{this is not json}   ", data)
expect("not_json.safetensors", "LISA_ERR_FORMAT", "not a valid JSON object")
raw("not_object.safetensors", b"[1, 2, 3]", data)
expect("not_object.safetensors", "LISA_ERR_FORMAT", "does not start with '{'")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], dtype="Q7")
with_header("unknown_dtype.safetensors", h)
expect("unknown_dtype.safetensors", "LISA_ERR_FORMAT", "unknown dtype 'Q7'")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], dtype="F64")
with_header("f64_dtype.safetensors", h)
expect("f64_dtype.safetensors", "LISA_ERR_UNSUPPORTED", "F64")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], shape=[37, 20])
with_header("wrong_size.safetensors", h)
expect("wrong_size.safetensors", "LISA_ERR_FORMAT", "need")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], shape=[-37, 19])
with_header("negative_dim.safetensors", h)
expect("negative_dim.safetensors", "LISA_ERR_FORMAT", "shape[0]")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], shape=[1 << 40, 1 << 40, 1 << 40])
with_header("overflow_shape.safetensors", h)
expect("overflow_shape.safetensors", "LISA_ERR_FORMAT", "overflows")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], shape=[1, 1, 1, 37, 19])
with_header("five_dims.safetensors", h)
expect("five_dims.safetensors", "LISA_ERR_UNSUPPORTED", "5 dims")
h = dict(header); o = h["f16.vec"]["data_offsets"]
h["i64.vec"] = dict(h["i64.vec"], data_offsets=[o[0], o[0] + 88])
with_header("overlap.safetensors", h)
expect("overlap.safetensors", "LISA_ERR_FORMAT", "overlap")
h = dict(header); o = h["f32.matrix"]["data_offsets"]
h["f32.matrix"] = dict(h["f32.matrix"], data_offsets=[o[1], o[0]])
with_header("reversed_offsets.safetensors", h)
expect("reversed_offsets.safetensors", "LISA_ERR_FORMAT", "data_offsets")
h = dict(header); h["f32.matrix"] = dict(h["f32.matrix"], data_offsets=[0.5, 2812])
with_header("fractional_offset.safetensors", h)
expect("fractional_offset.safetensors", "LISA_ERR_FORMAT", "data_offsets")
h = json.loads(json.dumps(header)); del h["f32.matrix"]["dtype"]
with_header("missing_dtype.safetensors", h)
expect("missing_dtype.safetensors", "LISA_ERR_FORMAT", "'dtype'")
h = json.loads(json.dumps(header)); h["__metadata__"] = {"a": 1}
with_header("metadata_not_string.safetensors", h)
expect("metadata_not_string.safetensors", "LISA_ERR_FORMAT", "__metadata__")
# duplicate key in the JSON text itself
txt = json.dumps(header)
dup = txt[:-1] + ', "f32.matrix": ' + json.dumps(header["f32.matrix"]) + "}"
raw("duplicate_name.safetensors", dup.encode(), data)
expect("duplicate_name.safetensors", "LISA_ERR_FORMAT", "appears twice")
raw("trailing_garbage.safetensors", json.dumps(header).encode() + b" xx", data)
expect("trailing_garbage.safetensors", "LISA_ERR_FORMAT", "trailing")

# bad shard indexes
bs = os.path.join(out, "bad", "index_missing_shard")
os.makedirs(bs, exist_ok=True)
with open(os.path.join(bs, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": {"a": "model-00001-of-00009.safetensors"}}, f)
expect("index_missing_shard", "LISA_ERR_NOT_FOUND", "model-00001-of-00009.safetensors")
bs = os.path.join(out, "bad", "index_wrong_shard")
os.makedirs(bs, exist_ok=True)
save_file({"x": pattern((3,), torch.float32)}, os.path.join(bs, "a.safetensors"))
save_file({"y": pattern((3,), torch.float32)}, os.path.join(bs, "b.safetensors"))
with open(os.path.join(bs, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": {"x": "b.safetensors", "y": "b.safetensors"}}, f)
expect("index_wrong_shard", "LISA_ERR_FORMAT", "'x'")
bs = os.path.join(out, "bad", "index_duplicate")
os.makedirs(bs, exist_ok=True)
save_file({"x": pattern((3,), torch.float32)}, os.path.join(bs, "a.safetensors"))
save_file({"x": pattern((3,), torch.float32)}, os.path.join(bs, "b.safetensors"))
with open(os.path.join(bs, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": {"x": "a.safetensors", "z": "b.safetensors"}}, f)
expect("index_duplicate", "LISA_ERR_FORMAT", "appears twice")
bs = os.path.join(out, "bad", "index_escape")
os.makedirs(bs, exist_ok=True)
with open(os.path.join(bs, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {}, "weight_map": {"x": "../../good.safetensors"}}, f)
expect("index_escape", "LISA_ERR_FORMAT", "leaves the checkpoint directory")
bs = os.path.join(out, "bad", "index_not_json")
os.makedirs(bs, exist_ok=True)
open(os.path.join(bs, "model.safetensors.index.json"), "w").write('{"weight_map": {"x": ')
expect("index_not_json", "LISA_ERR_FORMAT", "not valid JSON")

with open(os.path.join(out, "bad", "EXPECTED.txt"), "w") as f:
    f.write("# file\tstatus\tmessage substring (generated by tests/golden/gen_safetensors.py)\n")
    f.write("\n".join(expected) + "\n")
print(f"wrote {len(expected)} bad cases to {out}/bad")
