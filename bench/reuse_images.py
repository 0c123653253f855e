#!/usr/bin/env python3
"""bench/reuse_images.py — distinct test pictures for the reuse benchmark (bench/reuse_bench.sh):
flips and crops of the bundled photos, so that 12 queries can go to 12 different images of the
same kind. Pure Python (zlib): reads 8-bit RGB non-interlaced PNGs, writes 8-bit RGB PNGs.

    python3 bench/reuse_images.py OUT_DIR N   # writes OUT_DIR/v00.png .. v{N-1}.png, prints their names
"""
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [os.path.join(HERE, "..", "tests", "data", "images", n) for n in ("chelsea.png", "coffee.png")]


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype == 2 and interlace == 0, f"{path}: only 8-bit RGB non-interlaced"
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * 3
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b, c = prev[x], prev[x - 3] if x >= 3 else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def write_png(path, w, h, rows):
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    raw = b"".join(b"\0" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def variant(w, h, rows, k):
    """k % 4: identity, mirror, upside down, both; k // 4: crop 0 / 6 / 12 % of each side"""
    m = (k // 4) * 6 * min(w, h) // 100
    rows = [r[3 * m:3 * (w - m)] for r in rows[m:h - m]]
    w, h = w - 2 * m, h - 2 * m
    if k % 4 in (1, 3):
        rows = [b"".join(r[3 * x:3 * x + 3] for x in range(w - 1, -1, -1)) for r in rows]
    if k % 4 in (2, 3):
        rows = rows[::-1]
    return w, h, rows


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    srcs = [read_png(p) for p in SOURCES]
    for i in range(n):
        w, h, rows = variant(*srcs[i % len(srcs)], i // len(srcs))
        name = os.path.join(out, f"v{i:02d}.png")
        write_png(name, w, h, rows)
        print(name)


if __name__ == "__main__":
    main()
