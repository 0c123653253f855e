#!/usr/bin/python3
"""Writes the PyTorch .bin test corpus (tests/data/bin/) with the reference stack (Debian's
/usr/bin/python3: torch 1.13.1, transformers 4.31.0, segment-anything 1.0, safetensors):

  single/pytorch_model.bin   torch.save of a module state_dict (OrderedDict with _metadata) plus
                             mixed BF16/F32/F16/I64/I32/U8/BOOL tensors, a 0-dim scalar, an empty
                             tensor, two views of one storage (non-zero storage offset), a
                             transposed (non-contiguous) tensor and one tensor under two names
  twin.safetensors           the same tensors (contiguous copies) written by `safetensors`
  twin_bf16.safetensors      the same with every float tensor cast by torch's .to(torch.bfloat16)
  tiny-lisa/                 a tiny LISA checkpoint as the merge script writes one: LlamaForCausalLM
                             (bf16) + mm_projector + text_hidden_fcs + SAM (segment_anything
                             modules, f32) under model.visual_model., saved by transformers
                             save_pretrained(safe_serialization=False) as 2 shards +
                             pytorch_model.bin.index.json, with config.json and added_tokens.json
  tiny-lisa-st/              the same saved with safe_serialization=True (safetensors shards)
  clip/                      a tiny CLIPModel (vision + text) saved by save_pretrained as
                             pytorch_model.bin, with config.json
  zip64_forced.bin           single/'s entries re-zipped with ZIP64 extra fields on every entry
                             (sizes and offsets 0xFFFFFFFF in the fixed headers)
  deflated.bin               single/'s entries re-zipped with deflate compression
  pyzip.bin                  a hand-pickled state dict zipped by Python's zipfile (no ZIP64
                             records), checking the hand-made pickles the bad corpus is built from
  bad/                       malformed files; bad/EXPECTED.txt: file, status, message substring
  ../configs/expected_counts.json
                             parameter counts of the real 7B/13B configs (tests/data/configs/*,
                             reconstructed from the spec) counted on the reference modules:
                             one LlamaDecoderLayer instantiated per config, SAM ViT-H built by
                             segment_anything.build_sam_vit_h

Every file written here is checked with torch.load (except the bad ones, which torch.load must
also reject where it can parse them). Finally, if c_written.bin exists (written by the C writer,
see tests/test_pytorch_bin.c `c_writer_matches_committed`:
  ./build/bin/lisa convert tests/data/bin/twin.safetensors /tmp/cw --format bin
  cp /tmp/cw/pytorch_model.bin tests/data/bin/c_written.bin), it is torch.load'ed and compared
with twin.safetensors bit for bit: the proof that the C writer's output is what torch reads.

Deterministic: rerunning gives identical bytes.
"""
import collections, io, json, os, shutil, struct, sys, zipfile, zlib
from functools import partial

import torch
from safetensors.torch import load_file, save_file

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "data", "bin")
cfg_dir = os.path.join(here, "..", "data", "configs")
os.makedirs(os.path.join(out, "bad"), exist_ok=True)
torch.manual_seed(1234)


def same(a, b, what):
    assert a.keys() == b.keys(), (what, sorted(set(a) ^ set(b)))
    for k in a:
        x, y = a[k], b[k]
        assert x.dtype == y.dtype and x.shape == y.shape, (what, k, x.dtype, y.dtype, x.shape, y.shape)
        assert torch.equal(x.contiguous().view(-1).view(torch.uint8) if x.numel() else x,
                           y.contiguous().view(-1).view(torch.uint8) if y.numel() else y), (what, k)


