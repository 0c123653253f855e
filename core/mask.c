/* core/mask.c — COCO RLE (pycocotools-compatible), chat.py's overlay, gray masks. See mask.h. */
#include "core/mask.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void lisa_mask_overlay_red(uint8_t *out, const uint8_t *rgb, const uint8_t *mask, int32_t h, int32_t w) {
    const size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) {
        const uint8_t r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        if (mask[i]) {
            /* numpy: image * 0.5 + [255, 0, 0] * 0.5 in float64, stored to uint8 by truncation;
             * every value is exact in double and lies in [0, 255] */
            out[3 * i] = (uint8_t)(r * 0.5 + 127.5);
            out[3 * i + 1] = (uint8_t)(g * 0.5 + 0.0);
            out[3 * i + 2] = (uint8_t)(b * 0.5 + 0.0);
        } else {
            out[3 * i] = r;
            out[3 * i + 1] = g;
            out[3 * i + 2] = b;
        }
    }
}

void lisa_mask_to_gray(uint8_t *out, const uint8_t *mask, int32_t h, int32_t w, uint8_t on) {
    const size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        out[i] = mask[i] ? on : 0;
}
