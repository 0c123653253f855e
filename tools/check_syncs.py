#!/usr/bin/env python3
"""tools/check_syncs.py — no host wait inside a model step on the CUDA backend (a ctest).

The CUDA backend enqueues every op on its stream and returns without waiting (kernels/cuda/
cuda_internal.h); a host wait inside an op stalls the GPU pipeline once per call: before this check
the KV-slot and embedding-id checks waited once per layer and per step (~33 waits per LLaMA
prefill step). This script reads kernels/cuda/*.c, *.cu, *.cuh and fails when a call that makes
the host wait for the device

    cudaStreamSynchronize  cudaDeviceSynchronize  cudaEventSynchronize  cudaStreamWaitEvent(no)
    cudaMemcpy(  cudaMemset(  cudaMemcpy2D(  cudaFree(  cudaMalloc(  cudaMallocHost(  cudaFreeHost(

(cudaMemcpy/cudaMemset without Async wait; cudaMalloc/cudaFree may synchronize the device) appears
outside the functions allowed to wait: lisa_cuda_wait (the one counted wait, kernels/cuda/
cuda_common.c) and the backend's lifetime and memory hooks (create, destroy, mem_alloc/free,
host_alloc/free, timer_reserve). lisa_cuda_wait itself may only be called by the three hooks whose
contract is to wait (upload, download, synchronize). Each violation is printed as file:line
function: call.

usage: python3 tools/check_syncs.py [REPO_ROOT]
"""
import os
import re
import sys

WAITS = re.compile(r"\b(cudaStreamSynchronize|cudaDeviceSynchronize|cudaEventSynchronize|cudaMemcpy|cudaMemset|"
                   r"cudaMemcpy2D|cudaFree|cudaMalloc|cudaMallocHost|cudaFreeHost)\s*\(")
# functions that may wait or allocate: the counted wait, lifetime, memory hooks
MAY_WAIT = {
    "lisa_cuda_wait",
    "lisa_backend_cuda_create",
    "cuda_destroy",
    "cuda_mem_alloc",
    "cuda_mem_free",
    "lisa_cuda_host_alloc",
    "lisa_cuda_host_free",
    "cuda_timer_reserve",
    "lisa_cuda_gemm_cache_create",
    "lisa_cuda_gemm_cache_destroy",
}
# the only callers of the counted wait: the hooks whose contract is to wait
MAY_CALL_WAIT = {"cuda_upload", "cuda_download", "cuda_synchronize"}
WAIT_CALL = re.compile(r"\blisa_cuda_wait\s*\(")


def strip(src):
    """Removes comments, string and character literals (keeps line breaks)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(src):
    """Yields (line number, enclosing top-level function or None, line text) for every line.
    extern "C" { } and namespace { } blocks are transparent (their functions are top level)."""
    stack, cand = [], None  # stack: one entry per open brace, the function name or "" (transparent)

    def top_level():
        return all(e == "" for e in stack)

    for no, line in enumerate(src.split("\n"), 1):
        cur = next((e for e in stack if e), None)
        if top_level() and not line.startswith("#"):
            for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", line):
                if m.group(1) not in ("if", "for", "while", "switch", "return", "sizeof", "defined"):
                    cand = m.group(1)
                    break
        for k, ch in enumerate(line):
            if ch == "{":
                if top_level():
                    before = line[:k]
                    if re.search(r"\b(extern|namespace)\b", before) and "(" not in before:
                        stack.append("")
                    else:
                        stack.append(cand or "?")
                        cur = stack[-1]
                else:
                    stack.append(stack[-1])
            elif ch == "}" and stack:
                stack.pop()
        yield no, cur, line


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    d = os.path.join(root, "kernels", "cuda")
    bad, n_waits = [], 0
    for name in sorted(os.listdir(d)):
        if not name.endswith((".c", ".cu", ".cuh")):
            continue
        path = os.path.join(d, name)
        with open(path, encoding="utf-8") as f:
            src = strip(f.read())
        for no, fn, line in functions(src):
            for m in WAITS.finditer(line):
                if fn not in MAY_WAIT:
                    bad.append(f"kernels/cuda/{name}:{no} {fn or '(file scope)'}: {m.group(1)} waits for the device")
            for m in WAIT_CALL.finditer(line):
                if fn == "lisa_cuda_wait":
                    continue  # its definition
                n_waits += 1
                if fn not in MAY_CALL_WAIT:
                    bad.append(f"kernels/cuda/{name}:{no} {fn or '(file scope)'}: calls lisa_cuda_wait (only "
                               f"{', '.join(sorted(MAY_CALL_WAIT))} may)")
    for b in bad:
        print(b)
    if bad:
        print(f"check_syncs: {len(bad)} host wait(s) outside the backend's wait hooks: ops must enqueue and return "
              f"(validate on the host before launch, or flag on the device and report at the next wait)")
        return 1
    print(f"check_syncs: the CUDA backend waits only in {', '.join(sorted(MAY_CALL_WAIT))} "
          f"({n_waits} call sites of lisa_cuda_wait) and its lifetime/memory hooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