# ---- single file: a module state_dict plus every dtype and layout ---------------------------------
mod = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.LayerNorm(5))
mod[0].to(torch.bfloat16)
sd = mod.state_dict()  # OrderedDict with a _metadata attribute, as every state_dict
assert hasattr(sd, "_metadata")
sd["model.embed_tokens.weight"] = torch.randn(11, 6).to(torch.bfloat16)
sd["model.visual_model.image_encoder.pos_embed"] = torch.randn(1, 2, 3, 4)
sd["f16.vec"] = torch.randn(37).to(torch.float16)
sd["i64.ids"] = torch.arange(-5, 7, dtype=torch.int64) * 1000003
sd["i32.vec"] = torch.arange(9, dtype=torch.int32) - 4
sd["u8.img"] = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
sd["bool.mask"] = torch.tensor([True, False, True, True, False])
sd["scalar"] = torch.tensor(3.25)
sd["empty"] = torch.zeros(0, 4)
big = torch.randn(6, 5)
sd["view.rows"] = big[2:4]          # storage offset 10, shares big's storage
sd["view.tail"] = big.view(-1)[17:]  # offset 17, same storage
bigb = torch.randn(20).to(torch.bfloat16)
sd["view.bf16"] = bigb[3:9].view(2, 3)
sd["transposed"] = torch.arange(12.0).reshape(3, 4).t()  # non-contiguous
tied = torch.randn(3, 2)
sd["tied.a"] = tied
sd["tied.b"] = tied
os.makedirs(os.path.join(out, "single"), exist_ok=True)
single = os.path.join(out, "single", "pytorch_model.bin")
torch.save(sd, single)
twin = {k: v.contiguous().clone() for k, v in sd.items()}
save_file(twin, os.path.join(out, "twin.safetensors"), metadata={"format": "pt"})
twin_bf16 = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in twin.items()}
save_file(twin_bf16, os.path.join(out, "twin_bf16.safetensors"), metadata={"format": "pt"})
same(torch.load(single), twin, "single")

# ---- tiny LISA: the merge script's layout ----------------------------------------------------------
from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

C, MM, OUT = 16, 8, 16  # OUT = SAM prompt dim = decoder dim: 8 heads x 2 (build_sam's num_heads=8)
lcfg = LlamaConfig(hidden_size=C, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=2, vocab_size=40, max_position_embeddings=64, rms_norm_eps=1e-6,
                   torch_dtype="bfloat16", use_cache=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
llm = LlamaForCausalLM(lcfg).to(torch.bfloat16)
# LISA-specific config fields (spec §6), as LISA's config.json carries them
lcfg.architectures = ["LISAForCausalLM"]
lcfg.mm_hidden_size = MM
lcfg.mm_vision_select_layer = -2
lcfg.mm_vision_select_feature = "patch"
lcfg.mm_use_im_start_end = True
lcfg.mm_use_im_patch_token = False
lcfg.image_aspect_ratio = "square"
lcfg.vision_tower = "openai/clip-vit-large-patch14"
lcfg.mm_vision_tower = "openai/clip-vit-large-patch14"
lcfg.out_dim = OUT
lcfg.train_mask_decoder = True
lcfg.use_mm_proj = True
enc = ImageEncoderViT(depth=2, embed_dim=16, img_size=32, mlp_ratio=2.0,
                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=8,
                      qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=2, out_chans=OUT)
pe = PromptEncoder(embed_dim=OUT, image_embedding_size=(4, 4), input_image_size=(32, 32), mask_in_chans=16)
dec = MaskDecoder(num_multimask_outputs=3,
                  transformer=TwoWayTransformer(depth=2, embedding_dim=OUT, mlp_dim=32, num_heads=8),
                  transformer_dim=OUT, iou_head_depth=3, iou_head_hidden_dim=OUT)
sam = Sam(enc, pe, dec, pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
proj = torch.nn.Linear(MM, C).to(torch.bfloat16)
fcs = torch.nn.Sequential(torch.nn.Linear(C, C), torch.nn.ReLU(inplace=True), torch.nn.Linear(C, OUT),
                          torch.nn.Dropout(0.0))
lisa_sd = collections.OrderedDict()
for k, v in llm.state_dict().items():
    lisa_sd[k] = v
for k, v in proj.state_dict().items():
    lisa_sd["model.mm_projector." + k] = v
for k, v in fcs.state_dict().items():
    lisa_sd["model.text_hidden_fcs.0." + k] = v
for k, v in sam.state_dict().items():
    lisa_sd["model.visual_model." + k] = v
total = sum(v.numel() * v.element_size() for v in lisa_sd.values())
for sub, safe in (("tiny-lisa", False), ("tiny-lisa-st", True)):
    d = os.path.join(out, sub)
    shutil.rmtree(d, ignore_errors=True)
    llm.save_pretrained(d, state_dict=lisa_sd, safe_serialization=safe, max_shard_size=int(total * 0.6))
    with open(os.path.join(d, "added_tokens.json"), "w") as f:
        json.dump({"<im_end>": 38, "<im_patch>": 36, "<im_start>": 37, "[SEG]": 39}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.remove(os.path.join(d, "generation_config.json"))
bin_files = sorted(p for p in os.listdir(os.path.join(out, "tiny-lisa")) if p.endswith(".bin"))
assert bin_files == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"], bin_files
loaded = {}
for p in bin_files:
    loaded.update(torch.load(os.path.join(out, "tiny-lisa", p)))
same(loaded, {k: v.contiguous() for k, v in lisa_sd.items()}, "tiny-lisa")
st = {}
for p in sorted(os.listdir(os.path.join(out, "tiny-lisa-st"))):
    if p.endswith(".safetensors"):
        st.update(load_file(os.path.join(out, "tiny-lisa-st", p)))
same(st, loaded, "tiny-lisa-st")

# ---- tiny CLIP (openai/clip-vit-large-patch14 layout) --------------------------------------------
ccfg = CLIPConfig(
    text_config=dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                     vocab_size=50, max_position_embeddings=16, projection_dim=8),
    vision_config=dict(hidden_size=8, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2,
                       image_size=28, patch_size=14, projection_dim=8, hidden_act="quick_gelu"),
    projection_dim=8)
clip = CLIPModel(ccfg)
d = os.path.join(out, "clip")
shutil.rmtree(d, ignore_errors=True)
clip.save_pretrained(d, safe_serialization=False)
same(torch.load(os.path.join(d, "pytorch_model.bin")), clip.state_dict(), "clip")

# ---- zip variants of single/ -----------------------------------------------------------------------
with zipfile.ZipFile(single) as z:
    entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]


def zip64_forced(path, entries):
    """Every size and offset moved into ZIP64 extra fields (APPNOTE 4.5.3)."""
    buf, cd = io.BytesIO(), io.BytesIO()
    for name, data in entries:
        off = buf.tell()
        crc = zlib.crc32(data)
        nb = name.encode()
        local_x = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        buf.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                              len(nb), len(local_x)) + nb + local_x + data)
        cx = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        cd.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                             0xFFFFFFFF, len(nb), len(cx), 0, 0, 0, 0, 0xFFFFFFFF) + nb + cx)
    cd_off, cdb = buf.tell(), cd.getvalue()
    buf.write(cdb)
    z64 = buf.tell()
    n = len(entries)
    buf.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cdb), cd_off))
    buf.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
    buf.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    open(path, "wb").write(buf.getvalue())


