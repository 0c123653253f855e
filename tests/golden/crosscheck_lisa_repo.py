#!/usr/bin/python3
"""Cross-check: run the REAL dvlab-research/LISA code (chat.py's path: LISAForCausalLM
.from_pretrained + evaluate) on tests/data/tiny-lisa + tiny-clip, fp32 on the CPU, and compare
with the committed lisa_*.safetensors goldens made by gen_golden.py's own glue.

Not needed by any test; it only shows that gen_golden.py's re-implemented LISA glue equals the
reference code.  Needs a checkout of dvlab-research/LISA (commit 3cb2d43):

    /usr/bin/python3 tests/golden/crosscheck_lisa_repo.py --lisa-repo /path/to/LISA \
        --data tests/data

CPU shims (none changes numerics): Tensor.cuda() returns the tensor itself; einops (imported
only by the unused MPT model code) is stubbed; build_sam_vit_h builds the tiny SAM with LISA's
own vendored segment_anything classes instead of ViT-H; "openai/clip-vit-large-patch14" is a
symlink to tiny-clip in a temporary working directory, so config.vision_tower resolves to it;
low_cpu_mem_usage is dropped (accelerate is not installed; it only affects loading).
"""

import argparse
import os
import sys
import tempfile
import types
from functools import partial


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lisa-repo", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    repo = os.path.abspath(args.lisa_repo)

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.modules.setdefault("einops", types.SimpleNamespace(rearrange=None))
    sys.path.insert(0, repo)
    work = tempfile.mkdtemp(prefix="lisa-xcheck-")
    os.makedirs(os.path.join(work, "openai"))
    os.symlink(os.path.join(data, "tiny-clip"), os.path.join(work, "openai",
                                                            "clip-vit-large-patch14"))
    os.chdir(work)

    import cv2
    from transformers import AutoTokenizer, CLIPImageProcessor

    import model.LISA as lisa_mod
    from model.llava import conversation as conversation_lib
    from model.llava.mm_utils import tokenizer_image_token
    from model.segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,
                                                 Sam, TwoWayTransformer)
    from model.segment_anything.utils.transforms import ResizeLongestSide
    from utils.utils import (DEFAULT_IM_END_TOKEN, DEFAULT_IM_START_TOKEN,
                             DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_golden as gg  # noqa: E402  (dims and cases)
    sys.argv = sys.argv[:1]
    chat = __import__("chat")  # LISA's chat.py: its preprocess()

    def build_tiny_sam(checkpoint=None):
        s = gg.SAM
        emb = s["img"] // s["patch"]
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=s["depth"], embed_dim=s["embed"], img_size=s["img"],
                mlp_ratio=s["mlp_ratio"], norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                num_heads=s["heads"], patch_size=s["patch"], qkv_bias=True, use_rel_pos=True,
                global_attn_indexes=s["global_attn"], window_size=s["window"],
                out_chans=s["out"]),
            prompt_encoder=PromptEncoder(
                embed_dim=s["out"], image_embedding_size=(emb, emb),
                input_image_size=(s["img"], s["img"]), mask_in_chans=s["mask_in_chans"]),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=s["dec_depth"], embedding_dim=s["out"],
                                              mlp_dim=s["dec_mlp"], num_heads=s["dec_heads"]),
                transformer_dim=s["out"], iou_head_depth=3, iou_head_hidden_dim=s["iou_hidden"]),
            pixel_mean=gg.PIXEL_MEAN, pixel_std=gg.PIXEL_STD)
        sam.eval()
        return sam

    lisa_mod.build_sam_vit_h = build_tiny_sam

    # accelerate (needed by low_cpu_mem_usage=True) is not part of the reference stack; the
    # flag only changes how memory is allocated while loading.
    import model.llava.model.multimodal_encoder.clip_encoder as clip_encoder
    base_cls = clip_encoder.CLIPVisionModel

    class CLIPVisionModelNoAccelerate(base_cls):
        @classmethod
        def from_pretrained(cls, *a, **k):
            k.pop("low_cpu_mem_usage", None)
            return base_cls.from_pretrained(*a, **k)

    clip_encoder.CLIPVisionModel = CLIPVisionModelNoAccelerate

    version = os.path.join(data, "tiny-lisa")
    tokenizer = AutoTokenizer.from_pretrained(version, cache_dir=None, model_max_length=512,
                                              padding_side="right", use_fast=False)
    tokenizer.pad_token = tokenizer.unk_token
    seg_token_idx = tokenizer("[SEG]", add_special_tokens=False).input_ids[0]
    model = lisa_mod.LISAForCausalLM.from_pretrained(
        version, low_cpu_mem_usage=False, vision_tower="openai/clip-vit-large-patch14",
        seg_token_idx=seg_token_idx, torch_dtype=torch.float32)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.get_model().initialize_vision_modules(model.get_model().config)
    model.get_model().get_vision_tower().to(dtype=torch.float32)
    model = model.float()
    clip_image_processor = CLIPImageProcessor.from_pretrained(model.config.vision_tower)
    transform = ResizeLongestSide(1024)
    model.eval()

    ok = True
    for case in gg.CASES:
        gold = load_file(os.path.join(data, "golden", "lisa_%s.safetensors" % case["name"]))
        conv = conversation_lib.conv_templates["llava_v1"].copy()
        conv.messages = []
        prompt = DEFAULT_IMAGE_TOKEN + "\n" + case["query"]
        prompt = prompt.replace(DEFAULT_IMAGE_TOKEN,
                                DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN)
        conv.append_message(conv.roles[0], prompt)
        conv.append_message(conv.roles[1], "")
        prompt = conv.get_prompt()
        image_np = cv2.imread(os.path.join(gg.HERE, "..", "data", "images", case["image"]))
        image_np = cv2.cvtColor(image_np, cv2.COLOR_BGR2RGB)
        original_size_list = [image_np.shape[:2]]
        image_clip = clip_image_processor.preprocess(image_np, return_tensors="pt")[
            "pixel_values"][0].unsqueeze(0).float()
        image = transform.apply_image(image_np)
        resize_list = [image.shape[:2]]
        image = chat.preprocess(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        image = image.unsqueeze(0).float()
        input_ids = tokenizer_image_token(prompt, tokenizer, return_tensors="pt").unsqueeze(0)
        with torch.no_grad():
            output_ids, pred_masks = model.evaluate(
                image_clip, image, input_ids, resize_list, original_size_list,
                max_new_tokens=case["max_new_tokens"], tokenizer=tokenizer)
        out = output_ids[0][output_ids[0] != IMAGE_TOKEN_INDEX]
        text_output = tokenizer.decode(out, skip_special_tokens=False)
        text_output = text_output.replace("\n", "").replace("  ", " ")
        gen_ids = output_ids[0, input_ids.shape[1]:]
        logits = pred_masks[0]
        same_ids = torch.equal(input_ids[0], gold["input_ids"]) and \
            torch.equal(gen_ids, gold["gen_ids"])
        same_shape = tuple(logits.shape) == tuple(gold["mask_logits"].shape)
        diff = float((logits - gold["mask_logits"]).abs().max()) if logits.numel() and \
            same_shape else 0.0
        mism = int(((logits > 0).to(torch.uint8) != gold["mask"]).sum()) if same_shape else -1
        with safe_open(os.path.join(data, "golden", "lisa_%s.safetensors" % case["name"]),
                       framework="pt") as f:
            same_text = f.metadata()["text_output"] == text_output
        good = same_ids and same_shape and diff < 1e-4 and mism == 0 and same_text
        ok &= good
        print("%-16s ids %s, masks %s, max |logit diff| %.2e, mask mismatches %d, "
              "text %r (%s)  %s" % (
            case["name"], "same" if same_ids else "DIFFER", tuple(logits.shape), diff, mism,
            text_output[-40:], "same" if same_text else "DIFFERS", "OK" if good else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
