/* tests/test_tokenizer_api.c — tokenizer API contracts: errors a user can cause (missing or
 * malformed checkpoint files, small buffers, bad ids, over-long text), the chat.py helpers, the
 * streaming decoder's hold-back rules, and the round-trip property on a few thousand random
 * strings (decode(encode(s)) == s for valid UTF-8 without special-token text; the stream equals the
 * full decode) — the same property the libFuzzer target checks, run here without libFuzzer. */
#include "core/error.h"
#include "models/tokenizer.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKDIR    LISA_TESTDATA_DIR "/tokenizer"
#define SPM_MODEL TOKDIR "/llama-spm.model"

static lisa_tokenizer *load_dir(const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", TOKDIR, name);
    lisa_tokenizer_params p = lisa_tokenizer_default_params();
    p.sp_model_path = SPM_MODEL;
    lisa_tokenizer *t = NULL;
    cr_assert_eq(lisa_tokenizer_load_ex(&t, dir, &p), LISA_OK, "load %s: %s", dir, lisa_last_error());
    return t;
}

/* A temp checkpoint dir with the given JSON files (name, content pairs, NULL-terminated). */
static char *make_dir(const char *const *files) {
    char *dir = tu_make_tmpdir("lisa_tokapi");
    for (int i = 0; files[i]; i += 2) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        cr_assert(tu_write_file(path, files[i + 1], strlen(files[i + 1])));
    }
    return dir;
}

static lisa_status load_files(const char *const *files, lisa_tokenizer **t) {
    char *dir = make_dir(files);
    lisa_tokenizer_params p = lisa_tokenizer_default_params();
    p.sp_model_path = SPM_MODEL;
    lisa_status st = lisa_tokenizer_load_ex(t, dir, &p);
    tu_remove_tree(dir);
    free(dir);
    return st;
}

Test(tokenizer_api, load_errors_name_the_file) {
    lisa_tokenizer *t = NULL;
    cr_expect_eq(lisa_tokenizer_load(&t, TOKDIR "/no-such-checkpoint"), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "no-such-checkpoint/tokenizer.model") != NULL, "%s", lisa_last_error());
    cr_expect_null(t);

    const char *bad_json[] = {"added_tokens.json", "{\"[SEG]\": 32000,", NULL};
    cr_expect_eq(load_files(bad_json, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "added_tokens.json") != NULL, "%s", lisa_last_error());

    const char *gap[] = {"added_tokens.json", "{\"[SEG]\": 32001}", NULL};
    cr_expect_eq(load_files(gap, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "non-consecutive") != NULL, "%s", lisa_last_error());

    const char *not_int[] = {"added_tokens.json", "{\"[SEG]\": \"32000\"}", NULL};
    cr_expect_eq(load_files(not_int, &t), LISA_ERR_FORMAT);

    const char *cls[] = {"tokenizer_config.json", "{\"tokenizer_class\": \"GPT2Tokenizer\"}", NULL};
    cr_expect_eq(load_files(cls, &t), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "GPT2Tokenizer") != NULL, "%s", lisa_last_error());

    const char *untyped[] = {"tokenizer_config.json", "{\"bos_token\": {\"content\": \"<s>\"}}", NULL};
    cr_expect_eq(load_files(untyped, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "bos_token") != NULL, "%s", lisa_last_error());

    const char *typed_in_map[] = {"special_tokens_map.json",
                                  "{\"eos_token\": {\"__type\": \"AddedToken\", \"content\": \"</s>\"}}", NULL};
    cr_expect_eq(load_files(typed_in_map, &t), LISA_ERR_FORMAT);

    const char *no_bos[] = {"special_tokens_map.json", "{\"bos_token\": null}", NULL};
    cr_expect_eq(load_files(no_bos, &t), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "bos_token is null") != NULL, "%s", lisa_last_error());

    const char *array_top[] = {"special_tokens_map.json", "[1, 2]", NULL};
    cr_expect_eq(load_files(array_top, &t), LISA_ERR_FORMAT);
}

