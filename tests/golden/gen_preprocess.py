#!/usr/bin/python3
"""Golden data for image decode and preprocessing (tests/test_image_*.c, tests/test_preprocess_*.c).

Run with Debian's Python, which has the reference stack (Pillow 9.4.0, torch 1.13.1,
torchvision 0.14.1, numpy 1.24, transformers 4.31.0) plus opencv-python-headless 4.8.0.74
(LISA's pinned OpenCV; `/usr/bin/python3 -m pip install --break-system-packages
opencv-python-headless==4.8.0.74`):

    /usr/bin/python3 tests/golden/gen_preprocess.py

It is deterministic and rewrites:
  tests/data/preprocess/resample_cases.txt   random Pillow resize cases (CRC32 + samples)
  tests/data/preprocess/photos.txt           decode / SAM / CLIP results for tests/data/images/*
  tests/data/images/exif/*                   JPEG/PNG with EXIF orientation 1..8 + OpenCV results
  tests/data/images/bad/*                    unusual and broken files + what OpenCV does with them

The C tests never need Python. Inputs of the random resize cases are regenerated in C from a
seed with splitmix64 (tests/common/testutil.c tu_rng_*), mirrored here by SplitMix.

Reference semantics reproduced here, exactly as LISA runs them:
  decode: cv2.imread(path) (IMREAD_COLOR) then cv2.cvtColor(BGR2RGB)          (LISA chat.py)
  SAM:    ResizeLongestSide(1024).apply_image -> torch CHW -> (x - mean) / std -> F.pad
          (model/segment_anything/utils/transforms.py, chat.py `preprocess`; code copied below)
  CLIP:   CLIPImageProcessor (openai/clip-vit-large-patch14 config = class defaults).preprocess
"""
import io
import os
import struct
import sys
import zlib

import cv2
import numpy as np
import PIL
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.transforms.functional import resize, to_pil_image
from transformers import CLIPImageProcessor

assert PIL.__version__ == "9.4.0", PIL.__version__
assert cv2.__version__ == "4.8.0", cv2.__version__
# Debian python3-torch 1.13.1+dfsg reports "1.13.0a0", torchvision 0.14.1 reports "0.14.1a0".
assert torch.__version__.startswith("1.13."), torch.__version__
assert torchvision.__version__.startswith("0.14.1"), torchvision.__version__
import transformers  # noqa: E402
assert transformers.__version__ == "4.31.0", transformers.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = os.path.join(ROOT, "tests", "data", "images")
OUT = os.path.join(ROOT, "tests", "data", "preprocess")
M64 = (1 << 64) - 1


class SplitMix:
    """tests/common/testutil.h tu_rng_seed / tu_next_u64."""

    def __init__(self, seed):
        self.s = (seed * 0x9E3779B97F4A7C15 + 1) & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n


def pattern_image(h, w, c, pattern, seed):
    """Mirrors tests/test_preprocess_resample.c make_input()."""
    if pattern == 2:  # smooth ramp with wrap-around edges
        y, x, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
        return ((x * 7 + y * 13 + ch * 50) & 255).astype(np.uint8)
    z = splitmix_stream(seed, h * w * c)
    if pattern == 0:  # uniform bytes
        v = (z >> np.uint64(56)).astype(np.uint8)
    else:  # 0 or 255 only: maximal bicubic overshoot, exercises the clip
        v = np.where((z >> np.uint64(63)) != 0, 255, 0).astype(np.uint8)
    return v.reshape(h, w, c)


def splitmix_stream(seed, n):
    """The first n outputs of SplitMix(seed), vectorized (state k = s0 + k * gamma mod 2^64)."""
    s0 = np.uint64((seed * 0x9E3779B97F4A7C15 + 1) & M64)
    with np.errstate(over="ignore"):
        z = s0 + np.uint64(0x9E3779B97F4A7C15) * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pil_resize(a, out_h, out_w, filt):
    mode = "RGB" if a.shape[2] == 3 else "L"
    im = Image.fromarray(a if mode == "RGB" else a[:, :, 0], mode)
    r = np.array(im.resize((out_w, out_h), filt))
    return r.reshape(out_h, out_w, a.shape[2])


