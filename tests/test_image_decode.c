/* tests/test_image_decode.c — PNG/JPEG decode against OpenCV 4.8 (cv2.imread + BGR2RGB), EXIF
 * orientation, unusual colour layouts, the bad-input corpus, limits, and mutation robustness.
 *
 * Golden data (tests/golden/gen_preprocess.py, real opencv-python-headless 4.8.0.74):
 *   tests/data/preprocess/photos.txt       "decode" lines: CRC32 + sampled pixels of the photos
 *   tests/data/images/exif/expected.txt    full OpenCV output of each orientation file
 *   tests/data/images/bad/expected.txt     OpenCV output, or the status we must return
 * Measured when generating: Debian's libjpeg-turbo 2.1.5 and OpenCV's bundled 2.1.3 decode every
 * JPEG here identically, so JPEGs are compared exactly too (a mismatch logs the count and max
 * difference, which tells a ±1 decoder difference from a real bug).
 */
#include "imgtest.h"
#include "loader/image.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool contains(const char *hay, const char *needle) { return hay && needle && strstr(hay, needle) != NULL; }

Test(image_decode, photos_match_opencv) {
    char *path = it_data_path("preprocess/photos.txt");
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (it_next_line(f, &line, &cap)) {
        char kind[16], name[128];
        int h, w, ns, off = 0;
        unsigned crc;
        if (sscanf(line, "%15s %127s %d %d %x %d%n", kind, name, &h, &w, &crc, &ns, &off) != 6 ||
            strcmp(kind, "decode") != 0)
            continue;
        char rel[160];
        snprintf(rel, sizeof rel, "images/%s", name);
        char *img_path = it_data_path(rel);
        lisa_bitmap img;
        lisa_status s = lisa_image_load(&img, img_path, NULL);
        cr_assert_eq(s, LISA_OK, "%s: %s", name, lisa_last_error());
        cr_expect_eq(img.c, 3);
        cr_expect(img.h == h && img.w == w, "%s: %dx%d, OpenCV %dx%d", name, img.h, img.w, h, w);
        uint32_t got = it_crc32(img.data, (size_t)img.h * img.w * 3);
        cr_expect_eq(got, crc, "%s: decoded pixels differ from OpenCV (crc %08x, expected %08x)", name, got, crc);
        const char *p = line + off;
        for (int i = 0; i < ns; i++) {
            long idx;
            int val, used;
            cr_assert(sscanf(p, "%ld %d%n", &idx, &val, &used) == 2);
            p += used;
            cr_expect_eq(img.data[idx], val, "%s: value %ld (y=%ld x=%ld ch=%ld) = %d, OpenCV %d", name, idx,
                         idx / (w * 3), (idx / 3) % w, idx % 3, img.data[idx], val);
        }
        lisa_bitmap_free(&img);
        free(img_path);
        n++;
    }
    free(line);
    fclose(f);
    free(path);
    cr_expect_eq(n, 5, "expected 5 photos, read %d", n);
}

