#!/usr/bin/python3
"""Golden-data generator for the LISA engine's parity tests.

Builds tiny random-weight checkpoints in the exact published layouts
(xinlai/LISA-7B-v1 and openai/clip-vit-large-patch14), runs the PyTorch
reference stack on them and dumps every parity tap point (spec
docs/inference.md §8) as safetensors files.  See tests/golden/README.md for the
file contract.

Run with the reference stack (Debian python3-torch 1.13.1, transformers 4.31.0,
Pillow 9.4.0, opencv-python-headless 4.8.0.74):

    /usr/bin/python3 tests/golden/gen_golden.py --out tests/data

Everything is deterministic (fixed seeds, one thread); a second run writes the
same bytes.

The LISA glue (prompt, image placeholder, [SEG] gather, text_hidden_fcs,
text-prompted SAM, postprocess) is re-implemented here from the spec and from
dvlab-research/LISA at 3cb2d43 (chat.py, model/LISA.py, model/llava/**,
model/segment_anything/**); the networks themselves are the real ones:
transformers' CLIPVisionModel / LlamaForCausalLM and pip segment_anything's
ImageEncoderViT / PromptEncoder / MaskDecoder.  crosscheck_lisa_repo.py runs
the real LISA repository code on the same files and compares.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from functools import partial

REQUIRED = {"torch": "1.13.", "transformers": "4.31.0", "PIL": "9.4.0", "cv2": "4.8.0"}


def check_versions():
    """Refuses to run on anything but the pinned reference stack (spec §0)."""
    try:
        import cv2
        import numpy
        import PIL
        import safetensors
        import segment_anything
        import torch
        import torchvision
        import transformers
    except ImportError as e:
        sys.exit("gen_golden.py: %s (python %s at %s); run with the reference stack: "
                 "/usr/bin/python3 with torch 1.13.x, transformers 4.31.0, Pillow 9.4.0, "
                 "opencv 4.8.0, segment-anything 1.0" % (e, sys.version.split()[0],
                                                         sys.executable))

    found = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "PIL": PIL.__version__,
        "cv2": cv2.__version__,
    }
    print("reference stack: python %s, torch %s, torchvision %s, transformers %s, Pillow %s, "
          "numpy %s, opencv %s, safetensors %s, segment_anything from %s" % (
              sys.version.split()[0], torch.__version__, torchvision.__version__,
              transformers.__version__, PIL.__version__, numpy.__version__,
              cv2.__version__, safetensors.__version__,
              os.path.dirname(segment_anything.__file__)))
    bad = [k for k, v in REQUIRED.items()
           if not (found[k].startswith(v) if v.endswith(".") else found[k] == v)]
    if bad:
        sys.exit("gen_golden.py: wrong reference stack (%s); need torch 1.13.x, transformers "
                 "4.31.0, Pillow 9.4.0, opencv 4.8.0 (run with /usr/bin/python3)" %
                 ", ".join("%s %s" % (k, found[k]) for k in bad))


check_versions()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors import safe_open  # noqa: E402
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder,  # noqa: E402
                                       PromptEncoder, TwoWayTransformer)
from segment_anything.modeling.common import LayerNorm2d  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402
from transformers import (AutoTokenizer, CLIPConfig, CLIPImageProcessor,  # noqa: E402
                          CLIPModel, CLIPVisionModel, LlamaConfig,
                          LlamaForCausalLM, LlamaTokenizer)
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------
# Tiny dimensions.  Real LISA-7B-v1: LLaMA 4096/32 layers/32 heads, CLIP 1024/24/16, SAM ViT-H
# 1280/32/16 with out 256.  The engine takes every dimension from the files.
# ---------------------------------------------------------------------------------------------
LLM = dict(hidden=32, layers=2, heads=4, kv_heads=4, inter=64, vocab=32004, max_pos=2048,
           eps=1e-6)
CLIP_V = dict(hidden=32, layers=3, heads=2, inter=64, image=224, patch=14)
CLIP_T = dict(hidden=16, layers=1, heads=2, inter=32, vocab=64, max_pos=77)  # unused by LISA
CLIP_PROJ = 16
OUT_DIM = 32  # LISA out_dim = SAM prompt_embed_dim (256 in the real model)
SAM = dict(embed=16, depth=4, heads=2, global_attn=(1, 3), window=14, img=1024, patch=16,
           mlp_ratio=4, out=OUT_DIM, dec_depth=2, dec_heads=8, dec_mlp=64, iou_hidden=32,
           mask_in_chans=16)
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]
IMAGE_TOKEN_INDEX = -200
ADDED_TOKENS = {"<im_patch>": 32000, "<im_start>": 32001, "<im_end>": 32002, "[SEG]": 32003}
SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.")

IMAGES = ["chelsea.png", "rocket_portrait.jpg", "chelsea_tiny.png"]

# LISA cases.  `answer` is the greedy answer the tiny model is shaped to produce (§ "Shaping
# generation" in the README); the real generation is run and checked against it.
CASES = [
    dict(name="chelsea_tiny", image="chelsea_tiny.png",
         query="Can you segment the cat in this image?",
         answer=["▁Sure", ",", "[SEG]", "▁.", "</s>"], max_new_tokens=16, clip_px=False),
    dict(name="rocket_portrait", image="rocket_portrait.jpg",
         query="Please segment the rocket and the smoke in this image.",
         answer=["▁Sure", ",", "[SEG]", "▁and", "[SEG]"], max_new_tokens=5, clip_px=False),
    dict(name="chelsea", image="chelsea.png",
         query="What is the animal in this image? Please output segmentation mask.",
         answer=["▁Sure", ","], max_new_tokens=2, clip_px=True),
]
BF16_CASE = "rocket_portrait"
MARGIN = 6.0  # minimum top-1 minus top-2 logit at every shaped greedy decision
TARGET_LOGIT = 10.0


ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def save_file(tensors, path, metadata=None):
    """A safetensors writer with a byte-stable layout (the Rust writer serialises
    __metadata__ from a hash map, in a different order on every run): header = compact JSON,
    __metadata__ first, then tensors by name; data ordered by (element size descending, name)
    so every tensor is aligned to its element size; header padded with spaces to 8 bytes."""
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, off = {}, [], 0
    for k in order:
        t = tensors[k].detach().contiguous()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[k] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    head = {}
    if metadata:
        head["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    for k in sorted(header):
        head[k] = header[k]
    hj = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(len(hj).to_bytes(8, "little"))
        f.write(hj)
        for b in blobs:
            f.write(b)
    # Read back with the real library.
    with safe_open(path, framework="pt") as f:
        assert sorted(f.keys()) == sorted(tensors)
        assert (f.metadata() or {}) == (metadata or {})
        for k in tensors:
            assert torch.equal(f.get_tensor(k), tensors[k].detach().cpu()), k


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def f32_sha256(t):
    return sha256(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


def golden_meta(**kw):
    meta = {"format": "lisa-golden", "version": "1", "generator": "tests/golden/gen_golden.py",
            "torch": torch.__version__}
    for k, v in kw.items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    return meta


def save_golden(path, tensors, meta):
    out = {}
    for k, v in tensors.items():
        v = v.detach().contiguous()
        assert v.dtype in (torch.float32, torch.int32, torch.int64, torch.uint8), (k, v.dtype)
        out[k] = v
    save_file(out, path, metadata=meta)
    print("  wrote %-45s %9d bytes" % (os.path.relpath(path), os.path.getsize(path)))


def write_json(path, obj):
    # Same formatting as transformers' to_json_string / save_pretrained.
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# Random initialisation with sensible scales: every weight and bias non-zero, norm gains near 1,
# so that every term of every op moves the result measurably.
# ---------------------------------------------------------------------------------------------
def init_module_(module, seed, gains=None, bias_std=0.05, embed_std=1.0):
    """Re-initialises every parameter/buffer of `module` deterministically (sorted names)."""
    gains = gains or {}
    g = torch.Generator().manual_seed(seed)
    kinds = {}
    for mname, m in module.named_modules():
        pre = mname + "." if mname else ""
        if isinstance(m, (nn.LayerNorm, LayerNorm2d)) or type(m).__name__ == "LlamaRMSNorm":
            kinds[pre + "weight"] = ("gain", None)
            kinds[pre + "bias"] = ("bias", None)
        elif isinstance(m, nn.Embedding):
            kinds[pre + "weight"] = ("embed", None)
        elif isinstance(m, nn.ConvTranspose2d):
            kinds[pre + "weight"] = ("fan", m.in_channels)  # k2 s2: one tap per input channel
            kinds[pre + "bias"] = ("bias", None)
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            w = m.weight
            kinds[pre + "weight"] = ("fan", int(np.prod(w.shape[1:])))
            kinds[pre + "bias"] = ("bias", None)
    state = dict(module.named_parameters())
    for name in sorted(state):
        p = state[name]
        kind, fan = kinds.get(name, ("explicit", None))
        gain = 1.0
        for pat, gv in gains.items():
            if pat in name:
                gain = gv
        with torch.no_grad():
            if kind == "gain":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif kind == "bias":
                p.copy_(bias_std * torch.randn(p.shape, generator=g))
            elif kind == "embed":
                p.copy_(embed_std * gain * torch.randn(p.shape, generator=g))
            elif kind == "fan":
                p.copy_(gain / math.sqrt(fan) * torch.randn(p.shape, generator=g))
            else:  # free parameters (pos_embed, rel_pos, class_embedding, ...)
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return g


def bf16_round_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


# ---------------------------------------------------------------------------------------------
# Model builders (stock module classes, tiny dims)
# ---------------------------------------------------------------------------------------------
class TinySam(nn.Module):
    """Holds the three SAM parts under their stock names (no pixel_mean/std: not persistent)."""

    def __init__(self):
        super().__init__()
        s = SAM
        self.image_encoder = ImageEncoderViT(
            depth=s["depth"], embed_dim=s["embed"], img_size=s["img"], mlp_ratio=s["mlp_ratio"],
            norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=s["heads"],
            patch_size=s["patch"], qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=s["global_attn"], window_size=s["window"], out_chans=s["out"])
        emb = s["img"] // s["patch"]
        self.prompt_encoder = PromptEncoder(
            embed_dim=s["out"], image_embedding_size=(emb, emb),
            input_image_size=(s["img"], s["img"]), mask_in_chans=s["mask_in_chans"])
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=s["dec_depth"], embedding_dim=s["out"],
                                          mlp_dim=s["dec_mlp"], num_heads=s["dec_heads"]),
            transformer_dim=s["out"], iou_head_depth=3, iou_head_hidden_dim=s["iou_hidden"])


def build_sam_weights():
    sam = TinySam()
    # Hypernetwork output layers scaled up so the mask logits are O(1..10), not O(0.1).
    g = init_module_(sam, seed=1001, gains={"output_hypernetworks_mlps": 1.0,
                                            "output_hypernetworks_mlps.0.layers.2": 12.0,
                                            "output_hypernetworks_mlps.1.layers.2": 12.0,
                                            "output_hypernetworks_mlps.2.layers.2": 12.0,
                                            "output_hypernetworks_mlps.3.layers.2": 12.0})
    with torch.no_grad():
        enc = sam.image_encoder
        enc.pos_embed.copy_(0.3 * torch.randn(enc.pos_embed.shape, generator=g))
        for blk in enc.blocks:
            blk.attn.rel_pos_h.copy_(0.3 * torch.randn(blk.attn.rel_pos_h.shape, generator=g))
            blk.attn.rel_pos_w.copy_(0.3 * torch.randn(blk.attn.rel_pos_w.shape, generator=g))
        # The real Gaussian matrix is randn * scale(1.0) (PositionEmbeddingRandom).
        G = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        G.copy_(torch.randn(G.shape, generator=g))
    return sam


def build_clip_model():
    cfg = clip_config_obj()
    model = CLIPModel(cfg)
    g = init_module_(model, seed=2002, embed_std=0.5)
    with torch.no_grad():
        model.vision_model.embeddings.class_embedding.copy_(
            0.5 * torch.randn(CLIP_V["hidden"], generator=g))
        model.logit_scale.fill_(2.6592)
    return model


def clip_config_obj():
    return CLIPConfig(
        text_config=dict(hidden_size=CLIP_T["hidden"], intermediate_size=CLIP_T["inter"],
                         num_attention_heads=CLIP_T["heads"], num_hidden_layers=CLIP_T["layers"],
                         vocab_size=CLIP_T["vocab"], max_position_embeddings=CLIP_T["max_pos"],
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=CLIP_PROJ,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=CLIP_V["hidden"], intermediate_size=CLIP_V["inter"],
                           num_attention_heads=CLIP_V["heads"],
                           num_hidden_layers=CLIP_V["layers"], image_size=CLIP_V["image"],
                           patch_size=CLIP_V["patch"], hidden_act="quick_gelu",
                           layer_norm_eps=1e-5, projection_dim=CLIP_PROJ, num_channels=3),
        projection_dim=CLIP_PROJ, logit_scale_init_value=2.6592)


def llama_config(kv_heads=None, vocab=None, use_cache=False):
    return LlamaConfig(
        vocab_size=vocab or LLM["vocab"], hidden_size=LLM["hidden"],
        intermediate_size=LLM["inter"], num_hidden_layers=LLM["layers"],
        num_attention_heads=LLM["heads"], num_key_value_heads=kv_heads or LLM["kv_heads"],
        hidden_act="silu", max_position_embeddings=LLM["max_pos"], rms_norm_eps=LLM["eps"],
        initializer_range=0.02, use_cache=use_cache, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, pretraining_tp=1, tie_word_embeddings=False, rope_scaling=None)


def build_llm(cfg, seed, lm_head_std=0.02):
    """LLaMA with the residual branches scaled down (o_proj, down_proj gain 0.35): the final
    hidden state stays dominated by the current token's embedding, with a clear, image- and
    prompt-dependent contribution from attention (see README "Shaping generation")."""
    llm = LlamaForCausalLM(cfg)
    init_module_(llm, seed=seed, gains={"o_proj": 0.35, "down_proj": 0.35})
    with torch.no_grad():
        llm.lm_head.weight.mul_(lm_head_std * math.sqrt(LLM["hidden"]))  # ~N(0, std) rows
    return llm


class LisaExtras(nn.Module):
    """mm_projector (Linear mm_hidden -> C) and text_hidden_fcs (Linear C->C, ReLU, Linear
    C->out_dim, Dropout(0)), named as in LisaModel."""

    def __init__(self):
        super().__init__()
        C = LLM["hidden"]
        self.mm_projector = nn.Linear(CLIP_V["hidden"], C)
        self.text_hidden_fcs = nn.ModuleList([nn.Sequential(
            nn.Linear(C, C), nn.ReLU(inplace=True), nn.Linear(C, OUT_DIM), nn.Dropout(0.0))])


def build_extras():
    ex = LisaExtras()
    init_module_(ex, seed=3003, gains={"text_hidden_fcs.0.0": math.sqrt(2.0)})
    return ex


# ---------------------------------------------------------------------------------------------
# Checkpoint writers
# ---------------------------------------------------------------------------------------------
def lisa_config_json():
    # Fields of the LISA-7B-v1 config (LlavaConfig saved by transformers 4.31 from
    # merge_lora_weights_and_save_hf_model.py), tiny dims.
    return {
        "_name_or_path": "LLaVA-Lightning-7B-v1-1",
        "architectures": ["LISAForCausalLM"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "freeze_mm_mlp_adapter": True,
        "hidden_act": "silu",
        "hidden_size": LLM["hidden"],
        "image_aspect_ratio": "square",
        "image_grid_pinpoints": None,
        "initializer_range": 0.02,
        "intermediate_size": LLM["inter"],
        "max_position_embeddings": LLM["max_pos"],
        "max_sequence_length": LLM["max_pos"],
        "mm_hidden_size": CLIP_V["hidden"],
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": True,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": "openai/clip-vit-large-patch14",
        "model_type": "llava",
        "num_attention_heads": LLM["heads"],
        "num_hidden_layers": LLM["layers"],
        "num_key_value_heads": LLM["kv_heads"],
        "out_dim": OUT_DIM,
        "pretrain_mm_mlp_adapter": None,
        "pretraining_tp": 1,
        "rms_norm_eps": LLM["eps"],
        "rope_scaling": None,
        "sep_image_conv_front": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "train_mask_decoder": True,
        "transformers_version": "4.31.0",
        "tune_mm_mlp_adapter": False,
        "use_cache": False,
        "use_mm_proj": True,
        "vision_tower": "openai/clip-vit-large-patch14",
        "vocab_size": LLM["vocab"],
    }


def generation_config_json():
    # The real file is 132 bytes: GenerationConfig.from_model_config of the LLaVA base config.
    return {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0, "transformers_version": "4.31.0"}


def inv_freq(head_dim):
    return 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))


def lisa_state_dict(llm, extras, sam):
    """All tensors of the LISA checkpoint in LISAForCausalLM.state_dict() order and dtypes
    (spec §7.2/§7.3): LLM + mm_projector BF16; visual_model + text_hidden_fcs F32;
    rotary_emb.inv_freq buffers as a 4.31 save_pretrained writes them (BF16: the model was
    loaded with torch_dtype=bfloat16)."""
    sd = {}
    hd = LLM["hidden"] // LLM["heads"]
    for k, v in llm.model.state_dict().items():
        sd["model." + k] = v.to(torch.bfloat16)
    for i in range(LLM["layers"]):
        sd["model.layers.%d.self_attn.rotary_emb.inv_freq" % i] = inv_freq(hd).to(torch.bfloat16)
    for k, v in extras.mm_projector.state_dict().items():
        sd["model.mm_projector." + k] = v.to(torch.bfloat16)
    for k, v in sam.state_dict().items():
        sd["model.visual_model." + k] = v.to(torch.float32)
    for k, v in extras.text_hidden_fcs.state_dict().items():
        sd["model.text_hidden_fcs." + k] = v.to(torch.float32)
    sd["lm_head.weight"] = llm.lm_head.weight.to(torch.bfloat16)
    return sd


def write_sharded(out_dir, sd, shard_names):
    """HF sharded safetensors: shard 1 takes tensors in state_dict order until the second
    layer's attention is done, shard 2 the rest (so one LLaMA layer spans both shards, as
    layers do in the real 2-shard checkpoint).  Each shard carries {"format": "pt"}."""
    names = list(sd)
    cut = names.index("model.layers.1.mlp.gate_proj.weight")
    parts = [names[:cut], names[cut:]]
    weight_map, total = {}, 0
    for fname, keys in zip(shard_names, parts):
        tensors = {k: sd[k].contiguous() for k in keys}
        save_file(tensors, os.path.join(out_dir, fname), metadata={"format": "pt"})
        for k in keys:
            weight_map[k] = fname
            total += sd[k].numel() * sd[k].element_size()
        size = os.path.getsize(os.path.join(out_dir, fname))
        print("  wrote %-45s %9d bytes" % (os.path.relpath(os.path.join(out_dir, fname)), size))
        assert size < 3_000_000, fname
    write_json(os.path.join(out_dir, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def write_tokenizer(out_dir, tmp_dir):
    """Replays how the LISA-7B-v1 tokenizer files came to be: the LLaVA-7B-v1-1 base tokenizer
    (LLaMA vocabulary + <im_patch>, <im_start>, <im_end> added as special tokens), loaded by
    merge_lora_weights_and_save_hf_model.py with AutoTokenizer(use_fast=False,
    model_max_length=512, padding_side="right"), pad_token = unk_token, add_tokens("[SEG]"),
    add_tokens([<im_start>, <im_end>], special_tokens=True), save_pretrained."""
    spm = os.path.join(HERE, "..", "data", "tokenizer", "llama-spm.model")
    base = os.path.join(tmp_dir, "llava-base-tokenizer")
    os.makedirs(base, exist_ok=True)
    t = LlamaTokenizer(vocab_file=spm)
    t.add_tokens(["<im_patch>"], special_tokens=True)
    t.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    t.save_pretrained(base)
    t = AutoTokenizer.from_pretrained(base, model_max_length=512, padding_side="right",
                                      use_fast=False)
    t.pad_token = t.unk_token
    t.add_tokens("[SEG]")
    t.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    t.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "added_tokens.json")) as f:
        assert json.load(f) == ADDED_TOKENS
    shutil.rmtree(base)


def load_tokenizer(lisa_dir):
    # chat.py
    tok = AutoTokenizer.from_pretrained(lisa_dir, cache_dir=None, model_max_length=512,
                                        padding_side="right", use_fast=False)
    tok.pad_token = tok.unk_token
    return tok


def write_tiny_clip(out_dir, clip):
    """openai/clip-vit-large-patch14 layout: config.json (the top-level keys of the real file,
    full text_config / vision_config dicts as transformers 4.16 wrote them, plus the
    *_config_dict overrides), preprocessor_config.json (the real one) and model.safetensors
    (the whole CLIPModel, F32)."""
    os.makedirs(out_dir, exist_ok=True)
    subs = {}
    for sub in ("text_config", "vision_config"):
        d = getattr(clip.config, sub).to_dict()
        d.pop("_commit_hash", None)
        d["transformers_version"] = "4.16.0.dev0"
        subs[sub] = d
    cfg = {
        "_name_or_path": "clip-vit-large-patch14/",
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": CLIP_PROJ,
        "text_config": subs["text_config"],
        "torch_dtype": "float32",
        "transformers_version": None,
        "vision_config": subs["vision_config"],
        # The real file repeats the key dims in *_config_dict; CLIPConfig rebuilds each
        # sub-config from these plus class defaults.  vocab_size is added for the tiny text
        # model (the real one is the default, 49408).
        "text_config_dict": {"hidden_size": CLIP_T["hidden"], "intermediate_size": CLIP_T["inter"],
                             "num_attention_heads": CLIP_T["heads"],
                             "num_hidden_layers": CLIP_T["layers"], "projection_dim": CLIP_PROJ,
                             "vocab_size": CLIP_T["vocab"]},
        "vision_config_dict": {"hidden_size": CLIP_V["hidden"],
                               "intermediate_size": CLIP_V["inter"],
                               "num_attention_heads": CLIP_V["heads"],
                               "num_hidden_layers": CLIP_V["layers"], "patch_size": CLIP_V["patch"],
                               "projection_dim": CLIP_PROJ},
    }
    write_json(os.path.join(out_dir, "config.json"), cfg)
    write_json(os.path.join(out_dir, "preprocessor_config.json"), {
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "size": 224,
    })
    sd = {k: v.contiguous() for k, v in clip.state_dict().items()}
    # Older transformers (which wrote the real file) saved the position_ids buffers too.
    sd["text_model.embeddings.position_ids"] = torch.arange(CLIP_T["max_pos"]).unsqueeze(0)
    n_pos = (CLIP_V["image"] // CLIP_V["patch"]) ** 2 + 1
    sd["vision_model.embeddings.position_ids"] = torch.arange(n_pos).unsqueeze(0)
    path = os.path.join(out_dir, "model.safetensors")
    save_file(sd, path, metadata={"format": "pt"})
    print("  wrote %-45s %9d bytes" % (os.path.relpath(path), os.path.getsize(path)))


# ---------------------------------------------------------------------------------------------
# Reference model, loaded back from the written files
# ---------------------------------------------------------------------------------------------
def read_safetensors(path):
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def read_sharded(lisa_dir):
    with open(os.path.join(lisa_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    sd = {}
    for fname in sorted(set(index["weight_map"].values())):
        sd.update(read_safetensors(os.path.join(lisa_dir, fname)))
    assert set(sd) == set(index["weight_map"])
    return sd


def bf16_round(t):
    return t.to(torch.bfloat16).to(t.dtype) if t.is_floating_point() else t


class Reference:
    """The tiny LISA, loaded from tiny-lisa/ and tiny-clip/ and run in f32 on the CPU.

    emulate_bf16: chat.py --precision bf16 as a CUDA BF16 run computes it, approximately: all
    weights and buffers rounded to BF16 (model.bfloat16()), BF16 inputs, the output of every
    leaf module rounded to BF16, dense PE computed in BF16, f32 accumulation inside each op.
    (torch 1.13's CPU BF16 kernels accumulate convolutions and attention in BF16, which drifts
    far more than CUDA does: a literal CPU BF16 run is not representative.)"""

    def __init__(self, lisa_dir, clip_dir, emulate_bf16=False):
        dtype = torch.float32
        self.dtype = dtype
        self.emulate_bf16 = emulate_bf16
        with open(os.path.join(lisa_dir, "config.json")) as f:
            cfgj = json.load(f)
        self.cfg = cfgj
        sd = read_sharded(lisa_dir)
        # LLM: transformers LlamaForCausalLM (4.31 semantics).
        lcfg = llama_config()
        for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "vocab_size", "rms_norm_eps", "max_position_embeddings"):
            setattr(lcfg, k, cfgj[k])
        self.llm = LlamaForCausalLM(lcfg)
        llm_sd = {k: v for k, v in sd.items()
                  if (k.startswith("model.") and not k.startswith(("model.mm_projector",
                      "model.visual_model", "model.text_hidden_fcs")) and "inv_freq" not in k)
                  or k == "lm_head.weight"}
        missing, unexpected = self.llm.load_state_dict(llm_sd, strict=False)
        assert not unexpected and all("inv_freq" in m for m in missing), (missing, unexpected)
        self.extras = LisaExtras()
        self.extras.load_state_dict({k[len("model."):]: v for k, v in sd.items()
                                     if k.startswith(("model.mm_projector",
                                                      "model.text_hidden_fcs"))})
        self.sam = TinySam()
        self.sam.load_state_dict({k[len("model.visual_model."):]: v for k, v in sd.items()
                                  if k.startswith("model.visual_model.")})
        self.clip = CLIPVisionModel.from_pretrained(clip_dir)
        self.clip_processor = CLIPImageProcessor.from_pretrained(clip_dir)
        for m in (self.llm, self.extras, self.sam, self.clip):
            m.to(dtype)
            m.eval()
        if emulate_bf16:
            def round_out(mod, inp, out):
                if torch.is_tensor(out):
                    return bf16_round(out)
                if isinstance(out, tuple):
                    return tuple(bf16_round(o) if torch.is_tensor(o) else o for o in out)
                return out
            for m in (self.llm, self.extras, self.sam, self.clip):
                with torch.no_grad():
                    for t in list(m.parameters()) + list(m.buffers()):
                        t.copy_(bf16_round(t))
                for mod in m.modules():
                    if not list(mod.children()):
                        mod.register_forward_hook(round_out)
        self.tok = load_tokenizer(lisa_dir)
        self.seg_token_idx = self.tok("[SEG]", add_special_tokens=False).input_ids[0]
        assert self.seg_token_idx == ADDED_TOKENS["[SEG]"]
        self.select_layer = cfgj["mm_vision_select_layer"]

    # --- preprocessing (chat.py) ---
    @staticmethod
    def decode_image(path):
        image_np = cv2.imread(path)
        return cv2.cvtColor(image_np, cv2.COLOR_BGR2RGB)

    def cast_input(self, x):
        # chat.py casts both pixel tensors to the run dtype.
        return bf16_round(x) if self.emulate_bf16 else x.to(self.dtype)

    def clip_preprocess(self, image_np):
        px = self.clip_processor.preprocess(image_np, return_tensors="pt")["pixel_values"][0]
        return px.unsqueeze(0)  # f32 [1,3,224,224]

    @staticmethod
    def sam_preprocess(image_np):
        image = ResizeLongestSide(1024).apply_image(image_np)
        resize_hw = image.shape[:2]
        x = torch.from_numpy(image).permute(2, 0, 1).contiguous()
        mean = torch.Tensor(PIXEL_MEAN).view(-1, 1, 1)
        std = torch.Tensor(PIXEL_STD).view(-1, 1, 1)
        x = (x - mean) / std
        h, w = x.shape[-2:]
        x = F.pad(x, (0, 1024 - w, 0, 1024 - h))
        return x.unsqueeze(0), resize_hw  # f32 [1,3,1024,1024]

    def prompt_ids(self, query):
        # chat.py + conversation.py conv_llava_v1 (SeparatorStyle.TWO) + mm_utils.py
        prompt = "<image>" + "\n" + query
        prompt = prompt.replace("<image>", "<im_start><image><im_end>")
        prompt = SYSTEM + " " + "USER" + ": " + prompt + " " + "ASSISTANT" + ":"
        chunks = [self.tok(c).input_ids for c in prompt.split("<image>")]
        assert len(chunks) == 2 and chunks[0][0] == self.tok.bos_token_id
        ids = [chunks[0][0]] + chunks[0][1:] + [IMAGE_TOKEN_INDEX] + chunks[1][1:]
        return prompt, torch.tensor(ids, dtype=torch.long)

    # --- networks ---
    def clip_features(self, clip_px):
        out = self.clip(clip_px.to(self.dtype), output_hidden_states=True)
        feats = out.hidden_states[self.select_layer][:, 1:]  # drop CLS
        return feats.to(self.dtype)

    def embed(self, ids, image_features):
        """prepare_inputs_labels_for_multimodal with mm_use_im_start_end (one image)."""
        i = int((ids == IMAGE_TOKEN_INDEX).nonzero()[0, 0])
        emb = self.llm.model.embed_tokens
        return torch.cat([emb(ids[:i]), image_features[0], emb(ids[i + 1:])], 0).unsqueeze(0)

    def llm_forward(self, ids, clip_px):
        image_features = self.extras.mm_projector(self.clip_features(clip_px))
        x = self.embed(ids, image_features)
        attn = torch.ones(x.shape[:2], dtype=torch.long)
        h = self.llm.model(inputs_embeds=x, attention_mask=attn, use_cache=False,
                           return_dict=True).last_hidden_state  # final RMSNorm applied
        return h, self.llm.lm_head(h), image_features

    def generate(self, prompt_ids, clip_px, max_new_tokens):
        """Greedy, no KV cache, full forward each step (LISA evaluate -> HF generate with
        use_cache=False).  Returns all ids, the prefill logits and the hidden states of the
        last forward ([1, len(ids)-1+255, C])."""
        ids = prompt_ids.clone()
        prefill_logits = None
        self.margins = []  # top-1 minus top-2 logit of every greedy step
        for step in range(max_new_tokens):
            h, logits, feats = self.llm_forward(ids, clip_px)
            if step == 0:
                prefill_logits = logits[0, -1].float()
            top2 = torch.topk(logits[0, -1].float(), 2).values
            self.margins.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits[0, -1]))
            ids = torch.cat([ids, torch.tensor([nxt])])
            last_h = h
            if nxt == self.tok.eos_token_id:
                break
        return ids, prefill_logits, last_h, feats

    def generate_kv(self, prompt_ids, clip_px, max_new_tokens):
        """The same greedy decode with transformers' KV cache (what the engine does); returns
        ids and the final-normed hidden state of every deciding step."""
        feats = self.extras.mm_projector(self.clip_features(clip_px))
        x = self.embed(prompt_ids, feats)
        out = self.llm.model(inputs_embeds=x, use_cache=True, return_dict=True)
        past, h = out.past_key_values, out.last_hidden_state[:, -1]
        ids, states = prompt_ids.tolist(), []
        for _ in range(max_new_tokens):
            nxt = int(torch.argmax(self.llm.lm_head(h)[0]))
            ids.append(nxt)
            states.append(h[0])
            if nxt == self.tok.eos_token_id:
                break
            e = self.llm.model.embed_tokens(torch.tensor([[nxt]]))
            out = self.llm.model(inputs_embeds=e, past_key_values=past, use_cache=True,
                                 return_dict=True)
            past, h = out.past_key_values, out.last_hidden_state[:, -1]
        return torch.tensor(ids), torch.stack(states)

    def seg_embeddings(self, output_ids, last_h):
        """LISA evaluate(): text_hidden_fcs over the whole last hidden state, then the mask
        ids[1:] == seg prepended with 255 zeros (the position that PREDICTED each [SEG])."""
        fcs = self.extras.text_hidden_fcs[0](last_h)  # [1, L, out]
        mask = output_ids[1:] == self.seg_token_idx
        mask = torch.cat([torch.zeros(255, dtype=torch.bool), mask]).unsqueeze(0)
        assert mask.shape[1] == last_h.shape[1]
        return last_h[mask], fcs[mask], mask[0].nonzero()[:, 0]

    def dense_pe(self):
        """get_dense_pe() as in LISA's prompt_encoder.py (grid in the Gaussian matrix's dtype)."""
        pe = self.sam.prompt_encoder.pe_layer
        G = pe.positional_encoding_gaussian_matrix
        h, w = self.sam.prompt_encoder.image_embedding_size
        if self.emulate_bf16:
            G = G.to(torch.bfloat16)
        grid = torch.ones((h, w), dtype=G.dtype)
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        coords = torch.stack([x, y], dim=-1)
        if coords.dtype != G.dtype:
            coords = coords.to(G.dtype)
        coords = 2 * coords - 1
        coords = coords @ G
        coords = 2 * np.pi * coords
        pe_ = torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)
        return pe_.permute(2, 0, 1).unsqueeze(0).to(self.dtype)

    def encode_image(self, sam_px, taps=None):
        enc = self.sam.image_encoder
        hooks = []
        if taps is not None:
            hooks.append(enc.patch_embed.register_forward_hook(
                lambda m, i, o: taps.__setitem__("enc.patch_embed", (o + enc.pos_embed)[0])))
            for bi, blk in enumerate(enc.blocks):
                hooks.append(blk.register_forward_hook(
                    lambda m, i, o, bi=bi: taps.__setitem__("enc.block.%d" % bi, o[0])))
        try:
            emb = enc(sam_px.to(self.dtype))
        finally:
            for hk in hooks:
                hk.remove()
        return emb  # [1, out, 64, 64]

    def decode_masks(self, img_emb, text_embeds, resize_hw, orig_hw):
        """LISA's text-prompted SAM: sparse = text_embeds [N,1,out] (no padding point),
        dense = no_mask_embed broadcast; mask decoder multimask_output=False; postprocess."""
        pe = self.sam.prompt_encoder
        n = text_embeds.shape[0]
        sparse = torch.empty((n, 0, pe.embed_dim))
        sparse = torch.cat([sparse, text_embeds], dim=1).to(text_embeds.dtype)
        h, w = pe.image_embedding_size
        dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(n, -1, h, w)
        cap = {}
        hk = self.sam.mask_decoder.transformer.register_forward_hook(
            lambda m, i, o: cap.update(hs=o[0], keys=o[1]))
        try:
            if n == 0:
                # LISA's vendored mask_decoder reshapes with num_mask_tokens instead of -1, so
                # N=0 flows through as empty tensors (stock segment-anything raises here).
                low = torch.empty((0, 1, 4 * h, 4 * w), dtype=text_embeds.dtype)
                iou = torch.empty((0, 1), dtype=text_embeds.dtype)
            else:
                low, iou = self.sam.mask_decoder(
                    image_embeddings=img_emb, image_pe=self.dense_pe(),
                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                    multimask_output=False)
        finally:
            hk.remove()
        masks = F.interpolate(low.float(), (1024, 1024), mode="bilinear", align_corners=False)
        masks = masks[..., :resize_hw[0], :resize_hw[1]]
        masks = F.interpolate(masks, tuple(orig_hw), mode="bilinear", align_corners=False)
        return low[:, 0], iou, masks[:, 0], cap.get("hs"), cap.get("keys")


# ---------------------------------------------------------------------------------------------
# Shaping generation: design the lm_head rows of the answer tokens so that greedy decoding of
# each case produces its planned answer, with a margin.
# ---------------------------------------------------------------------------------------------
def deciding_states(ref, case, img_dir):
    """Teacher-forced final-normed hidden states at the positions that decide each planned
    answer token."""
    image_np = ref.decode_image(os.path.join(img_dir, case["image"]))
    clip_px = ref.clip_preprocess(image_np)
    _, pids = ref.prompt_ids(case["query"])
    ans = [ref.tok.convert_tokens_to_ids(t) for t in case["answer"]]
    ids = torch.cat([pids, torch.tensor(ans[:-1], dtype=torch.long)])
    with torch.no_grad():
        h, _, _ = ref.llm_forward(ids, clip_px)
    T = len(pids)
    cur = [int(pids[-1])] + ans[:-1]
    return [(h[0, T - 1 + j + 255].clone(), cur[j], ans[j]) for j in range(len(ans))]


def shape_lm_head(ref, img_dir):
    """Smallest change to the random lm_head rows of the answer tokens such that, at every
    planned decision state h_p, the planned token's logit is TARGET_LOGIT and the other answer
    tokens' logits are 0 (least squares, exact since the states are independent); other rows
    stay random (|logit| < ~0.5).  Re-solved after BF16 rounding until the margins hold."""
    decisions = []
    for case in CASES:
        decisions += deciding_states(ref, case, img_dir)
    W = ref.llm.lm_head.weight.data
    rows = sorted({t for _, _, t in decisions})
    H = torch.stack([h for h, _, _ in decisions]).double()  # [P, C]
    Y = torch.zeros(len(rows), len(decisions), dtype=torch.float64)
    for p, (_, _, tgt) in enumerate(decisions):
        Y[rows.index(tgt), p] = TARGET_LOGIT
    pinv = torch.linalg.pinv(H.T)  # [P, C]
    for it in range(10):
        cur = W[rows].double()
        W[rows] = (cur + (Y - cur @ H.T) @ pinv).float().to(torch.bfloat16).float()
        margins = []
        for h, _, tgt in decisions:
            srt = torch.sort(W @ h, descending=True)
            margins.append(float(srt.values[0] - srt.values[1])
                           if int(srt.indices[0]) == tgt else -1.0)
        if min(margins) >= MARGIN:
            break
    assert min(margins) >= MARGIN, margins
    report = [(ref.tok.convert_ids_to_tokens(cur), ref.tok.convert_ids_to_tokens(tgt), mg)
              for (_, cur, tgt), mg in zip(decisions, margins)]
    print("  shaped lm_head: %d decisions, %d rows (max row norm %.1f), min margin %.2f" % (
        len(decisions), len(rows), float(W[rows].norm(dim=1).max()), min(margins)))
    return report


# ---------------------------------------------------------------------------------------------
# Golden runs
# ---------------------------------------------------------------------------------------------
def run_sam_goldens(ref, img_dir, gold_dir):
    files = {"chelsea.png": ("sam_chelsea", False, False),
             "rocket_portrait.jpg": ("sam_rocket_portrait", False, True),
             "chelsea_tiny.png": ("sam_chelsea_tiny", True, False)}
    for idx, image in enumerate(IMAGES):
        name, enc_taps, with_pe = files[image]
        image_np = ref.decode_image(os.path.join(img_dir, image))
        orig_hw = image_np.shape[:2]
        sam_px, resize_hw = ref.sam_preprocess(image_np)
        g = torch.Generator().manual_seed(4000 + idx)
        text_embeds = torch.randn((2, 1, OUT_DIM), generator=g)
        taps = {}
        with torch.no_grad():
            img_emb = ref.encode_image(sam_px, taps if enc_taps else None)
            low, iou, mlog, hs, _ = ref.decode_masks(img_emb, text_embeds, resize_hw, orig_hw)
            pe_stock = ref.sam.prompt_encoder.get_dense_pe()
            assert torch.equal(pe_stock, ref.dense_pe())
        t = {
            "orig_hw": torch.tensor(orig_hw, dtype=torch.int32),
            "resize_hw": torch.tensor(resize_hw, dtype=torch.int32),
            "sam_px_sample": sam_px[0, :, ::16, ::16],
            "text_embeds": text_embeds,
            "sam_img_emb": img_emb[0],
            "decoder_hs": hs,
            "iou_pred": iou,
            "lowres_logits": low,
            "mask": (mlog > 0).to(torch.uint8),
        }
        # Full-resolution logits only for the tiny image; elsewhere every 3rd row and column
        # (rows/cols 0, 3, 6, ...) keeps the repository small. The binary mask stays complete.
        put_mask_logits(t, mlog, image)
        if with_pe:
            t["dense_pe"] = ref.dense_pe()[0]
        if enc_taps:
            t.update(taps)  # enc.neck is not stored: it equals sam_img_emb
        pos = float((mlog > 0).float().mean())
        near = int((mlog.abs() < 1e-3).sum())
        meta = golden_meta(image=image, orig_hw=list(orig_hw), resize_hw=list(resize_hw),
                           sam_px_sha256=f32_sha256(sam_px[0]), checkpoint="tiny-lisa",
                           n_prompts=2, multimask_output="false",
                           mask_positive_fraction="%.4f" % pos,
                           **{"mask_logits_abs_lt_1e-3": near,
                              "mask_logits_abs_lt_1e-4": int((mlog.abs() < 1e-4).sum())},
                           enc_taps="yes" if enc_taps else "no",
                           dense_pe="yes" if with_pe else "in sam_rocket_portrait")
        print("  %s: orig %s resize %s, mask positive %.3f, |logit|<1e-3: %d" % (
            name, orig_hw, resize_hw, pos, near))
        save_golden(os.path.join(gold_dir, name + ".safetensors"), t, meta)


SUBSAMPLE = 3


def put_mask_logits(t, mlog, image):
    """Stores `mask_logits` [N,H0,W0] in full for the tiny image, else `mask_logits_s3` =
    mask_logits[:, ::3, ::3] (tests subsample the engine's full-resolution output the same way)."""
    if image == "chelsea_tiny.png":
        t["mask_logits"] = mlog
    else:
        t["mask_logits_s%d" % SUBSAMPLE] = mlog[:, ::SUBSAMPLE, ::SUBSAMPLE].contiguous()


def run_lisa_case(ref, case, img_dir):
    image_np = ref.decode_image(os.path.join(img_dir, case["image"]))
    orig_hw = image_np.shape[:2]
    clip_px = ref.clip_preprocess(image_np)
    sam_px, resize_hw = ref.sam_preprocess(image_np)
    prompt, pids = ref.prompt_ids(case["query"])
    with torch.no_grad():
        clip_l23 = ref.clip_features(ref.cast_input(clip_px))
        out_ids, prefill_logits, last_h, feats = ref.generate(
            pids, ref.cast_input(clip_px), case["max_new_tokens"])
        margins = ref.margins
        seg_hidden, pred_emb, seg_pos = ref.seg_embeddings(out_ids, last_h)
        img_emb = ref.encode_image(ref.cast_input(sam_px))
        low, iou, mlog, _, _ = ref.decode_masks(img_emb, pred_emb.unsqueeze(1), resize_hw,
                                                orig_hw)
    gen_ids = out_ids[len(pids):]
    # chat.py: drop -200, decode everything, strip newlines and double spaces.
    no_img = out_ids[out_ids != IMAGE_TOKEN_INDEX]
    text_output = ref.tok.decode(no_img, skip_special_tokens=False)
    text_output = text_output.replace("\n", "").replace("  ", " ")
    answer = ref.tok.decode(gen_ids, skip_special_tokens=False)
    answer = answer.replace("\n", "").replace("  ", " ")
    return dict(image_np=image_np, orig_hw=orig_hw, resize_hw=resize_hw, clip_px=clip_px,
                sam_px=sam_px, prompt=prompt, pids=pids, clip_l23=clip_l23, mm_proj=feats,
                out_ids=out_ids, gen_ids=gen_ids, prefill_logits=prefill_logits,
                seg_hidden=seg_hidden, pred_emb=pred_emb, seg_pos=seg_pos, img_emb=img_emb,
                low=low, iou=iou, mlog=mlog, text_output=text_output, answer=answer,
                margins=margins)


def run_lisa_goldens(ref, img_dir, gold_dir):
    for case in CASES:
        r = run_lisa_case(ref, case, img_dir)
        planned = [ref.tok.convert_tokens_to_ids(t) for t in case["answer"]]
        assert r["gen_ids"].tolist() == planned, (case["name"], r["gen_ids"].tolist(), planned)
        # KV-cache decode must agree with the no-cache reference path.
        with torch.no_grad():
            kv_ids, kv_states = ref.generate_kv(r["pids"], r["clip_px"], case["max_new_tokens"])
        assert torch.equal(kv_ids, r["out_ids"]), case["name"]
        seg_steps = [j for j, t in enumerate(r["gen_ids"].tolist()) if t == ref.seg_token_idx]
        if seg_steps:
            kv_diff = float((kv_states[seg_steps] - r["seg_hidden"]).abs().max())
            assert kv_diff < 1e-4, kv_diff
        else:
            kv_diff = 0.0
        n = r["seg_hidden"].shape[0]
        pos = "%.4f" % float((r["mlog"] > 0).float().mean()) if n else "n/a"
        t = {
            "input_ids": r["pids"],
            "clip_l23": r["clip_l23"][0],
            "mm_proj": r["mm_proj"][0],
            "prefill_logits_last": r["prefill_logits"],
            "gen_ids": r["gen_ids"],
            "seg_hidden": r["seg_hidden"],
            "pred_emb": r["pred_emb"],
            # sam_img_emb is not stored: same image, same SAM weights -> sam_<image>.safetensors
            "lowres_logits": r["low"],
            "mask": (r["mlog"] > 0).to(torch.uint8),
            "orig_hw": torch.tensor(r["orig_hw"], dtype=torch.int32),
            "resize_hw": torch.tensor(r["resize_hw"], dtype=torch.int32),
        }
        put_mask_logits(t, r["mlog"], case["image"])
        if case["clip_px"]:
            t["clip_px"] = r["clip_px"][0]
        meta = golden_meta(
            image=case["image"], query=case["query"], prompt=r["prompt"],
            max_new_tokens=case["max_new_tokens"], text_output=r["text_output"],
            answer=r["answer"], seg_token_id=ref.seg_token_idx, n_seg=n,
            stop="eos" if int(r["gen_ids"][-1]) == ref.tok.eos_token_id else "max_new_tokens",
            seg_positions=r["seg_pos"].tolist(), image_token_index=IMAGE_TOKEN_INDEX,
            clip_px_sha256=f32_sha256(r["clip_px"][0]), sam_px_sha256=f32_sha256(r["sam_px"][0]),
            orig_hw=list(r["orig_hw"]), resize_hw=list(r["resize_hw"]), checkpoint="tiny-lisa",
            clip_checkpoint="tiny-clip", precision="fp32",
            mask_positive_fraction=pos, kv_cache_max_abs_diff="%.3g" % kv_diff,
            **{"mask_logits_abs_lt_1e-3": int((r["mlog"].abs() < 1e-3).sum()),
               "mask_logits_abs_lt_1e-4": int((r["mlog"].abs() < 1e-4).sum())},
            answer_margins=[round(m, 3) for m in r["margins"]])
        print("  lisa %s: answer %r, N=%d, T=%d, positive %s" % (
            case["name"], r["answer"], n, len(r["pids"]), pos))
        save_golden(os.path.join(gold_dir, "lisa_%s.safetensors" % case["name"]), t, meta)


def run_bf16_golden(lisa_dir, clip_dir, img_dir, gold_dir, fp32_ref):
    """One case under emulated chat.py --precision bf16 (see Reference); ids and mask only."""
    ref = Reference(lisa_dir, clip_dir, emulate_bf16=True)
    case = [c for c in CASES if c["name"] == BF16_CASE][0]
    r = run_lisa_case(ref, case, img_dir)
    f = run_lisa_case(fp32_ref, case, img_dir)
    m16, m32 = r["mlog"] > 0, f["mlog"] > 0
    inter = float((m16 & m32).sum())
    union = float((m16 | m32).sum())
    iou = inter / union if union else 1.0
    same = torch.equal(r["gen_ids"], f["gen_ids"])
    assert same, (r["gen_ids"], f["gen_ids"])
    t = {"input_ids": r["pids"], "gen_ids": r["gen_ids"], "mask": m16.to(torch.uint8),
         "orig_hw": torch.tensor(r["orig_hw"], dtype=torch.int32)}
    meta = golden_meta(image=case["image"], query=case["query"], prompt=r["prompt"],
                       max_new_tokens=case["max_new_tokens"], answer=r["answer"],
                       text_output=r["text_output"], seg_token_id=ref.seg_token_idx,
                       n_seg=int(r["seg_hidden"].shape[0]),
                       precision="bf16-emulated (BF16 weights, inputs and leaf-module outputs; "
                                 "f32 accumulation; f32 CPU)",
                       mask_iou_vs_fp32="%.5f" % iou, same_ids_as_fp32=str(same).lower(),
                       pred_emb_rel_err_vs_fp32="%.3g" % float(
                           (r["pred_emb"] - f["pred_emb"]).norm() / f["pred_emb"].norm()),
                       sam_img_emb_rel_err_vs_fp32="%.3g" % float(
                           (r["img_emb"] - f["img_emb"]).norm() / f["img_emb"].norm()))
    print("  bf16-emulated %s: answer %r, mask IoU vs fp32 %.4f" % (case["name"], r["answer"],
                                                                     iou))
    save_golden(os.path.join(gold_dir, "lisa_bf16_%s.safetensors" % case["name"]), t, meta)


def run_gqa_golden(gold_dir):
    """LLM-only GQA check: a plain LlamaForCausalLM (4 heads, 2 KV heads, vocab 512) in the HF
    layout (config.json + model.safetensors, BF16) and its fp32 prefill logits and greedy ids
    for a fixed id sequence."""
    d = os.path.join(gold_dir, "llm_gqa")
    os.makedirs(d, exist_ok=True)
    cfg = llama_config(kv_heads=2, vocab=512, use_cache=True)
    llm = build_llm(cfg, seed=5005, lm_head_std=0.5)
    bf16_round_(llm)
    cj = cfg.to_dict()
    cj.update({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
               "transformers_version": "4.31.0"})
    write_json(os.path.join(d, "config.json"), cj)
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in llm.state_dict().items()}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    print("  wrote %-45s %9d bytes" % (os.path.relpath(os.path.join(d, "model.safetensors")),
                                       os.path.getsize(os.path.join(d, "model.safetensors"))))
    ref = LlamaForCausalLM(cfg)
    ref.load_state_dict({k: v.float() for k, v in read_safetensors(
        os.path.join(d, "model.safetensors")).items()})
    ref.eval()
    g = torch.Generator().manual_seed(5006)
    ids = torch.cat([torch.tensor([1]), torch.randint(3, 512, (23,), generator=g)])
    with torch.no_grad():
        logits = ref(ids.unsqueeze(0), use_cache=False).logits[0].float()
        seq, margins = ids.clone(), []
        for _ in range(8):  # no-cache greedy, as the LISA reference does
            last = ref(seq.unsqueeze(0), use_cache=False).logits[0, -1]
            top2 = torch.topk(last, 2).values
            margins.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(last))
            seq = torch.cat([seq, torch.tensor([nxt])])
        cached = ref.generate(ids.unsqueeze(0), max_new_tokens=8, do_sample=False, num_beams=1,
                              eos_token_id=None, pad_token_id=0)[0]
    assert torch.equal(cached, seq)
    srt = torch.sort(logits, dim=-1, descending=True).values
    t = {"input_ids": ids, "prefill_logits": logits, "gen_ids": seq[len(ids):]}
    meta = golden_meta(checkpoint="golden/llm_gqa", max_new_tokens=8, eos="none",
                       num_attention_heads=4, num_key_value_heads=2,
                       min_top2_margin_prefill="%.4f" % float((srt[:, 0] - srt[:, 1]).min()),
                       greedy_margins=[round(m, 4) for m in margins])
    assert min(margins) > 0.02, margins
    save_golden(os.path.join(gold_dir, "llm_gqa.safetensors"), t, meta)


