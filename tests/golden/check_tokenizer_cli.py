#!/usr/bin/python3
"""Differential check of `lisa tokenize` against the real reference stack (not run by CI: it needs
transformers 4.31 + sentencepiece; the committed lisa-vectors.json is what CI checks).

    /usr/bin/python3 tests/golden/check_tokenizer_cli.py build/bin/lisa [cases] [seed]

For each checkpoint dir of gen_tokenizer.py: random texts (token fragments, whitespace, several
scripts, emoji) encoded with and without special tokens, random id lists decoded with and without
skip_special_tokens, and chat.py prompts through tokenizer_image_token; prints the mismatches.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_tokenizer as g  # noqa: E402


def main():
    tool = sys.argv[1] if len(sys.argv) > 1 else "build/bin/lisa"
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    frags = g.FRAGMENTS + ["[SEG]", " [SEG] ", "\n<im_end>\n", " <s> ", "</s>", "\u2581\u2581", "  \t ",
                           "<im_start><image><im_end>", "x" * 20, "\u3000\u3000", "0123456789"]
    total_bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in g.CONFIGS:
            tok = g.load_like_chat_py(name, tmp)
            reqs, exp = [], []
            for i in range(cases):
                k = rng.randint(0, 30)
                text = "".join(
                    rng.choice(frags) if rng.random() < 0.7
                    else chr(rng.choice([rng.randint(32, 126), rng.randint(0xA0, 0x2FFF), rng.randint(0x1F300, 0x1FAFF),
                                         rng.randint(0x4E00, 0x9FFF)]))
                    for _ in range(k)).replace("\x00", "")  # the CLI reads strings with cJSON: no NUL
                sp = rng.random() < 0.5
                reqs.append({"text": text, "add_special_tokens": sp})
                exp.append({"ids": tok(text, add_special_tokens=sp).input_ids})
                ids = [rng.randrange(len(tok)) if rng.random() < 0.6
                       else rng.choice([0, 1, 2, 29871, 13, 3 + rng.randrange(256)]) for _ in range(rng.randint(0, 20))]
                skip = rng.random() < 0.5
                reqs.append({"ids": ids, "skip_special_tokens": skip})
                exp.append({"text": tok.decode(ids, skip_special_tokens=skip)})
                if i % 20 == 0:
                    p = g.llava_v1_prompt(text, rng.random() < 0.8)
                    reqs.append({"prompt": p, "image": True})
                    exp.append({"ids": g.tokenizer_image_token(p, tok)})
            stdin = "".join(json.dumps(r) + "\n" for r in reqs).encode("utf-8")
            res = subprocess.run([tool, "tokenize", "--model", os.path.join(g.DATA, name), "--sp-model", g.MODEL],
                                 input=stdin, capture_output=True, check=True)
            out = res.stdout.decode("utf-8").split("\n")[:-1]
            assert len(out) == len(exp), (len(out), len(exp))
            bad = 0
            for r, e, o in zip(reqs, exp, out):
                o = json.loads(o)
                o.pop("tokens", None)
                if o != e:
                    bad += 1
                    if bad <= 5:
                        print("MISMATCH", name, json.dumps(r, ensure_ascii=False), "\n  want", e, "\n  got ", o)
            print(f"{name}: {len(exp)} cases, {bad} mismatches")
            total_bad += bad
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