/* Runs every line of a manifest (exif/ or bad/expected.txt). */
static void run_manifest(const char *dir) {
    char rel[320];
    snprintf(rel, sizeof rel, "images/%s/expected.txt", dir);
    char *path = it_data_path(rel);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int n_ok = 0, n_err = 0;
    while (it_next_line(f, &line, &cap)) {
        char name[128], verdict[32], a[64];
        int off = 0;
        cr_assert(sscanf(line, "%127s %31s %63s%n", name, verdict, a, &off) == 3, "%s: bad line '%s'", path, line);
        snprintf(rel, sizeof rel, "images/%s/%s", dir, name);
        char *file = it_data_path(rel);
        lisa_image_limits lim = lisa_image_default_limits();
        if (strcmp(verdict, "allow_truncated") == 0) lim.allow_truncated_jpeg = true;
        lisa_bitmap img;
        lisa_status s = lisa_image_load(&img, file, &lim);
        if (strcmp(verdict, "error") == 0) {
            /* a = expected status name; the message must name the file. */
            cr_expect_str_eq(lisa_status_name(s), a, "%s: got %s (%s), expected %s", name, lisa_status_name(s),
                             lisa_last_error(), a);
            cr_expect(contains(lisa_last_error(), name), "%s: message does not name the file: %s", name,
                      lisa_last_error());
            cr_expect(img.data == NULL && img.h == 0 && img.w == 0);
            cr_log_info("%s/%s -> %s: %s", dir, name, lisa_status_name(s), lisa_last_error());
            n_err++;
        } else {
            int h = atoi(a), w = 0, used = 0;
            unsigned crc = 0;
            char hex[8192];
            cr_assert(sscanf(line + off, "%d %x %8191s%n", &w, &crc, hex, &used) == 3, "%s: bad line", path);
            cr_assert_eq(s, LISA_OK, "%s/%s: %s", dir, name, lisa_last_error());
            cr_expect(img.h == h && img.w == w && img.c == 3, "%s: %dx%dx%d, OpenCV %dx%dx3", name, img.h, img.w,
                      img.c, h, w);
            if (img.h == h && img.w == w) {
                uint32_t got = it_crc32(img.data, (size_t)h * w * 3);
                cr_expect_eq(got, crc, "%s/%s: pixels differ from OpenCV (crc %08x, expected %08x)", dir, name, got,
                             crc);
                if (strcmp(hex, "-") != 0) {
                    uint8_t *ref = malloc((size_t)h * w * 3);
                    cr_assert(ref && it_unhex(ref, (size_t)h * w * 3, hex), "%s: bad hex", name);
                    cr_expect_eq(it_diff_u8(name, img.data, ref, h, w, 3), 0);
                    free(ref);
                }
            }
            lisa_bitmap_free(&img);
            n_ok++;
        }
        free(file);
    }
    cr_log_info("%s: %d decoded like OpenCV, %d refused as expected", dir, n_ok, n_err);
    free(line);
    fclose(f);
    free(path);
}

/* Orientations 1..8 (II and MM byte order), XMP-before-EXIF (OpenCV reads the first APP1 only, so
 * no rotation), an out-of-range value, and PNG eXIf before and after IDAT. */
Test(image_decode, exif_orientation_like_opencv) { run_manifest("exif"); }

/* 16-bit, gray (1/4/8-bit), gray+alpha, palette (2/8-bit, with tRNS), RGBA, RGB+tRNS, Adam7,
 * gAMA, gray/CMYK/progressive JPEG; and empty, random, text-named-.png, truncated, CRC-corrupt,
 * header-only and bomb files. */
Test(image_decode, bad_and_unusual_corpus) { run_manifest("bad"); }

Test(image_decode, limits_checked_before_decoding) {
    char *path = it_data_path("images/chelsea.png"); /* 451 x 300 */
    lisa_bitmap img;
    lisa_image_limits lim = lisa_image_default_limits();
    lim.max_pixels = 451 * 300 - 1;
    cr_expect_eq(lisa_image_load(&img, path, &lim), LISA_ERR_LIMIT);
    cr_expect(contains(lisa_last_error(), "chelsea.png") && contains(lisa_last_error(), "451x300"), "%s",
              lisa_last_error());
    cr_expect(contains(lisa_last_error(), "135300 pixels"), "%s", lisa_last_error());
    lim.max_pixels = 451 * 300;
    cr_expect_eq(lisa_image_load(&img, path, &lim), LISA_OK, "%s", lisa_last_error());
    lisa_bitmap_free(&img);

    lim = lisa_image_default_limits();
    lim.max_side = 450;
    cr_expect_eq(lisa_image_load(&img, path, &lim), LISA_ERR_LIMIT);
    cr_expect(contains(lisa_last_error(), "per side"), "%s", lisa_last_error());

    lim = lisa_image_default_limits();
    lim.max_file_bytes = 1000;
    cr_expect_eq(lisa_image_load(&img, path, &lim), LISA_ERR_LIMIT);
    cr_expect(contains(lisa_last_error(), "max_file_bytes") && contains(lisa_last_error(), "chelsea.png"), "%s",
              lisa_last_error());
    free(path);

    /* JPEG: the limit applies to the stored size. */
    path = it_data_path("images/rocket.jpg");
    lim = lisa_image_default_limits();
    lim.max_pixels = 640 * 427 - 1;
    cr_expect_eq(lisa_image_load(&img, path, &lim), LISA_ERR_LIMIT);
    cr_expect(contains(lisa_last_error(), "640x427"), "%s", lisa_last_error());
    free(path);
}