def write_stock_names(ref, gold_dir):
    sd = {k: v.float().contiguous() for k, v in ref.sam.state_dict().items()}
    save_golden(os.path.join(gold_dir, "sam_stock_names.safetensors"), sd,
                golden_meta(what="tiny-lisa model.visual_model.* under stock segment-anything "
                                 "names (image_encoder.*, prompt_encoder.*, mask_decoder.*)"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="tests/data")
    ap.add_argument("--skip-bf16", action="store_true")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    img_dir = os.path.join(HERE, "..", "data", "images")
    lisa_dir = os.path.join(out, "tiny-lisa")
    clip_dir = os.path.join(out, "tiny-clip")
    gold_dir = os.path.join(out, "golden")
    tmp_dir = os.path.join(out, ".gen-golden-tmp")
    for d in (lisa_dir, clip_dir, gold_dir):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    os.makedirs(tmp_dir, exist_ok=True)
    torch.manual_seed(0)

    print("tiny-clip")
    write_tiny_clip(clip_dir, build_clip_model())

    print("tiny-lisa")
    llm = build_llm(llama_config(), seed=6006)
    bf16_round_(llm)
    extras = build_extras()
    bf16_round_(extras.mm_projector)
    sam = build_sam_weights()
    write_tokenizer(lisa_dir, tmp_dir)
    write_json(os.path.join(lisa_dir, "config.json"), lisa_config_json())
    write_json(os.path.join(lisa_dir, "generation_config.json"), generation_config_json())
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    write_sharded(lisa_dir, lisa_state_dict(llm, extras, sam), shards)

    # Shape lm_head on the model as loaded back from the files, then rewrite the shards.
    ref = Reference(lisa_dir, clip_dir)
    report = shape_lm_head(ref, img_dir)
    llm.lm_head.weight.data.copy_(ref.llm.lm_head.weight.data)
    write_sharded(lisa_dir, lisa_state_dict(llm, extras, sam), shards)
    shutil.rmtree(tmp_dir)

    print("golden")
    ref = Reference(lisa_dir, clip_dir)
    run_sam_goldens(ref, img_dir, gold_dir)
    write_stock_names(ref, gold_dir)
    run_lisa_goldens(ref, img_dir, gold_dir)
    if not args.skip_bf16:
        run_bf16_golden(lisa_dir, clip_dir, img_dir, gold_dir, ref)
    run_gqa_golden(gold_dir)
    print("shaped decisions (current -> next, margin):")
    for cur, tgt, mg in report:
        print("    %-8s -> %-8s %.2f" % (cur, tgt, mg))


if __name__ == "__main__":
    main()
