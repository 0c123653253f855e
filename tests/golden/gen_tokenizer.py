#!/usr/bin/python3
"""Reference vectors for the C tokenizer (models/tokenizer.c), produced by the real stack.

Run with Debian's system Python (python3-sentencepiece 0.1.97) plus PyPI transformers==4.31.0:

    /usr/bin/python3 tests/golden/gen_tokenizer.py

Writes
  tests/data/tokenizer/{lisa7b,lisa13b,nonlegacy,minimal}/*.json   checkpoint tokenizer files
  tests/data/tokenizer/lisa-vectors.json                           the vectors

Each checkpoint directory holds only the JSON files; the tests (and this script) pair it with the
shared tests/data/tokenizer/llama-spm.model, so the 500 KB model is stored once. This script copies
the model and the JSON files into a temporary directory and loads it exactly as LISA's chat.py
does: AutoTokenizer.from_pretrained(dir, use_fast=False, padding_side="right",
model_max_length=512), then tokenizer.pad_token = tokenizer.unk_token, then
seg_token_idx = tokenizer("[SEG]", add_special_tokens=False).input_ids[0]. Added tokens come from
added_tokens.json, as in the released LISA checkpoints (train_ds.py added them with
tokenizer.add_tokens before save_pretrained).

Nothing here reimplements tokenization: ids come from the transformers slow LlamaTokenizer over the
sentencepiece library. The two LISA helpers that are not a library (tokenizer_image_token from
model/llava/mm_utils.py and the llava_v1 prompt of model/llava/conversation.py + chat.py) are
copied verbatim below, with their source.
"""
import json
import os
import random
import shutil
import struct
import sys
import tempfile

import sentencepiece
import transformers
from transformers import AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
MODEL = os.path.join(DATA, "llama-spm.model")

assert transformers.__version__ == "4.31.0", transformers.__version__
assert sentencepiece.__version__ in ("0.1.97", "0.1.99"), sentencepiece.__version__

# ---- LISA code, verbatim ----------------------------------------------------------------------
# dvlab-research/LISA model/llava/constants.py
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
DEFAULT_IM_START_TOKEN = "<im_start>"
DEFAULT_IM_END_TOKEN = "<im_end>"


# dvlab-research/LISA model/llava/mm_utils.py (return_tensors dropped)
def tokenizer_image_token(prompt, tokenizer, image_token_index=IMAGE_TOKEN_INDEX):
    prompt_chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]

    def insert_separator(X, sep):
        return [ele for sublist in zip(X, [sep] * len(X)) for ele in sublist][:-1]

    input_ids = []
    offset = 0
    if (
        len(prompt_chunks) > 0
        and len(prompt_chunks[0]) > 0
        and prompt_chunks[0][0] == tokenizer.bos_token_id
    ):
        offset = 1
        input_ids.append(prompt_chunks[0][0])

    for x in insert_separator(prompt_chunks, [image_token_index] * (offset + 1)):
        input_ids.extend(x[offset:])
    return input_ids


# model/llava/conversation.py conv_llava_v1 + Conversation.get_prompt (SeparatorStyle.TWO branch)
LLAVA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def llava_v1_prompt(query, use_mm_start_end=True):
    # chat.py main loop
    prompt = DEFAULT_IMAGE_TOKEN + "\n" + query
    if use_mm_start_end:
        replace_token = DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN
        prompt = prompt.replace(DEFAULT_IMAGE_TOKEN, replace_token)
    messages = [["USER", prompt], ["ASSISTANT", ""]]
    seps = [" ", "</s>"]
    ret = LLAVA_V1_SYSTEM + seps[0]
    for i, (role, message) in enumerate(messages):
        if message:
            ret += role + ": " + message + seps[i % 2]
        else:
            ret += role + ":"
    return ret


def chat_cleanup(text):
    # chat.py: text_output.replace("\n", "").replace("  ", " ")
    return text.replace("\n", "").replace("  ", " ")


# ---- checkpoint tokenizer directories ---------------------------------------------------------
def added_token_dict(content, typed, lstrip=False, rstrip=False):
    d = {"content": content, "lstrip": lstrip, "normalized": True, "rstrip": rstrip, "single_word": False}
    if typed:
        d = {"__type": "AddedToken", **d}
    return d