Test(image_decode, io_errors_name_the_file) {
    lisa_bitmap img;
    cr_expect_eq(lisa_image_load(&img, "/nonexistent/dir/cat.png", NULL), LISA_ERR_IO);
    cr_expect(contains(lisa_last_error(), "/nonexistent/dir/cat.png"), "%s", lisa_last_error());
    cr_expect(contains(lisa_last_error(), "No such file"), "%s", lisa_last_error());
    char *dir = it_data_path("images");
    cr_expect_eq(lisa_image_load(&img, dir, NULL), LISA_ERR_IO);
    cr_expect(contains(lisa_last_error(), "not a regular file"), "%s", lisa_last_error());
    free(dir);
}

/* Format comes from the magic bytes: a PNG named .jpg decodes, and memory decode equals file
 * decode; the memory name appears in errors. */
Test(image_decode, sniff_by_magic_and_memory_decode) {
    char *path = it_data_path("images/chelsea_tiny.png");
    size_t len = 0;
    char *bytes = tu_read_file(path, &len);
    cr_assert(bytes);
    cr_expect_eq(lisa_image_sniff(bytes, len), LISA_IMAGE_FORMAT_PNG);
    cr_expect_str_eq(lisa_image_format_name(LISA_IMAGE_FORMAT_JPEG), "JPEG");
    char *tmp = tu_make_tmpdir("lisa-img");
    char fake[512];
    snprintf(fake, sizeof fake, "%s/photo.jpg", tmp);
    cr_assert(tu_write_file(fake, bytes, len));
    lisa_bitmap a, b;
    cr_assert_eq(lisa_image_load(&a, fake, NULL), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_image_decode(&b, bytes, len, "upload#1", NULL), LISA_OK, "%s", lisa_last_error());
    cr_expect(a.h == 30 && a.w == 45 && b.h == 30 && b.w == 45);
    cr_expect(memcmp(a.data, b.data, 30 * 45 * 3) == 0);
    lisa_bitmap_free(&a);
    lisa_bitmap_free(&b);
    lisa_bitmap_free(&a); /* double free of a zeroed struct is harmless */
    cr_expect_eq(lisa_image_decode(&b, bytes, 20, "upload#2", NULL), LISA_ERR_FORMAT);
    cr_expect(contains(lisa_last_error(), "upload#2"), "%s", lisa_last_error());
    cr_expect_eq(lisa_image_decode(&b, "GIF89a......", 12, NULL, NULL), LISA_ERR_FORMAT);
    cr_expect(contains(lisa_last_error(), "<memory>") && contains(lisa_last_error(), "47 49 46"), "%s",
              lisa_last_error());
    cr_expect_eq(lisa_image_sniff("\xff\xd8\xff", 3), LISA_IMAGE_FORMAT_JPEG);
    cr_expect_eq(lisa_image_sniff("\xff\xd8", 2), LISA_IMAGE_FORMAT_UNKNOWN);
    tu_remove_tree(tmp);
    free(tmp);
    free(bytes);
    free(path);
}

