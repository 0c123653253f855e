"""The ctypes mirrors of python/lisa against the C header (issue 18: _ModelParams once lacked
tensor_parallel and worked only because the field fell into padding). For every struct the binding
mirrors (lisa._STRUCTS): its field names, in order, are the ones include/lisa.h declares, and its
size and every field's offset and size are what the C compiler gives (tests/abi/abi_layout.c,
built by CMake and passed as $LISA_ABI_LAYOUT)."""

import ctypes
import os
import re
import subprocess

import pytest

import lisa

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "..", "include", "lisa.h")


def header_structs():
    """{struct name: [field names in order]} from the typedef'd structs of lisa.h"""
    with open(HEADER) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out = {}
    for name, body in re.findall(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*\1\s*;", text, flags=re.S):
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            parts = decl.split(",")
            # the first declarator ends the type: its name is the last identifier before any [..]
            first = re.sub(r"\[[^\]]*\]", "", parts[0]).strip()
            fields.append(re.findall(r"\w+", first)[-1])
            for p in parts[1:]:
                fields.append(re.findall(r"\w+", re.sub(r"\[[^\]]*\]", "", p))[0])
        out[name] = fields
    return out


def c_layout():
    exe = os.environ.get("LISA_ABI_LAYOUT")
    if not exe:
        pytest.skip("LISA_ABI_LAYOUT (the abi_layout program of the build) is not set; CTest sets it")
    structs, fields = {}, {}
    for line in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.splitlines():
        w = line.split()
        if w[0] == "struct":
            structs[w[1]] = int(w[2])
            fields[w[1]] = []
        elif w[0] == "field":
            fields[w[1]].append((w[2], int(w[3]), int(w[4])))
    return structs, fields


def test_header_parse_sees_the_structs():
    hs = header_structs()
    assert hs["lisa_model_params"][-1] == "tensor_parallel"
    assert hs["lisa_timings"][:2] == ["preprocess_ms", "clip_ms"]
    assert "decode_batch_hist" in hs["lisa_engine_stats"]


@pytest.mark.parametrize("name", sorted(lisa._STRUCTS))
def test_struct_matches_c(name):
    hs = header_structs()
    sizes, fields = c_layout()
    py = lisa._STRUCTS[name]
    assert name in hs, f"{name} is not a struct of lisa.h"
    assert name in sizes, f"{name}: add it to tests/abi/abi_layout.c"
    py_names = [f[0] for f in py._fields_]
    assert py_names == hs[name], f"{name}: the binding has fields {py_names}, lisa.h {hs[name]}"
    assert [f[0] for f in fields[name]] == hs[name], f"{name}: tests/abi/abi_layout.c lists other fields than lisa.h"
    assert ctypes.sizeof(py) == sizes[name], f"{name}: ctypes size {ctypes.sizeof(py)}, C {sizes[name]}"
    for field, off, size in fields[name]:
        d = getattr(py, field)
        assert (d.offset, d.size) == (off, size), f"{name}.{field}: ctypes offset/size {d.offset}/{d.size}, C {off}/{size}"
