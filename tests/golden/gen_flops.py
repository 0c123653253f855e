#!/usr/bin/python3
"""FLOP counts of one LISA-7B sample, measured on the reference modules (issue #8, `lisa bench` MFU).

Runs the real PyTorch modules on the `meta` device (shapes only, no arithmetic) under a
TorchDispatchMode that counts every matrix product at the aten level: mm / addmm / bmm
(2 FLOP per multiply-add: 2*m*k*n) and convolution (2 * output elements * Cin/groups * kh*kw;
transposed: 2 * input elements * Cout/groups * kh*kw). Norms, softmax, GELU, adds are not
counted (the same convention as jobs/flops.h). Products are split into "linear" (an operand
is a weight: mm/addmm/convolution) and "attention" (bmm between activations: QK^T, AV, SAM's
rel-pos einsum).

Modules (dims: tests/data/configs/lisa-7b-v1/config.json; CLIP = openai/clip-vit-large-patch14;
SAM = segment_anything build_sam_vit_h):
  sam_encoder    ImageEncoderViT (ViT-H) on [1, 3, 1024, 1024]
  clip           CLIPVisionModel with 23 layers (LLaVA takes hidden_states[-2]: layer 24 never runs
                 in the engine) on [1, 3, 224, 224]
  projector      mm_projector Linear(1024, 4096) on 256 patch tokens
  llama_layer    one LlamaDecoderLayer (transformers 4.31) over 330 tokens (prefill; full square
                 attention as HF computes it) and one decode step at context 331 (KV cache 330)
  lm_head        Linear(4096, 32004) on one row
  mask_decoder   SAM MaskDecoder (multimask_output=False) with one sparse prompt token (LISA's
                 text embedding) + no_mask dense embedding, on a 64x64 embedding
  text_fcs       text_hidden_fcs: Linear(4096, 4096), ReLU, Linear(4096, 256) on one row

    /usr/bin/python3 tests/golden/gen_flops.py --out tests/data/flops/lisa7b_flops.json
"""
import argparse
import json
import os
from functools import partial

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
HERE = os.path.dirname(os.path.abspath(__file__))


def prod(xs):
    p = 1
    for x in xs:
        p *= int(x)
    return p


class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.linear = 0
        self.attention = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (aten.mm.default, aten.addmm.default):
            a, b = (args[0], args[1]) if func == aten.mm.default else (args[1], args[2])
            self.linear += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        elif func == aten.bmm.default:
            a, b = args[0], args[1]
            self.attention += 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        elif func == aten.convolution.default:
            x, w = args[0], args[1]
            transposed, groups = args[6], args[8]
            if transposed:  # w: [Cin, Cout/groups, kh, kw]
                self.linear += 2 * prod(x.shape) * w.shape[1] * prod(w.shape[2:])
            else:  # w: [Cout, Cin/groups, kh, kw]
                self.linear += 2 * prod(out.shape) * w.shape[1] * prod(w.shape[2:])
        elif func in (aten.matmul.default, aten.convolution_backward.default):
            raise RuntimeError("unexpected op %s" % func)
        return out


def count(fn):
    with torch.no_grad(), Count() as c:
        fn()
    return {"linear": c.linear, "attention": c.attention, "total": c.linear + c.attention}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    meta = torch.device("meta")
    res = {"torch": torch.__version__}

    # SAM ViT-H image encoder (segment_anything/build_sam.py build_sam_vit_h arguments)
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, TwoWayTransformer

    enc = ImageEncoderViT(depth=32, embed_dim=1280, img_size=1024, mlp_ratio=4,
                          norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=16, patch_size=16,
                          qkv_bias=True, use_rel_pos=True, global_attn_indexes=[7, 15, 23, 31], window_size=14,
                          out_chans=256).to(meta)
    res["sam_encoder"] = count(lambda: enc(torch.empty(1, 3, 1024, 1024, device=meta)))
    del enc

    # CLIP ViT-L/14 vision tower, 23 of its 24 layers
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cc = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                          image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    clip = CLIPVisionModel(cc).to(meta)
    res["clip"] = count(lambda: clip(torch.empty(1, 3, 224, 224, device=meta)))
    del clip

    cfg = json.load(open(os.path.join(HERE, "..", "data", "configs", "lisa-7b-v1", "config.json")))
    C, V = cfg["hidden_size"], cfg["vocab_size"]
    proj = torch.nn.Linear(cfg["mm_hidden_size"], C).to(meta)
    res["projector"] = count(lambda: proj(torch.empty(1, 256, cfg["mm_hidden_size"], device=meta)))

    # one LLaMA decoder layer: prefill of 330 rows, then one decode row against a cache of 330
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    lc = LlamaConfig(hidden_size=C, intermediate_size=cfg["intermediate_size"], num_hidden_layers=1,
                     num_attention_heads=cfg["num_attention_heads"], num_key_value_heads=cfg["num_key_value_heads"],
                     vocab_size=V, max_position_embeddings=cfg["max_position_embeddings"],
                     rms_norm_eps=cfg["rms_norm_eps"])
    layer = LlamaDecoderLayer(lc).to(meta)
    T = 330
    pos = torch.arange(T, device=meta)[None]
    mask = torch.empty(1, 1, T, T, device=meta)
    x = torch.empty(1, T, C, device=meta)
    holder = {}

    def prefill():
        holder["out"] = layer(x, attention_mask=mask, position_ids=pos, use_cache=True)

    res["llama_layer_prefill"] = count(prefill)
    past = holder["out"][1]
    res["llama_layer_decode"] = count(lambda: layer(torch.empty(1, 1, C, device=meta),
                                                    attention_mask=torch.empty(1, 1, 1, T + 1, device=meta),
                                                    position_ids=torch.tensor([[T]], device=meta),
                                                    past_key_value=past, use_cache=True))
    res["prefill_tokens"] = T
    head = torch.nn.Linear(C, V, bias=False).to(meta)
    res["lm_head"] = count(lambda: head(torch.empty(1, 1, C, device=meta)))
    res["n_layers"] = cfg["num_hidden_layers"]
    del layer, head

    # SAM mask decoder with LISA's text prompt: one sparse token, dense = no_mask_embed (on the CPU:
    # repeat_interleave has no meta kernel; the decoder is small)
    dec = MaskDecoder(num_multimask_outputs=3,
                      transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                      transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    res["mask_decoder"] = count(lambda: dec(image_embeddings=torch.zeros(1, 256, 64, 64),
                                            image_pe=torch.zeros(1, 256, 64, 64),
                                            sparse_prompt_embeddings=torch.zeros(1, 1, 256),
                                            dense_prompt_embeddings=torch.zeros(1, 256, 64, 64),
                                            multimask_output=False))
    fcs = torch.nn.Sequential(torch.nn.Linear(C, C), torch.nn.ReLU(), torch.nn.Linear(C, cfg["out_dim"])).to(meta)
    res["text_fcs"] = count(lambda: fcs(torch.empty(1, C, device=meta)))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
