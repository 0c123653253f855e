/* jobs/eval_raster.h — ground-truth masks for evaluation (spec docs/inference.md §9), drawn
 * exactly as the reference stack draws them:
 *
 *   - OpenCV 4.8 cv2.fillPoly / cv2.polylines (thickness 1, LINE_8, shift 0) on a u8 mask, used
 *     by LISA's utils/data_processing.py get_mask_from_json for ReasonSeg polygons;
 *   - get_mask_from_json itself: shapes rasterized alone to measure their pixel area, sorted by
 *     area with numpy 1.24's argsort (introsort; ties resolved as numpy resolves them), reversed,
 *     then drawn (outline + fill) with 1 for targets and 255 for "ignore" shapes;
 *   - numpy's int32 conversion of the JSON points (np.array(points, dtype=np.int32): truncation
 *     toward zero).
 *
 * The golden test (tests/test_eval_raster.c, data from tests/golden/gen_eval.py) compares these
 * against cv2 4.8.0.74 and numpy 1.24 on random and adversarial polygons.
 */
#ifndef LISA_JOBS_EVAL_RASTER_H
#define LISA_JOBS_EVAL_RASTER_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_pt {
    int32_t x, y;
} lisa_pt;

/* cv2.fillPoly(img, [pts], value): img u8 [h, w] row-major. n >= 1 (cv2 asserts on 0 points).
 * Allocates the edge table (n + 1 entries); LISA_ERR_OOM on failure. Like OpenCV it walks every
 * row from the topmost vertex, so keep |coordinates| small (the ReasonSeg reader allows 2^20). */
lisa_status lisa_cv_fill_poly(uint8_t *img, int32_t h, int32_t w, const lisa_pt *pts, int32_t n, uint8_t value);

/* cv2.polylines(img, [pts], True, value, 1): closed, thickness 1, LINE_8. n == 0 draws nothing. */
void lisa_cv_polylines_closed(uint8_t *img, int32_t h, int32_t w, const lisa_pt *pts, int32_t n, uint8_t value);

/* cv2.line(img, p0, p1, value, 1) with LINE_8 (Bresenham through cv::LineIterator, clipped). */
void lisa_cv_line(uint8_t *img, int32_t h, int32_t w, lisa_pt p0, lisa_pt p1, uint8_t value);

/* numpy.argsort(keys) with the default kind (numpy 1.24 introsort: median-of-3 quicksort,
 * insertion sort for up to 16 elements, heapsort fallback): writes the permutation into idx[n]. */
void lisa_np_argsort_u64(int64_t *idx, const uint64_t *keys, int64_t n);

/* One labelme shape of a ReasonSeg JSON, points already converted to int32. */
typedef struct lisa_rs_shape {
    uint8_t value; /* 1 (target) or 255 ("ignore" in the label) */
    int32_t n;     /* number of points (>= 1) */
    const lisa_pt *pts;
} lisa_rs_shape;

/* get_mask_from_json's mask: zero-fills mask [h, w], then draws the shapes by descending area.
 * Shapes labelled "flag" must already be removed by the caller. scratch: NULL, or h*w bytes. */
lisa_status lisa_reasonseg_mask(uint8_t *mask, int32_t h, int32_t w, const lisa_rs_shape *shapes, int32_t n,
                                uint8_t *scratch);

#ifdef __cplusplus
}
#endif

#endif