CONFIGS = {
    # like xinlai/LISA-7B-v1: <im_patch> from the LLaVA base, [SEG] last; AddedToken dicts
    "lisa7b": {
        "added_tokens.json": {"<im_patch>": 32000, "<im_start>": 32001, "<im_end>": 32002, "[SEG]": 32003},
        "special_tokens_map.json": {
            "bos_token": added_token_dict("<s>", False),
            "eos_token": added_token_dict("</s>", False),
            "pad_token": "<unk>",
            "unk_token": added_token_dict("<unk>", False),
        },
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": added_token_dict("<s>", True),
            "clean_up_tokenization_spaces": False,
            "eos_token": added_token_dict("</s>", True),
            "model_max_length": 512,
            "pad_token": None,
            "padding_side": "right",
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": added_token_dict("<unk>", True),
        },
    },
    # like xinlai/LISA-13B-llama2-v1: [SEG] first; special tokens as plain strings (then 4.31
    # strips whitespace around <s>, </s>, <unk> too)
    "lisa13b": {
        "added_tokens.json": {"[SEG]": 32000, "<im_start>": 32001, "<im_end>": 32002},
        "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>"},
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": "<s>",
            "clean_up_tokenization_spaces": False,
            "eos_token": "</s>",
            "model_max_length": 2048,
            "pad_token": None,
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": "<unk>",
        },
    },
    # legacy=False (4.31's non-legacy path), and an eos AddedToken that strips both neighbours
    "nonlegacy": {
        "added_tokens.json": {"[SEG]": 32000, "<im_start>": 32001, "<im_end>": 32002},
        "special_tokens_map.json": {
            "bos_token": added_token_dict("<s>", False),
            "eos_token": added_token_dict("</s>", False, lstrip=True, rstrip=True),
            "pad_token": "<unk>",
            "unk_token": added_token_dict("<unk>", False),
        },
        "tokenizer_config.json": {
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": False,
            "model_max_length": 512,
            "tokenizer_class": "LlamaTokenizer",
        },
    },
    # only added_tokens.json: every other setting is a LlamaTokenizer default
    "minimal": {
        "added_tokens.json": {"[SEG]": 32000},
    },
}


def write_configs():
    for name, files in CONFIGS.items():
        d = os.path.join(DATA, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".json"):
                os.remove(os.path.join(d, f))
        for fname, content in files.items():
            with open(os.path.join(d, fname), "w", encoding="utf-8") as fh:
                json.dump(content, fh, indent=2, ensure_ascii=False)
                fh.write("\n")


def load_like_chat_py(name, tmp):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    shutil.copy(MODEL, os.path.join(d, "tokenizer.model"))
    for fname in CONFIGS[name]:
        shutil.copy(os.path.join(DATA, name, fname), os.path.join(d, fname))
    if "tokenizer_config.json" not in CONFIGS[name]:
        # AutoTokenizer then picks the class from config.json (a checkpoint always has one)
        with open(os.path.join(d, "config.json"), "w") as fh:
            json.dump({"model_type": "llama"}, fh)
    tok = AutoTokenizer.from_pretrained(d, use_fast=False, padding_side="right", model_max_length=512)
    assert type(tok).__name__ == "LlamaTokenizer", type(tok)
    assert type(tok.sp_model).__module__.startswith("sentencepiece"), type(tok.sp_model)
    tok.pad_token = tok.unk_token  # chat.py
    return tok


# ---- inputs -----------------------------------------------------------------------------------
QUERIES = [
    "Can you segment the cat in this image?",
    "Please segment the person on the left in this image.",
    "What is the food with the most Vitamin C in this image? Please output segmentation mask.",
    "Who was the president of the US in this image? Please output segmentation mask and explain why.",
    "",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\nhere",
    "请分割图中的猫。",
    "Сегментируй собаку 🐕 на фото, пожалуйста.",
    "a <image> inside the query",
    "[SEG] in the query",
    "ends with a newline\n",
]

