/* tests/test_preprocess_resample.c — lisa_resample_u8 against Pillow 9.4.0 `Image.resize`.
 *
 * Golden data: tests/data/preprocess/resample_cases.txt, written by tests/golden/gen_preprocess.py
 * from the real Pillow. Each case regenerates its input from a seed (splitmix64, mirrored in the
 * generator), resizes it and compares the CRC32 of the output bytes; small cases also carry the
 * full Pillow output, and every case carries a few sampled pixels, so a failure shows which
 * pixels differ. 368 cases: both filters, up and down, sides 1..140, width-only, height-only and
 * same-size cases, 0/255 data (bicubic overshoot -> clip), plus LISA-sized shapes.
 */
#include "imgtest.h"
#include "core/error.h"
#include "models/preprocess.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors gen_preprocess.py pattern_image(): 0 uniform bytes, 1 only 0/255, 2 wrapped ramp. */
static void make_input(uint8_t *a, int32_t h, int32_t w, int32_t c, int pattern, uint64_t seed) {
    tu_rng r = tu_rng_seed(seed);
    size_t i = 0;
    for (int32_t y = 0; y < h; y++)
        for (int32_t x = 0; x < w; x++)
            for (int32_t ch = 0; ch < c; ch++, i++) {
                if (pattern == 2)
                    a[i] = (uint8_t)((x * 7 + y * 13 + ch * 50) & 255);
                else if (pattern == 0)
                    a[i] = (uint8_t)(tu_next_u64(&r) >> 56);
                else
                    a[i] = (tu_next_u64(&r) >> 63) ? 255 : 0;
            }
}

typedef struct rcase {
    int filter, in_h, in_w, out_h, out_w, c, pattern;
    unsigned long long seed;
    unsigned crc;
    int n_samples;
    long sample_idx[16];
    int sample_val[16];
    char *full_hex; /* "-" when absent */
} rcase;

/* Parses one line of resample_cases.txt; the line buffer is modified (tokens). */
static bool parse_case(rcase *k, char *line) {
    char *save = NULL;
    char *t[64];
    int n = 0;
    for (char *tok = strtok_r(line, " ", &save); tok && n < 64; tok = strtok_r(NULL, " ", &save)) t[n++] = tok;
    if (n < 11) return false;
    k->filter = atoi(t[0]), k->in_h = atoi(t[1]), k->in_w = atoi(t[2]), k->out_h = atoi(t[3]);
    k->out_w = atoi(t[4]), k->c = atoi(t[5]), k->pattern = atoi(t[6]);
    k->seed = strtoull(t[7], NULL, 10);
    k->crc = (unsigned)strtoul(t[8], NULL, 16);
    k->n_samples = atoi(t[9]);
    if (k->n_samples < 0 || k->n_samples > 16 || n != 11 + 2 * k->n_samples) return false;
    for (int i = 0; i < k->n_samples; i++) {
        k->sample_idx[i] = atol(t[10 + 2 * i]);
        k->sample_val[i] = atoi(t[11 + 2 * i]);
    }
    k->full_hex = t[10 + 2 * k->n_samples];
    return true;
}

/* Runs one case; returns true if it matched Pillow, logging the differences otherwise. */
static bool run_case(const rcase *k, int line_no) {
    const size_t n_in = (size_t)k->in_h * k->in_w * k->c, n_out = (size_t)k->out_h * k->out_w * k->c;
    uint8_t *in = malloc(n_in), *out = malloc(n_out);
    cr_assert(in && out);
    make_input(in, k->in_h, k->in_w, k->c, k->pattern, k->seed);
    memset(out, 0xA5, n_out); /* poison: an unwritten pixel shows up in the CRC */
    size_t ws_n = lisa_resample_u8_workspace_size(k->out_h, k->out_w, k->in_h, k->in_w, k->c,
                                                  (lisa_resample_filter)k->filter);
    cr_assert(ws_n > 0);
    void *ws = malloc(ws_n);
    cr_assert(ws);
    lisa_status s = lisa_resample_u8(out, k->out_h, k->out_w, in, k->in_h, k->in_w, k->c,
                                     (lisa_resample_filter)k->filter, ws, ws_n);
    bool ok = s == LISA_OK && it_crc32(out, n_out) == k->crc;
    if (!ok) {
        cr_log_error("case at line %d: %s %dx%dx%d -> %dx%d (h x w x c) pattern %d seed %llu: status %s (%s), "
                     "crc %08x expected %08x",
                     line_no, k->filter == 2 ? "BILINEAR" : "BICUBIC", k->in_h, k->in_w, k->c, k->out_h, k->out_w,
                     k->pattern, k->seed, lisa_status_name(s), lisa_last_error(), it_crc32(out, n_out), k->crc);
        for (int i = 0; i < k->n_samples; i++)
            if (out[k->sample_idx[i]] != k->sample_val[i])
                cr_log_error("  sample index %ld (y=%ld x=%ld ch=%ld): got %d, Pillow %d", k->sample_idx[i],
                             k->sample_idx[i] / (k->out_w * k->c), (k->sample_idx[i] / k->c) % k->out_w,
                             k->sample_idx[i] % k->c, out[k->sample_idx[i]], k->sample_val[i]);
        if (strcmp(k->full_hex, "-") != 0) {
            uint8_t *ref = malloc(n_out);
            cr_assert(ref && it_unhex(ref, n_out, k->full_hex));
            it_diff_u8("  full output", out, ref, k->out_h, k->out_w, k->c);
            free(ref);
        }
    }
    free(ws);
    free(in);
    free(out);
    return ok;
}