def crc(b):
    return zlib.crc32(bytes(b)) & 0xFFFFFFFF


def samples(flat, n, seed):
    """n (index, value) pairs at deterministic positions, for readable failure messages."""
    r = SplitMix(seed ^ 0x5A5A)
    out = []
    for _ in range(min(n, len(flat))):
        i = r.below(len(flat))
        out.append((i, flat[i]))
    return out


# ---------------------------------------------------------------------------------------------
# 1. Random resize cases (bit-exact Pillow)
# ---------------------------------------------------------------------------------------------
def gen_resample_cases():
    rng = SplitMix(20240601)
    cases = []

    def side():
        k = rng.below(10)
        if k == 0:
            return 1
        if k <= 2:
            return 1 + rng.below(8)
        return 1 + rng.below(140)

    for i in range(360):
        filt = 2 if i % 2 == 0 else 3
        c = 3 if rng.below(4) else 1
        ih, iw, oh, ow = side(), side(), side(), side()
        kind = rng.below(8)
        if kind == 0:
            oh = ih  # width only (horizontal pass alone)
        elif kind == 1:
            ow = iw  # height only (vertical pass alone)
        elif kind == 2:
            oh, ow = ih, iw  # same size: copy
        pattern = rng.below(3)
        cases.append((filt, ih, iw, oh, ow, c, pattern, 1000 + i))
    # LISA-sized shapes (docs/parity.md §2.1) on synthetic data
    big = [
        (2, 480, 640, 768, 1024, 3, 0, 9001),   # SAM upscale 640x480
        (3, 480, 640, 224, 298, 3, 0, 9002),    # CLIP 640x480
        (3, 1365, 2048, 224, 336, 3, 2, 9003),  # CLIP big downscale
        (2, 1365, 2048, 683, 1024, 3, 1, 9004), # SAM downscale
        (2, 3000, 20, 1024, 7, 3, 0, 9005),     # elongated
        (3, 30, 45, 224, 336, 3, 0, 9006),      # strong upscale
        (2, 1, 1, 1024, 1024, 1, 0, 9007),      # 1x1 -> big
        (3, 200, 1, 1, 1, 3, 0, 9008),          # column -> pixel
    ]
    cases += big
    lines = [
        "# Pillow 9.4.0 Image.resize golden cases, generated by tests/golden/gen_preprocess.py.",
        "# filter(2=BILINEAR,3=BICUBIC) in_h in_w out_h out_w c pattern seed crc32(out) n_samples"
        " [index value]... full_hex(out or -)",
    ]
    for (filt, ih, iw, oh, ow, c, pattern, seed) in cases:
        a = pattern_image(ih, iw, c, pattern, seed)
        o = pil_resize(a, oh, ow, filt)
        flat = o.reshape(-1)
        s = samples(flat, 6, seed)
        full = o.tobytes().hex() if flat.size <= 96 else "-"
        lines.append(
            f"{filt} {ih} {iw} {oh} {ow} {c} {pattern} {seed} {crc(o.tobytes()):08x} {len(s)} "
            + " ".join(f"{i} {v}" for i, v in s)
            + f" {full}"
        )
    with open(os.path.join(OUT, "resample_cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"resample_cases.txt: {len(cases)} cases")


# ---------------------------------------------------------------------------------------------
# 2. Decode + SAM + CLIP on the sample photos
# ---------------------------------------------------------------------------------------------
class ResizeLongestSide:
    """LISA model/segment_anything/utils/transforms.py (apply_image path only)."""

    def __init__(self, target_length):
        self.target_length = target_length

    def apply_image(self, image):
        target_size = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(resize(to_pil_image(image), target_size))

    @staticmethod
    def get_preprocess_shape(oldh, oldw, long_side_length):
        scale = long_side_length * 1.0 / max(oldh, oldw)
        newh, neww = oldh * scale, oldw * scale
        neww = int(neww + 0.5)
        newh = int(newh + 0.5)
        return (newh, neww)


def sam_preprocess(x,
                   pixel_mean=torch.Tensor([123.675, 116.28, 103.53]).view(-1, 1, 1),
                   pixel_std=torch.Tensor([58.395, 57.12, 57.375]).view(-1, 1, 1),
                   img_size=1024):
    """LISA chat.py `preprocess`."""
    x = (x - pixel_mean) / pixel_std
    h, w = x.shape[-2:]
    padh = img_size - h
    padw = img_size - w
    x = F.pad(x, (0, padw, 0, padh))
    return x


def f32_samples(t, n, seed):
    flat = t.reshape(-1)
    r = SplitMix(seed)
    out = []
    for _ in range(n):
        i = r.below(flat.size)
        out.append((i, struct.unpack("<I", struct.pack("<f", float(flat[i])))[0]))
    return out


def gen_photos():
    names = ["chelsea.png", "coffee.png", "rocket.jpg", "rocket_portrait.jpg", "chelsea_tiny.png"]
    clip = CLIPImageProcessor()  # == openai/clip-vit-large-patch14 preprocessor_config.json
    lines = [
        "# Decode (cv2.imread + BGR2RGB), SAM (ResizeLongestSide(1024) + chat.py preprocess) and CLIP",
        "# (CLIPImageProcessor, transformers 4.31) results for tests/data/images, by gen_preprocess.py.",
        "# decode <file> <h> <w> <crc32 rgb u8> <n> [index value]...",
        "# sam <file> <h_r> <w_r> <crc32 resized u8> <crc32 f32 [3,1024,1024] LE> <n> [index f32bits_hex]...",
        "# clip <file> <rh> <rw> <crc32 resized u8> <crc32 cropped u8 224x224> <crc32 f32 [3,224,224] LE> <n>"
        " [index f32bits_hex]...",
    ]
    for name in names:
        path = os.path.join(IMAGES, name)
        bgr = cv2.imread(path)
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        h, w = rgb.shape[:2]
        s = samples(rgb.reshape(-1), 8, h * 7919 + w)
        lines.append(f"decode {name} {h} {w} {crc(rgb.tobytes()):08x} {len(s)} " + " ".join(f"{i} {v}" for i, v in s))

        # SAM: exactly chat.py's sequence.
        resized = ResizeLongestSide(1024).apply_image(rgb)
        hr, wr = resized.shape[:2]
        x = sam_preprocess(torch.from_numpy(resized).permute(2, 0, 1).contiguous()).unsqueeze(0)
        assert x.dtype == torch.float32 and tuple(x.shape) == (1, 3, 1024, 1024)
        xn = x[0].numpy()
        fs = f32_samples(xn, 8, hr * 31 + wr)
        lines.append(
            f"sam {name} {hr} {wr} {crc(resized.tobytes()):08x} {crc(xn.astype('<f4').tobytes()):08x} {len(fs)} "
            + " ".join(f"{i} {b:08x}" for i, b in fs)
        )

        # CLIP: the processor's own output, plus the intermediate u8 images for diagnosis.
        pix = clip.preprocess(rgb, return_tensors="pt")["pixel_values"][0].numpy()
        assert pix.dtype == np.float32 and pix.shape == (3, 224, 224)
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(224 * long / short)
        rh, rw = (new_long, 224) if w <= h else (224, new_long)
        r_u8 = pil_resize(rgb, rh, rw, Image.BICUBIC)
        top, left = (rh - 224) // 2, (rw - 224) // 2
        crop = np.ascontiguousarray(r_u8[top:top + 224, left:left + 224])
        check = ((crop * (1 / 255)).astype(np.float32) - np.array(clip.image_mean, np.float32)) / np.array(
            clip.image_std, np.float32)
        assert np.array_equal(check.transpose(2, 0, 1), pix), "CLIP intermediate model disagrees with transformers"
        fs = f32_samples(pix, 8, rh * 31 + rw)
        lines.append(
            f"clip {name} {rh} {rw} {crc(r_u8.tobytes()):08x} {crc(crop.tobytes()):08x} "
            f"{crc(pix.astype('<f4').tobytes()):08x} {len(fs)} " + " ".join(f"{i} {b:08x}" for i, b in fs)
        )
    with open(os.path.join(OUT, "photos.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("photos.txt written")


# ---------------------------------------------------------------------------------------------
# 3. EXIF orientation and the bad / unusual input corpus
# ---------------------------------------------------------------------------------------------
def png_chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def png_chunks(d):
    i, out = 8, []
    while i < len(d):
        n = struct.unpack(">I", d[i:i + 4])[0]
        out.append((d[i + 4:i + 8], d[i:i + 12 + n]))
        i += 12 + n
    return out


def tiff_ifd(entries, big_endian=False):
    """A TIFF block whose IFD0 holds raw (tag, type, count, 4-byte value) entries, in this order."""
    e = ">" if big_endian else "<"
    hdr = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    ifd = struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack(e + "HHI", tag, typ, count) + value
    return hdr + ifd + struct.pack(e + "I", 0)


def tiff_orientation(o, big_endian):
    """A minimal TIFF/EXIF IFD0 with one Orientation (0x0112, SHORT) entry."""
    e = ">" if big_endian else "<"
    hdr = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "HH", o, 0)
    return hdr + ifd + struct.pack(e + "I", 0)


def test_pattern(h, w, seed):
    """Asymmetric, JPEG-friendly content: a smooth gradient plus a bright corner block."""
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    a = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + 2 * y) * 5 + seed) % 256], -1)
    a = a.astype(np.uint8)
    a[: h // 3, : w // 4] = (250, 30, 30)
    return a


def jpeg_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


def cv2_decode(path):
    try:
        bgr = cv2.imread(path)
    except cv2.error:  # e.g. validateInputImageSize: more than CV_IO_MAX_IMAGE_PIXELS (2^30)
        return None
    if bgr is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def manifest_line(name, path, expect_error=None):
    """ok <h> <w> <crc> <hex|-> when OpenCV decodes it, else the status our decoder must return."""
    rgb = cv2_decode(path)
    if rgb is None:
        assert expect_error, f"{name}: OpenCV refuses it but no error was expected"
        return f"{name} error {expect_error} cv2=None"
    h, w = rgb.shape[:2]
    hexs = rgb.tobytes().hex() if rgb.size <= 2048 else "-"
    if expect_error:  # we refuse what OpenCV accepts (documented): record OpenCV's result anyway
        return f"{name} error {expect_error} cv2={h}x{w}:{crc(rgb.tobytes()):08x}"
    return f"{name} ok {h} {w} {crc(rgb.tobytes()):08x} {hexs}"


def gen_exif():
    d = os.path.join(IMAGES, "exif")
    os.makedirs(d, exist_ok=True)
    base = Image.fromarray(test_pattern(16, 24, 0))  # 24 wide, 16 high
    lines = ["# EXIF orientation files and OpenCV 4.8 imread(+BGR2RGB) results, by gen_preprocess.py.",
             "# <file> ok <h> <w> <crc32> <rgb hex>"]
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        name = f"orient_{o}.jpg"
        write(os.path.join(d, name), jpeg_bytes(base, quality=90, exif=ex.tobytes()))
        lines.append(manifest_line(name, os.path.join(d, name)))
    # Big-endian ("MM") EXIF block, hand-built.
    for o in (6, 7):
        name = f"orient_{o}_mm.jpg"
        j = jpeg_bytes(base, quality=90, exif=b"Exif\x00\x00" + tiff_orientation(o, True))
        write(os.path.join(d, name), j)
        lines.append(manifest_line(name, os.path.join(d, name)))
    # OpenCV parses only the FIRST APP1 marker: an XMP APP1 before the EXIF one hides the tag.
    ex = Image.Exif()
    ex[0x0112] = 6
    j = jpeg_bytes(base, quality=90, exif=ex.tobytes())
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    j = j[:2] + b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp + j[2:]
    write(os.path.join(d, "orient_6_xmp_first.jpg"), j)
    lines.append(manifest_line("orient_6_xmp_first.jpg", os.path.join(d, "orient_6_xmp_first.jpg")))
    # Out-of-range orientation value: ignored.
    j = jpeg_bytes(base, quality=90, exif=b"Exif\x00\x00" + tiff_orientation(9, False))
    write(os.path.join(d, "orient_9.jpg"), j)
    lines.append(manifest_line("orient_9.jpg", os.path.join(d, "orient_9.jpg")))
    # ExifReader quirks: the first of two Orientation entries wins; an entry whose data lies
    # outside the block aborts the parse, keeping the entries before it.
    sh = lambda v: struct.pack("<HH", v, 0)  # noqa: E731  SHORT value, left-justified
    quirks = {
        "orient_dup.jpg": [(0x0112, 3, 1, sh(6)), (0x0112, 3, 1, sh(3))],
        "orient_bad_make_first.jpg": [(0x010F, 2, 100, struct.pack("<I", 5000)), (0x0112, 3, 1, sh(6))],
        "orient_bad_make_after.jpg": [(0x0112, 3, 1, sh(8)), (0x010F, 2, 100, struct.pack("<I", 5000))],
    }
    for name, entries in quirks.items():
        write(os.path.join(d, name), jpeg_bytes(base, quality=90, exif=b"Exif\x00\x00" + tiff_ifd(entries)))
        lines.append(manifest_line(name, os.path.join(d, name)))
    # PNG eXIf chunk (OpenCV 4.8 applies it too), before and after IDAT.
    ex = Image.Exif()
    ex[0x0112] = 6
    p = png_bytes(base, exif=ex.tobytes())
    write(os.path.join(d, "orient_6.png"), p)
    lines.append(manifest_line("orient_6.png", os.path.join(d, "orient_6.png")))
    chunks = png_chunks(png_bytes(base))
    late = p[:8] + b"".join(c for t, c in chunks if t != b"IEND") + png_chunk(b"eXIf", tiff_orientation(8, False)) \
        + png_chunk(b"IEND", b"")
    write(os.path.join(d, "orient_8_late.png"), late)
    lines.append(manifest_line("orient_8_late.png", os.path.join(d, "orient_8_late.png")))
    with open(os.path.join(d, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("exif/ written")


def gen_bad():
    d = os.path.join(IMAGES, "bad")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    lines = ["# Unusual and broken inputs, by gen_preprocess.py. OpenCV 4.8 imread(+BGR2RGB) result, or the",
             "# lisa_status our decoder returns (cv2=None: OpenCV refuses it too; cv2=HxW:crc: OpenCV decodes it).",
             "# <file> ok <h> <w> <crc32> <rgb hex|->   |   <file> error <STATUS> cv2=..."]
    pat = test_pattern(7, 13, 3)

    def add(name, data, expect_error=None):
        write(os.path.join(d, name), data)
        lines.append(manifest_line(name, os.path.join(d, name), expect_error))

    # Valid but unusual PNGs: converted exactly as OpenCV does.
    gray = pat[:, :, 0]
    add("gray.png", png_bytes(Image.fromarray(gray, "L")))
    add("gray16.png", cv2.imencode(".png", (rng.integers(0, 65536, size=(7, 13)).astype(np.uint16)))[1].tobytes())
    add("rgb16.png", cv2.imencode(".png", (rng.integers(0, 65536, size=(7, 13, 3)).astype(np.uint16)))[1].tobytes())
    add("gray4.png", png_raw(gray >> 4, bit_depth=4, color_type=0))
    add("gray1.png", png_bytes(Image.fromarray(gray > 100)))
    la = Image.fromarray(np.stack([gray, 255 - gray], -1), "LA")
    add("gray_alpha.png", png_bytes(la))
    pal = Image.fromarray(pat).convert("P", palette=Image.ADAPTIVE, colors=12)
    add("palette.png", png_bytes(pal))
    add("palette_trns.png", png_bytes(pal, transparency=2))
    add("palette_2bit.png", png_bytes(Image.fromarray(pat).convert("P", palette=Image.ADAPTIVE, colors=4), bits=2))
    rgba = np.concatenate([pat, rng.integers(0, 256, size=(7, 13, 1), dtype=np.uint8)], -1)
    add("rgba.png", png_bytes(Image.fromarray(rgba, "RGBA")))
    add("rgba16.png", cv2.imencode(".png", rng.integers(0, 65536, size=(7, 13, 4)).astype(np.uint16))[1].tobytes())
    add("rgb_trns.png", png_bytes(Image.fromarray(pat), transparency=(250, 30, 30)))
    add("interlaced.png", png_interlaced(pat))
    # gAMA chunk: OpenCV does no gamma correction.
    p = png_bytes(Image.fromarray(pat))
    ch = png_chunks(p)
    p2 = p[:8] + ch[0][1] + png_chunk(b"gAMA", struct.pack(">I", 50000)) + b"".join(c for _, c in ch[1:])
    add("gamma.png", p2)

    # Unusual JPEGs.
    add("gray.jpg", jpeg_bytes(Image.fromarray(gray, "L"), quality=90))
    add("cmyk.jpg", jpeg_bytes(Image.fromarray(pat).convert("CMYK"), quality=95))
    big = Image.fromarray(test_pattern(40, 56, 5))
    add("progressive.jpg", jpeg_bytes(big, quality=85, progressive=True))
    add("yuv422.jpg", jpeg_bytes(big, quality=85, subsampling=1))  # h2v1 fancy upsampling
    add("yuv444.jpg", jpeg_bytes(big, quality=85, subsampling=0))
    add("pixel.jpg", jpeg_bytes(Image.fromarray(pat[:1, :1]), quality=90))
    add("pixel.png", png_bytes(Image.fromarray(pat[:1, :1])))
    add("row.png", png_bytes(Image.fromarray(pat[:1])))

    # Broken files.
    add("empty.png", b"", "LISA_ERR_FORMAT")
    add("random.bin", rng.integers(0, 256, size=300, dtype=np.uint8).tobytes(), "LISA_ERR_FORMAT")
    add("text.png", b"this is not a PNG file, just text with a .png name\n", "LISA_ERR_FORMAT")
    photo_png = png_bytes(Image.fromarray(test_pattern(40, 56, 9)))
    add("truncated.png", photo_png[: len(photo_png) * 2 // 3], "LISA_ERR_FORMAT")
    add("no_iend.png", photo_png[:-12], "LISA_ERR_FORMAT")
    bad_crc = bytearray(photo_png)
    ich = [(t, c) for t, c in png_chunks(photo_png)]
    off = 8 + len(ich[0][1])  # first byte after IHDR: corrupt a byte of the next chunk's data
    bad_crc[off + 8 + 3] ^= 0xFF
    add("bad_crc.png", bytes(bad_crc), "LISA_ERR_FORMAT")
    pj = jpeg_bytes(big, quality=85)
    # libjpeg pads a truncated JPEG with gray and only warns; OpenCV returns that image. We refuse
    # it by default (lisa_image_limits.allow_truncated_jpeg = false) and match OpenCV when allowed.
    add("truncated.jpg", pj[: len(pj) * 2 // 3], "LISA_ERR_FORMAT")
    tr = cv2_decode(os.path.join(d, "truncated.jpg"))
    lines.append(f"truncated.jpg allow_truncated {tr.shape[0]} {tr.shape[1]} {crc(tr.tobytes()):08x} -")
    add("header_only.jpg", pj[:200], "LISA_ERR_FORMAT")
    # Decompression bombs: tiny files whose headers claim huge images.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) \
        + png_chunk(b"IEND", b"")
    add("bomb.png", bomb, "LISA_ERR_LIMIT")
    sj = bytearray(jpeg_bytes(Image.fromarray(test_pattern(8, 8, 1)), quality=80))
    i = sj.find(b"\xff\xc0")
    struct.pack_into(">HH", sj, i + 5, 60000, 60000)  # SOF0: P, Y, X follow the length
    add("bomb.jpg", bytes(sj), "LISA_ERR_LIMIT")
    with open(os.path.join(d, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("bad/ written")


def png_raw(a, bit_depth, color_type):
    """A non-interlaced PNG of samples `a` ([h, w] or [h, w, c]) packed at bit_depth (<= 8)."""
    h, w = a.shape[:2]
    rows = b""
    for row in a.reshape(h, -1):
        bits = "".join(format(int(v), f"0{bit_depth}b") for v in row)
        bits += "0" * (-len(bits) % 8)
        rows += b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows)) \
        + png_chunk(b"IEND", b"")


def png_interlaced(rgb):
    """Adam7-interlaced 8-bit RGB PNG (Pillow cannot write interlaced PNGs)."""
    h, w = rgb.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) \
        + png_chunk(b"IEND", b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_resample_cases()
    gen_photos()
    gen_exif()
    gen_bad()


if __name__ == "__main__":
    sys.exit(main())