FIXED_TEXTS = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    " \n ",
    "Hello world",
    " Hello world",
    "Hello  world",
    "Hello   world",
    "Hello\tworld",
    "Hello\nworld",
    "Hello\r\nworld",
    "It is [SEG].",
    "Sure, [SEG].",
    "Sure, it is [SEG].",
    "Sure, the segmentation result is [SEG].",
    "[SEG].",
    "[SEG]",
    "[SEG] [SEG]",
    "[SEG][SEG]",
    "Sure, [SEG] and [SEG].",
    "The left one is [SEG] and the right one is [SEG].",
    "Sure, the segmentation result is [SEG]. It is a cat because it has whiskers.",
    "No object matches the description.",
    "<im_start><image><im_end>",
    "<im_start><im_end>",
    " <im_start> \n <im_end> \n",
    "<im_patch><im_patch><im_patch>",
    "<im_end>\nWhat is this? ASSISTANT:",
    "a</s>\nb",
    "a </s> b",
    "<s>",
    " <s> ",
    "<s><s></s>",
    "<unk>",
    "x<unk>y",
    "[SE",
    "[SEG",
    "SEG]",
    "<im_",
    "<im_st",
    "[[SEG]]",
    "<<im_end>>",
    "</s>[SEG]</s>",
    "▁",
    "▁▁",
    "▁Hello",
    "a▁b",
    "Hello ▁ world",
    "2024",
    "1234567890",
    "3.14159",
    "v1.2.3-rc4",
    "生活的真谛是",
    "请分割图中最大的物体。",
    "東京は日本の首都です。",
    "한국어 텍스트입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी में लिखा है",
    "ภาษาไทยไม่มีช่องว่าง",
    "Ελληνικά γράμματα",
    "Привет, мир!",
    "Ünïcödé àccênts ñ ç ø å",
    "e\u0301 combining",
    "\u00a0nbsp\u00a0",
    "ideographic\u3000space",
    "zero\u200bwidth",
    "\u2028line sep\u2029",
    "😀",
    "😀😃😄",
    "👨‍👩‍👧‍👦 family",
    "👍🏽 thumbs",
    "🇩🇪 flag",
    "emoji[SEG]🙂",
    "\U0010FFFF private \U000F0000",
    "\x00nul\x00",
    "\x01\x02\x1f control",
    "\x7f del",
    "tab\tin [SEG]\tthe middle",
    "newline\n[SEG]\nsurrounded",
    "spaces    [SEG]    around",
    "\u3000[SEG]\u3000",
    "\u00a0[SEG]\u00a0",
    "\u2581[SEG]\u2581",
    "\u200b[SEG]\u200b",
    "Ends with spaces   ",
    "   Starts with spaces",
    "\t\tindented\n\t\tcode",
    "def f(x):\n    return x * 2\n",
    '{"json": [1, 2, 3], "s": "x"}',
    "https://github.com/dvlab-research/LISA",
    "ALL CAPS SHOUTING",
    "Mixed CASE wOrDs",
    "a" * 100,
    " " * 50,
    "\n" * 10,
    "ab" * 40,
    "The quick brown fox jumps over the lazy dog. " * 5,
]

FRAGMENTS = [
    "a", "b", "the", "The", " ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", ".", ",", "!", "?", "'", '"', "-",
    "0", "1", "42", "2024", "3.5", "cat", "segment", "image", "person", "Sure", "it", "is", "ASSISTANT:",
    "USER:", "[SEG]", "[SEG]", "<im_start>", "<im_end>", "<im_patch>", "<image>", "<s>", "</s>", "<unk>",
    "[SE", "G]", "<im_", "</", "<", ">", "[", "]", "▁", "▁▁", "\u00a0", "\u3000", "\u200b", "\u2028", "\x0b",
    "\x0c", "\x1c", "\x85", "生", "活", "的", "猫", "分割", "日本", "한", "ا", "ม", "ि", "й", "é", "e\u0301",
    "😀", "🐈", "👍🏽", "👨‍👩‍👧", "🇩🇪", "\U0001F9E0", "\U00010348", "\ufffd", "\ufeff", "\U0010FFFF", "ß",
    "ﬁ", "Ⅻ", "①", "½", "™", "©",
]


def random_texts(rng, n):
    out = []
    for _ in range(n):
        k = rng.randint(0, 14)
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(k)))
    return out


def random_id_seqs(rng, tok, n):
    vocab = len(tok)
    out = []
    for _ in range(n):
        k = rng.randint(0, 16)
        seq = []
        for _ in range(k):
            r = rng.random()
            if r < 0.25:
                seq.append(rng.randint(3, 258))  # byte pieces: valid and invalid UTF-8 runs
            elif r < 0.35:
                seq.append(rng.choice([0, 1, 2]))  # <unk> <s> </s>
            elif r < 0.45:
                seq.append(rng.randint(32000, vocab - 1))  # added tokens
            elif r < 0.55:
                seq.append(rng.choice([29871, 259, 1678, 29889, 869, 13, 12]))  # "▁", "▁▁", ...
            else:
                seq.append(rng.randint(259, 31999))
        out.append(seq)
    return out


