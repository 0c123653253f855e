/* jobs/eval_metrics.h — LISA's segmentation metrics (spec docs/inference.md §9; LISA
 * utils/utils.py intersectionAndUnionGPU + AverageMeter, train_ds.py validate()).
 *
 * Per query, with K = 2 classes and ignore_index 255: the prediction is set to 255 where the GT
 * is 255, and torch.histc(bins=2, min=0, max=1) counts only the values 0 and 1, so
 *   I_c = #{pred == c and gt == c},  O_c = #{pred == c and gt != 255},  T_c = #{gt == c},
 *   U_c = O_c + T_c - I_c.
 * GT values other than 0, 1, 255 (refCOCO parts that overlap sum to 2) are in no class of the
 * target, but the prediction there still counts in O_c, exactly like the reference.
 * IoU_q = I_fg / (U_fg + 1e-5), plus 1 when U_fg == 0 (empty GT and empty prediction).
 * gIoU = sum_q IoU_q / (n + 1e-5);  cIoU = sum_q I_fg / (sum_q U_fg + 1e-10).
 *
 * Arithmetic: counts are exact integers and the sums are accumulated in double. The reference
 * divides in float32 on the GPU and all-reduces float32 sums, so its numbers differ from these in
 * the 7th significant digit at most for datasets of a few million pixels (and can lose integer
 * exactness of sum I / sum U beyond 2^24 pixels); validate() also averages per image and
 * multiplies back by the query count, which is the plain sum used here.
 */
#ifndef LISA_JOBS_EVAL_METRICS_H
#define LISA_JOBS_EVAL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_eval_iu {
    int64_t inter[2], uni[2]; /* class 0 (background), class 1 (foreground) */
    int64_t pred_fg, gt_fg;   /* #{pred == 1 and gt != 255}, #{gt == 1} */
} lisa_eval_iu;

/* intersectionAndUnionGPU(pred, gt, 2, ignore_index=255) over n pixels; pred holds 0/1. */
void lisa_eval_iu_compute(lisa_eval_iu *out, const uint8_t *pred, const uint8_t *gt, int64_t n);

/* The per-query foreground IoU of validate(): I/(U + 1e-5), + 1 if U == 0. */
double lisa_eval_query_iou(int64_t inter_fg, int64_t union_fg);

typedef struct lisa_eval_acc {
    int64_t n;            /* queries */
    double sum_iou;       /* sum of per-query IoU (foreground) */
    int64_t sum_i, sum_u; /* sum of foreground intersections / unions */
} lisa_eval_acc;

void lisa_eval_acc_add(lisa_eval_acc *a, int64_t inter_fg, int64_t union_fg);
double lisa_eval_giou(const lisa_eval_acc *a); /* sum_iou / (n + 1e-5) */
double lisa_eval_ciou(const lisa_eval_acc *a); /* sum_i / (sum_u + 1e-10) */

#ifdef __cplusplus
}
#endif

#endif
