#!/usr/bin/env python3
"""Structure check: every include and every call runs down the floors, and nothing forms a circle.

    python3 tools/check_layers.py [BUILD_DIR]     (default build/; needs compile_commands.json)

The floors (docs/architecture.md), lowest first; a file may include and call only its own folder,
the floors below it, and the public header include/lisa.h (server/ and tools/ include less: see
ALLOWED_INCLUDE_FLOORS):

    1 core/      2 kernels/, loader/ (side by side: neither uses the other)
    3 models/    4 runtime/    5 jobs/    6 server/    7 tools/

Two views are checked:
  - includes: every `#include "..."` of every source and header in those folders, read from the
    text (a header that is never compiled is checked too);
  - calls: every global symbol an object file uses (`nm --undefined-only`) is looked up among the
    symbols the library's objects define (`nm --defined-only`), giving a file -> file call graph
    over the objects of the build (compile_commands.json names them). A call up a floor, or across
    the two folders of floor 2, is an error; so is any circle of calls between files (a strongly
    connected component of more than one file), even inside one folder.
Exit status 0 when clean, 1 with one line per violation otherwise.
"""
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> (floor, group). Folders of one floor but different groups may not use each other.
FLOORS = {
    "core": (1, "core"),
    "kernels": (2, "kernels"),
    "loader": (2, "loader"),
    "models": (3, "models"),
    "runtime": (4, "runtime"),
    "jobs": (5, "jobs"),
    "server": (6, "server"),
    "tools": (7, "tools"),
}
# What the top floors may include beyond their own folder and include/lisa.h (their includes are
# checked against this list, not against the floors below them): server/ is a program on the
# library's public header alone; tools/ also starts the server (server/server.h) and drives the
# long runs through the headers of jobs/, the floor right below, which are the library's entry
# points for them (annotate, eval, bench, sam, inspect, convert, tokenize, make-tiny). Nothing in
# server/ or tools/ includes core/, kernels/, loader/, models/ or runtime/ directly. (Calls are
# still checked by floor: the jobs' functions call down as they must.)
ALLOWED_INCLUDE_FLOORS = {"server": {"server"}, "tools": {"tools", "server", "jobs"}}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(rel):
    top = rel.split("/", 1)[0]
    return top if top in FLOORS else None


def may_use(src_folder, dst_folder, kind):
    """True when a file in src_folder may include (kind='include') or call (kind='call') dst_folder."""
    if dst_folder is None or src_folder == dst_folder:
        return True
    if kind == "include" and src_folder in ALLOWED_INCLUDE_FLOORS:
        return dst_folder in ALLOWED_INCLUDE_FLOORS[src_folder]
    sf, sg = FLOORS[src_folder]
    df, dg = FLOORS[dst_folder]
    return df < sf


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def resolve_include(rel_src, inc):
    """Repository-relative path of a quoted include, or None (system/third-party/generated)."""
    if inc == "lisa.h":
        return "include/lisa.h"
    here = os.path.join(os.path.dirname(rel_src), inc)
    if os.path.exists(os.path.join(ROOT, here)):
        return os.path.normpath(here)
    if os.path.exists(os.path.join(ROOT, inc)):
        return os.path.normpath(inc)
    return None


def check_includes(errors):
    graph = defaultdict(set)
    for folder in FLOORS:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(names):
                if not name.endswith((".c", ".h", ".cu", ".cuh", ".def")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
                    text = strip_comments(f.read())
                for inc in INCLUDE_RE.findall(text):
                    dst = resolve_include(rel, inc)
                    if dst is None:
                        continue
                    graph[rel].add(dst)
                    if dst == "include/lisa.h":
                        continue
                    if not may_use(folder, folder_of(dst), "include"):
                        errors.append(f"include up or across the floors: {rel} includes \"{inc}\" ({dst})")
    # circles of headers including each other
    headers = {k: {d for d in v if d.endswith((".h", ".cuh"))} for k, v in graph.items() if k.endswith((".h", ".cuh"))}
    for comp in sccs(headers):
        errors.append("include circle: " + " -> ".join(sorted(comp)))


def nm_symbols(obj, defined):
    args = ["nm", "-P", "--defined-only" if defined else "--undefined-only", obj]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if defined and kind not in "TDBRVWC" and kind not in "tdbr":
            continue
        if defined and kind.islower():  # file-local symbols are not calls between files
            continue
        syms.add(name)
    return syms


def check_calls(build, errors):
    cc_path = os.path.join(build, "compile_commands.json")
    with open(cc_path) as f:
        entries = json.load(f)
    objects = {}
    for e in entries:
        src = os.path.relpath(os.path.realpath(e["file"]), ROOT)
        folder = folder_of(src)
        if folder is None:
            continue
        out = e.get("output")
        if out is None:
            m = re.search(r"-o\s+(\S+)", e.get("command", ""))
            out = m.group(1) if m else None
        if out is None:
            continue
        obj = out if os.path.isabs(out) else os.path.join(e["directory"], out)
        if not os.path.exists(obj):
            errors.append(f"object missing (build first): {obj} for {src}")
            continue
        objects[src] = obj
    owner = {}
    for src, obj in objects.items():
        for s in nm_symbols(obj, True):
            owner.setdefault(s, src)
    graph = defaultdict(set)
    for src, obj in objects.items():
        for s in nm_symbols(obj, False):
            dst = owner.get(s)
            if dst is None or dst == src:
                continue
            graph[src].add(dst)
            if not may_use(folder_of(src), folder_of(dst), "call"):
                errors.append(f"call up or across the floors: {src} calls {s} ({dst})")
    for comp in sccs(graph):
        errors.append("call circle between files: " + " <-> ".join(sorted(comp)))
    return len(objects)


def sccs(graph):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    nodes = set(graph) | {d for v in graph.values() for d in v}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    errors = []
    check_includes(errors)
    n = check_calls(build, errors)
    for e in errors:
        print(e)
    if errors:
        print(f"check_layers: {len(errors)} violation(s)")
        return 1
    print(f"check_layers: includes and calls of {n} objects run down the floors, no circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
