/* loader/image.c — PNG (libpng 1.6) and JPEG (libjpeg-turbo, jpeg62 API) decode to RGB u8, the way
 * LISA's chat.py reads images: cv2.imread(path) (OpenCV 4.8, IMREAD_COLOR) + BGR2RGB.
 *
 * ref: opencv/opencv 4.8.0 modules/imgcodecs/src/grfmt_png.cpp (PngDecoder::readData transforms),
 *      grfmt_jpeg.cpp (JpegDecoder: first APP1 = EXIF, JCS_CMYK for 4 components),
 *      utils.cpp icvCvt_CMYK2BGR_8u_C4C3R, exif.cpp (ExifReader), loadsave.cpp (ExifTransform).
 *
 * setjmp discipline: each decoder keeps all of its state in a job struct owned by the caller of
 * the function that calls setjmp, and that function modifies no local variable after setjmp, so
 * every pointer the cleanup needs is valid after a longjmp (C11 7.13.2.1). The libraries' error
 * handlers copy the message into the job and longjmp back; warnings are never printed.
 */
#include "loader/image.h"

#include "core/error.h"

#include <errno.h>
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* jerror.h's message codes; jpeglib.h does not declare them. */
#include <jerror.h>

/* libjpeg-turbo (jdhuff/jdphuff) has no limit on the number of progressive scans; a tiny file can
 * hold thousands of them and take minutes to decode. Real encoders emit < 20. */
#define LISA_JPEG_MAX_SCANS 1000

#define MSG_CAP 256

lisa_image_limits lisa_image_default_limits(void) {
    lisa_image_limits l = {
        .max_pixels = LISA_IMAGE_DEFAULT_MAX_PIXELS,
        .max_file_bytes = LISA_IMAGE_DEFAULT_MAX_FILE_BYTES,
        .max_side = 1 << 20,
        .allow_truncated_jpeg = false,
    };
    return l;
}

lisa_image_format lisa_image_sniff(const void *buf, size_t len) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = buf;
    if (len >= 8 && memcmp(b, png_sig, 8) == 0) return LISA_IMAGE_FORMAT_PNG;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return LISA_IMAGE_FORMAT_JPEG;
    return LISA_IMAGE_FORMAT_UNKNOWN;
}

