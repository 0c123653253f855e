/* tests/test_zip.c — the zip reader on archives written by torch.save (miniz), Python's zipfile
 * (stored and deflated) and by hand with ZIP64 fields everywhere (tests/golden/gen_bin.py), plus
 * structural corruptions built here from a valid archive, and the parallel CRC. */
#include "loader/zip.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>
#include <zlib.h>

#define BIN_DIR LISA_TESTDATA_DIR "/bin"

typedef struct file {
    unsigned char *p;
    size_t n;
} file;

static file load(const char *path) {
    file f;
    f.p = (unsigned char *)tu_read_file(path, &f.n);
    cr_assert_not_null(f.p, "%s", path);
    return f;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

Test(zip, torch_archive) {
    file f = load(BIN_DIR "/single/pytorch_model.bin");
    lisa_zip z;
    cr_assert_eq(lisa_zip_open(&z, f.p, f.n, "single", true), LISA_OK, "%s", lisa_last_error());
    cr_expect(z.zip64, "torch always writes ZIP64 end records");
    cr_expect_gt(z.n_entries, 10);
    for (int64_t i = 1; i < z.n_entries; i++) cr_expect_lt(strcmp(z.entries[i - 1].name, z.entries[i].name), 0);
    for (int64_t i = 0; i < z.n_entries; i++) {
        const lisa_zip_entry *e = &z.entries[i];
        cr_expect_eq(e->method, LISA_ZIP_STORED);
        cr_expect_eq(e->data_offset % 64, 0, "%s: torch aligns data to 64 bytes", e->name);
    }
    const lisa_zip_entry *v = lisa_zip_find(&z, "pytorch_model/version");
    cr_assert_not_null(v);
    char buf[8] = {0};
    cr_assert_eq(lisa_zip_extract(&z, v, buf, sizeof buf), LISA_OK);
    cr_expect_str_eq(buf, "3\n");
    cr_expect_null(lisa_zip_find(&z, "pytorch_model/versio"));
    lisa_zip_close(&z);
    free(f.p);
}

/* Python-deflated and ZIP64-everywhere copies hold the same entries with the same bytes. */
Test(zip, variants_hold_the_same_bytes) {
    file ref = load(BIN_DIR "/single/pytorch_model.bin");
    lisa_zip zr;
    cr_assert_eq(lisa_zip_open(&zr, ref.p, ref.n, "ref", true), LISA_OK);
    const char *paths[] = {BIN_DIR "/deflated.bin", BIN_DIR "/zip64_forced.bin"};
    for (int k = 0; k < 2; k++) {
        file f = load(paths[k]);
        lisa_zip z;
        cr_assert_eq(lisa_zip_open(&z, f.p, f.n, paths[k], true), LISA_OK, "%s", lisa_last_error());
        cr_expect_eq(z.n_entries, zr.n_entries);
        for (int64_t i = 0; i < zr.n_entries; i++) {
            const lisa_zip_entry *a = &zr.entries[i], *b = lisa_zip_find(&z, a->name);
            cr_assert_not_null(b, "%s: %s missing", paths[k], a->name);
            cr_expect_eq(b->method, k == 0 ? LISA_ZIP_DEFLATED : LISA_ZIP_STORED);
            cr_expect_eq(b->size, a->size);
            cr_expect_eq(b->crc32, a->crc32);
            unsigned char *x = malloc(a->size + 1), *y = malloc(b->size + 1);
            cr_assert_eq(lisa_zip_extract(&zr, a, x, a->size), LISA_OK);
            cr_assert_eq(lisa_zip_extract(&z, b, y, b->size), LISA_OK, "%s", lisa_last_error());
            cr_expect(memcmp(x, y, a->size) == 0, "%s: %s differs", paths[k], a->name);
            free(x);
            free(y);
        }
        /* corrupt one deflated stream: a clean FORMAT error naming the entry */
        if (k == 0) {
            const lisa_zip_entry *e = lisa_zip_find(&z, "pytorch_model/data.pkl");
            unsigned char *dst = malloc(e->size);
            for (uint64_t at = 0; at < e->comp_size; at += 7) {
                f.p[e->data_offset + at] ^= 0x5a;
                lisa_status s = lisa_zip_extract(&z, e, dst, e->size);
                cr_expect_eq(s, LISA_ERR_FORMAT, "flip at %llu accepted", (unsigned long long)at);
                cr_expect(strstr(lisa_last_error(), "pytorch_model/data.pkl"), "%s", lisa_last_error());
                f.p[e->data_offset + at] ^= 0x5a;
            }
            free(dst);
        }
        lisa_zip_close(&z);
        free(f.p);
    }
    lisa_zip_close(&zr);
    free(ref.p);
}

/* Structural corruptions of a valid archive, each with its own message. */
Test(zip, structural_errors) {
    file f = load(BIN_DIR "/pyzip.bin"); /* Python's zipfile: classic end record, no ZIP64 */
    size_t eocd = f.n - 22;
    cr_assert_eq(rd32(f.p + eocd), 0x06054b50u);
    size_t cd = rd32(f.p + eocd + 16);
    cr_assert_eq(rd32(f.p + cd), 0x02014b50u);
    unsigned char *c = malloc(f.n);
    lisa_zip z;
#define EXPECT(status, needle)                                                                                       \
    do {                                                                                                             \
        lisa_status s_ = lisa_zip_open(&z, c, f.n, "mut", true);                                                    \
        cr_expect_eq(s_, status, "got %s: %s", lisa_status_name(s_), lisa_last_error());                             \
        cr_expect(strstr(lisa_last_error(), needle), "'%s' lacks '%s'", lisa_last_error(), needle);                  \
        if (s_ == LISA_OK) lisa_zip_close(&z);                                                                       \
    } while (0)
    memcpy(c, f.p, f.n);
    EXPECT(LISA_OK, "");
    memcpy(c, f.p, f.n);
    wr16(c + eocd + 20, 5); /* comment length past the end */
    EXPECT(LISA_ERR_FORMAT, "end-of-central-directory");
    memcpy(c, f.p, f.n);
    c[eocd + 12]++; /* central directory size */
    EXPECT(LISA_ERR_FORMAT, "does not end where the end record starts");
    memcpy(c, f.p, f.n);
    wr16(c + eocd + 4, 1); /* disk number */
    EXPECT(LISA_ERR_UNSUPPORTED, "multi-disk");
    memcpy(c, f.p, f.n);
    wr16(c + eocd + 10, 200); /* entry count */
    wr16(c + eocd + 8, 200);
    EXPECT(LISA_ERR_FORMAT, "cannot fit");
    memcpy(c, f.p, f.n);
    wr16(c + cd + 8, 1); /* encrypted */
    EXPECT(LISA_ERR_UNSUPPORTED, "encrypted");
    memcpy(c, f.p, f.n);
    wr16(c + cd + 10, 12); /* bzip2 */
    EXPECT(LISA_ERR_UNSUPPORTED, "compression method 12");
    memcpy(c, f.p, f.n);
    c[cd + 20]++; /* compressed size != size for a stored entry */
    EXPECT(LISA_ERR_FORMAT, "has compressed size");
    memcpy(c, f.p, f.n);
    c[cd + 16] ^= 1; /* CRC in the directory only */
    EXPECT(LISA_ERR_FORMAT, "disagrees with the central directory");
    memcpy(c, f.p, f.n);
    c[cd + 42] = 0xff; /* local header offset */
    EXPECT(LISA_ERR_FORMAT, "no local file header");
    memcpy(c, f.p, f.n);
    c[cd] = 'X'; /* signature */
    EXPECT(LISA_ERR_FORMAT, "central directory entry 0");
    memcpy(c, f.p, f.n);
    wr16(c + cd + 30, 3); /* extra length: a truncated extra field */
    EXPECT(LISA_ERR_FORMAT, "malformed extra field");
    /* two directory entries pointing at one local header: overlap */
    memcpy(c, f.p, f.n);
    size_t cd1 = cd + 46 + (c[cd + 28] | (c[cd + 29] << 8)) + (c[cd + 30] | (c[cd + 31] << 8));
    cr_assert_eq(rd32(c + cd1), 0x02014b50u);
    memcpy(c + cd1 + 42, c + cd + 42, 4);
    EXPECT(LISA_ERR_FORMAT, "");
    /* a stored entry whose data is corrupt: CRC */
    memcpy(c, f.p, f.n);
    c[rd32(f.p + cd + 42) + 30 + (c[cd + 28] | (c[cd + 29] << 8)) + 2] ^= 0x10;
    EXPECT(LISA_ERR_FORMAT, "CRC-32 mismatch");
#undef EXPECT
    free(c);
    free(f.p);
}

Test(zip, truncations) {
    file f = load(BIN_DIR "/zip64_forced.bin");
    for (size_t n = 0; n < f.n; n++) {
        unsigned char *c = malloc(n ? n : 1); /* exact size: ASan catches over-reads */
        memcpy(c, f.p, n);
        lisa_zip z;
        if (lisa_zip_open(&z, c, n, "prefix", true) == LISA_OK) {
            cr_expect_fail("prefix %zu of %zu accepted", n, f.n);
            lisa_zip_close(&z);
        }
        free(c);
    }
    free(f.p);
}

Test(zip, parallel_crc_matches_zlib) {
    size_t n = ((size_t)129 << 20) + 12345; /* above the threshold for splitting */
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    tu_rng r = tu_rng_seed(7);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = tu_next_u64(&r);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
    cr_expect_eq(lisa_crc32(p, n), (uint32_t)crc32_z(0, p, n));
    cr_expect_eq(lisa_crc32(p, 1000), (uint32_t)crc32_z(0, p, 1000));
    cr_expect_eq(lisa_crc32(p, 0), 0u);
    free(p);
}
