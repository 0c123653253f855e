/* tests/test_tokenizer_spm.c — the SentencePiece ModelProto reader (loader/spm_model.c) and the
 * model checks of the tokenizer:
 *   - llama-spm.model: the field values of docs/parity.md §1.1 (proto2 defaults included);
 *   - tiny hand-built models written by tests/golden/gen_tokenizer.py and read by the real
 *     sentencepiece library (fields out of order, unknown fields of every wire type, absent
 *     normalizer fields, 10-byte negative varints, two-byte keys): pieces/scores/types must match
 *     what the library reports, and encode/decode must match sentencepiece + transformers;
 *   - malformed messages built here with an independent little writer: every truncation, bad
 *     wire types, field 0, overlong varints, lengths past the end -> LISA_ERR_FORMAT, never a crash;
 *   - models the tokenizer must refuse (no <unk>, duplicates, byte pieces, unsupported types). */
#include "loader/spm_model.h"
#include "core/error.h"
#include "models/tokenizer.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKDIR LISA_TESTDATA_DIR "/tokenizer"

Test(tokenizer_spm, llama_model_fields) {
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_load(&m, TOKDIR "/llama-spm.model"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.n_pieces, 32000);
    cr_expect_str_eq(lisa_spm_piece_str(&m, 0), "<unk>");
    cr_expect_eq(m.pieces[0].type, LISA_SPM_UNKNOWN);
    cr_expect_str_eq(lisa_spm_piece_str(&m, 1), "<s>");
    cr_expect_eq(m.pieces[1].type, LISA_SPM_CONTROL);
    cr_expect_str_eq(lisa_spm_piece_str(&m, 2), "</s>");
    cr_expect_eq(m.pieces[2].type, LISA_SPM_CONTROL);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        cr_expect_str_eq(lisa_spm_piece_str(&m, 3 + b), want);
        cr_expect_eq(m.pieces[3 + b].type, LISA_SPM_BYTE);
    }
    /* normal pieces score -(id - 259); whitespace-only pieces -1e9 (docs/parity.md §1.1) */
    cr_expect_str_eq(lisa_spm_piece_str(&m, 260), "\xe2\x96\x81t");
    cr_expect_eq(m.pieces[260].score, -1.0f);
    cr_expect_eq(m.pieces[260].type, LISA_SPM_NORMAL);
    cr_expect_str_eq(lisa_spm_piece_str(&m, 259), "\xe2\x96\x81\xe2\x96\x81");
    cr_expect_eq(m.pieces[259].score, -1e9f);
    cr_expect_str_eq(lisa_spm_piece_str(&m, 29871), "\xe2\x96\x81");
    cr_expect_eq(m.pieces[0].score, 0.0f);
    int n_normal = 0;
    for (int i = 0; i < m.n_pieces; i++)
        n_normal += m.pieces[i].type == LISA_SPM_NORMAL;
    cr_expect_eq(n_normal, 32000 - 259);
    /* trainer spec */
    cr_expect(m.has_trainer_spec);
    cr_expect_eq(m.model_type, LISA_SPM_MODEL_BPE);
    cr_expect_eq(m.vocab_size, 32000);
    cr_expect(m.byte_fallback);
    cr_expect(!m.treat_whitespace_as_suffix);
    cr_expect_eq(m.unk_id, 0);
    cr_expect_eq(m.bos_id, 1);
    cr_expect_eq(m.eos_id, 2);
    cr_expect_eq(m.pad_id, -1);
    cr_expect_str_eq(m.text + m.unk_surface_offset, " \xe2\x81\x87 ");
    /* normalizer spec: identity, dummy prefix, no whitespace removal, escape by default */
    cr_expect(m.has_normalizer_spec);
    cr_expect_str_eq(m.text + m.normalizer_name_offset, "identity");
    cr_expect_eq(m.precompiled_charsmap_len, 0);
    cr_expect(m.add_dummy_prefix);
    cr_expect(!m.remove_extra_whitespaces);
    cr_expect(m.escape_whitespaces);
    cr_expect(!m.has_denormalizer_spec);
    lisa_spm_model_free(&m);
}

/* ---- tiny models (vectors from the real library) ------------------------------------------- */