Test(tokenizer_api, json_semantics) {
    lisa_tokenizer *t = NULL;
    /* additional special tokens get ids after added_tokens.json and are split out; python
     * truthiness for flags; a repeated key keeps the last value */
    const char *files[] = {"added_tokens.json",
                           "{\"[SEG]\": 32000}",
                           "special_tokens_map.json",
                           "{\"additional_special_tokens\": [\"<x>\"]}",
                           "tokenizer_config.json",
                           "{\"add_bos_token\": 0, \"add_eos_token\": \"yes\", "
                           "\"legacy\": true, \"legacy\": false}",
                           NULL};
    cr_assert_eq(load_files(files, &t), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_tokenizer_vocab_size(t), 32002);
    cr_expect_eq(lisa_tokenizer_piece_to_id(t, "<x>"), 32001);
    cr_expect(lisa_tokenizer_is_special(t, 32001));
    cr_expect(!lisa_tokenizer_is_special(t, 32000));
    cr_expect(!lisa_tokenizer_legacy(t));
    int32_t ids[16], n;
    cr_assert_eq(lisa_tokenizer_encode(t, "a<x>", 4, true, ids, 16, &n), LISA_OK);
    /* no BOS, EOS appended; non-legacy: "<x>" is special (plain string: strips both sides) */
    cr_expect_eq(n, 3);
    cr_expect_eq(ids[0], 263); /* "▁a" */
    cr_expect_eq(ids[1], 32001);
    cr_expect_eq(ids[2], 2);
    lisa_tokenizer_free(t);
}

Test(tokenizer_api, encode_buffers_and_limits) {
    lisa_tokenizer *t = load_dir("lisa7b");
    int32_t ids[4], n = -1;
    const char *s = "Sure, it is [SEG].";
    cr_expect_eq(lisa_tokenizer_encode(t, s, strlen(s), true, ids, 4, &n), LISA_ERR_LIMIT);
    cr_expect_eq(n, 7);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(ids[3], 372);
    cr_expect(strstr(lisa_last_error(), "need 7") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_tokenizer_encode(t, s, strlen(s), true, NULL, 0, &n), LISA_ERR_LIMIT);
    cr_expect_eq(n, 7);
    /* the length limit is checked before reading the text */
    cr_expect_eq(lisa_tokenizer_encode(t, s, (size_t)LISA_TOKENIZER_MAX_TEXT_BYTES + 1, true, ids, 4, &n),
                 LISA_ERR_LIMIT);
    cr_expect(strstr(lisa_last_error(), "exceeds the limit") != NULL);
    /* NUL bytes are text like any other (byte fallback <0x00>) */
    cr_assert_eq(lisa_tokenizer_encode(t, "a\0b", 3, false, ids, 4, &n), LISA_OK);
    cr_expect_eq(n, 3);
    cr_expect_eq(ids[1], 3);
    /* empty text */
    cr_assert_eq(lisa_tokenizer_encode(t, "", 0, true, ids, 4, &n), LISA_OK);
    cr_expect_eq(n, 1);
    cr_expect_eq(lisa_tokenizer_token_id(t, ""), -1);
    cr_expect_eq(lisa_tokenizer_token_id(t, "[SEG]"), 32003);
    cr_expect_eq(lisa_tokenizer_token_id(t, "hello"), 22172);
    cr_expect_eq(lisa_tokenizer_piece_to_id(t, "helloworldxyz"), -1);
    cr_expect_eq(lisa_tokenizer_piece_to_id(t, "hello"), 12199);
    cr_expect_eq(lisa_tokenizer_piece_to_id(t, "\xe2\x96\x81hello"), 22172);
    size_t l;
    cr_expect_str_eq(lisa_tokenizer_id_to_piece(t, 32003, &l), "[SEG]");
    cr_expect_null(lisa_tokenizer_id_to_piece(t, 32004, &l));
    cr_expect_null(lisa_tokenizer_id_to_piece(t, -200, &l));
    lisa_tokenizer_free(t);
}

Test(tokenizer_api, decode_buffers_and_bad_ids) {
    lisa_tokenizer *t = load_dir("lisa7b");
    const int32_t ids[] = {1, 18585, 29892, 32003, 29889, 2};
    char buf[64];
    size_t len;
    cr_assert_eq(lisa_tokenizer_decode(t, ids, 6, false, buf, sizeof buf, &len), LISA_OK);
    cr_expect_str_eq(buf, "<s>Sure, [SEG]  .</s>"); /* docs/parity.md §1.6 */
    cr_assert_eq(lisa_tokenizer_decode(t, ids, 6, true, buf, sizeof buf, &len), LISA_OK);
    cr_expect_str_eq(buf, "Sure, [SEG] .");
    char small[8];
    cr_expect_eq(lisa_tokenizer_decode(t, ids, 6, false, small, sizeof small, &len), LISA_ERR_LIMIT);
    cr_expect_eq(len, strlen("<s>Sure, [SEG]  .</s>"));
    cr_expect_str_eq(small, "<s>Sure");
    const int32_t bad[] = {1, -200, 2};
    cr_expect_eq(lisa_tokenizer_decode(t, bad, 3, false, buf, sizeof buf, &len), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "ids[1] = -200") != NULL, "%s", lisa_last_error());
    const int32_t big[] = {32004};
    cr_expect_eq(lisa_tokenizer_decode(t, big, 1, false, buf, sizeof buf, &len), LISA_ERR_INVALID_ARG);
    lisa_tokenizer_free(t);
}