/* A truncated JPEG is refused by default, naming the file, and decodes as OpenCV's gray-padded
 * image only when allowed (the allow_truncated line of bad/expected.txt checks the pixels). */
Test(image_decode, truncated_jpeg_policy) {
    char *path = it_data_path("images/bad/truncated.jpg");
    lisa_bitmap img;
    cr_expect_eq(lisa_image_load(&img, path, NULL), LISA_ERR_FORMAT);
    cr_expect(contains(lisa_last_error(), "truncated") && contains(lisa_last_error(), "allow_truncated_jpeg"), "%s",
              lisa_last_error());
    lisa_image_limits lim = lisa_image_default_limits();
    lim.allow_truncated_jpeg = true;
    cr_assert_eq(lisa_image_load(&img, path, &lim), LISA_OK, "%s", lisa_last_error());
    /* libjpeg fills the missing bottom with mid-gray (128), which the last row shows. */
    const uint8_t *last = img.data + (size_t)(img.h - 1) * img.w * 3;
    for (int x = 0; x < img.w * 3; x++) cr_expect_eq(last[x], 128);
    lisa_bitmap_free(&img);
    free(path);
}

/* Random byte flips, truncations and length-field edits of valid files: every call returns a
 * status (never crashes, never leaks under ASan), and a failure leaves *out empty. */
static void mutate_and_decode(const char *rel, uint64_t seed, int rounds) {
    char *path = it_data_path(rel);
    size_t len = 0;
    uint8_t *orig = (uint8_t *)tu_read_file(path, &len);
    cr_assert(orig && len > 16);
    uint8_t *buf = malloc(len);
    cr_assert(buf);
    tu_rng r = tu_rng_seed(seed);
    int n_ok = 0, n_fail = 0;
    for (int i = 0; i < rounds; i++) {
        memcpy(buf, orig, len);
        size_t n = len;
        int kind = (int)(tu_next_u64(&r) % 3);
        if (kind == 0) { /* a few random byte changes */
            int k = 1 + (int)(tu_next_u64(&r) % 4);
            for (int j = 0; j < k; j++) buf[tu_next_u64(&r) % len] = (uint8_t)tu_next_u64(&r);
        } else if (kind == 1) { /* truncation */
            n = (size_t)(tu_next_u64(&r) % len);
        } else { /* a byte in the headers (first 200 bytes) set to an extreme */
            buf[tu_next_u64(&r) % (len < 200 ? len : 200)] = (tu_next_u64(&r) & 1) ? 0xff : 0x00;
        }
        lisa_bitmap img;
        lisa_image_limits lim = lisa_image_default_limits();
        lim.max_pixels = 1 << 22; /* keep mutated headers from asking for huge (legal) images */
        lisa_status s = lisa_image_decode(&img, buf, n, "mutant", &lim);
        if (s == LISA_OK) {
            cr_assert(img.data && img.h > 0 && img.w > 0 && img.c == 3);
            n_ok++;
        } else {
            cr_assert(s == LISA_ERR_FORMAT || s == LISA_ERR_LIMIT, "%s mutant %d: %s %s", rel, i, lisa_status_name(s),
                      lisa_last_error());
            cr_assert(img.data == NULL);
            cr_assert(contains(lisa_last_error(), "mutant"), "%s", lisa_last_error());
            n_fail++;
        }
        lisa_bitmap_free(&img);
    }
    cr_log_info("%s: %d mutants decoded, %d refused", rel, n_ok, n_fail);
    free(buf);
    free(orig);
    free(path);
}

Test(image_decode, mutated_png_never_crashes) { mutate_and_decode("images/bad/interlaced.png", 11, 400); }
Test(image_decode, mutated_jpeg_never_crashes) { mutate_and_decode("images/exif/orient_6.jpg", 12, 400); }
Test(image_decode, mutated_progressive_jpeg_never_crashes) { mutate_and_decode("images/bad/progressive.jpg", 13, 300); }