const char *lisa_image_format_name(lisa_image_format f) {
    switch (f) {
    case LISA_IMAGE_FORMAT_PNG: return "PNG";
    case LISA_IMAGE_FORMAT_JPEG: return "JPEG";
    case LISA_IMAGE_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

lisa_status lisa_bitmap_alloc(lisa_bitmap *out, int32_t h, int32_t w, int32_t c) {
    memset(out, 0, sizeof *out);
    if (h < 1 || w < 1 || c < 1 || c > 4)
        return lisa_fail(LISA_ERR_INVALID_ARG, "image alloc: %dx%dx%d (h x w x c)", (int)h, (int)w, (int)c);
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    out->data = calloc(n, 1);
    if (!out->data) return lisa_fail(LISA_ERR_OOM, "image alloc: %zu bytes for %dx%dx%d", n, (int)h, (int)w, (int)c);
    out->h = h, out->w = w, out->c = c;
    return LISA_OK;
}

void lisa_bitmap_free(lisa_bitmap *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* Header-time size check: before any pixel buffer exists. */
static lisa_status check_dims(const char *name, const char *fmt, uint64_t w, uint64_t h,
                              const lisa_image_limits *lim) {
    if (w == 0 || h == 0)
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s header gives an empty image (%llux%llu, w x h)", name, fmt,
                         (unsigned long long)w, (unsigned long long)h);
    if (lim->max_side > 0 && (w > (uint64_t)lim->max_side || h > (uint64_t)lim->max_side))
        return lisa_fail(LISA_ERR_LIMIT, "%s: %s image is %llux%llu (w x h), over the limit of %d pixels per side", name,
                         fmt, (unsigned long long)w, (unsigned long long)h, (int)lim->max_side);
    if (lim->max_pixels > 0 && w * h > (uint64_t)lim->max_pixels)
        return lisa_fail(LISA_ERR_LIMIT,
                         "%s: %s image is %llux%llu (w x h) = %llu pixels, over the limit of %lld "
                         "(lisa_image_limits.max_pixels)",
                         name, fmt, (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                         (long long)lim->max_pixels);
    if (w > INT32_MAX || h > INT32_MAX || w * h * 4 > SIZE_MAX / 2)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %s image is %llux%llu (w x h), too large to address", name, fmt,
                         (unsigned long long)w, (unsigned long long)h);
    return LISA_OK;
}

/* ---- EXIF orientation: OpenCV 4.8 ExifReader, quirks included ---------------------------------- */
/* OpenCV parses IFD0 entry by entry into a map; an entry whose data lies outside the block throws,
 * which ends the parse but keeps the entries read so far. The first Orientation entry wins (map
 * insert), and its value is read as a SHORT at entry+8 whatever the declared type. A block that
 * does not start "II" is read big-endian (getU16/getU32 test only for INTEL). */

typedef struct exif_reader {
    const uint8_t *d;
    size_t n;
    bool intel;
    bool fail; /* the ExifParsingError */
} exif_reader;

static uint32_t ex_u16(exif_reader *r, size_t off) {
    if (r->fail || off + 1 >= r->n) {
        r->fail = true;
        return 0;
    }
    return r->intel ? (uint32_t)r->d[off] | (uint32_t)r->d[off + 1] << 8 : (uint32_t)r->d[off] << 8 | r->d[off + 1];
}

static uint32_t ex_u32(exif_reader *r, size_t off) {
    if (r->fail || off + 3 >= r->n) {
        r->fail = true;
        return 0;
    }
    const uint8_t *p = r->d + off;
    return r->intel ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
                    : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* getString: size > 4 -> data at the offset stored in the entry, else inline. */
static void ex_string(exif_reader *r, size_t off) {
    size_t size = ex_u32(r, off + 4), data_off = 8;
    if (size > 4) data_off = ex_u32(r, off + 8);
    if (!r->fail && (data_off > r->n || data_off + size > r->n)) r->fail = true;
}

/* getResolution / getWhitePoint / getPrimaryChromaticies / ...: `count` rationals at the offset
 * stored in the entry; OpenCV steps that offset in uint32_t. */
static void ex_rationals(exif_reader *r, size_t off, int count) {
    uint32_t ro = ex_u32(r, off + 8);
    for (int i = 0; i < count && !r->fail; i++, ro += 8) {
        ex_u32(r, ro);
        ex_u32(r, (size_t)ro + 4);
    }
}

/* Returns the orientation value (any u16) or 0 if the block has none. `d` starts at the TIFF
 * header (OpenCV skips 6 bytes of a JPEG APP1 without checking for "Exif\0\0"). */
static int exif_orientation(const uint8_t *d, size_t n) {
    if (!d || n == 0) return 0;
    exif_reader r = {d, n, false, false};
    /* getFormat: INTEL only for "II"; NONE and MOTO both read big-endian. */
    r.intel = !(n > 1 && d[0] != d[1]) && d[0] == 'I';
    if (ex_u16(&r, 2) != 0x002A) return 0;
    uint32_t offset = ex_u32(&r, 4);
    size_t n_entries = ex_u16(&r, offset);
    if (r.fail) return 0;
    offset += 2;
    int orientation = 0;
    bool have = false;
    for (size_t e = 0; e < n_entries; e++, offset += 12) {
        uint32_t tag = ex_u16(&r, offset);
        if (r.fail) break;
        switch (tag) {
        case 0x010E: /* IMAGE_DESCRIPTION */
        case 0x010F: /* MAKE */
        case 0x0110: /* MODEL */
        case 0x0131: /* SOFTWARE */
        case 0x0132: /* DATE_TIME */
        case 0x8298: /* COPYRIGHT */ ex_string(&r, offset); break;
        case 0x0112: { /* ORIENTATION */
            uint32_t v = ex_u16(&r, (size_t)offset + 8);
            if (!r.fail && !have) orientation = (int)v, have = true;
            break;
        }
        case 0x011A: /* XRESOLUTION */
        case 0x011B: /* YRESOLUTION */ ex_rationals(&r, offset, 1); break;
        case 0x0128: /* RESOLUTION_UNIT */
        case 0x0213: /* Y_CB_CR_POSITIONING */ ex_u16(&r, (size_t)offset + 8); break;
        case 0x013E: /* WHITE_POINT */ ex_rationals(&r, offset, 2); break;
        case 0x013F: /* PRIMARY_CHROMATICIES */ ex_rationals(&r, offset, 6); break;
        case 0x0211: /* Y_CB_CR_COEFFICIENTS */ ex_rationals(&r, offset, 3); break;
        case 0x0214: /* REFERENCE_BLACK_WHITE */ ex_rationals(&r, offset, 6); break;
        default: break; /* EXIF_OFFSET and unknown tags read nothing */
        }
        if (r.fail) break;
    }
    return have ? orientation : 0;
}

/* loadsave.cpp ExifTransform: 2 flip(1) = mirror columns; 3 flip(-1); 4 flip(0) = mirror rows;
 * 5 transpose; 6 transpose+flip(1); 7 transpose+flip(-1); 8 transpose+flip(0). Other values: as
 * is. Source pixel (y, x) of an H x W image goes to (r, c) below. */
static lisa_status apply_orientation(lisa_bitmap *img, int orientation, const char *name) {
    if (orientation < 2 || orientation > 8) return LISA_OK;
    const int32_t H = img->h, W = img->w, C = img->c;
    const bool transposed = orientation >= 5;
    lisa_bitmap dst;
    if (lisa_bitmap_alloc(&dst, transposed ? W : H, transposed ? H : W, C) != LISA_OK)
        return lisa_fail_context(LISA_ERR_OOM, "%s: applying EXIF orientation %d", name, orientation);
    for (int32_t y = 0; y < H; y++)
        for (int32_t x = 0; x < W; x++) {
            int32_t r, c;
            switch (orientation) {
            case 2: r = y, c = W - 1 - x; break;
            case 3: r = H - 1 - y, c = W - 1 - x; break;
            case 4: r = H - 1 - y, c = x; break;
            case 5: r = x, c = y; break;
            case 6: r = x, c = H - 1 - y; break;
            case 7: r = W - 1 - x, c = H - 1 - y; break;
            default: r = W - 1 - x, c = y; break; /* 8 */
            }
            memcpy(dst.data + ((size_t)r * (size_t)dst.w + (size_t)c) * (size_t)C,
                   img->data + ((size_t)y * (size_t)W + (size_t)x) * (size_t)C, (size_t)C);
        }
    lisa_bitmap_free(img);
    *img = dst;
    return LISA_OK;
}

/* ---- PNG ------------------------------------------------------------------------------------------ */

/* All state of one PNG decode (see the setjmp note at the top). Owns png/info/end, pixels, rows
 * until png_decode() hands `pixels` to the caller's lisa_bitmap. */
typedef struct png_job {
    const uint8_t *buf;
    size_t len, pos;
    const char *name;
    const lisa_image_limits *lim;
    png_structp png;
    png_infop info, end;
    uint8_t *pixels;  /* [h, w, 3] */
    png_bytep *rows;  /* h pointers into pixels */
    uint32_t w, h;
    int orientation;
    lisa_status status; /* set before any non-error return from png_run */
    char msg[MSG_CAP];  /* libpng's error message */
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    /* OpenCV lets libpng print warnings ("iCCP: known incorrect sRGB profile") and goes on; a
     * library must not print, and the decode result does not depend on them. */
    (void)png, (void)msg;
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos) png_error(png, "unexpected end of file (truncated PNG)");
    memcpy(dst, j->buf + j->pos, n);
    j->pos += n;
}

static void png_run(png_job *j) {
    if (setjmp(png_jmpbuf(j->png))) {
        j->status = lisa_fail(LISA_ERR_FORMAT, "%s: PNG decode failed: %s", j->name, j->msg);
        return;
    }
    png_set_read_fn(j->png, j, png_read_mem);
    /* libpng's own 1e6-pixel side limit would report an over-large image as a format error; ours
     * (checked just below, before allocating) reports LISA_ERR_LIMIT. PNG allows 2^31-1. */
    png_set_user_limits(j->png, 0x7fffffff, 0x7fffffff);
    png_read_info(j->png, j->info);
    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(j->png, j->info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    j->w = w, j->h = h;
    lisa_status s = check_dims(j->name, "PNG", w, h, j->lim);
    if (s != LISA_OK) {
        j->status = s;
        return;
    }
    /* OpenCV 4.8 PngDecoder::readData for an 8-bit 3-channel destination (IMREAD_COLOR), minus
     * png_set_bgr (we want RGB). libpng applies these in its own fixed order. */
    if (bit_depth == 16) png_set_strip_16(j->png); /* keeps the high byte: v >> 8 */
    png_set_strip_alpha(j->png);                   /* no compositing */
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(j->png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(j->png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(j->png);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    if (png_get_rowbytes(j->png, j->info) != (size_t)w * 3 || png_get_channels(j->png, j->info) != 3) {
        j->status = lisa_fail(LISA_ERR_FORMAT, "%s: PNG colour type %d, bit depth %d does not convert to 8-bit RGB",
                              j->name, color_type, bit_depth);
        return;
    }
    j->pixels = malloc((size_t)w * h * 3);
    j->rows = malloc(sizeof(png_bytep) * h);
    if (!j->pixels || !j->rows) {
        j->status = lisa_fail(LISA_ERR_OOM, "%s: no memory for a %ux%u PNG", j->name, (unsigned)w, (unsigned)h);
        return;
    }
    for (png_uint_32 y = 0; y < h; y++) j->rows[y] = j->pixels + (size_t)y * w * 3;
    png_read_image(j->png, j->rows);
    png_read_end(j->png, j->end); /* CRC of the rest, and an eXIf chunk after IDAT */
    /* Exif may sit before IDAT (info) or after it (end), as OpenCV reads it. */
    png_uint_32 n_exif = 0;
    png_bytep exif = NULL;
    if (png_get_valid(j->png, j->info, PNG_INFO_eXIf))
        png_get_eXIf_1(j->png, j->info, &n_exif, &exif);
    else if (png_get_valid(j->png, j->end, PNG_INFO_eXIf))
        png_get_eXIf_1(j->png, j->end, &n_exif, &exif);
    j->orientation = exif && n_exif > 0 ? exif_orientation(exif, n_exif) : 0;
    j->status = LISA_OK;
}

static lisa_status png_decode(lisa_bitmap *out, const uint8_t *buf, size_t len, const char *name,
                              const lisa_image_limits *lim) {
    png_job j;
    memset(&j, 0, sizeof j);
    j.buf = buf, j.len = len, j.name = name, j.lim = lim;
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    if (j.png) j.info = png_create_info_struct(j.png);
    if (j.png) j.end = png_create_info_struct(j.png);
    if (!j.png || !j.info || !j.end) {
        png_destroy_read_struct(&j.png, &j.info, &j.end); /* NULL members are skipped */
        return lisa_fail(LISA_ERR_OOM, "%s: cannot create the libpng decoder", name);
    }
    png_run(&j);
    png_destroy_read_struct(&j.png, &j.info, &j.end);
    free(j.rows);
    if (j.status != LISA_OK) {
        free(j.pixels);
        return j.status;
    }
    out->data = j.pixels, out->h = (int32_t)j.h, out->w = (int32_t)j.w, out->c = 3;
    lisa_status s = apply_orientation(out, j.orientation, name);
    if (s != LISA_OK) lisa_bitmap_free(out);
    return s;
}

/* ---- JPEG ----------------------------------------------------------------------------------------- */

/* All state of one JPEG decode. Owns cinfo (once `created`), pixels and row until jpeg_decode()
 * hands `pixels` to the caller's lisa_bitmap. */
typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    const uint8_t *buf;
    size_t len;
    const char *name;
    const lisa_image_limits *lim;
    bool created;
    uint8_t *pixels; /* [h, w, 3] */
    uint8_t *row;    /* one CMYK scanline [w, 4] */
    int orientation;
    bool truncated;      /* libjpeg warned JWRN_JPEG_EOF and padded the image */
    bool limit_hit;      /* longjmp came from our scan limit, not from libjpeg */
    lisa_status status;
    char msg[JMSG_LENGTH_MAX];
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_job *j = cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, j->msg);
    longjmp(j->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int msg_level) {
    jpeg_job *j = cinfo->client_data;
    if (msg_level >= 0) return; /* trace messages */
    cinfo->err->num_warnings++;
    /* jpeg_mem_src (like the stdio source OpenCV uses) answers a premature EOF with this warning
     * and a fake EOI; the rest of the image then decodes as flat gray. */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) j->truncated = true;
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

static void jpeg_on_progress(j_common_ptr cinfo) {
    jpeg_job *j = cinfo->client_data;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > LISA_JPEG_MAX_SCANS) {
        snprintf(j->msg, sizeof j->msg, "more than %d scans", LISA_JPEG_MAX_SCANS);
        j->limit_hit = true;
        longjmp(j->jb, 1);
    }
}

/* OpenCV icvCvt_CMYK2BGR_8u_C4C3R: channel = k - ((255 - v) * k >> 8), for the Adobe-inverted CMYK
 * that libjpeg returns (c -> R, m -> G, y -> B). */
static void cmyk_to_rgb(uint8_t *rgb, const uint8_t *cmyk, uint32_t w) {
    for (uint32_t i = 0; i < w; i++, rgb += 3, cmyk += 4) {
        int c = cmyk[0], m = cmyk[1], y = cmyk[2], k = cmyk[3];
        rgb[0] = (uint8_t)(k - ((255 - c) * k >> 8));
        rgb[1] = (uint8_t)(k - ((255 - m) * k >> 8));
        rgb[2] = (uint8_t)(k - ((255 - y) * k >> 8));
    }
}

static void jpeg_run(jpeg_job *j) {
    if (setjmp(j->jb)) {
        if (j->limit_hit)
            j->status = lisa_fail(LISA_ERR_LIMIT, "%s: JPEG has %s", j->name, j->msg);
        else
            j->status = lisa_fail(LISA_ERR_FORMAT, "%s: JPEG decode failed: %s", j->name, j->msg);
        return;
    }
    jpeg_create_decompress(&j->cinfo);
    j->created = true;
    j->cinfo.client_data = j;
    j->cinfo.progress = &j->progress;
    jpeg_mem_src(&j->cinfo, (const unsigned char *)j->buf, (unsigned long)j->len);
    jpeg_save_markers(&j->cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&j->cinfo, TRUE);
    const uint32_t w = j->cinfo.image_width, h = j->cinfo.image_height;
    lisa_status s = check_dims(j->name, "JPEG", w, h, j->lim);
    if (s != LISA_OK) {
        j->status = s;
        return;
    }
    /* JpegDecoder::readHeader: the first APP1 marker, TIFF header 6 bytes in. */
    for (jpeg_saved_marker_ptr m = j->cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1) {
            if (m->data_length > 6) j->orientation = exif_orientation(m->data + 6, m->data_length - 6);
            break;
        }
    /* JpegDecoder::readData with a colour destination: CMYK for 4 components, else BGR (RGB here). */
    const bool cmyk = j->cinfo.num_components == 4;
    j->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGB;
    jpeg_start_decompress(&j->cinfo);
    if (j->cinfo.output_width != w || j->cinfo.output_height != h ||
        j->cinfo.output_components != (cmyk ? 4 : 3)) {
        j->status = lisa_fail(LISA_ERR_FORMAT, "%s: JPEG with %d components decodes to %d, not %s", j->name,
                              j->cinfo.num_components, j->cinfo.output_components, cmyk ? "CMYK" : "RGB");
        return;
    }
    j->pixels = malloc((size_t)w * h * 3);
    j->row = cmyk ? malloc((size_t)w * 4) : NULL;
    if (!j->pixels || (cmyk && !j->row)) {
        j->status = lisa_fail(LISA_ERR_OOM, "%s: no memory for a %ux%u JPEG", j->name, (unsigned)w, (unsigned)h);
        return;
    }
    while (j->cinfo.output_scanline < h) {
        uint8_t *dst = j->pixels + (size_t)j->cinfo.output_scanline * w * 3;
        JSAMPROW r = cmyk ? j->row : dst;
        if (jpeg_read_scanlines(&j->cinfo, &r, 1) != 1) { /* only with a suspending source */
            j->status = lisa_fail(LISA_ERR_FORMAT, "%s: JPEG decoder stopped at row %u of %u", j->name,
                                  (unsigned)j->cinfo.output_scanline, (unsigned)h);
            return;
        }
        if (cmyk) cmyk_to_rgb(dst, j->row, w);
    }
    jpeg_finish_decompress(&j->cinfo);
    if (j->truncated && !j->lim->allow_truncated_jpeg) {
        j->status = lisa_fail(LISA_ERR_FORMAT,
                              "%s: JPEG is truncated (premature end of data after %zu bytes); libjpeg would fill "
                              "the rest with gray (set lisa_image_limits.allow_truncated_jpeg to accept that, as "
                              "OpenCV does)",
                              j->name, j->len);
        return;
    }
    j->status = LISA_OK;
}

static lisa_status jpeg_decode(lisa_bitmap *out, const uint8_t *buf, size_t len, const char *name,
                               const lisa_image_limits *lim) {
    jpeg_job *j = calloc(1, sizeof *j); /* ~1 KB of libjpeg structs + jmp_buf: keep it off the stack */
    if (!j) return lisa_fail(LISA_ERR_OOM, "%s: cannot create the JPEG decoder", name);
    j->buf = buf, j->len = len, j->name = name, j->lim = lim;
    j->cinfo.err = jpeg_std_error(&j->jerr);
    j->jerr.error_exit = jpeg_on_error;
    j->jerr.emit_message = jpeg_on_message;
    j->jerr.output_message = jpeg_on_output;
    j->progress.progress_monitor = jpeg_on_progress;
    j->cinfo.client_data = j;
    jpeg_run(j);
    if (j->created) jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    lisa_status s = j->status;
    if (s == LISA_OK) {
        out->data = j->pixels, out->h = (int32_t)j->cinfo.image_height, out->w = (int32_t)j->cinfo.image_width;
        out->c = 3;
        s = apply_orientation(out, j->orientation, name);
        if (s != LISA_OK) lisa_bitmap_free(out);
    } else {
        free(j->pixels);
    }
    free(j);
    return s;
}

/* ---- entry points --------------------------------------------------------------------------------- */

lisa_status lisa_image_decode(lisa_bitmap *out, const void *buf, size_t len, const char *name,
                              const lisa_image_limits *limits) {
    LISA_ASSERT(out);
    memset(out, 0, sizeof *out);
    lisa_image_limits def = lisa_image_default_limits();
    const lisa_image_limits *lim = limits ? limits : &def;
    if (!name) name = "<memory>";
    if (!buf && len) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: NULL buffer of %zu bytes", name, len);
    if (lim->max_file_bytes > 0 && (uint64_t)len > (uint64_t)lim->max_file_bytes)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %zu bytes, over the limit of %lld (lisa_image_limits.max_file_bytes)",
                         name, len, (long long)lim->max_file_bytes);
    if (len == 0) return lisa_fail(LISA_ERR_FORMAT, "%s: empty file (0 bytes), not an image", name);
    switch (lisa_image_sniff(buf, len)) {
    case LISA_IMAGE_FORMAT_PNG: return png_decode(out, buf, len, name, lim);
    case LISA_IMAGE_FORMAT_JPEG: return jpeg_decode(out, buf, len, name, lim);
    case LISA_IMAGE_FORMAT_UNKNOWN: break;
    }
    const uint8_t *b = buf;
    char head[3 * 8 + 1] = "";
    for (size_t i = 0; i < len && i < 8; i++) snprintf(head + 3 * i, sizeof head - 3 * i, "%02x ", b[i]);
    return lisa_fail(LISA_ERR_FORMAT, "%s: not a PNG or JPEG file (starts with %s; %zu bytes)", name, head, len);
}

lisa_status lisa_image_load(lisa_bitmap *out, const char *path, const lisa_image_limits *limits) {
    LISA_ASSERT(out && path);
    memset(out, 0, sizeof *out);
    lisa_image_limits def = lisa_image_default_limits();
    const lisa_image_limits *lim = limits ? limits : &def;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return lisa_fail(LISA_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return lisa_fail(LISA_ERR_IO, "%s: not a regular file", path);
    }
    if (lim->max_file_bytes > 0 && st.st_size > lim->max_file_bytes) {
        fclose(f);
        return lisa_fail(LISA_ERR_LIMIT, "%s: %lld bytes, over the limit of %lld (lisa_image_limits.max_file_bytes)",
                         path, (long long)st.st_size, (long long)lim->max_file_bytes);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: no memory to read %zu bytes", path, len);
    }
    size_t got = fread(buf, 1, len, f);
    bool read_err = ferror(f);
    fclose(f);
    if (got != len || read_err) {
        free(buf);
        return lisa_fail(LISA_ERR_IO, "%s: read %zu of %zu bytes", path, got, len);
    }
    lisa_status s = lisa_image_decode(out, buf, len, path, lim);
    free(buf);
    return s;
}