Test(tokenizer_api, chat_helpers) {
    char s[] = "a\n\nb   c  d\n";
    const size_t n = lisa_tokenizer_chat_cleanup(s, strlen(s));
    cr_expect_str_eq(s, "ab  c d"); /* Python: "ab   c  d".replace("  ", " ") */
    cr_expect_eq(n, 7);

    char buf[512];
    size_t len;
    cr_assert_eq(lisa_prompt_llava_v1(buf, sizeof buf, "Can you segment the cat in this image?", true, &len), LISA_OK);
    const char *want = "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                       "helpful, detailed, and polite answers to the human's questions. USER: "
                       "<im_start><image><im_end>\nCan you segment the cat in this image? ASSISTANT:";
    cr_expect_str_eq(buf, want);
    cr_expect_eq(len, strlen(want));
    char tiny[16];
    cr_expect_eq(lisa_prompt_llava_v1(tiny, sizeof tiny, "q", false, &len), LISA_ERR_LIMIT);
    cr_expect_gt(len, 100);
    cr_expect_eq(strlen(tiny), 15);

    /* the LISA prompt layout around the image (docs/parity.md §1.5): ... ▁US ER : <im_start> -200 <im_end> ▁What */
    lisa_tokenizer *t = load_dir("lisa13b");
    cr_assert_eq(lisa_prompt_llava_v1(buf, sizeof buf, "What is this?", true, &len), LISA_OK);
    int32_t ids[256], n_ids;
    cr_assert_eq(lisa_tokenizer_encode_image_prompt(t, buf, len, ids, 256, &n_ids), LISA_OK);
    int at = -1;
    for (int i = 0; i < n_ids; i++)
        if (ids[i] == LISA_IMAGE_TOKEN_INDEX) at = i;
    cr_assert_gt(at, 4);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(ids[at - 1], 32001);
    cr_expect_eq(ids[at + 1], 32002);
    cr_expect_eq(ids[at + 2], 1724);  /* "▁What": the "\n" after <im_end> is stripped */
    cr_expect_eq(ids[at - 2], 29901); /* ":" of "USER:" */
    lisa_tokenizer_free(t);
}

/* ---- streaming ------------------------------------------------------------------------------ */