zip64_forced(os.path.join(out, "zip64_forced.bin"), entries)
same(torch.load(os.path.join(out, "zip64_forced.bin")), twin, "zip64_forced")
with zipfile.ZipFile(os.path.join(out, "deflated.bin"), "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in entries:
        zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, data)
same(torch.load(os.path.join(out, "deflated.bin")), twin, "deflated")

# ---- hand-made pickles (the bad corpus mutates these) ----------------------------------------------


def p_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -(1 << 31) <= v < (1 << 31):
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def p_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_tuple(vals):
    return b"(" + b"".join(p_int(v) for v in vals) + b"t"


def p_tensor(cls, key, numel, offset, size, stride, rebuild=b"ctorch._utils\n_rebuild_tensor_v2\n"):
    return (rebuild + b"((" + p_str("storage") + b"ctorch\n" + cls.encode() + b"\n" + p_str(key) + p_str("cpu") +
            p_int(numel) + b"tQ" + p_int(offset) + p_tuple(size) + p_tuple(stride) + b"\x89" +
            b"ccollections\nOrderedDict\n)R" + b"tR")


def p_state(items):
    """items: list of (name, tensor pickle bytes) -> OrderedDict pickle."""
    body = b"".join(p_str(n) + t for n, t in items)
    return b"\x80\x02ccollections\nOrderedDict\n)R(" + body + b"u."


def write_zip(path, pkl, storages, prefix="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in [("data.pkl", pkl)] + [("data/" + k, v) for k, v in storages.items()] + [("version", b"3\n")]:
            z.writestr(zipfile.ZipInfo(prefix + "/" + name, date_time=(1980, 1, 1, 0, 0, 0)), data)


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
good_pkl = p_state([("w", p_tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1))),
                    ("v", p_tensor("FloatStorage", "0", 6, 4, (2,), (1,)))])
