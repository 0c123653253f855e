/* runtime/image_handle.h — the public lisa_image handle (include/lisa.h): an image decoded and
 * hashed once, submitted with any number of requests.
 *
 * Ownership: a lisa_image owns its RGB pixels. It is reference counted: lisa_image_create_* gives
 * the caller one reference (dropped by lisa_image_free); every request submitted on it takes one
 * for the time it is queued or running (the engine drops it when the request finishes or is
 * dropped), so the caller may free the handle as soon as its requests are submitted. The count is
 * atomic: handles can be shared between threads; the pixels are never written after creation.
 */
#ifndef LISA_RUNTIME_IMAGE_HANDLE_H
#define LISA_RUNTIME_IMAGE_HANDLE_H

#include "lisa.h"
#include "core/hash.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lisa_image {
    atomic_int refs;
    uint8_t *rgb; /* [h, w, 3] (owned) */
    int32_t h, w;
    lisa_hash128 hash; /* of rgb, seeded with lisa_hash_random_seed() (runtime/image_cache.h keys) */
};

/* Takes one more reference (lisa_image_free drops one). */
lisa_image *lisa_image_ref(lisa_image *img);
/* The pixel hash every request's image is keyed by (the same function for handles and for images
 * decoded per request, so both meet in the cache). */
lisa_hash128 lisa_image_hash_rgb(const uint8_t *rgb, int32_t h, int32_t w);

#ifdef __cplusplus
}
#endif

#endif
