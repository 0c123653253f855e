#!/usr/bin/env python3
"""bench/gpu/merge_results.py — merges lisa-check, bench_gpu_kernels, bench_gpu_models and torch_peer
output into the suite's results JSON (committed as bench/results/<date>-<card>.json) and prints one table.
Standard library only (runs under any python3)."""
import argparse, csv, datetime, json, os, re

# (key, label, unit, target as (op, value) or None) — the keys bench/results/*.json must carry
HEADLINE = [
    ("sam_vit_h_b8_img_per_s", "SAM ViT-H encoder, batch 8", "img/s", (">=", 105)),
    ("attn_sam_window_tflops", "attention SAM windows b8 + rel-pos", "TFLOP/s", (">=", 300)),
    ("attn_sam_global_tflops", "attention SAM global b8 + rel-pos", "TFLOP/s", (">=", 450)),
    ("llama7b_prefill_8x330_ms", "LLaMA-7B prefill 8 x 330", "ms", ("<=", 55)),
    ("llama7b_decode_b1_ms", "LLaMA-7B decode, batch 1", "ms/step", ("<=", 3.6)),
    ("sam_mask_decoder_ms", "SAM mask decoder, 8 masks", "ms", ("<=", 0.5)),
    ("lisa7b_latency_ms", "LISA-7B one request, latency", "ms", ("<=", 60)),
    ("lisa7b_samples_per_s", "LISA-7B end to end, batched", "samples/s", (">=", 55)),
    ("lisa7b_samples_per_s_q4", "LISA-7B end to end, 4 queries/image", "samples/s", None),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--card", default="unknown")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--check", default="")
    ap.add_argument("--check-rc", type=int, default=0)
    ap.add_argument("--smoke", default="")
    # a benchmark resumed after a lost CUDA context writes a second file: both are merged, in order
    ap.add_argument("--kernels", action="append", default=[])
    ap.add_argument("--models", action="append", default=[])
    ap.add_argument("--peer", default="")
    ap.add_argument("--gpu-csv", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--steps", default="")
    ap.add_argument("--rerun", default="")
    a = ap.parse_args()
    check, peer, smoke = load(a.check), load(a.peer), load(a.smoke)
    ours = {}
    for path in a.kernels + a.models:  # model-level keys (sam_vit_h_*, llama7b_*, lisa7b_*) come from bench_gpu_models
        for k, v in load(path).items():
            if v is not None or k not in ours:
                ours[k] = v
    gpu = {}
    try:
        with open(a.gpu_csv) as f:
            rows = list(csv.reader(f))
        if len(rows) >= 2:
            gpu = {k.strip(): v.strip() for k, v in zip(rows[0], rows[1])}
    except OSError:
        pass

    r = {"card": a.card, "date": datetime.date.today().isoformat(), "commit": a.commit}
    if check.get("no_device"):
        r["check_failures"] = None
        r["check_note"] = "lisa-check found no CUDA device"
    elif "check_failures" in check:
        r["check_failures"] = check["check_failures"]
        r["check_skipped"] = check.get("check_skipped")
        r["check_passed"] = check.get("check_passed")
        if check.get("complete") is False:
            r["check_note"] = (f"lisa-check stopped before the end (exit {a.check_rc}; 124 = timeout): "
                               f"failures counted among the {len(check.get('results', []))} results it wrote")
    else:
        r["check_failures"] = None  # lisa-check did not finish
        r["check_note"] = f"lisa-check exited {a.check_rc} without writing its JSON (124 = timeout)"
    if smoke:
        r["smoke_failures"] = smoke.get("check_failures")
    for key, *_ in HEADLINE:
        r[key] = ours.get(key)
        r[key + "_torch"] = peer.get(key + "_torch")
    # every other measurement, engine and peer, under its own name
    for k, v in sorted(ours.items()):
        if k not in r:
            r[k] = v
    for k, v in sorted(peer.items()):
        if k not in r and k not in ("card",):
            r[k if k.endswith("_torch") or "torch" in k else k + "_torch"] = v
    r["notes"] = ("attention keys time the fused kernels at batch 8; model keys (sam_vit_h_*, sam_mask_decoder_* "
                  "(8 masks on one image; _n1_: one), llama7b_*, lisa7b_*) come from bench_gpu_models on a synthetic "
                  "LISA-7B (real dims, weights drawn on the GPU, BF16), the LISA-7B requests answering 10 tokens with "
                  "one [SEG]; lisa7b_latency_ms is one request alone through the engine (submit to result); optable_* "
                  "are per-op time tables (CUDA events around every op, top 15); memory-bound rows are against the "
                  "measured copy_gbps; _torch keys come from torch_peer.py in the same run (null where it has no "
                  "such number)")
    r["gpu"] = gpu
    r["suite_seconds"] = a.elapsed
    r["suite_steps"] = a.steps
    r["rerun_command"] = a.rerun or None
    slug = re.sub(r"[^a-z0-9]+", "-", a.card.lower()).strip("-") or "unknown"
    r["results_file"] = f"bench/results/{r['date']}-{slug}.json"
    with open(a.out, "w") as f:
        json.dump(r, f, indent=1, sort_keys=False)
        f.write("\n")

    def fmt(v):
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    print(f"\nLISA GPU suite — {a.card} — commit {a.commit[:12]} — {r['date']} — {a.elapsed} s")
    print(f"lisa-check: failures {fmt(r.get('check_failures'))}, skipped {fmt(r.get('check_skipped'))}, "
          f"passed {fmt(r.get('check_passed'))}")
    print(f"{'metric':38s} {'engine':>10s} {'torch':>10s} {'target':>9s}  unit")
    for key, label, unit, tgt in HEADLINE:
        t = f"{tgt[0]} {tgt[1]}" if tgt else ""
        print(f"{label:38s} {fmt(r[key]):>10s} {fmt(r[key + '_torch']):>10s} {t:>9s}  {unit}")
    for name in ("optable_sam_b8", "optable_decode_b1", "optable_mask_decoder_n8"):
        t = r.get(name)
        if isinstance(t, dict) and t.get("ops"):
            print(f"\n{name}: {t.get('total_ms', 0):.3f} ms of op time, {t.get('ops_timed')} ops (top 15)")
            for o in t["ops"]:
                print(f"  {o['op']:22s} {o['shape']:52s} {o['calls']:5d} {o['ms']:9.3f} ms {o['pct']:5.1f}%")
    print()
    for k in ("copy_gbps", "smoke_failures", "sam_mask_decoder_n1_ms", "gemm_llama_decode_b1_gbps",
              "sam_vit_h_b1_img_per_s", "llama7b_decode_b16_ms", "lisa7b_tokens_per_sample", "lisa7b_masks_per_sample",
              "lisa7b_prompt_positions", "model_load_s",
              "attn_sam_window_norel_tflops", "attn_sam_global_norel_tflops", "attn_llama_prefill_tflops",
              "attn_decode_b1_kv1024_gbps", "attn_decode_b16_kv1024_gbps", "gemm_llama_qkv_tflops",
              "gemm_sam_mlp1_gelu_tflops", "gemm_bf16_tflops_torch", "attn_sam_window_tflops_torch_bias",
              "attn_sam_global_tflops_torch_bias"):
        if r.get(k) is not None:
            print(f"{k:38s} {fmt(r[k]):>10s}")
    print(f"-> {a.out} (commit it as {r['results_file']})")
    if a.rerun:
        print(f"rerun: {a.rerun}")


if __name__ == "__main__":
    main()
