/* runtime/image_handle.c — lisa_image_create_* / lisa_image_free (see image_handle.h). */
#include "runtime/image_handle.h"

#include "core/error.h"
#include "loader/image.h"

#include <stdlib.h>
#include <string.h>

lisa_hash128 lisa_image_hash_rgb(const uint8_t *rgb, int32_t h, int32_t w) {
    return lisa_hash128_bytes(rgb, (size_t)h * (size_t)w * 3, lisa_hash_random_seed());
}

/* takes ownership of rgb (freed on failure) */
static lisa_status wrap(uint8_t *rgb, int32_t h, int32_t w, lisa_image **out) {
    lisa_image *img = calloc(1, sizeof *img);
    if (!img) {
        free(rgb);
        return lisa_fail(LISA_ERR_OOM, "image: out of memory");
    }
    atomic_init(&img->refs, 1);
    img->rgb = rgb;
    img->h = h;
    img->w = w;
    img->hash = lisa_image_hash_rgb(rgb, h, w);
    *out = img;
    return LISA_OK;
}

lisa_status lisa_image_create_file(const char *path, lisa_image **out) {
    *out = NULL;
    if (!path) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_image_create_file: path is NULL");
    lisa_bitmap bm;
    lisa_image_limits lim = lisa_image_default_limits();
    LISA_TRY(lisa_image_load(&bm, path, &lim));
    return wrap(bm.data, bm.h, bm.w, out);
}

lisa_status lisa_image_create_bytes(const void *data, size_t size, lisa_image **out) {
    *out = NULL;
    if (!data || size == 0) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_image_create_bytes: no bytes");
    lisa_bitmap bm;
    lisa_image_limits lim = lisa_image_default_limits();
    LISA_TRY(lisa_image_decode(&bm, data, size, "image bytes", &lim));
    return wrap(bm.data, bm.h, bm.w, out);
}

lisa_status lisa_image_create_rgb(const uint8_t *rgb, int32_t height, int32_t width, lisa_image **out) {
    *out = NULL;
    if (!rgb || height < 1 || width < 1)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_image_create_rgb: %d x %d pixels at %p", width, height,
                         (const void *)rgb);
    if ((int64_t)height * width > LISA_IMAGE_DEFAULT_MAX_PIXELS)
        return lisa_fail(LISA_ERR_LIMIT, "lisa_image_create_rgb: %d x %d exceeds %lld pixels", width, height,
                         (long long)LISA_IMAGE_DEFAULT_MAX_PIXELS);
    const size_t n = (size_t)height * (size_t)width * 3;
    uint8_t *copy = malloc(n);
    if (!copy) return lisa_fail(LISA_ERR_OOM, "lisa_image_create_rgb: out of memory for %zu bytes", n);
    memcpy(copy, rgb, n);
    return wrap(copy, height, width, out);
}

int32_t lisa_image_height(const lisa_image *img) { return img ? img->h : 0; }
int32_t lisa_image_width(const lisa_image *img) { return img ? img->w : 0; }

lisa_image *lisa_image_ref(lisa_image *img) {
    atomic_fetch_add(&img->refs, 1);
    return img;
}

void lisa_image_free(lisa_image *img) {
    if (!img || atomic_fetch_sub(&img->refs, 1) != 1) return;
    free(img->rgb);
    free(img);
}