static cJSON *tiny_json(const char *name) {
    static cJSON *root = NULL;
    if (!root) {
        size_t len;
        char *s = tu_read_file(TOKDIR "/lisa-vectors.json", &len);
        cr_assert(s);
        root = cJSON_ParseWithLength(s, len);
        free(s);
        cr_assert(root);
    }
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "tiny_models"), name);
    cr_assert(c, "tiny model %s", name);
    return c;
}

static int32_t json_ids(const cJSON *arr, int32_t *out, int32_t cap) {
    int32_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        cr_assert(n < cap);
        out[n++] = (int32_t)it->valuedouble;
    }
    return n;
}

static void check_tiny(const char *name) {
    const cJSON *c = tiny_json(name);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", LISA_SOURCE_DIR, cJSON_GetObjectItem(c, "model")->valuestring);
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_load(&m, path), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.n_pieces, (int32_t)cJSON_GetObjectItem(c, "n_pieces")->valuedouble);
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "pieces")) {
        cr_assert(i < m.n_pieces);
        cr_expect_str_eq(lisa_spm_piece_str(&m, i), cJSON_GetObjectItem(p, "piece")->valuestring);
        cr_expect_eq((double)m.pieces[i].score, cJSON_GetObjectItem(p, "score")->valuedouble, "%s piece %d score", name,
                     i);
        cr_expect_str_eq(lisa_spm_piece_type_name(m.pieces[i].type), cJSON_GetObjectItem(p, "type")->valuestring);
        i++;
    }
    lisa_spm_model_free(&m);

    lisa_tokenizer_params prm = lisa_tokenizer_default_params();
    prm.sp_model_path = path;
    lisa_tokenizer *t = NULL;
    cr_assert_eq(lisa_tokenizer_load_ex(&t, NULL, &prm), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_tokenizer_vocab_size(t), (int32_t)cJSON_GetObjectItem(c, "vocab_size")->valuedouble);
    const cJSON *e;
    int32_t want[256], got[256], n;
    char buf[1024];
    size_t len;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "encode")) {
        const char *text = cJSON_GetObjectItem(e, "text")->valuestring;
        const int32_t nw = json_ids(cJSON_GetObjectItem(e, "ids"), want, 256);
        cr_assert_eq(lisa_tokenizer_encode(t, text, strlen(text), false, got, 256, &n), LISA_OK);
        bool same = n == nw && (n == 0 || !memcmp(got, want, sizeof *got * (size_t)n));
        cr_expect(same, "%s: encode \"%s\": %d ids, want %d (first %d vs %d)", name, text, n, nw, n ? got[0] : -1,
                  nw ? want[0] : -1);
        cr_assert_eq(lisa_tokenizer_decode(t, want, nw, false, buf, sizeof buf, &len), LISA_OK);
        cr_expect_str_eq(buf, cJSON_GetObjectItem(e, "decoded")->valuestring, "%s: decode of \"%s\"", name, text);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "decode")) {
        const int32_t nw = json_ids(cJSON_GetObjectItem(e, "ids"), want, 256);
        const bool skip = cJSON_IsTrue(cJSON_GetObjectItem(e, "skip_special_tokens"));
        cr_assert_eq(lisa_tokenizer_decode(t, want, nw, skip, buf, sizeof buf, &len), LISA_OK);
        const cJSON *hex = cJSON_GetObjectItem(e, "text_hex");
        if (hex) {
            char wantb[1024];
            const size_t wl = strlen(hex->valuestring) / 2;
            for (size_t k = 0; k < wl; k++) {
                unsigned v;
                sscanf(hex->valuestring + 2 * k, "%2x", &v);
                wantb[k] = (char)v;
            }
            cr_expect(len == wl && !memcmp(buf, wantb, wl), "%s: decode with NUL", name);
        } else {
            cr_expect_str_eq(buf, cJSON_GetObjectItem(e, "text")->valuestring, "%s: decode", name);
        }
    }
    lisa_tokenizer_free(t);
}

Test(tokenizer_spm, tiny_nofallback) {
    check_tiny("tiny-nofallback");
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_load(&m, TOKDIR "/tiny/tiny-nofallback.model"), LISA_OK);
    cr_expect(m.add_dummy_prefix && m.remove_extra_whitespaces && m.escape_whitespaces); /* proto2 defaults */
    cr_expect(!m.byte_fallback);
    cr_expect_eq(m.vocab_size, 17);
    lisa_spm_model_free(&m);
}