Test(preprocess_resample, pillow_golden_cases) {
    char *path = it_data_path("preprocess/resample_cases.txt");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0, line_no = 0, with_full = 0, by_filter[4] = {0};
    while (it_next_line(f, &line, &cap)) {
        line_no++;
        rcase k;
        cr_assert(parse_case(&k, line), "%s: malformed case %d", path, line_no);
        with_full += strcmp(k.full_hex, "-") != 0;
        by_filter[k.filter & 3]++;
        if (!run_case(&k, line_no)) bad++;
        n++;
    }
    free(line);
    fclose(f);
    free(path);
    cr_log_info("%d Pillow cases (%d bilinear, %d bicubic, %d with full outputs), %d mismatched", n, by_filter[2],
                by_filter[3], with_full, bad);
    cr_expect(n >= 360, "only %d cases read", n);
    cr_expect(by_filter[2] > 100 && by_filter[3] > 100);
    cr_expect_eq(bad, 0, "%d of %d resize cases differ from Pillow 9.4.0", bad, n);
}

/* Independent of Pillow: a constant image stays constant (the fixed-point weights of every output
 * pixel sum to 2^22 within rounding), for both filters and many sizes. */
Test(preprocess_resample, constant_image_stays_constant) {
    static uint8_t in[37 * 29 * 3], out[101 * 7 * 3];
    static uint8_t ws[1 << 16];
    const int vals[] = {0, 1, 128, 254, 255};
    for (int f = 2; f <= 3; f++)
        for (unsigned vi = 0; vi < sizeof vals / sizeof vals[0]; vi++) {
            memset(in, vals[vi], sizeof in);
            const int shapes[][4] = {{37, 29, 101, 7}, {37, 29, 3, 5}, {37, 29, 1, 1}, {1, 29, 101, 7}};
            for (int si = 0; si < 4; si++) {
                const int *sh = shapes[si];
                size_t need = lisa_resample_u8_workspace_size(sh[2], sh[3], sh[0], sh[1], 3, f);
                cr_assert(need <= sizeof ws);
                cr_assert_eq(lisa_resample_u8(out, sh[2], sh[3], in, sh[0], sh[1], 3, f, ws, sizeof ws), LISA_OK);
                for (int i = 0; i < sh[2] * sh[3] * 3; i++)
                    cr_assert_eq(out[i], vals[vi], "filter %d value %d shape %d: out[%d] = %d", f, vals[vi], si, i,
                                 out[i]);
            }
        }
}

Test(preprocess_resample, same_size_is_a_copy_and_needs_no_workspace) {
    uint8_t in[5 * 4 * 3], out[5 * 4 * 3];
    for (int i = 0; i < 60; i++) in[i] = (uint8_t)(i * 37);
    cr_assert_eq(lisa_resample_u8(out, 5, 4, in, 5, 4, 3, LISA_RESAMPLE_BICUBIC, NULL, 0), LISA_OK);
    cr_expect(memcmp(in, out, sizeof in) == 0);
}

Test(preprocess_resample, bad_arguments) {
    uint8_t in[12] = {0}, out[12];
    static uint8_t ws[4096];
    cr_expect_eq(lisa_resample_u8(out, 2, 2, in, 2, 3, 2, LISA_RESAMPLE_BILINEAR, ws, sizeof ws), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "2 channels") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_resample_u8(out, 0, 2, in, 2, 2, 3, LISA_RESAMPLE_BILINEAR, ws, sizeof ws), LISA_ERR_INVALID_ARG);
    cr_expect(strstr(lisa_last_error(), "0x2") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_resample_u8(out, 2, 2, in, 2, 2, 3, (lisa_resample_filter)1, ws, sizeof ws), LISA_ERR_UNSUPPORTED);
    cr_expect(strstr(lisa_last_error(), "filter 1") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_resample_u8_workspace_size(2, 2, 2, 2, 4, LISA_RESAMPLE_BILINEAR), 0);
    /* Workspace too small: reported, nothing written past it. */
    size_t need = lisa_resample_u8_workspace_size(2, 2, 1, 4, 3, LISA_RESAMPLE_BICUBIC);
    cr_assert(need > 0);
    cr_expect_eq(lisa_resample_u8(out, 2, 2, in, 1, 4, 3, LISA_RESAMPLE_BICUBIC, ws, need - 1), LISA_ERR_OOM);
    cr_expect(strstr(lisa_last_error(), "workspace") != NULL, "%s", lisa_last_error());
    cr_expect_eq(lisa_resample_u8(out, 2, 2, in, 1, 4, 3, LISA_RESAMPLE_BICUBIC, ws, need), LISA_OK);
}

/* An unaligned workspace pointer works (the function aligns it inside the stated size). */
Test(preprocess_resample, unaligned_workspace) {
    uint8_t in[9 * 11 * 3], out_a[4 * 6 * 3], out_b[4 * 6 * 3];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)(i * 131 + 7);
    size_t need = lisa_resample_u8_workspace_size(4, 6, 9, 11, 3, LISA_RESAMPLE_BICUBIC);
    unsigned char *ws = malloc(need + 64);
    cr_assert(ws);
    cr_assert_eq(lisa_resample_u8(out_a, 4, 6, in, 9, 11, 3, LISA_RESAMPLE_BICUBIC, ws, need), LISA_OK);
    for (int off = 1; off < 64; off += 13) {
        cr_assert_eq(lisa_resample_u8(out_b, 4, 6, in, 9, 11, 3, LISA_RESAMPLE_BICUBIC, ws + off, need), LISA_OK);
        cr_expect(memcmp(out_a, out_b, sizeof out_a) == 0, "offset %d", off);
    }
    free(ws);
}
