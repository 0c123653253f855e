/* kernels/cpu/window.c — WINDOW_PARTITION and WINDOW_UNPARTITION (ops.def), SAM's windowed
 * attention layout.
 *
 * Dimension letters: B batch, H × W token grid, C channels, S window size, nh × nw windows
 * (nh = ceil(H/S), nw = ceil(W/S)), Hp = nh·S, Wp = nw·S the zero-padded grid.
 * ref: segment_anything/modeling/image_encoder.py window_partition (F.pad of the bottom/right
 * with zeros, view(B, Hp/S, S, Wp/S, S, C).permute(0, 1, 3, 2, 4, 5)) and window_unpartition
 * (the inverse permute, then x[:, :H, :W, :]).
 */
#include "kernels/cpu/cpu.h"

#include <string.h>

static lisa_status check_window(const char *op, const lisa_tensor *grid, const lisa_tensor *wins, int32_t S,
                                int64_t *nh, int64_t *nw) {
    char s1[96], s2[96];
    if (S <= 0) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: window size %d must be positive", op, S);
    if (grid->n_dims != 4 || wins->n_dims != 4)
        return lisa_fail(LISA_ERR_SHAPE, "%s: grid %s and windows %s must both be 4-D", op,
                         lisa_tensor_shape_str(grid, s1, sizeof s1), lisa_tensor_shape_str(wins, s2, sizeof s2));
    const int64_t B = grid->shape[0], H = grid->shape[1], W = grid->shape[2], C = grid->shape[3];
    *nh = (H + S - 1) / S;
    *nw = (W + S - 1) / S;
    if (wins->shape[0] != B * *nh * *nw || wins->shape[1] != S || wins->shape[2] != S || wins->shape[3] != C)
        return lisa_fail(LISA_ERR_SHAPE, "%s: windows %s, want [%lld, %d, %d, %lld] for grid %s and window %d", op,
                         lisa_tensor_shape_str(wins, s1, sizeof s1), (long long)(B * *nh * *nw), S, S, (long long)C,
                         lisa_tensor_shape_str(grid, s2, sizeof s2), S);
    return lisa_cpu_check_no_overlap(op, "x", grid, wins);
}

/* x[B, H, W, C] -> y[B·nh·nw, S, S, C]; window (b, wy, wx) is y[(b·nh + wy)·nw + wx]. */
lisa_status lisa_cpu_window_partition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, int32_t window) {
    int64_t nh, nw;
    LISA_TRY(lisa_cpu_check_f32("window_partition", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("window_partition", "y", y, true));
    LISA_TRY(check_window("window_partition", x, y, window, &nh, &nw));
    const int64_t H = x->shape[1], W = x->shape[2], C = x->shape[3], S = window;
    const int64_t n_rows = y->shape[0] * S; /* one job per window row of S·C floats */
    const float *xd = x->data;
    float *yd = y->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, n_rows * S * C))
    for (int64_t job = 0; job < n_rows; job++) {
        const int64_t win = job / S, r = job % S;
        const int64_t b = win / (nh * nw), wy = (win / nw) % nh, wx = win % nw;
        const int64_t gy = wy * S + r, gx0 = wx * S;
        float *dst = yd + job * S * C;
        int64_t n_in = 0; /* grid columns of this window row that exist; the rest is padding */
        if (gy < H) n_in = W - gx0 < S ? W - gx0 : S;
        if (n_in > 0) memcpy(dst, xd + ((b * H + gy) * W + gx0) * C, (size_t)(n_in * C) * sizeof(float));
        memset(dst + n_in * C, 0, (size_t)((S - n_in) * C) * sizeof(float));
    }
    return LISA_OK;
}

/* x[B·nh·nw, S, S, C] -> y[B, H, W, C], dropping the padding. */
lisa_status lisa_cpu_window_unpartition(lisa_backend *be, lisa_tensor *y, const lisa_tensor *x, int32_t window) {
    int64_t nh, nw;
    LISA_TRY(lisa_cpu_check_f32("window_unpartition", "x", x, true));
    LISA_TRY(lisa_cpu_check_f32("window_unpartition", "y", y, true));
    LISA_TRY(check_window("window_unpartition", y, x, window, &nh, &nw));
    const int64_t B = y->shape[0], H = y->shape[1], W = y->shape[2], C = y->shape[3], S = window;
    const float *xd = x->data;
    float *yd = y->data;
    LISA_CPU_PARALLEL_FOR(lisa_cpu_threads(be, B * H * W * C))
    for (int64_t bg = 0; bg < B * H; bg++) { /* one job per grid row */
        const int64_t b = bg / H, gy = bg % H, wy = gy / S, r = gy % S;
        for (int64_t wx = 0; wx < nw; wx++) {
            const int64_t gx0 = wx * S, n = W - gx0 < S ? W - gx0 : S;
            const int64_t win = (b * nh + wy) * nw + wx;
            memcpy(yd + (bg * W + gx0) * C, xd + ((win * S + r) * S) * C, (size_t)(n * C) * sizeof(float));
        }
    }
    return LISA_OK;
}
