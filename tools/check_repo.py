#!/usr/bin/env python3
"""Repository checks that a green build can hide (run by tools/check_structure.sh, so by CI).

    python3 tools/check_repo.py [BUILD_DIR]

1. symbols: every global symbol liblisa.a defines, and every symbol liblisa.so exports, starts
   with `lisa_` or `lk_` (a program that defines `g_add` or `check_param` must still link).
2. citations: every `<name>.md` a tracked file mentions exists in the repository, either as a path
   from the repository root or relative to the citing file (the repository stands on its own: no
   citation of team notes that are not in it).
3. layout: the README's "Layout" table lists exactly the top-level folders of the repository.
Exit status 0 when clean, 1 with one line per problem otherwise.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIXES = ("lisa_", "lk_")
# symbols the linker itself defines in every shared object
LINKER_SYMBOLS = {"_init", "_fini", "__bss_start", "_edata", "_end"}


def tracked_files():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def check_symbols(build, errors):
    static = os.path.join(build, "liblisa.a")
    shared = os.path.join(build, "liblisa.so")
    checked = 0
    for lib, args in ((static, ["nm", "-g", "--defined-only", "-P"]), (shared, ["nm", "-D", "--defined-only", "-P"])):
        if not os.path.exists(lib):
            errors.append(f"symbols: {lib} is missing (build first)")
            continue
        out = subprocess.run(args + [lib], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[0].endswith(":"):  # archive member headers
                continue
            name, kind = parts[0], parts[1]
            if kind in ("U", "w", "v") or kind.islower():
                continue
            checked += 1
            if name.startswith(PREFIXES) or name in LINKER_SYMBOLS:
                continue
            errors.append(f"symbols: {os.path.basename(lib)} defines global '{name}' (kind {kind}) without a "
                          f"lisa_/lk_ prefix")
    return checked


MD_RE = re.compile(r"(?<![\w./-])([\w./-]*[\w-]\.md)\b")


def check_citations(files, errors):
    tracked = set(files)
    n = 0
    for path in files:
        if path.startswith(("tests/data/", "third_party/")) and not path.endswith(("README.md",)):
            continue
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            continue
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary data
        for m in MD_RE.finditer(text):
            cited = m.group(1).lstrip("./")
            n += 1
            here = os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))
            if cited in tracked or here in tracked:
                continue
            start = max(text.rfind(c, 0, m.start()) for c in " \n\t(<\"'`")
            if "://" in text[start + 1:m.end()]:
                continue  # part of a URL
            line = text.count("\n", 0, m.start()) + 1
            errors.append(f"citations: {path}:{line} cites {m.group(1)}, which is not in the repository")
    return n


def check_layout(files, errors):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    m = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if not m:
        errors.append("layout: README.md has no '## Layout' section")
        return
    listed = set()
    for row in re.findall(r"^\|\s*`([^`]+)`", m.group(1), re.M):
        top = row.strip().strip("/").split("/")[0]
        listed.add(top)
    tops = {p.split("/")[0] for p in files if "/" in p and not p.startswith(".")}
    for t in sorted(tops - listed):
        errors.append(f"layout: top-level folder {t}/ is not in README's Layout table")
    for t in sorted(listed - tops):
        if t.endswith(".h") or os.path.isfile(os.path.join(ROOT, t)):
            continue
        errors.append(f"layout: README's Layout table lists {t}/, which is not in the repository")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    errors = []
    files = tracked_files()
    n_sym = check_symbols(build, errors)
    n_cit = check_citations(files, errors)
    check_layout(files, errors)
    for e in errors:
        print(e)
    if errors:
        print(f"check_repo: {len(errors)} problem(s)")
        return 1
    print(f"check_repo: {n_sym} global symbols prefixed, {n_cit} document citations resolve, README layout matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