Test(tokenizer_spm, tiny_raw) {
    check_tiny("tiny-raw");
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_load(&m, TOKDIR "/tiny/tiny-raw.model"), LISA_OK);
    cr_expect(!m.add_dummy_prefix && !m.remove_extra_whitespaces && !m.escape_whitespaces);
    cr_expect_eq(m.vocab_size, 8000); /* default */
    lisa_spm_model_free(&m);
}

Test(tokenizer_spm, tiny_bytes) {
    check_tiny("tiny-bytes");
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_load(&m, TOKDIR "/tiny/tiny-bytes.model"), LISA_OK);
    cr_expect(m.byte_fallback);
    cr_expect_eq(m.pad_id, -1);
    cr_expect_str_eq(m.text + m.unk_surface_offset, " <?> ");
    cr_expect(m.add_dummy_prefix && !m.remove_extra_whitespaces);
    lisa_spm_model_free(&m);
}

/* ---- malformed messages --------------------------------------------------------------------- */

typedef struct pbw {
    uint8_t b[8192];
    size_t n;
} pbw;

static void w_varint(pbw *w, uint64_t v) {
    do {
        uint8_t x = v & 0x7f;
        v >>= 7;
        w->b[w->n++] = x | (v ? 0x80 : 0);
    } while (v);
}
static void w_key(pbw *w, uint32_t f, int wt) { w_varint(w, ((uint64_t)f << 3) | (uint64_t)wt); }
static void w_bytes(pbw *w, uint32_t f, const void *p, size_t n) {
    w_key(w, f, 2);
    w_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_str(pbw *w, uint32_t f, const char *s) { w_bytes(w, f, s, strlen(s)); }
static void w_int(pbw *w, uint32_t f, int64_t v) {
    w_key(w, f, 0);
    w_varint(w, (uint64_t)v);
}
static void w_float(pbw *w, uint32_t f, float x) {
    w_key(w, f, 5);
    memcpy(w->b + w->n, &x, 4);
    w->n += 4;
}
static void w_msg(pbw *w, uint32_t f, const pbw *sub) { w_bytes(w, f, sub->b, sub->n); }
static void w_piece(pbw *w, const char *s, float score, int type) {
    pbw p = {.n = 0};
    w_str(&p, 1, s);
    w_float(&p, 2, score);
    if (type) w_int(&p, 3, type);
    w_msg(w, 1, &p);
}

/* A small valid BPE model: <unk> <s> </s> ▁ a b ▁a ab. */
static void small_model(pbw *w, bool byte_fallback_flag) {
    w->n = 0;
    w_piece(w, "<unk>", 0, 2);
    w_piece(w, "<s>", 0, 3);
    w_piece(w, "</s>", 0, 3);
    w_piece(w, "\xe2\x96\x81", -3, 0);
    w_piece(w, "a", -1, 0);
    w_piece(w, "b", -1, 0);
    w_piece(w,
            "\xe2\x96\x81"
            "a",
            -2, 0);
    w_piece(w, "ab", -2, 1);
    pbw tr = {.n = 0};
    w_int(&tr, 3, 2);
    w_int(&tr, 4, 8);
    if (byte_fallback_flag) w_int(&tr, 35, 1);
    w_int(&tr, 43, -1);
    w_msg(w, 2, &tr);
    pbw no = {.n = 0};
    w_str(&no, 1, "identity");
    w_int(&no, 4, 0);
    w_msg(w, 3, &no);
}

Test(tokenizer_spm, small_model_and_every_truncation) {
    pbw w;
    small_model(&w, false);
    lisa_spm_model m;
    cr_assert_eq(lisa_spm_model_parse(&m, w.b, w.n, "small"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.n_pieces, 8);
    cr_expect_eq(m.pad_id, -1);
    cr_expect_eq(m.model_type, LISA_SPM_MODEL_BPE);
    cr_expect(!m.remove_extra_whitespaces);
    cr_expect_eq(m.pieces[7].type, LISA_SPM_NORMAL);
    cr_expect_eq(m.pieces[6].score, -2.0f);
    lisa_spm_model_free(&m);
    /* every proper prefix is either a valid message (cut between top-level records) or FORMAT */
    int n_ok = 0, n_fmt = 0;
    for (size_t k = 0; k < w.n; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan catches any read past the end */
        memcpy(copy, w.b, k);
        lisa_status st = lisa_spm_model_parse(&m, copy, k, "truncated");
        cr_expect(st == LISA_OK || st == LISA_ERR_FORMAT, "prefix %zu: %s", k, lisa_status_name(st));
        if (st == LISA_OK) {
            n_ok++;
            lisa_spm_model_free(&m);
        } else {
            n_fmt++;
            cr_expect(strstr(lisa_last_error(), "truncated") != NULL, "prefix %zu: message '%s' names the cause", k,
                      lisa_last_error());
        }
        free(copy);
    }
    cr_expect_eq(n_ok, 1 + 8 + 1); /* empty, after each piece, after trainer_spec */
    cr_expect_gt(n_fmt, 0);
}

static lisa_status parse_bytes(const uint8_t *b, size_t n) {
    lisa_spm_model m;
    lisa_status st = lisa_spm_model_parse(&m, b, n, "bad");
    if (st == LISA_OK) lisa_spm_model_free(&m);
    return st;
}

Test(tokenizer_spm, malformed) {
    /* group wire types */
    const uint8_t g3[] = {0x0b}, g4[] = {0x0c};
    cr_expect_eq(parse_bytes(g3, 1), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "wire type 3") != NULL, "%s", lisa_last_error());
    cr_expect_eq(parse_bytes(g4, 1), LISA_ERR_FORMAT);
    /* field number 0 */
    const uint8_t f0[] = {0x00, 0x01};
    cr_expect_eq(parse_bytes(f0, 2), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "field number 0") != NULL, "%s", lisa_last_error());
    /* overlong varint: 11 continuation bytes */
    uint8_t ov[12];
    ov[0] = 0x08;
    memset(ov + 1, 0xff, 10);
    ov[11] = 0x01;
    cr_expect_eq(parse_bytes(ov, 12), LISA_ERR_FORMAT);
    /* length past the end, at top level and inside a piece */
    const uint8_t lp[] = {0x0a, 0x05, 0x0a, 0x01};
    cr_expect_eq(parse_bytes(lp, 4), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "past the end") != NULL, "%s", lisa_last_error());
    const uint8_t lp2[] = {0x0a, 0x03, 0x0a, 0x05, 0x41};
    cr_expect_eq(parse_bytes(lp2, 5), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "pieces[0]") != NULL, "%s", lisa_last_error());
    /* huge length varint */
    const uint8_t hl[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_expect_eq(parse_bytes(hl, sizeof hl), LISA_ERR_FORMAT);
    /* truncated fixed32 score */
    const uint8_t fx[] = {0x0a, 0x05, 0x0a, 0x01, 0x41, 0x15, 0x00};
    cr_expect_eq(parse_bytes(fx, sizeof fx), LISA_ERR_FORMAT);
    /* the limit */
    lisa_spm_model m;
    cr_expect_eq(lisa_spm_model_parse(&m, fx, (size_t)LISA_SPM_MAX_FILE_BYTES + 1, "huge"), LISA_ERR_LIMIT);
    /* missing file */
    cr_expect_eq(lisa_spm_model_load(&m, TOKDIR "/does-not-exist.model"), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "does-not-exist.model") != NULL);
}

