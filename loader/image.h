/* loader/image.h — PNG / JPEG decode to RGB u8, behaving like LISA's `cv2.imread(path)` (OpenCV
 * 4.8, IMREAD_COLOR) followed by cv2.cvtColor(BGR2RGB) (spec docs/inference.md §2.1), and PNG
 * encode for masks and overlays.
 *
 * What "like OpenCV" means here (each point checked against opencv-python-headless 4.8.0.74 by
 * tests/golden/gen_preprocess.py and tests/test_image_decode.c):
 *   - the format is sniffed from the magic bytes, never from the file name;
 *   - PNG: the same libpng transforms OpenCV's PngDecoder requests: 16-bit -> 8-bit by keeping the
 *     high byte (png_set_strip_16), alpha dropped without compositing (png_set_strip_alpha),
 *     palette and 1/2/4-bit gray expanded, gray replicated to 3 channels, no gamma correction,
 *     Adam7 handled; an eXIf chunk (before or after IDAT) orients the image as for JPEG;
 *   - JPEG: libjpeg(-turbo) defaults (ISLOW IDCT, fancy upsampling) to RGB, gray replicated,
 *     CMYK/YCCK decoded as (Adobe-inverted) CMYK and converted with OpenCV's integer formula
 *     (icvCvt_CMYK2BGR_8u_C4C3R); the EXIF orientation (1..8) of the FIRST APP1 marker is
 *     applied with OpenCV's flip/transpose sequence (ExifReader quirks included);
 *   - libjpeg warnings ("extraneous bytes", "bad Huffman code", ...) are tolerated as in OpenCV,
 *     except a premature end of the file: libjpeg then pads the image with gray and OpenCV returns
 *     that image; we return LISA_ERR_FORMAT unless limits.allow_truncated_jpeg is set, in which
 *     case the result equals OpenCV's. Truncated or corrupt PNGs fail in both.
 * Decoding is bit-exact to OpenCV 4.8 on the test corpus (Debian libjpeg-turbo 2.1.5 vs OpenCV's
 * bundled 2.1.3 produce identical pixels there).
 *
 * Errors: every failure returns a status and a message naming the file (or the `name` given for
 * a memory buffer) and the offending value; libpng/libjpeg errors are caught with setjmp handlers
 * that free everything; nothing is printed. Size limits are checked from the header, before the
 * pixel buffer is allocated (decompression bombs).
 */
#ifndef LISA_LOADER_IMAGE_H
#define LISA_LOADER_IMAGE_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A decoded image (named lisa_bitmap because lisa_image is the public handle of include/lisa.h).
 * Owns `data` (malloc'd by lisa_image_load / lisa_image_decode / lisa_bitmap_alloc), freed by
 * lisa_bitmap_free; lives until then. data is [h, w, c] row-major, c = 3 (RGB) for decoded images,
 * c = 1 or 3 for images passed to the PNG encoder. */
typedef struct lisa_bitmap {
    uint8_t *data;
    int32_t h, w, c;
} lisa_bitmap;

typedef enum lisa_image_format {
    LISA_IMAGE_FORMAT_UNKNOWN = 0,
    LISA_IMAGE_FORMAT_PNG = 1,
    LISA_IMAGE_FORMAT_JPEG = 2,
} lisa_image_format;

/* Decode limits; by value, defaults from lisa_image_default_limits(). A field <= 0 means "no
 * limit" for the sizes. */
typedef struct lisa_image_limits {
    int64_t max_pixels;        /* h*w; default 64 Mpx (LISA_IMAGE_DEFAULT_MAX_PIXELS) */
    int64_t max_file_bytes;    /* encoded size; default 256 MiB */
    int32_t max_side;          /* max(h, w); default 1<<20, OpenCV's CV_IO_MAX_IMAGE_WIDTH/HEIGHT */
    bool allow_truncated_jpeg; /* decode a truncated JPEG as OpenCV does (gray-padded); default false */
} lisa_image_limits;

#define LISA_IMAGE_DEFAULT_MAX_PIXELS (64ll * 1024 * 1024)
#define LISA_IMAGE_DEFAULT_MAX_FILE_BYTES (256ll * 1024 * 1024)

lisa_image_limits lisa_image_default_limits(void);

/* Which decoder the leading bytes select (PNG signature, JPEG SOI FF D8 FF). */
lisa_image_format lisa_image_sniff(const void *buf, size_t len);
const char *lisa_image_format_name(lisa_image_format f); /* "PNG", "JPEG", "unknown"; static */

/* Decodes the file at `path` into *out (RGB, c = 3). On failure *out is zeroed and nothing is
 * allocated. limits may be NULL (defaults). Errors: LISA_ERR_IO (cannot open/read), LISA_ERR_LIMIT
 * (file bytes, side or pixel count over the limit), LISA_ERR_FORMAT (not PNG/JPEG, corrupt,
 * truncated, unsupported colour layout), LISA_ERR_OOM. */
lisa_status lisa_image_load(lisa_bitmap *out, const char *path, const lisa_image_limits *limits);

/* Same from memory; `name` is used in messages only (may be NULL: "<memory>"). */
lisa_status lisa_image_decode(lisa_bitmap *out, const void *buf, size_t len, const char *name,
                              const lisa_image_limits *limits);

/* Allocates an owner image of h x w x c (zero-filled). */
lisa_status lisa_bitmap_alloc(lisa_bitmap *out, int32_t h, int32_t w, int32_t c);
/* Frees data and zeroes the struct. Safe on a zeroed struct. */
void lisa_bitmap_free(lisa_bitmap *img);

/* ---- PNG encode (loader/image_write.c) --------------------------------------------------------- */

/* Encodes img (c = 1: 8-bit gray, e.g. a 0/255 mask; c = 3: 8-bit RGB, e.g. an overlay) as PNG
 * into a malloc'd buffer *out_buf of *out_len bytes that the caller frees with free(). */
lisa_status lisa_image_encode_png(void **out_buf, size_t *out_len, const lisa_bitmap *img);

/* Writes img as a PNG file at `path`, atomically: the bytes go to "<path>.tmp.<pid>" which is
 * renamed over `path` only once complete, so a failure never leaves a partial file. */
lisa_status lisa_image_write_png(const char *path, const lisa_bitmap *img);

#ifdef __cplusplus
}
#endif

#endif