static size_t push(lisa_tokenizer_stream *s, int32_t id, char *out) {
    size_t len = 99;
    cr_assert_eq(lisa_tokenizer_stream_push(s, id, out, 256, &len), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(strlen(out), len);
    return len;
}

Test(tokenizer_api, stream_rules) {
    lisa_tokenizer *t = load_dir("lisa7b");
    cr_assert_lt(lisa_tokenizer_stream_chunk_max(t), 256);
    lisa_tokenizer_stream s;
    char out[256];
    size_t len;
    cr_assert_eq(lisa_tokenizer_stream_init(&s, t, true), LISA_OK);
    /* "😀" as bytes F0 9F 98 80 (ids 3 + b): held back until complete */
    cr_expect_eq(push(&s, 3 + 0xF0, out), 0);
    cr_expect_eq(push(&s, 3 + 0x9F, out), 0);
    cr_expect_eq(push(&s, 3 + 0x98, out), 0);
    cr_expect_eq(push(&s, 3 + 0x80, out), 4);
    cr_expect_str_eq(out, "\xf0\x9f\x98\x80");
    /* an invalid continuation resolves at once: E2 then 'A' byte -> U+FFFD then "A" */
    push(&s, 3 + 0xE2, out);
    cr_expect_eq(push(&s, 3 + 0x41, out), 4);
    cr_expect_str_eq(out, "\xef\xbf\xbd"
                          "A");
    /* an incomplete tail becomes U+FFFD per byte at finish */
    push(&s, 3 + 0xE2, out);
    push(&s, 3 + 0x96, out);
    cr_assert_eq(lisa_tokenizer_stream_finish(&s, out, sizeof out, &len), LISA_OK);
    cr_expect_str_eq(out, "\xef\xbf\xbd\xef\xbf\xbd");
    /* after finish the stream starts over: the leading-space rule applies again */
    cr_expect_eq(push(&s, 29871, out), 0);                   /* "▁": consumed */
    cr_expect_str_eq((push(&s, 15043, out), out), " Hello"); /* "▁Hello" keeps its space */
    cr_expect_eq(push(&s, 1, out), 0);                       /* <s> skipped */
    cr_expect_str_eq((push(&s, 32003, out), out), " [SEG]");
    cr_expect_str_eq((push(&s, 869, out), out), " ."); /* separator, then "▁." with its ▁ stripped */
    /* errors leave the state alone */
    cr_expect_eq(lisa_tokenizer_stream_push(&s, 40000, out, sizeof out, &len), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_tokenizer_stream_push(&s, 869, out, 4, &len), LISA_ERR_INVALID_ARG);
    cr_expect_str_eq((push(&s, 869, out), out), " ."); /* same stretch: "▁." keeps its space now */

    /* skip_special = false: the documented moved space */
    cr_assert_eq(lisa_tokenizer_stream_init(&s, t, false), LISA_OK);
    const int32_t ids[] = {1, 18585, 29892, 32003, 29889, 2};
    char all[256] = "";
    for (int i = 0; i < 6; i++)
        strcat(all, (push(&s, ids[i], out), out));
    cr_expect_str_eq(all, "<s>Sure, [SEG] . </s>"); /* HF: "<s>Sure, [SEG]  .</s>" */
    lisa_tokenizer_free(t);

    /* clean_up_tokenization_spaces: full decode applies it, a stream refuses */
    const char *files[] = {"tokenizer_config.json", "{\"clean_up_tokenization_spaces\": true}", NULL};
    cr_assert_eq(load_files(files, &t), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(lisa_tokenizer_stream_init(&s, t, true), LISA_ERR_UNSUPPORTED);
    const int32_t q[] = {15043, 1577, 29973}; /* "Hello" "▁?" ... */
    char buf[64];
    cr_assert_eq(lisa_tokenizer_decode(t, q, 2, false, buf, sizeof buf, &len), LISA_OK);
    cr_expect_str_eq(buf, "Hello?");
    lisa_tokenizer_free(t);
}

/* ---- round-trip property -------------------------------------------------------------------- */

static size_t put_cp(char *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Random valid UTF-8 without "<" and "[" (so no added/special token can appear) and without "▁"
 * (decode turns every "▁" of a piece into a space, so a literal one cannot come back). */
static size_t random_text(tu_rng *r, char *o) {
    static const uint32_t pool[] = {' ',     ' ',      ' ',    '\t',   '\n',   '\r',   'a',    'e',     'h',
                                    'l',     'o',      't',    'T',    '.',    ',',    '!',    '0',     '7',
                                    '>',     ']',      0x00A0, 0x00E9, 0x0301, 0x3000, 0x200B, 0x2028,  0x2581,
                                    0x751F,  0x6D3B,   0x0645, 0x0E20, 0x0939, 0xAC00, 0xFFFD, 0x1F600, 0x1F44D,
                                    0x1F3FD, 0x10FFFF, 0xE000, 0x0000, 0x007F, 0x0085};
    const int n = (int)(tu_next_u64(r) % 40);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        uint32_t c = pool[tu_next_u64(r) % (sizeof pool / sizeof pool[0])];
        if (tu_next_u64(r) % 8 == 0) c = 0x20 + (uint32_t)(tu_next_u64(r) % 0x5F);     /* any ASCII printable */
        if (tu_next_u64(r) % 16 == 0) c = 0x80 + (uint32_t)(tu_next_u64(r) % 0x30000); /* any BMP / SMP */
        if (c >= 0xD800 && c < 0xE000) c = 'x';
        if (c == '<' || c == '[' || c == 0x2581) c = 'y';
        k += put_cp(o + k, c);
    }
    return k;
}

static void roundtrip(const char *config, int count, uint64_t seed) {
    lisa_tokenizer *t = load_dir(config);
    tu_rng r = tu_rng_seed(seed);
    static int32_t ids[1024];
    static char text[256], dec[1024], st[4096];
    const size_t chunk_cap = lisa_tokenizer_stream_chunk_max(t) + 1;
    char *chunk = malloc(chunk_cap);
    int bad = 0;
    for (int it = 0; it < count; it++) {
        const size_t n = random_text(&r, text);
        for (int special = 0; special < 2; special++) {
            int32_t m;
            cr_assert_eq(lisa_tokenizer_encode(t, text, n, special, ids, 1024, &m), LISA_OK, "%s", lisa_last_error());
            size_t dl;
            cr_assert_eq(lisa_tokenizer_decode(t, ids, m, special, dec, sizeof dec, &dl), LISA_OK);
            if (dl != n || memcmp(dec, text, n) != 0) {
                if (bad++ < 5) {
                    char hx[600] = "", hy[600] = "";
                    for (size_t i = 0; i < n && i < 120; i++)
                        sprintf(hx + 2 * i, "%02x", (unsigned char)text[i]);
                    for (size_t i = 0; i < dl && i < 120; i++)
                        sprintf(hy + 2 * i, "%02x", (unsigned char)dec[i]);
                    cr_log_error("%s: %s decodes to %s", config, hx, hy);
                }
            }
            /* the stream equals the full decode (no special pieces here, or they are skipped) */
            lisa_tokenizer_stream s;
            cr_assert_eq(lisa_tokenizer_stream_init(&s, t, special), LISA_OK);
            size_t o = 0, l;
            for (int32_t i = 0; i < m; i++) {
                cr_assert_eq(lisa_tokenizer_stream_push(&s, ids[i], chunk, chunk_cap, &l), LISA_OK);
                memcpy(st + o, chunk, l);
                o += l;
            }
            cr_assert_eq(lisa_tokenizer_stream_finish(&s, chunk, chunk_cap, &l), LISA_OK);
            memcpy(st + o, chunk, l);
            o += l;
            if (o != dl || memcmp(st, dec, dl) != 0) {
                if (bad++ < 5) cr_log_error("%s: stream of \"%.*s\" differs", config, (int)n, text);
            }
        }
    }
    cr_expect_eq(bad, 0, "%s: %d round-trip failures", config, bad);
    free(chunk);
    lisa_tokenizer_free(t);
}

Test(tokenizer_api, roundtrip_legacy) { roundtrip("lisa7b", 2500, 1); }
Test(tokenizer_api, roundtrip_nonlegacy) { roundtrip("nonlegacy", 2500, 2); }

/* Arbitrary bytes (invalid UTF-8, token fragments): no crash, decode is valid UTF-8, the stream
 * matches up to the documented moved space. */
Test(tokenizer_api, arbitrary_bytes_do_not_crash) {
    lisa_tokenizer *t = load_dir("lisa13b");
    tu_rng r = tu_rng_seed(3);
    static const char *frag[] = {"<s>", "</s>", "<unk>", "[SEG]",        "<im_start>", "<im_end>", "<image>", " ",
                                 "\n",  "[SE",  "<im_",  "\xe2\x96\x81", "\xf0\x9f",   "\xc3",     "\xff",    "a"};
    static int32_t ids[4096];
    static char text[512], dec[8192];
    for (int it = 0; it < 2000; it++) {
        size_t n = 0;
        const int k = (int)(tu_next_u64(&r) % 24);
        for (int i = 0; i < k; i++) {
            if (tu_next_u64(&r) % 3 == 0) {
                text[n++] = (char)(tu_next_u64(&r) & 0xFF);
            } else {
                const char *f = frag[tu_next_u64(&r) % (sizeof frag / sizeof frag[0])];
                memcpy(text + n, f, strlen(f));
                n += strlen(f);
            }
        }
        int32_t m;
        cr_assert_eq(lisa_tokenizer_encode(t, text, n, tu_next_u64(&r) & 1, ids, 4096, &m), LISA_OK);
        size_t dl;
        cr_assert_eq(lisa_tokenizer_decode(t, ids, m, tu_next_u64(&r) & 1, dec, sizeof dec, &dl), LISA_OK);
        /* the output is valid UTF-8 */
        for (size_t i = 0; i < dl;) {
            const unsigned char c = (unsigned char)dec[i];
            const size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            cr_assert(c < 0x80 || (c >= 0xC2 && c <= 0xF4), "invalid lead byte %02x", c);
            for (size_t j = 1; j < w; j++)
                cr_assert_eq((unsigned char)dec[i + j] & 0xC0, 0x80);
            i += w;
        }
    }
    lisa_tokenizer_free(t);
}