Test(tokenizer_spm, wire_type_mismatch_and_unknown_enum_are_skipped) {
    pbw w = {.n = 0};
    pbw p = {.n = 0};
    w_str(&p, 1, "<unk>");
    w_int(&p, 2, 5); /* score as a varint: wrong wire type -> unknown field, score stays 0 */
    w_int(&p, 3, 2); /* UNKNOWN */
    w_msg(&w, 1, &p);
    p.n = 0;
    w_str(&p, 1, "x");
    w_int(&p, 3, 77); /* not a Type value: kept as unknown, type stays NORMAL */
    w_float(&p, 2, -0.5f);
    w_msg(&w, 1, &p);
    pbw tr = {.n = 0};
    w_int(&tr, 3, 2);
    w_msg(&w, 2, &tr);
    pbw tr2 = {.n = 0}; /* a second trainer_spec record is merged into the first */
    w_int(&tr2, 35, 1);
    w_int(&tr2, 4, 123);
    w_msg(&w, 2, &tr2);
    w_str(&w, 3, "abc"); /* normalizer_spec as garbage bytes: "abc" = key 12 (field 12, wire 1)...
                            must fail cleanly or parse; here: field 12 fixed64 truncated */
    lisa_spm_model m;
    lisa_status st = lisa_spm_model_parse(&m, w.b, w.n, "mismatch");
    cr_expect_eq(st, LISA_ERR_FORMAT, "%s", lisa_last_error());
    w.n -= 5; /* drop the garbage normalizer */
    cr_assert_eq(lisa_spm_model_parse(&m, w.b, w.n, "mismatch"), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(m.pieces[0].score, 0.0f);
    cr_expect_eq(m.pieces[0].type, LISA_SPM_UNKNOWN);
    cr_expect_eq(m.pieces[1].type, LISA_SPM_NORMAL);
    cr_expect_eq(m.pieces[1].score, -0.5f);
    cr_expect_eq(m.model_type, LISA_SPM_MODEL_BPE);
    cr_expect(m.byte_fallback);
    cr_expect_eq(m.vocab_size, 123);
    cr_expect(!m.has_normalizer_spec);
    cr_expect(m.add_dummy_prefix && m.remove_extra_whitespaces && m.escape_whitespaces);
    lisa_spm_model_free(&m);
}

/* ---- models the tokenizer refuses ------------------------------------------------------------ */

static lisa_status load_model_bytes(const pbw *w, lisa_tokenizer **out) {
    char *dir = tu_make_tmpdir("lisa_spm");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    cr_assert(tu_write_file(path, w->b, w->n));
    lisa_status st = lisa_tokenizer_load(out, dir);
    tu_remove_tree(dir);
    free(dir);
    return st;
}

Test(tokenizer_spm, tokenizer_refuses_bad_models) {
    lisa_tokenizer *t = NULL;
    pbw w;
    small_model(&w, false);
    cr_assert_eq(load_model_bytes(&w, &t), LISA_OK, "%s", lisa_last_error());
    int32_t ids[16], n;
    cr_assert_eq(lisa_tokenizer_encode(t, "ab a", 4, false, ids, 16, &n), LISA_OK);
    /* "▁ab▁a": ▁a(-2) and ab(-2) tie -> leftmost "▁a" at 0 merges first; then ▁a stays, b alone;
     * then "▁a" at 3 -> [▁a, b, ▁a] */
    cr_expect_eq(n, 3);
    cr_expect_eq(ids[0], 6);
    cr_expect_eq(ids[1], 5);
    cr_expect_eq(ids[2], 6);
    lisa_tokenizer_free(t);

    /* byte_fallback without byte pieces */
    small_model(&w, true);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "256 byte pieces") != NULL, "%s", lisa_last_error());

    /* no <unk> */
    w.n = 0;
    w_piece(&w, "a", 0, 0);
    pbw tr = {.n = 0};
    w_int(&tr, 3, 2);
    w_msg(&w, 2, &tr);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "unk is not defined") != NULL, "%s", lisa_last_error());

    /* duplicate piece */
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "a", 0, 0);
    w_piece(&w, "a", 0, 0);
    w_msg(&w, 2, &tr);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "already defined") != NULL, "%s", lisa_last_error());

    /* empty piece */
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "", 0, 0);
    w_msg(&w, 2, &tr);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_FORMAT);

    /* byte piece while byte_fallback is false */
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "<0x41>", 0, 6);
    w_msg(&w, 2, &tr);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "byte_fallback is false") != NULL, "%s", lisa_last_error());

    /* USER_DEFINED pieces and unigram models are not supported (LLaMA has neither) */
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "<sep>", 0, 4);
    w_msg(&w, 2, &tr);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "USER_DEFINED") != NULL, "%s", lisa_last_error());
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_UNSUPPORTED); /* no trainer_spec: UNIGRAM default */
    cr_expect(strstr(lisa_last_error(), "model_type 1") != NULL, "%s", lisa_last_error());

    /* a precompiled charsmap (NFKC) */
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_msg(&w, 2, &tr);
    pbw no = {.n = 0};
    w_bytes(&no, 2, "\x04\x00\x00\x00zzzz", 8);
    w_msg(&w, 3, &no);
    cr_expect_eq(load_model_bytes(&w, &t), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "precompiled_charsmap") != NULL, "%s", lisa_last_error());
}