def utf8_byte_seqs():
    """Byte-piece runs around UTF-8 edge cases (ids 3 + byte)."""
    seqs = []
    for bs in [
        b"\xe2\x96\x81", b"\xf0\x9f\x98\x80", b"\xf0\x9f\x98", b"\xe2\x96", b"\xc3", b"\x80", b"\xff", b"\xc0\xaf",
        b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xef\xbf\xbd", b"\xc3\xa9\xe2",
        b"a\xe2\x96\x81b", b"\xf0\x9f\x98\x80\xf0\x9f",
    ]:
        ids = [3 + b for b in bs]
        seqs.append(ids)
        seqs.append([29871] + ids + [15043])  # "▁" bytes "▁Hello"
        seqs.append(ids + [29871, 15043])
    return seqs


# ---- tiny hand-built SentencePiece models (normalizer/trainer variants the LLaMA model lacks) ----
# A minimal protobuf writer: the model files are then loaded by the real sentencepiece library,
# which is the reference for how they are read (defaults, unknown fields, field order).
def pb_varint(x):
    x &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_key(field, wire):
    return pb_varint((field << 3) | wire)


def pb_int(field, v):
    return pb_key(field, 0) + pb_varint(v)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return pb_key(field, 2) + pb_varint(len(b)) + b


def pb_float(field, x):
    return pb_key(field, 5) + struct.pack("<f", x)


def pb_fixed64(field, x):
    return pb_key(field, 1) + struct.pack("<Q", x)


NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def pb_piece(piece, score=None, type_=None):
    m = pb_bytes(1, piece)
    if score is not None:
        m += pb_float(2, score)
    if type_ is not None:
        m += pb_int(3, type_)
    return pb_bytes(1, m)


def tiny_model(pieces, trainer, normalizer, shuffle_unknown=False):
    body = b""
    if shuffle_unknown:
        # normalizer first, unknown fields of every wire type, pieces, trainer last
        body += pb_bytes(3, normalizer) + pb_int(100, 7) + pb_fixed64(101, 0x1122334455667788)
        body += pb_key(102, 5) + b"\x01\x02\x03\x04" + pb_bytes(103, b"\xff\x00unknown")
        body += b"".join(pb_piece(*p) for p in pieces) + pb_bytes(2, trainer)
    else:
        body += b"".join(pb_piece(*p) for p in pieces) + pb_bytes(2, trainer) + pb_bytes(3, normalizer)
    return body


