/* jobs/eval_metrics.c — see eval_metrics.h. */
#include "jobs/eval_metrics.h"

#include <string.h>

void lisa_eval_iu_compute(lisa_eval_iu *out, const uint8_t *pred, const uint8_t *gt, int64_t n) {
    int64_t i1 = 0, i0 = 0, o1 = 0, o0 = 0, t1 = 0, t0 = 0;
    for (int64_t k = 0; k < n; k++) {
        const uint8_t g = gt[k], p = pred[k] ? 1 : 0;
        if (g == 255) continue; /* output[target == 255] = 255: outside both bins */
        t1 += g == 1;
        t0 += g == 0;
        o1 += p;
        o0 += !p;
        i1 += p && g == 1;
        i0 += !p && g == 0;
    }
    memset(out, 0, sizeof *out);
    out->inter[0] = i0;
    out->inter[1] = i1;
    out->uni[0] = o0 + t0 - i0;
    out->uni[1] = o1 + t1 - i1;
    out->pred_fg = o1;
    out->gt_fg = t1;
}

double lisa_eval_query_iou(int64_t inter_fg, int64_t union_fg) {
    /* acc_iou += intersection / (union + 1e-5); acc_iou[union == 0] += 1.0 */
    return (double)inter_fg / ((double)union_fg + 1e-5) + (union_fg == 0 ? 1.0 : 0.0);
}

void lisa_eval_acc_add(lisa_eval_acc *a, int64_t inter_fg, int64_t union_fg) {
    a->n++;
    a->sum_iou += lisa_eval_query_iou(inter_fg, union_fg);
    a->sum_i += inter_fg;
    a->sum_u += union_fg;
}

double lisa_eval_giou(const lisa_eval_acc *a) { return a->sum_iou / ((double)a->n + 1e-5); }

double lisa_eval_ciou(const lisa_eval_acc *a) { return (double)a->sum_i / ((double)a->sum_u + 1e-10); }
