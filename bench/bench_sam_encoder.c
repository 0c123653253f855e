/* bench/bench_sam_encoder.c — the SAM image encoder on the CPU backend (issue #4): random weights at
 * the tiny test dims and at ViT-B dims, one 1024 x 1024 input; prints ms per image and GFLOP/s.
 *
 *   ./build/bin/bench_sam_encoder [--quick] [--runs N] [--threads N] [--peak GFLOPS]
 *
 * --quick: tiny model only. --runs: timed runs after one warm-up (default 3 for tiny, 1 for ViT-B,
 * which takes tens of seconds per image on 2 cores). --peak: the machine's peak GFLOP/s, to print %.
 * Weights come from lisa_tiny_write_sam (a temporary safetensors file, deleted afterwards).
 *
 * FLOP formula (jobs/flops.h, lisa_flops_sam_encoder; multiply-add = 2 FLOP; G = 64 grid, N = G² tokens, E embed, w window, Np = N padded
 * to whole windows = (ceil(G/w)·w)², O = out_chans; norms, GELU, softmax, adds not counted):
 *   patch embed        2·N·E·(3·16·16)
 *   per block          qkv 2·T·E·3E + proj 2·T·E·E   (T = Np for windowed blocks: SAM partitions before
 *                                                     attention, so the padded tokens go through qkv/proj)
 *                      attention 4·T·L·E             (QKᵀ and AV; L = w² windowed, N global)
 *                      rel-pos 2·T·(2·s)·E           (q·R_h and q·R_w; s = w or G)
 *                      MLP 2·N·E·4E·2
 *   neck               2·N·E·O + 2·N·O·O·9
 */
#include "loader/image.h"
#include "models/sam_predict.h"
#include "models/tiny.h"
#include "core/error.h"
#include "jobs/flops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cfg {
    const char *name;
    int32_t embed, depth, heads, window, out;
    int32_t global[4], n_global;
    int runs;
} cfg;

/* the formula lives in jobs/flops.c (one implementation for this bench and `lisa bench`) */
static double encoder_gflop(const cfg *c) {
    lisa_sam_dims d = {.img = 1024, .patch = 16, .grid = 64, .embed = c->embed, .depth = c->depth,
                       .head_dim = c->embed / c->heads, .mlp = 4 * c->embed, .out_chans = c->out, .window = c->window};
    for (int k = 0; k < c->n_global; k++)
        d.global_mask[c->global[k] / 64] |= 1ull << (c->global[k] % 64);
    return lisa_flops_sam_encoder(&d) * 1e-9;
}

static int bench(const cfg *c, int runs, int threads, double peak) {
    lisa_tiny_params p = lisa_tiny_default_params();
    p.sam_embed = c->embed;
    p.sam_depth = c->depth;
    p.sam_heads = c->heads;
    p.sam_window = c->window;
    p.out_dim = c->out;
    p.n_sam_global = c->n_global;
    memcpy(p.sam_global, c->global, sizeof c->global);
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_sam_encoder_%ld_%s.safetensors", tmpdir, (long)getpid(), c->name);
    lisa_status s = lisa_tiny_write_sam(&p, path);
    lisa_sam_predictor *pr = NULL;
    if (s == LISA_OK) s = lisa_sam_predictor_load(&pr, path, threads);
    lisa_bitmap img = {0};
    if (s == LISA_OK) s = lisa_bitmap_alloc(&img, 1024, 1024, 3);
    if (s != LISA_OK) {
        fprintf(stderr, "bench_sam_encoder: %s: %s\n", lisa_status_name(s), lisa_last_error());
        unlink(path);
        return 1;
    }
    for (int32_t y = 0; y < img.h; y++) /* a gradient photo-like picture */
        for (int32_t x = 0; x < img.w; x++) {
            uint8_t *px = img.data + 3 * ((size_t)y * img.w + x);
            px[0] = (uint8_t)(x / 4), px[1] = (uint8_t)(y / 4), px[2] = (uint8_t)((x + y) / 8);
        }
    const double gf = encoder_gflop(c);
    double best = 1e30, sum = 0;
    for (int r = -1; r < runs && s == LISA_OK; r++) { /* r = -1: warm-up */
        lisa_sam_timings t;
        s = lisa_sam_predictor_set_image(pr, img.data, img.h, img.w, &t);
        if (r < 0) continue;
        sum += t.encoder_ms;
        if (t.encoder_ms < best) best = t.encoder_ms;
    }
    if (s != LISA_OK) {
        fprintf(stderr, "bench_sam_encoder: %s: %s\n", lisa_status_name(s), lisa_last_error());
    } else {
        const lisa_sam_encoder_params *e = &lisa_sam_predictor_model(pr)->enc;
        printf(
            "%-6s E=%-4d depth=%-2d heads=%-2d window=%-2d global=%d out=%-3d  %8.2f GFLOP  %10.1f ms best  %10.1f ms "
            "mean (%d run%s)  %7.2f GFLOP/s",
            c->name, e->embed, e->depth, e->heads, c->window, c->n_global, e->out_chans, gf, best, sum / runs, runs,
            runs == 1 ? "" : "s", gf / (best * 1e-3));
        if (peak > 0) printf("  %5.1f%% of peak", 100.0 * gf / (best * 1e-3) / peak);
        printf("\n");
    }
    lisa_bitmap_free(&img);
    lisa_sam_predictor_free(pr);
    unlink(path);
    return s == LISA_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    bool quick = false;
    int runs = 0, threads = 0;
    double peak = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--peak") && i + 1 < argc)
            peak = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sam_encoder [--quick] [--runs N] [--threads N] [--peak GFLOPS]\n");
            return 2;
        }
    }
    const cfg cfgs[] = {
        {"tiny", 16, 4, 2, 14, 32, {1, 3}, 2, 3},             /* tests/data/tiny-lisa */
        {"vit-b", 768, 12, 12, 14, 256, {2, 5, 8, 11}, 4, 1}, /* segment-anything build_sam_vit_b */
    };
    printf("SAM image encoder, CPU backend, 1024x1024 input, threads=%d (0 = all)\n"
           "FLOP per image (2 per multiply-add; G=64, N=G^2, E embed, w window, Np=N padded to whole windows,\n"
           "O out_chans; T = Np and L = w^2 in windowed blocks, T = L = N and s = G in global ones):\n"
           "  2*N*E*768 + sum over blocks [2*T*E*3E + 2*T*E*E + 4*T*L*E + 2*T*2s*E + 16*N*E^2] + 2*N*E*O + 18*N*O^2\n",
           threads);
    int rc = 0;
    for (size_t k = 0; k < (quick ? 1u : 2u); k++)
        rc |= bench(&cfgs[k], runs > 0 ? runs : cfgs[k].runs, threads, peak);
    return rc;
}
