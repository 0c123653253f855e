/* loader/image_write.c — PNG encode (libpng) to memory and, atomically, to a file. Used by the
 * tools for masks (8-bit gray) and overlays (8-bit RGB), and by the HTTP server (base64 PNG).
 *
 * Same setjmp discipline as loader/image.c: all state lives in a job struct owned by the caller
 * of the function that calls setjmp.
 */
#include "loader/image.h"

#include "core/error.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Owns buf (growing output) until png_encode hands it to the caller; owns png/info. */
typedef struct png_wjob {
    const lisa_bitmap *img;
    png_structp png;
    png_infop info;
    uint8_t *buf;
    size_t len, cap;
    bool oom;
    lisa_status status;
    char msg[256];
} png_wjob;

static void pngw_on_error(png_structp png, png_const_charp msg) {
    png_wjob *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void pngw_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void pngw_write(png_structp png, png_bytep data, size_t n) {
    png_wjob *j = png_get_io_ptr(png);
    if (n > j->cap - j->len) {
        size_t cap = j->cap ? j->cap : 4096;
        while (n > cap - j->len) {
            if (cap > SIZE_MAX / 2) {
                j->oom = true;
                png_error(png, "output too large");
            }
            cap *= 2;
        }
        uint8_t *nb = realloc(j->buf, cap);
        if (!nb) {
            j->oom = true;
            png_error(png, "out of memory growing the output buffer");
        }
        j->buf = nb, j->cap = cap;
    }
    memcpy(j->buf + j->len, data, n);
    j->len += n;
}

static void pngw_flush(png_structp png) { (void)png; }

static void pngw_run(png_wjob *j) {
    if (setjmp(png_jmpbuf(j->png))) {
        j->status = lisa_fail(j->oom ? LISA_ERR_OOM : LISA_ERR_INTERNAL, "PNG encode of a %dx%dx%d image failed: %s",
                              (int)j->img->h, (int)j->img->w, (int)j->img->c, j->msg);
        return;
    }
    png_set_write_fn(j->png, j, pngw_write, pngw_flush);
    png_set_IHDR(j->png, j->info, (png_uint_32)j->img->w, (png_uint_32)j->img->h, 8,
                 j->img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    const size_t stride = (size_t)j->img->w * (size_t)j->img->c;
    for (int32_t y = 0; y < j->img->h; y++) png_write_row(j->png, j->img->data + (size_t)y * stride);
    png_write_end(j->png, j->info);
    j->status = LISA_OK;
}

lisa_status lisa_image_encode_png(void **out_buf, size_t *out_len, const lisa_bitmap *img) {
    LISA_ASSERT(out_buf && out_len && img);
    *out_buf = NULL, *out_len = 0;
    if (!img->data || img->h < 1 || img->w < 1 || (img->c != 1 && img->c != 3))
        return lisa_fail(LISA_ERR_INVALID_ARG, "PNG encode: image %dx%dx%d (h x w x c; c must be 1 or 3)%s",
                         (int)img->h, (int)img->w, (int)img->c, img->data ? "" : " has no data");
    png_wjob j;
    memset(&j, 0, sizeof j);
    j.img = img;
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j, pngw_on_error, pngw_on_warning);
    if (j.png) j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_write_struct(&j.png, &j.info);
        return lisa_fail(LISA_ERR_OOM, "PNG encode: cannot create the libpng encoder");
    }
    pngw_run(&j);
    png_destroy_write_struct(&j.png, &j.info);
    if (j.status != LISA_OK) {
        free(j.buf);
        return j.status;
    }
    *out_buf = j.buf, *out_len = j.len;
    return LISA_OK;
}

lisa_status lisa_image_write_png(const char *path, const lisa_bitmap *img) {
    LISA_ASSERT(path);
    void *buf = NULL;
    size_t len = 0;
    lisa_status s = lisa_image_encode_png(&buf, &len, img);
    if (s != LISA_OK) return lisa_fail_context(s, "%s", path);
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        free(buf);
        return lisa_fail(LISA_ERR_OOM, "%s: no memory for the temporary name", path);
    }
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        s = lisa_fail(LISA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        size_t put = fwrite(buf, 1, len, f);
        int e = put == len ? 0 : errno;
        if (fflush(f) != 0 && !e) e = errno ? errno : EIO;
        if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
        if (put != len || e)
            s = lisa_fail(LISA_ERR_IO, "%s: write failed after %zu of %zu bytes: %s", tmp, put, len,
                          strerror(e ? e : EIO));
        else if (rename(tmp, path) != 0)
            s = lisa_fail(LISA_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        if (s != LISA_OK) remove(tmp);
    }
    free(tmp);
    free(buf);
    return s;
}