def tiny_models():
    meta = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
    ties = [("\u2581", -5.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("ab", -2.0), ("bc", -2.0), ("abc", -3.0),
            ("\u2581a", -4.0), ("\u2581b", -4.0), ("aa", -2.0), ("aaa", -2.0), ("\u2581\u2581", -6.0), ("ca", -2.0),
            ("\u2581\u2581\u2581", -6.0)]
    models = {}
    # no byte fallback, proto2 defaults for the normalizer (remove_extra_whitespaces = true),
    # fields out of order with unknown fields in between, pieces without `type` (NORMAL)
    models["tiny-nofallback"] = tiny_model(
        meta + [(p, sc, None) for p, sc in ties],
        pb_int(3, 2) + pb_int(4, 17) + pb_int(999, 5) + pb_bytes(1, "input.txt"),
        pb_bytes(1, "identity") + pb_int(200, 1),
        shuffle_unknown=True,
    )
    # no dummy prefix, spaces kept as " " (escape_whitespaces false), no whitespace removal
    models["tiny-raw"] = tiny_model(
        meta + [(" ", -5.0, None), ("a", -1.0, None), ("b", -1.0, None), (" a", -2.0, None), ("ab", -2.0, None),
                ("  ", -3.0, None), ("ba", -2.0, None)],
        pb_int(3, 2),
        pb_int(3, 0) + pb_int(4, 0) + pb_int(5, 0),
    )
    # byte fallback, an unk piece not spelled "<unk>" and a custom unk_surface (decode shows it),
    # negative ids written as 10-byte varints, byte_fallback as a two-byte key (field 35)
    byte_pieces = [("<0x%02X>" % b, 0.0, BYTE) for b in range(256)]
    models["tiny-bytes"] = tiny_model(
        [("<UNK>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
        + byte_pieces
        + [("\u2581", -3.0, None), ("a", -1.0, None), ("b", -1.0, None), ("\u2581a", -2.0, None), ("ab", -2.0, None),
           ("\u00e9", -1.0, None)],
        pb_int(3, 2) + pb_int(35, 1) + pb_int(43, -1) + pb_bytes(44, " <?> "),
        pb_bytes(1, "identity") + pb_int(4, 0),
    )
    return models


TINY_TEXTS = [
    "", " ", "   ", "a", "abc", "bca", "cabc", "aaaa", "aaaaa", "abab", "ababab", "bcbc", " a b ", "  a   b  ",
    "a  b", "x", "xyz", "axyb", "xaxbx", "a\u00e9b", "\u00e9", "\u00e9\u00e9x", "a\tb", "\u2581a", "ab\u2581",
    "a\u2581\u2581b", "\u2581\u2581", "😀", "a😀b", "\u00a0a", "ba ab  ba", "a b c", "   leading", "trailing   ",
]


def tiny_vectors(rng):
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in tiny_models().items():
            path = os.path.join(DATA, "tiny", name + ".model")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(blob)
            sp = sentencepiece.SentencePieceProcessor(model_file=path)
            d = os.path.join(tmp, name)
            os.makedirs(d)
            shutil.copy(path, os.path.join(d, "tokenizer.model"))
            with open(os.path.join(d, "config.json"), "w") as fh:
                json.dump({"model_type": "llama"}, fh)
            tok = AutoTokenizer.from_pretrained(d, use_fast=False)
            n = sp.get_piece_size()
            pieces = [
                {
                    "piece": sp.id_to_piece(i),
                    "score": sp.get_score(i),
                    "type": "UNKNOWN" if sp.is_unknown(i) else "CONTROL" if sp.is_control(i) else "BYTE" if sp.is_byte(i)
                    else "UNUSED" if sp.is_unused(i) else "NORMAL",
                }
                for i in range(n)
            ]
            enc = []
            for text in TINY_TEXTS:
                hf = tok(text, add_special_tokens=False).input_ids
                spi = sp.encode(text)
                assert hf == spi, (name, text, hf, spi)  # no special-token text: the two agree
                enc.append({"text": text, "ids": hf, "decoded": tok.decode(hf), "sp_decoded": sp.decode(spi)})
            dec = []
            for _ in range(60):
                ids = [rng.randrange(len(tok)) for _ in range(rng.randint(0, 10))]
                for skip in (False, True):
                    dec.append(nul_safe({"ids": ids, "skip_special_tokens": skip, "text": tok.decode(ids, skip_special_tokens=skip)}, "text"))
            out[name] = {
                "model": "tests/data/tokenizer/tiny/" + name + ".model",
                "n_pieces": n,
                "vocab_size": len(tok),
                "pieces": pieces,
                "encode": enc,
                "decode": dec,
            }
            print(f"{name}: {n} pieces, vocab {len(tok)}, {len(enc)} encode, {len(dec)} decode vectors")
    return out


def nul_safe(d, *keys):
    """cJSON ends strings at NUL: strings holding one also get a hex copy (key + "_hex")."""
    for k in keys:
        if isinstance(d.get(k), str) and "\x00" in d[k]:
            d[k + "_hex"] = d[k].encode("utf-8").hex()
    return d


def main():
    write_configs()
    rng = random.Random(20240611)
    result = {
        "generated_with": {
            "script": "tests/golden/gen_tokenizer.py",
            "transformers": transformers.__version__,
            "sentencepiece": sentencepiece.__version__,
            "python": sys.version.split()[0],
            "model": "tests/data/tokenizer/llama-spm.model",
            "load": 'AutoTokenizer.from_pretrained(dir, use_fast=False, padding_side="right", model_max_length=512); '
            "tokenizer.pad_token = tokenizer.unk_token",
        },
        "configs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in CONFIGS:
            tok = load_like_chat_py(name, tmp)
            n_random = 250 if name in ("lisa7b", "nonlegacy") else 80
            texts = FIXED_TEXTS + random_texts(rng, n_random)
            enc = []
            for text in texts:
                for add_special in (True, False):
                    ids = tok(text, add_special_tokens=add_special).input_ids
                    enc.append(
                        nul_safe(
                            {
                                "text": text,
                                "add_special_tokens": add_special,
                                "ids": ids,
                                "tokens": tok.convert_ids_to_tokens(ids),
                            },
                            "text",
                        )
                    )
            prompts = []
            for q in QUERIES + random_texts(rng, 20):
                for mm in (True, False):
                    p = llava_v1_prompt(q, mm)
                    prompts.append(
                        {"query": q, "use_mm_start_end": mm, "prompt": p, "ids": tokenizer_image_token(p, tok)}
                    )
            for p in ["<image>", "", "no image here", "<image><image>", "a<image>b<image>c", " <image> ", "<image>\n"]:
                prompts.append({"query": None, "use_mm_start_end": None, "prompt": p, "ids": tokenizer_image_token(p, tok)})
            dec = []
            seqs = [e["ids"] for e in enc[::5]] + random_id_seqs(rng, tok, n_random) + utf8_byte_seqs()
            for ids in seqs:
                for skip in (False, True):
                    text = tok.decode(ids, skip_special_tokens=skip)
                    dec.append(
                        nul_safe(
                            {"ids": ids, "skip_special_tokens": skip, "text": text, "chat_cleanup": chat_cleanup(text)},
                            "text",
                            "chat_cleanup",
                        )
                    )
            result["configs"][name] = {
                "dir": "tests/data/tokenizer/" + name,
                "vocab_size": len(tok),
                "legacy": tok.legacy,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
                "all_special_ids": sorted(set(tok.all_special_ids)),
                "added_tokens": tok.get_added_vocab(),
                "seg_token_idx": tok("[SEG]", add_special_tokens=False).input_ids[0],
                "encode": enc,
                "image_prompt": prompts,
                "decode": dec,
            }
            print(f"{name}: {len(enc)} encode, {len(prompts)} prompt, {len(dec)} decode vectors; "
                  f"[SEG]={result['configs'][name]['seg_token_idx']} vocab={len(tok)} legacy={tok.legacy}")

    result["tiny_models"] = tiny_vectors(rng)

    # sanity: the committed third-party vectors reproduce with this stack
    base = LlamaTokenizerForChecks()
    print(f"checked {base} third-party vectors")

    out = os.path.join(DATA, "lisa-vectors.json")
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")
    print("wrote", out, os.path.getsize(out), "bytes")


def LlamaTokenizerForChecks():
    """The committed third-party vectors, through from_pretrained of a directory holding only
    tokenizer.model (the C tests load the same way: no JSON files). Note that a bare
    LlamaTokenizer(vocab_file) would differ: without from_pretrained's sanitize_special_tokens,
    "<s>" in the text is not split out."""
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(MODEL, os.path.join(tmp, "tokenizer.model"))
        with open(os.path.join(tmp, "config.json"), "w") as fh:
            json.dump({"model_type": "llama"}, fh)

        def load(**kw):
            return AutoTokenizer.from_pretrained(tmp, use_fast=False, **kw)

        with open(os.path.join(DATA, "transformers-4.31.0-llama-tokenizer-tests.json"), encoding="utf-8") as fh:
            tv = json.load(fh)
        for e in tv["encode"]:
            tok = load(**e["tokenizer_options"])
            assert tok(e["text"], add_special_tokens=e["add_special_tokens"]).input_ids == e["ids"], e
            n += 1
        tok = load()
        for e in tv["decode"]:
            assert tok.decode(e["ids"], skip_special_tokens=e["skip_special_tokens"]) == e["text"], e
            n += 1
        for stem in ("ggml-vocab-llama-spm.gguf", "ggml-vocab-tinyllama.gguf"):
            with open(os.path.join(DATA, stem + ".inp"), encoding="utf-8") as fh:
                inputs = fh.read().split("\n__ggml_vocab_test__\n")[:-1]
            with open(os.path.join(DATA, stem + ".out"), encoding="utf-8") as fh:
                outputs = fh.read().split("\n")
            for i, text in enumerate(inputs):
                want = [int(x) for x in outputs[i].split()]
                got = tok(text, add_special_tokens=False).input_ids
                assert got == want, (stem, i, text, got, want)
                n += 1
    return n


if __name__ == "__main__":
    main()
