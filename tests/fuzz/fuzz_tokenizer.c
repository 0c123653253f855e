/* tests/fuzz/fuzz_tokenizer.c — libFuzzer target for encode/decode/stream on the LISA checkpoint
 * tokenizers (tests/data/tokenizer/{lisa7b,nonlegacy} with llama-spm.model).
 * Input byte 0 picks the mode, the rest is the payload:
 *   even: payload is text. Encode (with/without BOS), decode, stream. Property: no crash; decoded
 *         text is valid UTF-8; for valid UTF-8 without "<", "[" (no token text) and without "▁",
 *         decode(encode(text)) == text; the stream equals the full decode (nothing special in it).
 *   odd:  payload is int32 ids (mod vocab). Decode and stream; with skip_special the stream
 *         equals the full decode; tokenizer_image_token on the payload as text.
 */
#include "models/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lisa_tokenizer *tok[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const dirs[2] = {LISA_TESTDATA_DIR "/tokenizer/lisa7b",
                                        LISA_TESTDATA_DIR "/tokenizer/nonlegacy"};
    for (int i = 0; i < 2; i++) {
        lisa_tokenizer_params p = lisa_tokenizer_default_params();
        p.sp_model_path = LISA_TESTDATA_DIR "/tokenizer/llama-spm.model";
        if (lisa_tokenizer_load_ex(&tok[i], dirs[i], &p) != LISA_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s\n", dirs[i]);
            abort();
        }
    }
    return 0;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        size_t w;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            w = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            w = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            w = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + w > n) return 0;
        for (size_t k = 1; k < w; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
        i += w;
    }
    return 1;
}

static size_t stream_all(const lisa_tokenizer *t, const int32_t *ids, int32_t n, int skip, char *out, size_t cap) {
    lisa_tokenizer_stream s;
    if (lisa_tokenizer_stream_init(&s, t, skip) != LISA_OK) abort();
    char chunk[1024];
    if (lisa_tokenizer_stream_chunk_max(t) + 1 > sizeof chunk) abort();
    size_t o = 0, l;
    for (int32_t i = 0; i < n; i++) {
        if (lisa_tokenizer_stream_push(&s, ids[i], chunk, sizeof chunk, &l) != LISA_OK) abort();
        if (o + l > cap) abort();
        memcpy(out + o, chunk, l);
        o += l;
    }
    if (lisa_tokenizer_stream_finish(&s, chunk, sizeof chunk, &l) != LISA_OK) abort();
    if (o + l > cap) abort();
    memcpy(out + o, chunk, l);
    return o + l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    const lisa_tokenizer *t = tok[(data[0] >> 1) & 1];
    const int special = (data[0] >> 2) & 1;
    const uint8_t *p = data + 1;
    const size_t n = size - 1;
    static int32_t ids[4 * 4096 + 16];
    static char dec[65536], st[65536];
    int32_t m = 0;
    size_t dl;
    if ((data[0] & 1) == 0) {
        if (lisa_tokenizer_encode(t, (const char *)p, n, special, ids, 4 * 4096 + 16, &m) != LISA_OK) abort();
        if (lisa_tokenizer_decode(t, ids, m, special, dec, sizeof dec, &dl) != LISA_OK) abort();
        if (!valid_utf8((const uint8_t *)dec, dl)) abort();
        int plain = valid_utf8(p, n);
        for (size_t i = 0; i < n && plain; i++)
            if (p[i] == '<' || p[i] == '[' || (i + 2 < n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81))
                plain = 0;
        if (plain && (dl != n || memcmp(dec, p, n) != 0)) abort();
        if (plain) {
            const size_t sl = stream_all(t, ids, m, special, st, sizeof st);
            if (sl != dl || memcmp(st, dec, dl) != 0) abort();
        }
    } else {
        const int32_t v = lisa_tokenizer_vocab_size(t);
        m = (int32_t)(n / 4);
        for (int32_t i = 0; i < m; i++) {
            uint32_t x;
            memcpy(&x, p + 4 * i, 4);
            ids[i] = (int32_t)(x % (uint32_t)v);
        }
        if (lisa_tokenizer_decode(t, ids, m, special, dec, sizeof dec, &dl) != LISA_OK) abort();
        if (!valid_utf8((const uint8_t *)dec, dl)) abort();
        const size_t sl = stream_all(t, ids, m, special, st, sizeof st);
        if (special && (sl != dl || memcmp(st, dec, dl) != 0)) abort();
        if (!special && sl != dl) abort(); /* the moved space keeps the length */
        int32_t k;
        if (lisa_tokenizer_encode_image_prompt(t, (const char *)p, n, ids, 4 * 4096 + 16, &k) != LISA_OK) abort();
    }
    return 0;
}
