/* tests/test_image_write.c — PNG encode to memory and to a file (atomic), for masks (gray) and
 * overlays (RGB). Checked by parsing the PNG container by hand (signature, IHDR fields, chunk
 * CRCs with zlib) and by decoding it again with lisa_image_decode, which test_image_decode.c
 * checks against OpenCV. */
#include "imgtest.h"
#include "loader/image.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Walks the chunks: every CRC must be right; returns the IHDR colour type and checks the size. */
static int check_container(const uint8_t *b, size_t n, int32_t h, int32_t w) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    cr_assert(n > 8 + 25 && memcmp(b, sig, 8) == 0, "no PNG signature");
    size_t i = 8;
    int color_type = -1;
    bool iend = false;
    while (i + 12 <= n) {
        uint32_t len = be32(b + i);
        cr_assert(i + 12 + len <= n, "chunk at %zu overruns the buffer", i);
        uint32_t crc = it_crc32(b + i + 4, 4 + (size_t)len);
        cr_expect_eq(crc, be32(b + i + 8 + len), "chunk %.4s: bad CRC", (const char *)b + i + 4);
        if (memcmp(b + i + 4, "IHDR", 4) == 0) {
            cr_expect_eq(be32(b + i + 8), (uint32_t)w);
            cr_expect_eq(be32(b + i + 12), (uint32_t)h);
            cr_expect_eq(b[i + 16], 8, "bit depth %d", b[i + 16]);
            color_type = b[i + 17];
            cr_expect_eq(b[i + 20], 0, "interlaced");
        }
        iend = memcmp(b + i + 4, "IEND", 4) == 0;
        i += 12 + len;
    }
    cr_expect(iend && i == n, "stream does not end with IEND exactly (%zu of %zu bytes)", i, n);
    return color_type;
}

Test(image_write, gray_mask_roundtrip) {
    lisa_bitmap m;
    cr_assert_eq(lisa_bitmap_alloc(&m, 37, 53, 1), LISA_OK);
    for (int y = 0; y < 37; y++)
        for (int x = 0; x < 53; x++) m.data[y * 53 + x] = ((x - 26) * (x - 26) + (y - 18) * (y - 18) < 200) ? 255 : 0;
    void *buf = NULL;
    size_t n = 0;
    cr_assert_eq(lisa_image_encode_png(&buf, &n, &m), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(check_container(buf, n, 37, 53), 0, "gray colour type");
    lisa_bitmap d;
    cr_assert_eq(lisa_image_decode(&d, buf, n, "mask.png", NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert(d.h == 37 && d.w == 53 && d.c == 3);
    int bad = 0;
    for (int i = 0; i < 37 * 53; i++)
        for (int ch = 0; ch < 3; ch++) bad += d.data[i * 3 + ch] != m.data[i];
    cr_expect_eq(bad, 0, "%d values differ after the round trip", bad);
    cr_log_info("37x53 mask -> %zu PNG bytes", n);
    lisa_bitmap_free(&d);
    lisa_bitmap_free(&m);
    free(buf);
}

Test(image_write, rgb_overlay_roundtrip_and_file) {
    lisa_bitmap o;
    cr_assert_eq(lisa_bitmap_alloc(&o, 31, 47, 3), LISA_OK);
    tu_rng r = tu_rng_seed(5);
    for (int i = 0; i < 31 * 47 * 3; i++) o.data[i] = (uint8_t)(tu_next_u64(&r) >> 56);
    void *buf = NULL;
    size_t n = 0;
    cr_assert_eq(lisa_image_encode_png(&buf, &n, &o), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(check_container(buf, n, 31, 47), 2, "RGB colour type");
    lisa_bitmap d;
    cr_assert_eq(lisa_image_decode(&d, buf, n, "overlay.png", NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(it_diff_u8("overlay", d.data, o.data, 31, 47, 3), 0);
    lisa_bitmap_free(&d);

    /* To a file: same bytes, no temporary left behind, an existing file replaced. */
    char *tmp = tu_make_tmpdir("lisa-png");
    char path[512];
    snprintf(path, sizeof path, "%s/overlay.png", tmp);
    cr_assert(tu_write_file(path, "old", 3));
    cr_assert_eq(lisa_image_write_png(path, &o), LISA_OK, "%s", lisa_last_error());
    size_t fn = 0;
    char *fb = tu_read_file(path, &fn);
    cr_assert(fb);
    cr_expect(fn == n && memcmp(fb, buf, n) == 0, "file bytes differ from the memory encoding");
    free(fb);
    DIR *dir = opendir(tmp);
    cr_assert(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.') entries++;
    closedir(dir);
    cr_expect_eq(entries, 1, "temporary files left in %s", tmp);
    tu_remove_tree(tmp);
    free(tmp);
    free(buf);
    lisa_bitmap_free(&o);
}

Test(image_write, errors_leave_no_file) {
    lisa_bitmap o;
    cr_assert_eq(lisa_bitmap_alloc(&o, 4, 4, 3), LISA_OK);
    cr_expect_eq(lisa_image_write_png("/nonexistent-dir/x/mask.png", &o), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "/nonexistent-dir/x/mask.png") != NULL, "%s", lisa_last_error());

    /* Renaming onto a directory fails after the bytes were written: the temporary must go. */
    char *tmp = tu_make_tmpdir("lisa-png");
    char path[512];
    snprintf(path, sizeof path, "%s/out.png", tmp);
    cr_assert(mkdir(path, 0700) == 0);
    cr_expect_eq(lisa_image_write_png(path, &o), LISA_ERR_IO);
    cr_expect(strstr(lisa_last_error(), "out.png") != NULL, "%s", lisa_last_error());
    DIR *dir = opendir(tmp);
    cr_assert(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.') entries++;
    closedir(dir);
    cr_expect_eq(entries, 1, "a temporary file was left behind");
    tu_remove_tree(tmp);
    free(tmp);

    void *buf = (void *)1;
    size_t n = 7;
    o.c = 2;
    cr_expect_eq(lisa_image_encode_png(&buf, &n, &o), LISA_ERR_INVALID_ARG);
    cr_expect(buf == NULL && n == 0);
    cr_expect(strstr(lisa_last_error(), "4x4x2") != NULL, "%s", lisa_last_error());
    o.c = 3;
    lisa_bitmap_free(&o);
    cr_expect_eq(lisa_image_encode_png(&buf, &n, &o), LISA_ERR_INVALID_ARG);
    cr_expect_eq(lisa_bitmap_alloc(&o, 0, 4, 3), LISA_ERR_INVALID_ARG);
}
