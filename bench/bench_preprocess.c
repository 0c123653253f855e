/* bench/bench_preprocess.c — single-thread time of the SAM and CLIP input pipelines (Pillow-exact
 * resize + normalize) on synthetic photos of typical sizes. Prints ms per image and input Mpx/s
 * (input pixels / time). The engine runs these on a CPU pool, one image per thread.
 *
 *   ./build/bin/bench_preprocess [repeats]
 */
#include "core/error.h"
#include "models/preprocess.h"
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1) reps = 1;
    const int sizes[][2] = {{427, 640}, {480, 640}, {1080, 1920}, {3024, 4032}}; /* h, w */
    lisa_tensor sam, clip;
    const int64_t sam_shape[3] = {3, 1024, 1024}, clip_shape[3] = {3, 224, 224};
    if (lisa_tensor_alloc(&sam, LISA_DTYPE_F32, 3, sam_shape) != LISA_OK ||
        lisa_tensor_alloc(&clip, LISA_DTYPE_F32, 3, clip_shape) != LISA_OK) {
        fprintf(stderr, "%s\n", lisa_last_error());
        return 1;
    }
    printf("%-11s %12s %12s %14s %14s\n", "image h x w", "SAM ms", "CLIP ms", "SAM in Mpx/s", "CLIP in Mpx/s");
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int h = sizes[k][0], w = sizes[k][1];
        uint8_t *img = malloc((size_t)h * w * 3);
        size_t ws_n = lisa_sam_preprocess_workspace_size(NULL, h, w);
        size_t ws_c = lisa_clip_preprocess_workspace_size(NULL, h, w);
        void *ws = malloc(ws_n > ws_c ? ws_n : ws_c);
        if (!img || !ws) return 1;
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < (size_t)h * w * 3; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            img[i] = (uint8_t)((i / 3 % (size_t)w + i / 3 / (size_t)w) / 4 + (s >> 60)); /* gradient + noise */
        }
        double best_sam = 1e9, best_clip = 1e9;
        for (int r = 0; r < reps; r++) {
            int32_t hr, wr;
            double t0 = now_s();
            if (lisa_sam_preprocess(&sam, &hr, &wr, img, h, w, NULL, ws, ws_n) != LISA_OK) goto fail;
            double t1 = now_s();
            if (lisa_clip_preprocess(&clip, img, h, w, NULL, ws, ws_c) != LISA_OK) goto fail;
            double t2 = now_s();
            if (t1 - t0 < best_sam) best_sam = t1 - t0;
            if (t2 - t1 < best_clip) best_clip = t2 - t1;
        }
        const double mpx = (double)h * w * 1e-6;
        printf("%4d x %-4d  %12.2f %12.2f %14.1f %14.1f\n", h, w, best_sam * 1e3, best_clip * 1e3, mpx / best_sam,
               mpx / best_clip);
        free(ws);
        free(img);
    }
    lisa_tensor_free(&sam);
    lisa_tensor_free(&clip);
    return 0;
fail:
    fprintf(stderr, "%s\n", lisa_last_error());
    return 1;
}