write_zip(os.path.join(out, "pyzip.bin"), good_pkl, {"0": f32(0, 1, 2, 3, 4, 5)})
t = torch.load(os.path.join(out, "pyzip.bin"))
assert t["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and t["v"].tolist() == [4, 5], t

# ---- bad corpus ------------------------------------------------------------------------------------
bad = os.path.join(out, "bad")
expected = []


def expect(name, status, needle):
    expected.append(f"{name}\t{status}\t{needle}")


def bad_zip(name, pkl, storages, status, needle):
    write_zip(os.path.join(bad, name), pkl, storages)
    expect(name, status, needle)


raw = open(single, "rb").read()
open(os.path.join(bad, "truncated.bin"), "wb").write(raw[: len(raw) // 2])
expect("truncated.bin", "LISA_ERR_FORMAT", "truncated")
open(os.path.join(bad, "truncated_tail.bin"), "wb").write(raw[:-7])
expect("truncated_tail.bin", "LISA_ERR_FORMAT", "end-of-central-directory")
with zipfile.ZipFile(single) as z:
    info = z.getinfo("pytorch_model/data/0")
    hdr = raw[info.header_offset: info.header_offset + 30]
    data_at = info.header_offset + 30 + struct.unpack("<H", hdr[26:28])[0] + struct.unpack("<H", hdr[28:30])[0]
flipped = bytearray(raw)
flipped[data_at] ^= 0x40
open(os.path.join(bad, "bad_crc.bin"), "wb").write(bytes(flipped))
expect("bad_crc.bin", "LISA_ERR_FORMAT", "'pytorch_model/data/0': CRC-32 mismatch")
renamed = bytearray(raw)
renamed[info.header_offset + 30 + len("pytorch_model/data/")] = ord("7")
open(os.path.join(bad, "local_header_name.bin"), "wb").write(bytes(renamed))
expect("local_header_name.bin", "LISA_ERR_FORMAT", "local header names a different file")
loc = raw.rfind(b"PK\x06\x07")
z64bad = bytearray(raw)
z64bad[loc + 8: loc + 16] = struct.pack("<Q", 12345)
open(os.path.join(bad, "zip64_locator.bin"), "wb").write(bytes(z64bad))
expect("zip64_locator.bin", "LISA_ERR_FORMAT", "ZIP64 locator")
buf = io.BytesIO()
torch.save({"x": torch.zeros(3)}, buf, _use_new_zipfile_serialization=False)
# legacy storage keys are memory addresses: keep the deterministic head (magic number, protocol
# version, sys info: all the loader looks at)
open(os.path.join(bad, "legacy.bin"), "wb").write(buf.getvalue()[: buf.getvalue().index(b"ctorch._utils")])
expect("legacy.bin", "LISA_ERR_UNSUPPORTED", "legacy")
open(os.path.join(bad, "not_zip.bin"), "wb").write(b"this is not a checkpoint at all, just some text\n" * 3)
expect("not_zip.bin", "LISA_ERR_FORMAT", "end-of-central-directory")
open(os.path.join(bad, "empty.bin"), "wb").write(b"")
expect("empty.bin", "LISA_ERR_FORMAT", "empty file")
torch.save({"x": torch.zeros(2, dtype=torch.float64)}, os.path.join(bad, "float64.bin"))
expect("float64.bin", "LISA_ERR_UNSUPPORTED", "torch.DoubleStorage")
torch.save({"x": torch.zeros(1, 2, 1, 2, 1)}, os.path.join(bad, "five_dims.bin"))
expect("five_dims.bin", "LISA_ERR_UNSUPPORTED", "5 dims")
torch.save({"x": torch.zeros(2), "n": 5}, os.path.join(bad, "not_tensor.bin"))
expect("not_tensor.bin", "LISA_ERR_FORMAT", "'n' is a int, not a tensor")
torch.save({"x": torch.arange(3.0).expand(4, 3)}, os.path.join(bad, "expanded.bin"))
expect("expanded.bin", "LISA_ERR_UNSUPPORTED", "expanded/overlapping view")
torch.save([torch.zeros(2)], os.path.join(bad, "list.bin"))
expect("list.bin", "LISA_ERR_FORMAT", "EMPTY_LIST")
torch.save({"model": {"x": torch.zeros(2)}}, os.path.join(bad, "nested.bin"))
expect("nested.bin", "LISA_ERR_FORMAT", "'model' is a dict, not a tensor")

# code execution attempts: never run, always refused by name
bad_zip("os_system.bin", b"\x80\x02cos\nsystem\n" + p_str("touch /tmp/lisa-pwned") + b"\x85R.", {},
        "LISA_ERR_FORMAT", "global 'os.system' is not allowed")
bad_zip("posix_system.bin", p_state([("x", b"cposix\nsystem\n" + p_str("id") + b"\x85R")]), {},
        "LISA_ERR_FORMAT", "global 'posix.system' is not allowed")
bad_zip("builtins_eval.bin", b"\x80\x04" + b"\x8c\x08builtins\x8c\x04eval\x93" + p_str("1+1") + b"\x85R.", {},
        "LISA_ERR_FORMAT", "global 'builtins.eval' is not allowed")
bad_zip("load_from_bytes.bin",
        p_state([("x", b"ctorch.storage\n_load_from_bytes\n" + b"C\x03abc" + b"\x85R")]), {},
        "LISA_ERR_FORMAT", "global 'torch.storage._load_from_bytes' is not allowed")
bad_zip("unknown_opcode.bin", b"\x80\x02\xff.", {}, "LISA_ERR_FORMAT", "unknown pickle opcode 0xff")
bad_zip("inst_opcode.bin", b"\x80\x02(ios\nsystem\n.", {}, "LISA_ERR_FORMAT", "opcode INST")
bad_zip("protocol5.bin", b"\x80\x05}.", {}, "LISA_ERR_UNSUPPORTED", "pickle protocol 5")
bad_zip("no_stop.bin", b"\x80\x02}", {}, "LISA_ERR_FORMAT", "without STOP")
bad_zip("deep_marks.bin", b"\x80\x02" + b"(" * 1000 + b".", {}, "LISA_ERR_LIMIT", "nested deeper")
bad_zip("memo_range.bin", b"\x80\x02}r\x00\x00\x00\x40.", {}, "LISA_ERR_LIMIT", "memo index")
# storages and tensors
bad_zip("storage_short.bin", p_state([("w", p_tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1)))]),
        {"0": f32(0, 1, 2, 3)}, "LISA_ERR_FORMAT", "storage shorter than claimed")
bad_zip("tensor_past_storage.bin", p_state([("w", p_tensor("FloatStorage", "0", 6, 2, (2, 3), (3, 1)))]),
        {"0": f32(0, 1, 2, 3, 4, 5)}, "LISA_ERR_FORMAT", "storage shorter than the tensor claims")
bad_zip("storage_missing.bin", p_state([("w", p_tensor("FloatStorage", "7", 6, 0, (2, 3), (3, 1)))]),
        {"0": f32(0, 1, 2, 3, 4, 5)}, "LISA_ERR_FORMAT", "missing from the archive")
bad_zip("shape_overflow.bin",
        p_state([("w", p_tensor("FloatStorage", "0", 6, 0, (1 << 62, 1 << 62), (1, 1)))]),
        {"0": f32(0, 1, 2, 3, 4, 5)}, "LISA_ERR_FORMAT", "shape overflows")
bad_zip("stride_overflow.bin",
        p_state([("w", p_tensor("FloatStorage", "0", 6, 0, (3, 2), ((1 << 63) - 1, 1)))]),
        {"0": f32(0, 1, 2, 3, 4, 5)}, "LISA_ERR_FORMAT", "stride overflows")
bad_zip("negative_size.bin", p_state([("w", p_tensor("FloatStorage", "0", 6, 0, (-2, 3), (3, 1)))]),
        {"0": f32(0, 1, 2, 3, 4, 5)}, "LISA_ERR_FORMAT", "negative size or stride")
bad_zip("wrong_arity.bin", p_state([("w", b"ctorch._utils\n_rebuild_tensor_v2\n(K\x01t" + b"R")]), {},
        "LISA_ERR_FORMAT", "6 or 7 arguments")
# a deflated entry claiming more than deflate can expand to (a zip bomb's header)
with zipfile.ZipFile(os.path.join(bad, "zip_bomb.bin"), "w", zipfile.ZIP_DEFLATED) as z:
    zi = zipfile.ZipInfo("archive/data/0", date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(zi, b"\0" * 4096)
bomb = bytearray(open(os.path.join(bad, "zip_bomb.bin"), "rb").read())
cdo = bomb.rfind(b"PK\x01\x02")
bomb[cdo + 24: cdo + 28] = struct.pack("<I", 0x7FFFFFFF)  # uncompressed size in the directory
lho = 0
bomb[lho + 22: lho + 26] = struct.pack("<I", 0x7FFFFFFF)  # and in the local header
open(os.path.join(bad, "zip_bomb.bin"), "wb").write(bytes(bomb))
expect("zip_bomb.bin", "LISA_ERR_FORMAT", "impossible ratio")
# shard indexes
for dname, wm, shards in (
        ("index_missing_shard", {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"},
         {"pytorch_model-00001-of-00002.bin": {"a": torch.zeros(2)}}),
        ("index_duplicate", {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"},
         {"pytorch_model-00001-of-00002.bin": {"a": torch.zeros(2)},
          "pytorch_model-00002-of-00002.bin": {"a": torch.ones(2), "b": torch.ones(1)}})):
    bd = os.path.join(bad, dname)
    shutil.rmtree(bd, ignore_errors=True)
    os.makedirs(bd)
    for fn, tensors in shards.items():
        torch.save(tensors, os.path.join(bd, fn))
    with open(os.path.join(bd, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 8}, "weight_map": wm}, f, indent=2)
expect("index_missing_shard", "LISA_ERR_NOT_FOUND", "pytorch_model-00002-of-00002.bin")
expect("index_duplicate", "LISA_ERR_FORMAT", "'a' appears twice")

# For the record: which bad files torch.load itself accepts (we refuse more: what the engine cannot
# use, and anything that is not plain tensor data). Files that would execute code are not loaded.
accepted = []
for line in expected:
    name = line.split("\t")[0]
    p = os.path.join(bad, name)
    if os.path.isdir(p) or name in ("os_system.bin", "posix_system.bin", "builtins_eval.bin", "inst_opcode.bin"):
        continue
    try:
        torch.load(p)
        accepted.append(name)
    except Exception:
        pass
print("bad files torch.load accepts:", " ".join(accepted))

with open(os.path.join(bad, "EXPECTED.txt"), "w") as f:
    f.write("# file\tstatus\tmessage substring (generated by tests/golden/gen_bin.py)\n")
    f.write("\n".join(expected) + "\n")
print(f"wrote {len(expected)} bad cases to {bad}")

# ---- parameter counts of the real configs, on the reference modules --------------------------------
from transformers.models.llama.modeling_llama import LlamaDecoderLayer
from segment_anything import build_sam_vit_h

counts = {}
sam_h = build_sam_vit_h()
sam_sd = sam_h.state_dict()
sam_params = sum(v.numel() for v in sam_sd.values())
sam_tensors = len(sam_sd)
del sam_h, sam_sd
for name in ("lisa-7b-v1", "lisa-13b-llama2-v1"):
    cfg = json.load(open(os.path.join(cfg_dir, name, "config.json")))
    lc = LlamaConfig(**{k: cfg[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "num_key_value_heads", "vocab_size",
                                            "rms_norm_eps", "max_position_embeddings")})
    layer = LlamaDecoderLayer(lc)
    per_layer = sum(p.numel() for p in layer.parameters())  # parameters: inv_freq is a buffer
    del layer
    h, v = cfg["hidden_size"], cfg["vocab_size"]
    llm = per_layer * cfg["num_hidden_layers"] + 2 * v * h + h  # + embed_tokens, lm_head, norm
    projector = sum(p.numel() for p in torch.nn.Linear(cfg["mm_hidden_size"], h).parameters())
    fcs_m = torch.nn.Sequential(torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, cfg["out_dim"]))
    fcs_n = sum(p.numel() for p in fcs_m.parameters())
    counts[name] = {"llm_params": llm, "projector_params": projector, "text_hidden_fcs_params": fcs_n,
                    "sam_params": sam_params, "sam_tensors": sam_tensors,
                    "kv_bytes_per_token_bf16": 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] *
                    (h // cfg["num_attention_heads"]) * 2}
with open(os.path.join(cfg_dir, "expected_counts.json"), "w") as f:
    json.dump(counts, f, indent=2, sort_keys=True)
    f.write("\n")
print(json.dumps(counts, indent=2))

# ---- the C writer's output, read by torch ---------------------------------------------------------------
cw = os.path.join(out, "c_written.bin")
if os.path.exists(cw):
    same(torch.load(cw), load_file(os.path.join(out, "twin.safetensors")), "c_written")
    print("c_written.bin: torch.load reads the C writer's output bit-identically")
else:
    print("c_written.bin absent: write it with the C writer (see the docstring) and rerun")
