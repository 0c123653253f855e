"""pytest for the ctypes binding (python/lisa) on the tiny model of tests/data: segment by path,
encoded bytes and raw RGB (same mask every way), the COCO RLE of Result.json against a pure-Python
decoder, the PNG option, errors as lisa.Error, the batching engine, and lisa.Image (one picture,
many queries: encoded once, same results). No numpy, no PIL.
Run: LISA_LIBRARY=build/liblisa.so PYTHONPATH=python python3 -m pytest python/tests (CTest does)."""

import base64
import ctypes
import os
import struct
import zlib

import pytest

import lisa

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("LISA_TESTDATA_DIR", os.path.join(HERE, "..", "..", "tests", "data"))
CAT = os.path.join(DATA, "images", "chelsea_tiny.png")
QUERY = "What is the cat doing? Please output segmentation mask."


@pytest.fixture(scope="module")
def model():
    m = lisa.Model(os.path.join(DATA, "tiny-lisa"), vision_tower=os.path.join(DATA, "tiny-clip"), backend="cpu",
                   threads=2)
    yield m
    m.close()


def rle_decode(counts, h, w):
    """pycocotools rleFrString + rleDecode, written from maskApi.c: column-major runs from 0s."""
    runs, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    mask, pos = bytearray(h * w), 0
    for i, n in enumerate(runs):
        if i % 2:
            for j in range(pos, pos + n):
                mask[(j % h) * w + j // h] = 1
        pos += n
    assert pos == h * w
    return bytes(mask)


def png_rgb(rgb, h, w):
    """An 8-bit RGB PNG (filter 0 on every row), from the spec."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = b"".join(b"\0" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_version():
    assert lisa.version() == "0.1.0"


def test_model_info_and_token_counts(model):
    """lisa_model_info field for field: the library fills min(size, its sizeof) bytes and says how
    many in .size, so a larger buffer reveals the C struct's size; the last fields hold values only
    a right layout gives."""
    big = (ctypes.c_ubyte * (ctypes.sizeof(lisa._ModelInfo) + 64))()
    info = lisa._ModelInfo.from_buffer(big)
    info.size = ctypes.sizeof(big)
    assert lisa._model_get_info(model._h, ctypes.byref(info)) == 0
    assert info.size == ctypes.sizeof(lisa._ModelInfo), "ctypes _ModelInfo differs from lisa_model_info"
    assert bytes(big[ctypes.sizeof(lisa._ModelInfo):]) == bytes(64)
    d = model.info()
    assert (d["llm_hidden"], d["llm_layers"], d["llm_heads"], d["vocab_size"]) == (32, 2, 4, 32004)
    assert d["seg_token_id"] == model.seg_token_id
    assert d["backend"] == "cpu" and d["activation_dtype"] == "f32" and d["n_threads"] == 2
    assert d["device_name"] and d["device_memory_bytes"] == 0
    assert 0 < d["weight_bytes"] <= d["checkpoint_bytes"]
    assert (d["tp_rank"], d["tp_size"], d["tp_group"], d["tp_groups"]) == (0, 1, 0, 1)
    assert d["fused_ops"] >= 7 and d["fused_ops_native"] == 0  # the CPU composes every fused op
    assert d["n_patches"] == (d["clip_image_size"] // d["clip_patch_size"]) ** 2
    n = model.count_tokens("Segment the cat.")
    assert n > 0 and model.count_tokens("Segment the cat.", add_bos=True) == n + 1
    assert model.count_tokens(b"Segment the cat.") == n
    L0 = model.prompt_tokens(QUERY)
    r = model.segment(CAT, QUERY, max_new_tokens=4)
    assert L0 == r.timings["n_prompt_tokens"] > d["n_patches"]
    with pytest.raises(lisa.Error) as e:
        model.prompt_tokens("see <image>")
    assert e.value.status == "LISA_ERR_INVALID_ARG"


def test_segment_path(model):
    r = model.segment(CAT, QUERY)
    assert r.answer == "Sure, [SEG] ."
    assert model.seg_token_id in r.tokens and r.tokens[-1] == 2  # [SEG] and </s>
    assert r.text_output.endswith("ASSISTANT: Sure, [SEG] .</s>")
    assert len(r.masks) == 1
    m = r.masks[0]
    assert (m.height, m.width) == (30, 45) and len(m.data) == 30 * 45
    assert set(m.data) <= {0, 1} and sum(m.data) > 0
    assert isinstance(m.score, float)
    assert r.timings["total_ms"] > 0 and r.timings["n_generated"] == len(r.tokens)
    # the JSON form: COCO RLE that decodes to the mask, its area and bbox
    j = r.json
    assert j["answer"] == r.answer and j["n_tokens"] == len(r.tokens) and j["tokens"] == r.tokens
    jm = j["masks"][0]
    assert jm["rle"]["size"] == [30, 45]
    assert rle_decode(jm["rle"]["counts"], 30, 45) == m.data
    assert jm["area"] == sum(m.data)
    ys = [i // 45 for i, v in enumerate(m.data) if v]
    xs = [i % 45 for i, v in enumerate(m.data) if v]
    assert jm["bbox"] == [min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1]
    assert "png" not in jm


def test_bytes_rgb_and_png_option(model):
    by_path = model.segment(CAT, QUERY)
    with open(CAT, "rb") as f:
        by_bytes = model.segment(f.read(), QUERY, png=True)
    assert by_bytes.masks == by_path.masks and by_bytes.tokens == by_path.tokens
    png = base64.b64decode(by_bytes.json["masks"][0]["png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # raw RGB and the same pixels as a PNG give the same result
    h, w = 23, 37
    rgb = bytes((x * 7 + y * 3 + c * 50) % 256 for y in range(h) for x in range(w) for c in range(3))
    a = model.segment(rgb, QUERY, height=h, width=w, max_new_tokens=8)
    b = model.segment(png_rgb(rgb, h, w), QUERY, max_new_tokens=8)
    assert a.answer == b.answer and a.masks == b.masks
    assert a.masks and (a.masks[0].height, a.masks[0].width) == (h, w)


def test_errors(model):
    with pytest.raises(lisa.Error) as e:
        model.segment(CAT, "   ")
    assert e.value.status == "LISA_ERR_INVALID_ARG" and "empty" in str(e.value)
    with pytest.raises(lisa.Error) as e:
        model.segment(CAT, "x" * 5000)
    assert e.value.status == "LISA_ERR_LIMIT"
    with pytest.raises(lisa.Error) as e:
        model.segment(os.path.join(DATA, "images", "no-such.png"), QUERY)
    assert e.value.status == "LISA_ERR_IO"
    with pytest.raises(lisa.Error) as e:
        model.segment(b"certainly not an image", QUERY)
    assert e.value.status == "LISA_ERR_FORMAT"
    with pytest.raises(ValueError):
        model.segment(b"\0" * 10, QUERY, height=2, width=2)
    with pytest.raises(lisa.Error) as e:
        lisa.Model(os.path.join(DATA, "no-such-model"))
    assert e.value.status in ("LISA_ERR_IO", "LISA_ERR_NOT_FOUND")


def test_engine_batches(model):
    single = model.segment(CAT, QUERY)
    with open(CAT, "rb") as f:
        png = f.read()
    with lisa.Engine(model, max_batch=4) as eng:
        ids = [eng.submit(png, QUERY, user_data=10 + i) for i in range(3)]
        ids.append(eng.submit(CAT, QUERY, user_data=13))
        bad = eng.submit(b"not an image", QUERY)
        with pytest.raises(lisa.Error) as e:
            eng.wait(ids[0], timeout=0.001)  # far less than one request takes
        assert e.value.status == "LISA_ERR_BUSY"
        results = [eng.wait(i) for i in ids]
        with pytest.raises(lisa.Error) as e:
            eng.wait(bad)
        assert e.value.status == "LISA_ERR_FORMAT"
        assert eng.poll() is None
        stats = eng.stats()
    for k, r in enumerate(results):
        assert r.id == ids[k] and r.user_data == 10 + k
        assert r.answer == single.answer and r.masks == single.masks  # bit-identical in a batch
    assert stats["completed"] == 4 and stats["failed"] == 1
    assert stats["decode_steps"] == sum(stats["decode_batch_hist"]) > 0


def test_image_many_queries(model):
    queries = [QUERY, "Segment the cat.", "Where is the cat's tail? Please output segmentation mask."]
    single = [model.segment(CAT, q) for q in queries]  # one private engine each: nothing reused
    img = lisa.Image(CAT)
    assert (img.height, img.width) == (single[0].masks[0].height, single[0].masks[0].width)
    with lisa.Engine(model, max_batch=2) as eng:
        ids = [eng.submit(img, q, user_data=k) for k, q in enumerate(queries)]
        img.close()  # the requests hold their own references
        results = [eng.wait(i) for i in ids]
        with open(CAT, "rb") as f:
            again = eng.wait(eng.submit(f.read(), queries[0]))  # the same pixels as bytes: a hit too
        stats = eng.stats()
    for r, s in zip(results + [again], single + single[:1]):
        assert r.tokens == s.tokens and r.masks == s.masks  # bitwise, with or without reuse
    assert stats["image_cache_misses"] == 1 and stats["image_cache_hits"] == 3
    assert stats["kv_prefix_hits"] == 3
    with lisa.Engine(model, max_batch=2, image_cache_bytes=0) as eng:
        with lisa.Image(CAT) as img2:
            r = eng.wait(eng.submit(img2, queries[1]))
        assert r.masks == single[1].masks and eng.stats()["image_cache_hits"] == 0
    with pytest.raises(lisa.Error) as e:
        lisa.Image(b"not an image")
    assert e.value.status == "LISA_ERR_FORMAT"
    # Model.segment on an Image: the model's kept engine caches it between calls
    with lisa.Image(CAT) as img3:
        assert model.segment(img3, queries[2]).masks == single[2].masks


def test_close_order():
    m = lisa.Model(os.path.join(DATA, "tiny-lisa"), vision_tower=os.path.join(DATA, "tiny-clip"), backend="cpu")
    eng = lisa.Engine(m, max_batch=1)
    m.close()  # closes the engine first: no use after free
    with pytest.raises(ValueError):
        lisa.Engine(m)
    eng.close()  # a second close is a no-op
