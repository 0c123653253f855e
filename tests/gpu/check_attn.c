/* tests/gpu/check_attn.c — lisa-check's attention section: the attention kernels at the real LISA
 * shapes, and (with --self-test) the checker itself against planted bugs.
 *
 * Why these checks (bench/gpu/README.md "first GPU contact"): an elementwise tolerance alone misses
 * real attention bugs. With random O(1) inputs the softmax is flat, so every output row is close to
 * the mean of V (|y| ~ 0.05) and dropping a key tile, a KV split or a masked key moves y by less
 * than atol = 1e-2. So every output is checked three ways:
 *   1. against the CPU backend's attention op on sampled rows (all rows where affordable):
 *      elementwise |got − ref| <= 1e-2 + |ref|/64 and the relative L2 error
 *      ‖got − ref‖/‖ref‖ <= 2·(the rel-L2 of merely storing ref in bf16) + 1e-3 (docs/style.md §2);
 *   2. whole, against the naive kernel on the same device inputs (lk_attn_ref via
 *      LISA_CUDA_ATTN_REFERENCE: one warp per query row, fp32, F32 output), same tolerances, so that
 *      batch entries and rows the CPU does not check are checked too;
 *   3. (hook) against cuDNN's fused SDPA: not built — see ak_cudnn_peer below for why.
 * Implementations checked per shape: the mma.sync flash kernel (and the paged decode), and on
 * Hopper the sm_90a wgmma kernel (attn_sm90.cuh), SAM's rel-pos also computed inside it from the
 * tables (lisa_cuda_attention_relpos_fused; problems "... tables"); SKIPped elsewhere. The "tables"
 * problems also run ATTENTION_RELPOS (ops.def) on the GPU: the mma.sync kernel computing the terms
 * from its Q tile (" fused (mma.sync)"), the op as the models call it (" op (auto)"), and its
 * composition REL_POS + ATTENTION (" REL_POS+ATTENTION (gpu)"), each checked as above, and the
 * fused kernel against the composition directly (both with F32 outputs, same tolerances).
 * and every shape runs twice: flat (q, k, v ~ U(-1, 1)) and peaky (q scaled by 24: the scores'
 * standard deviation is ~8, so one or two keys carry most of each row's weight and a missing or
 * extra key changes the row by O(1)).
 *
 * --self-test (no GPU; CI): the "GPU" is a host model of the kernels' algorithm (ak_model_*: 64-key
 * tiles with an online softmax in the log2 domain and P rounded to bf16 as lk_flash_fwd does,
 * 256-key splits merged in split order as lk_attn_splitkv + lk_attn_combine do), the CPU op is the
 * reference and a double-precision loop the naive kernel. The clean model must pass every check
 * (no false alarms); then bugs are planted in the model one at a time — the causal mask off by one
 * (a row sees the next key), one KV split dropped in the merge, the last key tile dropped, rel-pos
 * row and column swapped, the fused rel-pos terms read from the next table row (the "tables"
 * problems, whose model computes the terms from q and the tables itself) — and each must fail at
 * least one check on at least one shape, which
 * lisa_check.c reports as "planted bugs caught: N/N". The checker's references (the CPU op, the
 * double loop) share no code with the model, so this tests the checker, not a tautology.
 */
#include "check_util.h"

#include "core/error.h"
#include "core/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AK_LOG2E 1.4426950408889634

/* ---- host helpers ---------------------------------------------------------------------------- */

/* Double-precision attention for the rows of q[B, Tq, H, D] (contiguous host F32): y[B, Tq, H, D].
 * rel_h/rel_w [B, H, Tq, k] contiguous or NULL. A row without keys is NaN (as torch). */
static void ref_attention(lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k, const lisa_tensor *v,
                          const lisa_tensor *rel_h, const lisa_tensor *rel_w, float scale, bool causal) {
    const int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3], Tk = k->shape[1], Hk = k->shape[2];
    const float *Q = q->data, *K = k->data, *V = v->data;
    float *Y = y->data;
    double *s = malloc((size_t)(Tk ? Tk : 1) * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t hk = h / (H / Hk);
                int64_t kmax = Tk;
                if (causal) kmax = i + Tk - Tq + 1 < kmax ? (i + Tk - Tq + 1 > 0 ? i + Tk - Tq + 1 : 0) : kmax;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < kmax; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)Q[((b * Tq + i) * H + h) * D + d] * K[((b * Tk + j) * Hk + hk) * D + d];
                    s[j] = dot * scale;
                    if (rel_h) {
                        const int64_t kh = rel_h->shape[3], kw = rel_w->shape[3];
                        s[j] += ((const float *)rel_h->data)[((b * H + h) * Tq + i) * kh + j / kw];
                        s[j] += ((const float *)rel_w->data)[((b * H + h) * Tq + i) * kw + j % kw];
                    }
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t j = 0; j < kmax; j++) sum += (s[j] = exp(s[j] - mx));
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < kmax; j++) o += s[j] * V[((b * Tk + j) * Hk + hk) * D + d];
                    Y[((b * Tq + i) * H + h) * D + d] = (float)(kmax ? o / sum : NAN);
                }
            }
    free(s);
}

/* CPU reference: the CPU backend's attention op, or the double loop above when the op is missing. */
static const char *cpu_attention(ck_ctx *c, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k, const lisa_tensor *v,
                                 const lisa_tensor *rel_h, const lisa_tensor *rel_w, float scale, bool causal) {
    lisa_attn_params p = {.scale = scale, .causal = causal, .rel_h = rel_h, .rel_w = rel_w};
    if (lisa_op_attention(c->cpu, y, q, k, v, &p) == LISA_OK) return "vs cpu op";
    ref_attention(y, q, k, v, rel_h, rel_w, scale, causal);
    return "vs built-in double reference (cpu attention op unavailable)";
}

/* Host tensor rows [r0, r0+n) of dim `dim` as a new contiguous F32 tensor. */
static lisa_tensor host_slice(const lisa_tensor *t, int dim, int64_t r0, int64_t n) {
    lisa_tensor v, out;
    lisa_tensor_narrow(&v, t, dim, r0, n);
    out = ck_host(LISA_DTYPE_F32, v.n_dims, v.shape);
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(&v)) do {
            lisa_tensor_set(&out, idx, lisa_tensor_get(&v, idx));
            int d = v.n_dims - 1;
            for (; d >= 0; d--) {
                if (++idx[d] < v.shape[d]) break;
                idx[d] = 0;
            }
            if (d < 0) break;
        } while (1);
    return out;
}

/* Random bf16-exact host tensor, values mult·U(lo, hi) rounded to bf16 (CPU and GPU see the same inputs). */
static lisa_tensor rand16m(ck_ctx *c, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3, double lo, double hi,
                           double mult) {
    const int64_t shp[4] = {d0, d1, d2, d3};
    lisa_tensor h = ck_host(LISA_DTYPE_F32, n_dims, shp);
    ck_fill(c, &h, lo * mult, hi * mult, false);
    lisa_tensor r = ck_round_copy(&h, LISA_DTYPE_BF16);
    lisa_tensor_free(&h);
    return r;
}
static lisa_tensor rand16(ck_ctx *c, int32_t n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3, double lo, double hi) {
    return rand16m(c, n_dims, d0, d1, d2, d3, lo, hi, 1.0);
}

/* ---- the comparison ---------------------------------------------------------------------------- */

/* Outcome of comparing an output with a reference over the elements where ref is not NaN. */
typedef struct ak_stats {
    bool ok, elem_ok, l2_ok;
    double max_err, tol, rel_l2, l2_tol;
    int64_t n, bad, first_bad;
    double first_got, first_ref;
} ak_stats;

#define AK_ATOL 1e-2
#define AK_RTOL (1.0 / 64)

/* got/ref: n contiguous floats. Elementwise |got − ref| <= AK_ATOL + AK_RTOL|ref| (NaN or Inf in got
 * fails); relative L2 <= 2·floor + 1e-3 with floor = the relative L2 of bf16(ref) (storage). */
static ak_stats ak_compare(const float *got, const float *ref, int64_t n) {
    ak_stats s = {.first_bad = -1};
    double se = 0, sr = 0, sf = 0, max_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        const double r = ref[i];
        if (isnan(r)) continue;
        const double g = got[i], e = fabs(g - r);
        const bool ok = isfinite(g) && e <= AK_ATOL + AK_RTOL * fabs(r);
        s.n++;
        if (fabs(r) > max_ref) max_ref = fabs(r);
        if (!ok) {
            if (s.bad++ == 0) s.first_bad = i, s.first_got = g, s.first_ref = r;
        }
        if (isfinite(e) && e > s.max_err) s.max_err = e;
        if (!isfinite(g)) s.max_err = INFINITY;
        se += isfinite(e) ? e * e : INFINITY;
        sr += r * r;
        const double f = lisa_bf16_to_f32(lisa_f32_to_bf16((float)r)) - r;
        sf += f * f;
    }
    s.rel_l2 = sr > 0 ? sqrt(se / sr) : sqrt(se);
    s.l2_tol = 2 * (sr > 0 ? sqrt(sf / sr) : 0) + 1e-3;
    s.tol = AK_ATOL + AK_RTOL * max_ref;
    s.elem_ok = s.bad == 0;
    s.l2_ok = isfinite(s.rel_l2) && s.rel_l2 <= s.l2_tol;
    s.ok = s.elem_ok && s.l2_ok && s.n > 0;
    return s;
}

static void ak_record(ck_ctx *c, const char *op, const char *name, const ak_stats *s, const char *how) {
    if (!s->ok && s->first_bad >= 0)
        fprintf(stderr, "    %s %s: first mismatch at element %lld: got %.8g ref %.8g\n", op, name, (long long)s->first_bad,
                s->first_got, s->first_ref);
    ck_record(c, op, name, "BF16", s->ok ? 0 : 1, s->max_err, s->tol, -1,
              "rel-L2 %.2e (tol %.1e)%s, %lld of %lld elements out of tolerance; %s", s->rel_l2, s->l2_tol,
              s->l2_ok ? "" : " EXCEEDED", (long long)s->bad, (long long)s->n, how);
}

/* Compares the GPU output rows [r0, r0+n) of dim `dim` against a CPU reference of those rows. */
static void compare_rows(ck_ctx *c, const char *op, const char *name, const lisa_tensor *gpu_out, int dim, int64_t r0,
                         int64_t n, const lisa_tensor *ref, const char *how) {
    lisa_tensor got_all = ck_download(c, gpu_out);
    lisa_tensor got = host_slice(&got_all, dim, r0, n);
    ak_stats s = lisa_tensor_numel(&got) == lisa_tensor_numel(ref) ? ak_compare(got.data, ref->data, lisa_tensor_numel(ref))
                                                                   : (ak_stats){.first_bad = -1};
    ak_record(c, op, name, &s, how);
    lisa_tensor_free(&got);
    lisa_tensor_free(&got_all);
}

/* ---- problems ---------------------------------------------------------------------------------- */

typedef enum ak_kind {
    AK_SAM = 0, /* q/k/v [B, T, H, D] (T = S·S), rel-pos S x S, not causal: flash */
    AK_VARLEN,  /* packed sequences q/k/v [total, H, D], causal: flash varlen */
    AK_DECODE,  /* q [B, 1, H, D] over k/v [B, Tk, H, D]: split-KV, contiguous and paged */
} ak_kind;

/* One attention problem and its references. Owns every host tensor and cpu_rows (ak_free). */
typedef struct ak_problem {
    char name[96];
    ak_kind kind;
    int64_t B, T, Tk, H, D, S; /* SAM: B images or windows, T = Tk = S·S; DECODE: B sequences of Tk keys */
    int nseq;                  /* VARLEN: sequence lengths (queries = keys), packed */
    int64_t lens[4], cu[5];
    float scale;
    bool causal;
    bool fused;                  /* SAM: rel-pos from tables (rh/rw = the CPU's REL_POS of q and them) */
    lisa_tensor q, k, v, rh, rw; /* host F32, bf16-exact: SAM/DECODE 4-D, VARLEN [total, H, D] */
    lisa_tensor tab_h, tab_w;    /* fused: the rel-pos tables [2S-1, 80], bf16-exact */
    int64_t R;                   /* output rows (y viewed as [R, H, D]) */
    lisa_tensor ref;             /* [R, H, D]: the CPU op on the rows of cpu_rows, NaN elsewhere */
    lisa_tensor naive;           /* [R, H, D]: the naive kernel (GPU) / double loop (self-test), whole */
    int64_t n_cpu_rows;
    const char *how;
} ak_problem;

static void ak_free(ak_problem *p) {
    lisa_tensor *ts[9] = {&p->q, &p->k, &p->v, &p->rh, &p->rw, &p->ref, &p->naive, &p->tab_h, &p->tab_w};
    for (int i = 0; i < 9; i++)
        if (ts[i]->data) lisa_tensor_free(ts[i]);
}

static lisa_tensor nan_rows(int64_t R, int64_t H, int64_t D) {
    const int64_t s[3] = {R, H, D};
    lisa_tensor t = ck_host(LISA_DTYPE_F32, 3, s);
    for (int64_t i = 0; i < R * H * D; i++) ((float *)t.data)[i] = NAN;
    return t;
}

/* Copies a contiguous host F32 block of n rows (each H·D floats) into rows [r0, r0+n) of dst. */
static void put_rows(lisa_tensor *dst, int64_t r0, const lisa_tensor *src, int64_t n) {
    const int64_t w = dst->shape[1] * dst->shape[2];
    memcpy((float *)dst->data + r0 * w, src->data, sizeof(float) * (size_t)(n * w));
}

/* SAM: nb windows (S = 14) or images (S = 64) of 16 heads x 80, rel-pos terms in [-2, 2]; fused:
 * the terms come from tables [2S-1, 80] in [-0.3, 0.3] through the CPU's REL_POS of q (what the
 * sm_90a kernel computes inside, lisa_cuda_attention_relpos_fused). */
static void ak_make_sam(ck_ctx *c, ak_problem *p, int64_t nb, int64_t S, int64_t H, double qm, bool fused) {
    memset(p, 0, sizeof *p);
    p->kind = AK_SAM, p->B = nb, p->S = S, p->T = p->Tk = S * S, p->H = H, p->D = 80, p->fused = fused;
    p->scale = 1.0f / sqrtf(80.0f);
    snprintf(p->name, sizeof p->name, "SAM %s [%lld,%lld,%lld,80] rel-pos %lldx%lld%s %s", S == 14 ? "windows" : "global",
             (long long)nb, (long long)p->T, (long long)H, (long long)S, (long long)S, fused ? " tables" : "",
             qm > 1 ? "peaky" : "flat");
    p->q = rand16m(c, 4, nb, p->T, H, 80, -1, 1, qm);
    p->k = rand16(c, 4, nb, p->T, H, 80, -1, 1);
    p->v = rand16(c, 4, nb, p->T, H, 80, -1, 1);
    p->R = nb * p->T;
    if (!fused) {
        p->rh = rand16(c, 4, nb, H, p->T, S, -2, 2);
        p->rw = rand16(c, 4, nb, H, p->T, S, -2, 2);
        return;
    }
    p->tab_h = rand16(c, 2, 2 * S - 1, 80, 0, 0, -0.3, 0.3);
    p->tab_w = rand16(c, 2, 2 * S - 1, 80, 0, 0, -0.3, 0.3);
    const int64_t rs[4] = {nb, H, p->T, S};
    p->rh = ck_host(LISA_DTYPE_F32, 4, rs), p->rw = ck_host(LISA_DTYPE_F32, 4, rs);
    if (lisa_op_rel_pos(c->cpu, &p->rh, &p->rw, &p->q, &p->tab_h, &p->tab_w, (int32_t)S, (int32_t)S) != LISA_OK)
        fprintf(stderr, "    %s: cpu REL_POS: %s\n", p->name, lisa_last_error());
}

/* LLaMA prefill: nseq packed causal sequences, H heads x 128. */
static void ak_make_varlen(ck_ctx *c, ak_problem *p, const int64_t *lens, int nseq, int64_t H, double qm) {
    memset(p, 0, sizeof *p);
    p->kind = AK_VARLEN, p->nseq = nseq, p->H = H, p->D = 128, p->causal = true, p->scale = 1.0f / sqrtf(128.0f);
    int64_t maxlen = 0;
    for (int i = 0; i < nseq; i++) {
        p->lens[i] = lens[i], p->cu[i + 1] = p->cu[i] + lens[i];
        maxlen = lens[i] > maxlen ? lens[i] : maxlen;
    }
    snprintf(p->name, sizeof p->name, "LLaMA prefill varlen %d seqs (max %lld) x %lld x 128 causal %s", nseq,
             (long long)maxlen, (long long)H, qm > 1 ? "peaky" : "flat");
    p->R = p->cu[nseq];
    p->q = rand16m(c, 3, p->R, H, 128, 0, -1, 1, qm);
    p->k = rand16(c, 3, p->R, H, 128, 0, -1, 1);
    p->v = rand16(c, 3, p->R, H, 128, 0, -1, 1);
}

/* Decode: B requests, one query each, over Tk cached keys, H heads x 128. */
static void ak_make_decode(ck_ctx *c, ak_problem *p, int64_t B, int64_t Tk, int64_t H, double qm) {
    memset(p, 0, sizeof *p);
    p->kind = AK_DECODE, p->B = B, p->T = 1, p->Tk = Tk, p->H = H, p->D = 128, p->scale = 1.0f / sqrtf(128.0f);
    snprintf(p->name, sizeof p->name, "LLaMA decode B%lld kv %lld x %lld x 128 %s", (long long)B, (long long)Tk, (long long)H,
             qm > 1 ? "peaky" : "flat");
    p->q = rand16m(c, 4, B, 1, H, 128, -1, 1, qm);
    p->k = rand16(c, 4, B, Tk, H, 128, -1, 1);
    p->v = rand16(c, 4, B, Tk, H, 128, -1, 1);
    p->R = B;
}

/* The CPU references: rows [r0, r0+n) of batch entry (or sequence) b, into p->ref. all_rows: every
 * row (self-test, small shapes); else SAM: windows 0-1 whole, global: the last 64 rows of image 0;
 * VARLEN: the last (up to) 64 rows of each sequence; DECODE: all. */
static void ak_cpu_reference(ck_ctx *c, ak_problem *p, bool all_rows) {
    p->ref = nan_rows(p->R, p->H, p->D);
    if (p->kind == AK_SAM) {
        const int64_t nbc = all_rows ? p->B : (p->S == 14 ? (p->B < 2 ? p->B : 2) : 1);
        for (int64_t b = 0; b < nbc; b++) {
            const int64_t n = all_rows || p->S == 14 ? p->T : 64, r0 = p->T - n;
            lisa_tensor qb = host_slice(&p->q, 0, b, 1), kb = host_slice(&p->k, 0, b, 1), vb = host_slice(&p->v, 0, b, 1);
            lisa_tensor qs = host_slice(&qb, 1, r0, n);
            lisa_tensor rhb = host_slice(&p->rh, 0, b, 1), rwb = host_slice(&p->rw, 0, b, 1);
            lisa_tensor rhs = host_slice(&rhb, 2, r0, n), rws = host_slice(&rwb, 2, r0, n);
            const int64_t rs[4] = {1, n, p->H, p->D};
            lisa_tensor y = ck_host(LISA_DTYPE_F32, 4, rs);
            p->how = cpu_attention(c, &y, &qs, &kb, &vb, &rhs, &rws, p->scale, false);
            put_rows(&p->ref, b * p->T + r0, &y, n);
            p->n_cpu_rows += n;
            lisa_tensor_free(&qb), lisa_tensor_free(&kb), lisa_tensor_free(&vb), lisa_tensor_free(&qs);
            lisa_tensor_free(&rhb), lisa_tensor_free(&rwb), lisa_tensor_free(&rhs), lisa_tensor_free(&rws);
            lisa_tensor_free(&y);
        }
    } else if (p->kind == AK_VARLEN) {
        for (int i = 0; i < p->nseq; i++) {
            const int64_t len = p->lens[i], n = all_rows || len < 64 ? len : 64, r0 = p->cu[i] + len - n;
            lisa_tensor qs = host_slice(&p->q, 0, r0, n), ks = host_slice(&p->k, 0, p->cu[i], len),
                        vs = host_slice(&p->v, 0, p->cu[i], len);
            lisa_tensor q4, k4, v4;
            const int64_t s4q[4] = {1, n, p->H, p->D}, s4k[4] = {1, len, p->H, p->D};
            lisa_tensor_reshape(&q4, &qs, 4, s4q), lisa_tensor_reshape(&k4, &ks, 4, s4k), lisa_tensor_reshape(&v4, &vs, 4, s4k);
            lisa_tensor y = ck_host(LISA_DTYPE_F32, 4, s4q);
            p->how = cpu_attention(c, &y, &q4, &k4, &v4, NULL, NULL, p->scale, true);
            put_rows(&p->ref, r0, &y, n);
            p->n_cpu_rows += n;
            lisa_tensor_free(&qs), lisa_tensor_free(&ks), lisa_tensor_free(&vs), lisa_tensor_free(&y);
        }
    } else {
        const int64_t rs[4] = {p->B, 1, p->H, p->D};
        lisa_tensor y = ck_host(LISA_DTYPE_F32, 4, rs);
        p->how = cpu_attention(c, &y, &p->q, &p->k, &p->v, NULL, NULL, p->scale, p->causal);
        put_rows(&p->ref, 0, &y, p->B);
        p->n_cpu_rows = p->B;
        lisa_tensor_free(&y);
    }
}

/* The double-precision loop over every row (the self-test's naive kernel). */
static void ak_double_naive(ak_problem *p) {
    p->naive = nan_rows(p->R, p->H, p->D);
    if (p->kind == AK_VARLEN) {
        for (int i = 0; i < p->nseq; i++) {
            const int64_t len = p->lens[i];
            lisa_tensor qs = host_slice(&p->q, 0, p->cu[i], len), ks = host_slice(&p->k, 0, p->cu[i], len),
                        vs = host_slice(&p->v, 0, p->cu[i], len), q4, k4, v4;
            const int64_t s4[4] = {1, len, p->H, p->D};
            lisa_tensor_reshape(&q4, &qs, 4, s4), lisa_tensor_reshape(&k4, &ks, 4, s4), lisa_tensor_reshape(&v4, &vs, 4, s4);
            lisa_tensor y = ck_host(LISA_DTYPE_F32, 4, s4);
            ref_attention(&y, &q4, &k4, &v4, NULL, NULL, p->scale, true);
            put_rows(&p->naive, p->cu[i], &y, len);
            lisa_tensor_free(&qs), lisa_tensor_free(&ks), lisa_tensor_free(&vs), lisa_tensor_free(&y);
        }
        return;
    }
    const int64_t s4[4] = {p->B, p->T, p->H, p->D};
    lisa_tensor y = ck_host(LISA_DTYPE_F32, 4, s4);
    ref_attention(&y, &p->q, &p->k, &p->v, p->kind == AK_SAM ? &p->rh : NULL, p->kind == AK_SAM ? &p->rw : NULL, p->scale,
                  p->causal);
    put_rows(&p->naive, 0, &y, p->R);
    lisa_tensor_free(&y);
}

/* ---- the implementations on the GPU ------------------------------------------------------------- */

typedef enum ak_impl {
    AK_MAIN = 0,    /* SAM: flash; VARLEN: flash varlen; DECODE: split-KV over the contiguous cache */
    AK_PAGED,       /* DECODE: PAGED_ATTENTION over 16-token pages with shuffled page ids */
    AK_NAIVE,       /* LISA_CUDA_ATTN_REFERENCE (lk_attn_ref), F32 output */
    AK_WGMMA,       /* SAM, VARLEN: the sm_90a kernel (attn_sm90.cuh; Hopper only) */
    AK_WGMMA_FUSED, /* SAM with tables: the sm_90a kernel computing the rel-pos terms itself */
    AK_FUSED,       /* SAM with tables: ATTENTION_RELPOS on the mma.sync kernel (REL 2: terms from the Q tile) */
    AK_OP,          /* SAM with tables: the ATTENTION_RELPOS op (AUTO: what the models run) */
    AK_UNFUSED,     /* SAM with tables: ATTENTION_RELPOS as REL_POS then ATTENTION on the GPU */
} ak_impl;

static const char *const impl_names[8] = {"", " paged/16", " naive kernel", " (wgmma)", " fused (wgmma)",
                                          " fused (mma.sync)", " op (auto)", " REL_POS+ATTENTION (gpu)"};

/* The ATTENTION_RELPOS path of an implementation. */
static lisa_cuda_attn_path ak_relpos_path(ak_impl impl) {
    return impl == AK_FUSED ? LISA_CUDA_ATTN_FLASH : impl == AK_UNFUSED ? LISA_CUDA_ATTN_UNFUSED : LISA_CUDA_ATTN_AUTO;
}

static lisa_tensor dev_view(void *data, int32_t n, int64_t d0, int64_t d1, int64_t d2, int64_t d3, lisa_dtype dt, int dev) {
    lisa_tensor t = lisa_tensor_view4(data, dt, n, d0, d1, d2, d3);
    t.device = LISA_DEVICE_CUDA, t.device_id = dev;
    return t;
}

/* A [1, n, H, D] view of rows [r0, r0+n) of a packed device [total, H, D] tensor. */
static lisa_tensor dev_rows4(const lisa_tensor *t, int64_t r0, int64_t n) {
    lisa_tensor v = *t;
    v.data = (char *)t->data + (size_t)(r0 * t->stride[0]) * lisa_dtype_size(t->dtype);
    v.n_dims = 4;
    v.shape[0] = 1, v.shape[1] = n, v.shape[2] = t->shape[1], v.shape[3] = t->shape[2];
    v.stride[0] = n * t->stride[0], v.stride[1] = t->stride[0], v.stride[2] = t->stride[1], v.stride[3] = t->stride[2];
    v.owner = false;
    return v;
}

/* Device inputs of a problem (freed with the case). SAM: q/k/v are views of one packed qkv
 * [B·T, 3, H, D] (the layout after SAM's qkv Linear); rel-pos F32. */
typedef struct ak_dev {
    lisa_tensor q, k, v, rh, rw, cu, th, tw;
} ak_dev;

static void ak_upload(ck_ctx *c, const ak_problem *p, ak_dev *d) {
    memset(d, 0, sizeof *d);
    const int dev = c->gpu->device_id;
    if (p->kind == AK_SAM) {
        const int64_t T = p->T, H = p->H, D = p->D;
        const int64_t shp[4] = {p->B * T, 3, H, D};
        lisa_tensor qkv = ck_host(LISA_DTYPE_F32, 4, shp);
        float *P = qkv.data;
        for (int64_t r = 0; r < p->B * T; r++)
            for (int64_t e = 0; e < H * D; e++) {
                P[(r * 3 + 0) * H * D + e] = ((float *)p->q.data)[r * H * D + e];
                P[(r * 3 + 1) * H * D + e] = ((float *)p->k.data)[r * H * D + e];
                P[(r * 3 + 2) * H * D + e] = ((float *)p->v.data)[r * H * D + e];
            }
        lisa_tensor dqkv = ck_dev_from(c, &qkv, LISA_DTYPE_BF16, false);
        lisa_tensor_free(&qkv);
        d->q = dev_view(dqkv.data, 4, p->B, T, H, D, LISA_DTYPE_BF16, dev);
        d->q.stride[0] = T * 3 * H * D, d->q.stride[1] = 3 * H * D, d->q.stride[2] = D, d->q.stride[3] = 1;
        d->k = d->q, d->v = d->q;
        d->k.data = (uint16_t *)d->q.data + H * D;
        d->v.data = (uint16_t *)d->q.data + 2 * H * D;
        d->rh = ck_dev_from(c, &p->rh, LISA_DTYPE_F32, false);
        d->rw = ck_dev_from(c, &p->rw, LISA_DTYPE_F32, false);
        if (p->fused) {
            d->th = ck_dev_from(c, &p->tab_h, LISA_DTYPE_BF16, false);
            d->tw = ck_dev_from(c, &p->tab_w, LISA_DTYPE_BF16, false);
        }
        return;
    }
    d->q = ck_dev_from(c, &p->q, LISA_DTYPE_BF16, false);
    d->k = ck_dev_from(c, &p->k, LISA_DTYPE_BF16, false);
    d->v = ck_dev_from(c, &p->v, LISA_DTYPE_BF16, false);
    if (p->kind == AK_VARLEN) {
        const int64_t cs[1] = {p->nseq + 1};
        lisa_tensor cu = ck_host(LISA_DTYPE_I32, 1, cs);
        for (int i = 0; i <= p->nseq; i++) ((int32_t *)cu.data)[i] = (int32_t)p->cu[i];
        d->cu = ck_dev_from(c, &cu, LISA_DTYPE_I32, false);
        lisa_tensor_free(&cu);
    }
}

/* DECODE over a paged copy of the cache: 16-token pages in shuffled order (one layer's pool). */
static lisa_status ak_run_paged(ck_ctx *c, const ak_problem *p, const ak_dev *d, lisa_tensor *y) {
    const int64_t B = p->B, H = p->H, D = p->D, PS = 16, kv = p->Tk;
    const int64_t per = (kv + PS - 1) / PS, n_pages = B * per + 5;
    const int64_t pshape[4] = {n_pages, PS, H, D};
    lisa_tensor kp = ck_host(LISA_DTYPE_F32, 4, pshape), vp = ck_host(LISA_DTYPE_F32, 4, pshape);
    ck_fill(c, &kp, -1, 1, false), ck_fill(c, &vp, -1, 1, false);
    const int64_t s1[1] = {B * per}, s2[1] = {B + 1}, s3[1] = {B};
    lisa_tensor idx = ck_host(LISA_DTYPE_I32, 1, s1), indptr = ck_host(LISA_DTYPE_I32, 1, s2), lens = ck_host(LISA_DTYPE_I32, 1, s3),
                qo = ck_host(LISA_DTYPE_I32, 1, s2);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages);
    for (int64_t i = 0; i < n_pages; i++) perm[i] = (int32_t)i;
    for (int64_t i = n_pages - 1; i > 0; i--) {
        int64_t j = (int64_t)(ck_next(&c->rng) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int64_t b = 0; b < B; b++) {
        ((int32_t *)indptr.data)[b] = (int32_t)(b * per);
        ((int32_t *)lens.data)[b] = (int32_t)kv;
        for (int64_t pg = 0; pg < per; pg++) ((int32_t *)idx.data)[b * per + pg] = perm[b * per + pg];
        for (int64_t t = 0; t < kv; t++) {
            const int64_t page = perm[b * per + t / PS], slot = t % PS;
            memcpy((float *)kp.data + ((page * PS + slot) * H) * D, (float *)p->k.data + ((b * kv + t) * H) * D,
                   sizeof(float) * (size_t)(H * D));
            memcpy((float *)vp.data + ((page * PS + slot) * H) * D, (float *)p->v.data + ((b * kv + t) * H) * D,
                   sizeof(float) * (size_t)(H * D));
        }
    }
    ((int32_t *)indptr.data)[B] = (int32_t)(B * per);
    for (int64_t b = 0; b <= B; b++) ((int32_t *)qo.data)[b] = (int32_t)b; /* one query row per sequence */
    free(perm);
    lisa_tensor dkp = ck_dev_from(c, &kp, LISA_DTYPE_BF16, false), dvp = ck_dev_from(c, &vp, LISA_DTYPE_BF16, false);
    lisa_tensor didx = ck_dev_from(c, &idx, LISA_DTYPE_I32, false), dptr = ck_dev_from(c, &indptr, LISA_DTYPE_I32, false),
                dlen = ck_dev_from(c, &lens, LISA_DTYPE_I32, false), dqo = ck_dev_from(c, &qo, LISA_DTYPE_I32, false);
    const int64_t qs3[3] = {B, H, D};
    lisa_tensor q3, y3;
    lisa_tensor_reshape(&q3, &d->q, 3, qs3);
    lisa_tensor_reshape(&y3, y, 3, qs3);
    lisa_status s = lisa_cuda_paged_attention_ex(c->gpu, &y3, &q3, &dkp, &dvp, (int32_t)B, (int32_t)PS, p->scale, p->causal, &dqo,
                                                 &dptr, &didx, &dlen, (const int32_t *)qo.data, (const int32_t *)indptr.data,
                                                 (const int32_t *)idx.data, (const int32_t *)lens.data);
    lisa_tensor_free(&kp), lisa_tensor_free(&vp), lisa_tensor_free(&idx), lisa_tensor_free(&indptr);
    lisa_tensor_free(&lens), lisa_tensor_free(&qo);
    return s;
}

/* Runs one implementation on the GPU; *out = host F32 [R, H, D] (caller frees). */
static lisa_status ak_gpu_run_dt(ck_ctx *c, const ak_problem *p, const ak_dev *d, ak_impl impl, lisa_dtype odt,
                                 lisa_tensor *out) {
    const int dev = c->gpu->device_id;
    const int64_t ys[4] = {p->kind == AK_VARLEN ? p->R : p->B, p->kind == AK_VARLEN ? p->H : p->T,
                           p->kind == AK_VARLEN ? p->D : p->H, p->D};
    lisa_tensor y = ck_dev_poison(c, odt, p->kind == AK_VARLEN ? 3 : 4, ys);
    lisa_status s = LISA_OK;
    lisa_clear_error();
    if (p->kind == AK_SAM && impl == AK_WGMMA_FUSED) {
        s = lisa_cuda_attention_relpos_fused(c->gpu, &y, &d->q, &d->k, &d->v, p->scale, &d->th, &d->tw);
    } else if (p->kind == AK_SAM && (impl == AK_FUSED || impl == AK_OP || impl == AK_UNFUSED)) {
        s = lisa_cuda_attention_relpos_path(c->gpu, &y, &d->q, &d->k, &d->v, &d->th, &d->tw, (int32_t)p->S, (int32_t)p->S,
                                            p->scale, ak_relpos_path(impl));
    } else if (p->kind == AK_SAM) {
        lisa_attn_params ap = {.scale = p->scale, .rel_h = &d->rh, .rel_w = &d->rw};
        s = lisa_cuda_attention_path(c->gpu, &y, &d->q, &d->k, &d->v, &ap,
                                     impl == AK_NAIVE   ? LISA_CUDA_ATTN_REFERENCE
                                     : impl == AK_WGMMA ? LISA_CUDA_ATTN_WGMMA
                                                        : LISA_CUDA_ATTN_FLASH);
    } else if (p->kind == AK_VARLEN) {
        if (impl == AK_NAIVE) {
            lisa_attn_params ap = {.scale = p->scale, .causal = true};
            for (int i = 0; i < p->nseq && s == LISA_OK; i++) {
                lisa_tensor qv = dev_rows4(&d->q, p->cu[i], p->lens[i]), kv = dev_rows4(&d->k, p->cu[i], p->lens[i]),
                            vv = dev_rows4(&d->v, p->cu[i], p->lens[i]), yv = dev_rows4(&y, p->cu[i], p->lens[i]);
                s = lisa_cuda_attention_path(c->gpu, &yv, &qv, &kv, &vv, &ap, LISA_CUDA_ATTN_REFERENCE);
            }
        } else {
            int64_t maxlen = 0;
            for (int i = 0; i < p->nseq; i++) maxlen = p->lens[i] > maxlen ? p->lens[i] : maxlen;
            s = lisa_cuda_flash_attn_varlen_path(c->gpu, &y, &d->q, &d->k, &d->v, &d->cu, &d->cu, (int32_t)maxlen, p->scale,
                                                 true, impl == AK_WGMMA ? LISA_CUDA_ATTN_WGMMA : LISA_CUDA_ATTN_FLASH);
        }
    } else if (impl == AK_PAGED) {
        s = ak_run_paged(c, p, d, &y);
    } else {
        lisa_attn_params ap = {.scale = p->scale, .causal = p->causal};
        s = lisa_cuda_attention_path(c->gpu, &y, &d->q, &d->k, &d->v, &ap,
                                     impl == AK_NAIVE ? LISA_CUDA_ATTN_REFERENCE : LISA_CUDA_ATTN_SPLITKV);
    }
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    if (s != LISA_OK) return s;
    (void)dev;
    *out = ck_download(c, &y);
    return LISA_OK;
}

static lisa_status ak_gpu_run(ck_ctx *c, const ak_problem *p, const ak_dev *d, ak_impl impl, lisa_tensor *out) {
    return ak_gpu_run_dt(c, p, d, impl, impl == AK_NAIVE ? LISA_DTYPE_F32 : LISA_DTYPE_BF16, out);
}

/* cuDNN's fused SDPA as a third opinion (issue: "compared against an on-GPU naive kernel and cuDNN").
 * Not built. cuDNN 9's fused attention is reachable from C only through the backend API
 * (cudnnBackend*): an operation graph of two matmuls, scale/bias pointwise nodes and the softmax
 * (or the SDPA node of recent versions), with the engine chosen by heuristics at run time, ~400
 * lines of descriptor code whose attribute set changes between cuDNN minor versions and that could
 * not be run once before a GPU is lent. The supported C++ way (cudnn-frontend) is not installed
 * here. The PyTorch peer (bench/gpu/suite.sh) times torch SDPA, whose cuDNN backend covers the
 * speed comparison; for correctness the naive kernel plays the second implementation. The hook:
 * return LISA_OK with *out = host F32 [R, H, D] to have every problem also compared with it. */
static lisa_status (*const ak_cudnn_peer)(ck_ctx *c, const ak_problem *p, const ak_dev *d, lisa_tensor *out) = NULL;

/* ---- the host model of the kernels (the self-test's GPU), with plantable bugs -------------------- */

typedef enum ak_bug {
    BUG_NONE = 0,
    BUG_CAUSAL_OFF_BY_ONE, /* mask key > i + off + 1: each row sees the next key */
    BUG_DROP_SPLIT,        /* split-KV: the merge skips split 1 */
    BUG_DROP_LAST_TILE,    /* flash: the last 64-key tile is never loaded */
    BUG_RELPOS_SWAP,       /* rel-pos: key j gets rel_h[j % k_w] + rel_w[j / k_w] */
    BUG_RELPOS_TABLE,      /* fused rel-pos: the terms from table row qy − ky + k_h (one past the right one) */
    BUG_COUNT
} ak_bug;

static const char *const bug_names[BUG_COUNT] = {"none", "causal mask off by one", "one KV split dropped",
                                                 "last key tile dropped", "rel-pos row/column swapped",
                                                 "rel-pos table row off by one"};

static float bf16r(double x) { return lisa_bf16_to_f32(lisa_f32_to_bf16((float)x)); }

/* One query row of lk_flash_fwd: keys in 64-key tiles, scores in the log2 domain, online softmax,
 * P rounded to bf16 for P·V, output rounded to bf16. q row, key rows through k/v (row stride kst,
 * head offset), rel rows or NULL. i: the row's index in its sequence, Tq/Tk its sequence's lengths. */
static void ak_model_flash_row(float *y, const float *q, const float *k, const float *v, int64_t kst, int64_t D,
                               const float *rh, const float *rw, int64_t kw, int64_t i, int64_t Tq, int64_t Tk, bool causal,
                               double scale_log2, ak_bug bug, double *acc) {
    const int64_t m0 = i / 64 * 64, m_last = (m0 + 64 < Tq ? m0 + 64 : Tq) - 1, off = Tk - Tq;
    int64_t n_end = Tk;
    if (causal && m_last + off + 1 < n_end) n_end = m_last + off + 1;
    int64_t n_tiles = n_end > 0 ? (n_end + 63) / 64 : 0;
    if (bug == BUG_DROP_LAST_TILE && n_tiles > 1) n_tiles--;
    double m = -INFINITY, l = 0, s[64];
    for (int64_t d = 0; d < D; d++) acc[d] = 0;
    for (int64_t t = 0; t < n_tiles; t++) {
        double mx = -INFINITY;
        for (int64_t e = 0; e < 64; e++) {
            const int64_t key = t * 64 + e;
            double x = -INFINITY;
            const int64_t lim = i + off + (bug == BUG_CAUSAL_OFF_BY_ONE ? 1 : 0);
            if (key < Tk && !(causal && key > lim)) {
                double dot = 0;
                for (int64_t d = 0; d < D; d++) dot += (double)q[d] * k[key * kst + d];
                x = dot * scale_log2;
                if (rh) {
                    const int64_t ky = bug == BUG_RELPOS_SWAP ? key % kw : key / kw;
                    const int64_t kx = bug == BUG_RELPOS_SWAP ? key / kw : key % kw;
                    x += ((double)rh[ky] + rw[kx]) * AK_LOG2E;
                }
            }
            s[e] = x;
            if (x > mx) mx = x;
        }
        const double m_new = mx > m ? mx : m, m_use = m_new == -INFINITY ? 0 : m_new;
        const double alpha = exp2(m - m_use);
        l *= alpha;
        for (int64_t d = 0; d < D; d++) acc[d] *= alpha;
        for (int64_t e = 0; e < 64; e++) {
            const int64_t key = t * 64 + e;
            const double pr = exp2(s[e] - m_use);
            l += pr;
            if (pr == 0) continue;
            const double pb = bf16r(pr);
            for (int64_t d = 0; d < D; d++) acc[d] += pb * v[key * kst + d];
        }
        m = m_new;
    }
    for (int64_t d = 0; d < D; d++) y[d] = l > 0 ? bf16r(acc[d] / l) : NAN;
}

/* lk_attn_splitkv + lk_attn_combine for one query row over Tk keys: fixed 256-key splits, each with
 * its own max/sum/accumulator, merged in split order; n_split from the batch's longest sequence. */
static void ak_model_splitkv_row(float *y, const float *q, const float *k, const float *v, int64_t kst, int64_t D,
                                 int64_t i, int64_t Tq, int64_t Tk, int64_t n_split, bool causal, double scale_log2, ak_bug bug,
                                 double *acc, double *part) {
    double M = -INFINITY, L = 0, ms[64], ls[64];
    const int64_t off = Tk - Tq;
    for (int64_t sp = 0; sp < n_split && sp < 64; sp++) {
        double m = -INFINITY, l = 0, *o = part + sp * D;
        for (int64_t d = 0; d < D; d++) o[d] = 0;
        const int64_t k0 = sp * 256, k1 = k0 + 256 < Tk ? k0 + 256 : Tk;
        for (int64_t key = k0; key < k1; key++) {
            if (causal && key > i + off + (bug == BUG_CAUSAL_OFF_BY_ONE ? 1 : 0)) continue;
            double dot = 0;
            for (int64_t d = 0; d < D; d++) dot += (double)q[d] * k[key * kst + d];
            const double x = dot * scale_log2, m_new = x > m ? x : m, alpha = exp2(m - m_new), pr = exp2(x - m_new);
            l = l * alpha + pr;
            for (int64_t d = 0; d < D; d++) o[d] = o[d] * alpha + pr * v[key * kst + d];
            m = m_new;
        }
        ms[sp] = m, ls[sp] = l;
        if (m > M) M = m;
    }
    for (int64_t d = 0; d < D; d++) acc[d] = 0;
    if (M != -INFINITY)
        for (int64_t sp = 0; sp < n_split && sp < 64; sp++) {
            if (bug == BUG_DROP_SPLIT && sp == 1) continue;
            const double f = exp2(ms[sp] - M);
            L += ls[sp] * f;
            for (int64_t d = 0; d < D; d++) acc[d] += part[sp * D + d] * f;
        }
    for (int64_t d = 0; d < D; d++) y[d] = L > 0 ? bf16r(acc[d] / L) : NAN;
}

/* The fused rel-pos terms of query i of an S x S grid, as lk_flash_fwd_v<.., REL 2> computes them
 * from the Q tile and the tables (F32 sums of bf16 products): th[ky] = q·tab_h[qy − ky + S − 1],
 * tw[kx] = q·tab_w[qx − kx + S − 1]; BUG_RELPOS_TABLE reads the next table row instead. */
static void ak_model_terms(float *th, float *tw, const float *q, const float *tab_h, const float *tab_w, int64_t D, int64_t S,
                           int64_t i, ak_bug bug) {
    const int64_t qy = i / S, qx = i % S, shift = bug == BUG_RELPOS_TABLE ? 1 : 0;
    for (int64_t t = 0; t < 2; t++)
        for (int64_t kk = 0; kk < S; kk++) {
            int64_t row = (t == 0 ? qy : qx) - kk + S - 1 + shift;
            row = row > 2 * S - 2 ? 2 * S - 2 : row;
            const float *tab = (t == 0 ? tab_h : tab_w) + row * D;
            double acc = 0;
            for (int64_t d = 0; d < D; d++) acc += (double)q[d] * tab[d];
            (t == 0 ? th : tw)[kk] = (float)acc;
        }
}

/* The model on a whole problem: *out = host F32 [R, H, D] (caller frees). */
static void ak_model_run(const ak_problem *p, ak_bug bug, lisa_tensor *out) {
    const int64_t H = p->H, D = p->D;
    *out = nan_rows(p->R, H, D);
    float *Y = out->data;
    const float *Q = p->q.data, *K = p->k.data, *V = p->v.data;
    const double sl2 = (double)p->scale * AK_LOG2E;
    double *acc = malloc(sizeof(double) * (size_t)D), *part = malloc(sizeof(double) * (size_t)(64 * D));
    if (p->kind == AK_SAM) {
        const int64_t T = p->T, S = p->S;
        float *th = malloc(sizeof(float) * (size_t)(2 * S)), *tw = th + S; /* fused: the model's own terms */
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < T; i++) {
                    const int64_t r = b * T + i, rel = ((b * H + h) * T + i) * S;
                    const float *rh = (const float *)p->rh.data + rel, *rw = (const float *)p->rw.data + rel;
                    if (p->fused) {
                        ak_model_terms(th, tw, Q + (r * H + h) * D, p->tab_h.data, p->tab_w.data, D, S, i, bug);
                        rh = th, rw = tw;
                    }
                    ak_model_flash_row(Y + (r * H + h) * D, Q + (r * H + h) * D, K + (b * T * H + h) * D,
                                       V + (b * T * H + h) * D, H * D, D, rh, rw, S, i, T, T, false, sl2, bug, acc);
                }
        free(th);
    } else if (p->kind == AK_VARLEN) {
        for (int sq = 0; sq < p->nseq; sq++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < p->lens[sq]; i++) {
                    const int64_t r = p->cu[sq] + i;
                    ak_model_flash_row(Y + (r * H + h) * D, Q + (r * H + h) * D, K + (p->cu[sq] * H + h) * D,
                                       V + (p->cu[sq] * H + h) * D, H * D, D, NULL, NULL, 0, i, p->lens[sq], p->lens[sq], true,
                                       sl2, bug, acc);
                }
    } else {
        const int64_t n_split = (p->Tk + 255) / 256;
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < H; h++)
                ak_model_splitkv_row(Y + (b * H + h) * D, Q + (b * H + h) * D, K + (b * p->Tk * H + h) * D,
                                     V + (b * p->Tk * H + h) * D, H * D, D, 0, 1, p->Tk, n_split, p->causal, sl2, bug, acc,
                                     part);
    }
    free(acc);
    free(part);
}

/* ---- running a problem ---------------------------------------------------------------------------- */

/* Planted-bug bookkeeping of the self-test: where each bug was first caught. */
typedef struct ak_catch {
    int applicable, caught;
    char first[200];
} ak_catch;

/* The checks of one output: vs the CPU rows, vs the naive whole output. Records them when `record`,
 * else (a planted bug) returns false when any of them fails and names it in why. */
static bool ak_check_output(ck_ctx *c, const ak_problem *p, const char *impl_name, const lisa_tensor *got, bool record,
                            char *why, size_t cap) {
    const int64_t n = p->R * p->H * p->D;
    char nm[240];
    ak_stats s1 = ak_compare(got->data, p->ref.data, n);
    ak_stats s2 = ak_compare(got->data, p->naive.data, n);
    if (record) {
        snprintf(nm, sizeof nm, "%s%s vs cpu (%lld rows)", p->name, impl_name, (long long)p->n_cpu_rows);
        ak_record(c, "attention", nm, &s1, p->how);
        snprintf(nm, sizeof nm, "%s%s vs naive (all %lld rows)", p->name, impl_name, (long long)p->R);
        ak_record(c, "attention", nm, &s2, c->self_test ? "vs double loop" : "vs the naive kernel");
        return s1.ok && s2.ok;
    }
    if (s1.ok && s2.ok) return true;
    const ak_stats *f = !s1.ok ? &s1 : &s2;
    snprintf(why, cap, "%s vs %s: %s (rel-L2 %.2g, tol %.1g; %lld elements off)", p->name, !s1.ok ? "cpu" : "naive",
             !f->elem_ok && !f->l2_ok ? "elementwise and rel-L2" : !f->elem_ok ? "elementwise" : "rel-L2 only", f->rel_l2,
             f->l2_tol, (long long)f->bad);
    return false;
}

/* Whether a planted bug touches a problem's code path at all. */
static bool ak_applicable(const ak_problem *p, ak_bug bug) {
    switch (bug) {
    case BUG_CAUSAL_OFF_BY_ONE: return p->causal;
    case BUG_DROP_SPLIT: return p->kind == AK_DECODE && p->Tk > 256;
    case BUG_DROP_LAST_TILE: return p->kind != AK_DECODE && (p->kind == AK_SAM ? p->T > 64 : true);
    case BUG_RELPOS_SWAP: return p->kind == AK_SAM;
    case BUG_RELPOS_TABLE: return p->kind == AK_SAM && p->fused;
    default: return false;
    }
}

/* GPU: every implementation of the problem against the CPU rows and the naive kernel.
 * Self-test: the clean model against both (recorded), then each planted bug (not recorded). */
static void ak_run_problem(ck_ctx *c, ak_problem *p, ak_catch *catches) {
    if (c->self_test) {
        ak_cpu_reference(c, p, true);
        ak_double_naive(p);
        lisa_tensor got;
        ak_model_run(p, BUG_NONE, &got);
        ak_check_output(c, p, " (host model)", &got, true, NULL, 0);
        lisa_tensor_free(&got);
        for (int b = 1; b < BUG_COUNT; b++) {
            if (!ak_applicable(p, (ak_bug)b)) continue;
            catches[b].applicable++;
            ak_model_run(p, (ak_bug)b, &got);
            char why[200];
            if (!ak_check_output(c, p, "", &got, false, why, sizeof why)) {
                if (!catches[b].caught++) snprintf(catches[b].first, sizeof catches[b].first, "%s", why);
                printf("      planted %-28s caught: %s\n", bug_names[b], why);
            } else {
                printf("      planted %-28s NOT caught by %s\n", bug_names[b], p->name);
            }
            lisa_tensor_free(&got);
        }
        return;
    }
    ak_cpu_reference(c, p, false);
    ak_dev d;
    ak_upload(c, p, &d);
    lisa_tensor naive;
    lisa_status s = ak_gpu_run(c, p, &d, AK_NAIVE, &naive);
    if (s != LISA_OK) {
        ck_record(c, "attention", p->name, "BF16", 1, NAN, 0, -1, "naive kernel: %s", lisa_last_error());
        ck_free_case(c);
        return;
    }
    p->naive = naive;
    /* the naive kernel itself against the CPU rows (F32 output: the fp32 kernel's own accuracy) */
    {
        char nm[240];
        snprintf(nm, sizeof nm, "%s naive kernel vs cpu", p->name);
        ak_stats st = ak_compare(p->naive.data, p->ref.data, p->R * p->H * p->D);
        ak_record(c, "attention", nm, &st, p->how);
    }
    /* the implementations of this kind: the mma.sync kernel (and the paged one for decode), and on
     * Hopper the sm_90a kernel (rel-pos as terms, and computed inside from the tables) */
    ak_impl impls[8] = {AK_MAIN, AK_PAGED, AK_WGMMA};
    int n_impl = 1;
    if (p->kind == AK_DECODE) n_impl = 2;
    if (p->fused) impls[n_impl++] = AK_FUSED, impls[n_impl++] = AK_OP, impls[n_impl++] = AK_UNFUSED;
    if (p->kind != AK_DECODE) {
        if (lisa_cuda_attn_wgmma_available(c->gpu)) {
            impls[n_impl++] = AK_WGMMA;
            if (p->fused) impls[n_impl++] = AK_WGMMA_FUSED;
        } else {
            char nm[240];
            snprintf(nm, sizeof nm, "%s (wgmma)", p->name);
            ck_record(c, "attention", nm, "BF16", 2, 0, 0, -1, "device cannot run the sm_90a kernel");
        }
    }
    for (int ii = 0; ii < n_impl; ii++) {
        const ak_impl im = impls[ii];
        lisa_tensor got;
        s = ak_gpu_run(c, p, &d, im, &got);
        if (s != LISA_OK) {
            char nm[240];
            snprintf(nm, sizeof nm, "%s%s", p->name, impl_names[im]);
            ck_record(c, "attention", nm, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
            continue;
        }
        ak_check_output(c, p, impl_names[im], &got, true, NULL, 0);
        lisa_tensor_free(&got);
        if (ak_cudnn_peer) {
            lisa_tensor peer;
            if (ak_cudnn_peer(c, p, &d, &peer) == LISA_OK) {
                char nm[240];
                snprintf(nm, sizeof nm, "%s cuDNN SDPA vs naive", p->name);
                ak_stats st = ak_compare(peer.data, p->naive.data, p->R * p->H * p->D);
                ak_record(c, "attention", nm, &st, "cuDNN fused SDPA");
                lisa_tensor_free(&peer);
            }
        }
    }
    if (p->fused) { /* the fused kernel against the composition on the GPU, both with F32 outputs */
        lisa_tensor fz, un;
        char nm[240];
        snprintf(nm, sizeof nm, "%s fused (mma.sync) vs REL_POS+ATTENTION (gpu), f32 out", p->name);
        s = ak_gpu_run_dt(c, p, &d, AK_FUSED, LISA_DTYPE_F32, &fz);
        if (s == LISA_OK) {
            s = ak_gpu_run_dt(c, p, &d, AK_UNFUSED, LISA_DTYPE_F32, &un);
            if (s != LISA_OK) lisa_tensor_free(&fz);
        }
        if (s != LISA_OK) {
            ck_record(c, "attention", nm, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
        } else {
            ak_stats st = ak_compare(fz.data, un.data, p->R * p->H * p->D);
            ak_record(c, "attention", nm, &st, "the rel-pos terms from the Q tile vs lk_rel_pos's F32 terms");
            lisa_tensor_free(&fz), lisa_tensor_free(&un);
        }
    }
    ck_free_case(c);
}

static void two_way(ck_ctx *c, int64_t N) {
    struct {
        const char *what;
        int64_t Tq, Tk, D;
    } cases[3] = {{"token->image", 6, 4096, 16}, {"image->token", 4096, 6, 16}, {"token self", 6, 6, 32}};
    for (int i = 0; i < 3; i++) {
        char name[112];
        snprintf(name, sizeof name, "two-way %s N%lld Tq %lld Tk %lld x 8 x %lld", cases[i].what, (long long)N,
                 (long long)cases[i].Tq, (long long)cases[i].Tk, (long long)cases[i].D);
        if (!ck_selected(c, "attention", name)) continue;
        const int64_t H = 8, D = cases[i].D, Tq = cases[i].Tq, Tk = cases[i].Tk;
        lisa_tensor q = rand16(c, 4, N, Tq, H, D, -1, 1), k = rand16(c, 4, N, Tk, H, D, -1, 1), v = rand16(c, 4, N, Tk, H, D, -1, 1);
        const int64_t ys[4] = {N, Tq, H, D};
        lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, ys);
        const float scale = 1.0f / sqrtf((float)D);
        const char *how = cpu_attention(c, &ref, &q, &k, &v, NULL, NULL, scale, false);
        lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dk = ck_dev_from(c, &k, LISA_DTYPE_BF16, false),
                    dv = ck_dev_from(c, &v, LISA_DTYPE_BF16, false);
        lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 4, ys);
        lisa_attn_params p = {.scale = scale};
        lisa_status s = lisa_op_attention(c->gpu, &y, &dq, &dk, &dv, &p);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
        if (s != LISA_OK)
            ck_record(c, "attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
        else
            compare_rows(c, "attention", name, &y, 0, 0, N, &ref, how);
        ck_free_case(c);
        lisa_tensor_free(&q), lisa_tensor_free(&k), lisa_tensor_free(&v), lisa_tensor_free(&ref);
    }
}

/* PAGED_ATTENTION over one layer's pool (LLaMA-7B heads, 16-token pages, shuffled page ids) for a
 * batch mixing a fresh 330-token prefill, a 64-row chunk after a 136-token cached prefix, and
 * decode rows at 1024 and 17 keys; then KV_APPEND of new rows into the pool. The reference gathers
 * each sequence's pages on the host and runs the dense attention (causal: the chunk's rows sit at
 * the end of its keys). */
static void paged(ck_ctx *c) {
    const int64_t H = 32, D = 128, PS = 16;
    const int B = 4;
    const int32_t qlen[4] = {330, 64, 1, 1}, kvlen[4] = {330, 200, 1024, 17};
    const char *name = "paged LLaMA-7B: prefill 330, chunk 64@200, decode @1024/@17";
    if (!ck_selected(c, "paged_attention", name)) return;
    int32_t qo[5] = {0}, ptr[5] = {0};
    for (int b = 0; b < B; b++) qo[b + 1] = qo[b] + qlen[b], ptr[b + 1] = ptr[b] + (kvlen[b] + (int32_t)PS - 1) / (int32_t)PS;
    const int64_t T = qo[B], n_pages = ptr[B] + 3;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages);
    for (int64_t i = 0; i < n_pages; i++) perm[i] = (int32_t)i;
    for (int64_t i = n_pages - 1; i > 0; i--) {
        int64_t j = (int64_t)(ck_next(&c->rng) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    lisa_tensor q = rand16(c, 3, T, H, D, 0, -1, 1), kp = rand16(c, 4, n_pages, PS, H, D, -1, 1),
                vp = rand16(c, 4, n_pages, PS, H, D, -1, 1);
    const int64_t sb1[1] = {B + 1}, sb[1] = {B}, sn[1] = {ptr[B]};
    lisa_tensor hqo = ck_host(LISA_DTYPE_I32, 1, sb1), hptr = ck_host(LISA_DTYPE_I32, 1, sb1), hlen = ck_host(LISA_DTYPE_I32, 1, sb),
                hidx = ck_host(LISA_DTYPE_I32, 1, sn);
    memcpy(hqo.data, qo, sizeof qo), memcpy(hptr.data, ptr, sizeof ptr), memcpy(hlen.data, kvlen, sizeof kvlen);
    memcpy(hidx.data, perm, sizeof(int32_t) * (size_t)ptr[B]);
    lisa_tensor dq = ck_dev_from(c, &q, LISA_DTYPE_BF16, false), dkp = ck_dev_from(c, &kp, LISA_DTYPE_BF16, false),
                dvp = ck_dev_from(c, &vp, LISA_DTYPE_BF16, false), dqo = ck_dev_from(c, &hqo, LISA_DTYPE_I32, false),
                dptr = ck_dev_from(c, &hptr, LISA_DTYPE_I32, false), dlen = ck_dev_from(c, &hlen, LISA_DTYPE_I32, false),
                didx = ck_dev_from(c, &hidx, LISA_DTYPE_I32, false);
    const int64_t ys[3] = {T, H, D};
    lisa_tensor y = ck_dev_poison(c, LISA_DTYPE_BF16, 3, ys);
    const float scale = 1.0f / sqrtf((float)D);
    lisa_status s = lisa_cuda_paged_attention_ex(c->gpu, &y, &dq, &dkp, &dvp, B, (int32_t)PS, scale, true, &dqo, &dptr, &didx,
                                                 &dlen, qo, ptr, perm, kvlen);
    if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
    if (s != LISA_OK) {
        ck_record(c, "paged_attention", name, "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
    } else {
        for (int b = 0; b < B; b++) {
            /* gather the sequence's keys, then its last (up to 64) query rows */
            const int64_t tk = kvlen[b], n = qlen[b] < 64 ? qlen[b] : 64, r0 = qo[b] + qlen[b] - n;
            const int64_t s4k[4] = {1, tk, H, D}, s4q[4] = {1, n, H, D};
            lisa_tensor k4 = ck_host(LISA_DTYPE_F32, 4, s4k), v4 = ck_host(LISA_DTYPE_F32, 4, s4k);
            for (int64_t j = 0; j < tk; j++) {
                const int64_t page = perm[ptr[b] + j / PS], slot = j % PS;
                memcpy((float *)k4.data + j * H * D, (float *)kp.data + (page * PS + slot) * H * D, sizeof(float) * (size_t)(H * D));
                memcpy((float *)v4.data + j * H * D, (float *)vp.data + (page * PS + slot) * H * D, sizeof(float) * (size_t)(H * D));
            }
            lisa_tensor qs = host_slice(&q, 0, r0, n), q4;
            lisa_tensor_reshape(&q4, &qs, 4, s4q);
            lisa_tensor ref = ck_host(LISA_DTYPE_F32, 4, s4q), ref3;
            const char *how = cpu_attention(c, &ref, &q4, &k4, &v4, NULL, NULL, scale, true);
            const int64_t s3[3] = {n, H, D};
            lisa_tensor_reshape(&ref3, &ref, 3, s3);
            char nm[240];
            snprintf(nm, sizeof nm, "paged seq %d: %d rows @ %d keys", b, qlen[b], kvlen[b]);
            lisa_tensor got_all = ck_download(c, &y), got = host_slice(&got_all, 0, r0, n);
            ak_stats st = ak_compare(got.data, ref3.data, lisa_tensor_numel(&ref3));
            ak_record(c, "paged_attention", nm, &st, how);
            lisa_tensor_free(&got), lisa_tensor_free(&got_all), lisa_tensor_free(&ref), lisa_tensor_free(&qs);
            lisa_tensor_free(&k4), lisa_tensor_free(&v4);
        }
    }
    /* KV_APPEND: three new F32 rows (one padding) into the BF16 pool, exact after rounding */
    if (ck_selected(c, "kv_append", "F32 rows into BF16 pages")) {
        const int64_t ss[1] = {3};
        lisa_tensor kn = rand16(c, 3, 3, H, D, 0, -1, 1), vn = rand16(c, 3, 3, H, D, 0, -1, 1), sl = ck_host(LISA_DTYPE_I32, 1, ss);
        const int32_t slots[3] = {perm[0] * (int32_t)PS + 5, -1, perm[ptr[B] - 1] * (int32_t)PS + 15};
        memcpy(sl.data, slots, sizeof slots);
        lisa_tensor dkn = ck_dev_from(c, &kn, LISA_DTYPE_F32, true), dvn = ck_dev_from(c, &vn, LISA_DTYPE_F32, true),
                    dsl = ck_dev_from(c, &sl, LISA_DTYPE_I32, false);
        s = lisa_cuda_kv_append(c->gpu, &dkp, &dvp, &dkn, &dvn, &dsl);
        if (s != LISA_OK) {
            ck_record(c, "kv_append", "F32 rows into BF16 pages", "BF16", 1, NAN, 0, -1, "cuda: %s", lisa_last_error());
        } else {
            for (int k = 0; k < 3; k += 2) { /* pool rows vs the new rows; row 1 was padding */
                const int64_t slot = slots[k];
                lisa_tensor pk = ck_download(c, &dkp), pv = ck_download(c, &dvp);
                lisa_tensor gk = host_slice(&pk, 0, slot / PS, 1), gv = host_slice(&pv, 0, slot / PS, 1);
                lisa_tensor gk1 = host_slice(&gk, 1, slot % PS, 1), gv1 = host_slice(&gv, 1, slot % PS, 1);
                lisa_tensor wk = host_slice(&kn, 0, k, 1), wv = host_slice(&vn, 0, k, 1), wk4, wv4;
                const int64_t s4[4] = {1, 1, H, D};
                lisa_tensor_reshape(&wk4, &wk, 4, s4), lisa_tensor_reshape(&wv4, &wv, 4, s4);
                char nm[64];
                snprintf(nm, sizeof nm, "F32 rows into BF16 pages, row %d (k)", k);
                ck_compare(c, "kv_append", nm, "BF16", &gk1, &wk4, 0, 0, NULL, NULL);
                snprintf(nm, sizeof nm, "F32 rows into BF16 pages, row %d (v)", k);
                ck_compare(c, "kv_append", nm, "BF16", &gv1, &wv4, 0, 0, NULL, NULL);
                lisa_tensor_free(&pk), lisa_tensor_free(&pv), lisa_tensor_free(&gk), lisa_tensor_free(&gv);
                lisa_tensor_free(&gk1), lisa_tensor_free(&gv1), lisa_tensor_free(&wk), lisa_tensor_free(&wv);
            }
            /* a slot past the pool: LISA_ERR_INVALID_ARG naming it, from the op or (checked on the
             * device without a host wait, kernels/cuda/cuda.h) the next synchronize */
            ((int32_t *)sl.data)[1] = (int32_t)(n_pages * PS);
            lisa_tensor dsl2 = ck_dev_from(c, &sl, LISA_DTYPE_I32, false);
            lisa_clear_error();
            s = lisa_cuda_kv_append(c->gpu, &dkp, &dvp, &dkn, &dvn, &dsl2);
            if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
            char msg[256], want[32];
            snprintf(msg, sizeof msg, "%s", lisa_last_error());
            snprintf(want, sizeof want, "%lld", (long long)(n_pages * PS));
            const bool ok = s == LISA_ERR_INVALID_ARG && strstr(msg, want) != NULL && c->gpu->synchronize(c->gpu) == LISA_OK;
            ck_record(c, "kv_append", "slot past the pool is an error", "-", ok ? 0 : 1, 0, 0, -1, "got %s: %s",
                      lisa_status_name(s), msg);
        }
        lisa_tensor_free(&kn), lisa_tensor_free(&vn), lisa_tensor_free(&sl);
    }
    ck_free_case(c);
    free(perm);
    lisa_tensor_free(&q), lisa_tensor_free(&kp), lisa_tensor_free(&vp);
    lisa_tensor_free(&hqo), lisa_tensor_free(&hptr), lisa_tensor_free(&hlen), lisa_tensor_free(&hidx);
}

void ck_cases_attention(ck_ctx *c) {
    const bool q = c->quick, st = c->self_test;
    const double PEAKY = 24; /* q scale: score std ~8 (see the top of this file) */
    ak_catch catches[BUG_COUNT];
    memset(catches, 0, sizeof catches);
    /* Shapes: the real ones on a GPU (the benchmark times SAM at batch 8); in the self-test the same
     * kinds smaller (the host model and two CPU references run everything): SAM windows 14x14 (196
     * keys: 3 full tiles + 4), a 20x20 "global" grid (400 keys: 6 tiles + 16), prefill sequences of
     * 70/1/130/9 tokens (partial tiles, a 1-token sequence), decode over 1024 keys (4 splits) and
     * 300 keys (2 splits, the last partial). */
    const int64_t H = st ? 2 : 16, HL = st ? 2 : 32;
    const int64_t lens_full[4] = {330, 1, 129, 64}, lens_q[1] = {330}, lens_st[4] = {70, 1, 130, 9};
    for (int peaky = 0; peaky < 2; peaky++) {
        const double qm = peaky ? PEAKY : 1;
        ak_problem p;
        const char *sel[4] = {"SAM windows", "SAM global", "LLaMA prefill", "LLaMA decode"};
        if (ck_selected(c, "attention", sel[0])) {
            ak_make_sam(c, &p, st ? 2 : (q || peaky ? 25 : 50), 14, H, qm, false);
            ak_run_problem(c, &p, catches);
            ak_free(&p);
            { /* rel-pos from tables: ATTENTION_RELPOS and the sm_90a kernel's fused form too */
                ak_make_sam(c, &p, st ? 2 : 25, 14, H, qm, true);
                ak_run_problem(c, &p, catches);
                ak_free(&p);
            }
        }
        if (ck_selected(c, "attention", sel[1])) {
            ak_make_sam(c, &p, st || q || peaky ? 1 : 2, st ? 20 : 64, H, qm, false);
            if (st) snprintf(p.name, sizeof p.name, "SAM global-like [1,400,%lld,80] rel-pos 20x20 %s", (long long)H,
                             peaky ? "peaky" : "flat");
            ak_run_problem(c, &p, catches);
            ak_free(&p);
            ak_make_sam(c, &p, 1, st ? 20 : 64, H, qm, true);
            if (st) snprintf(p.name, sizeof p.name, "SAM global-like [1,400,%lld,80] rel-pos 20x20 tables %s", (long long)H,
                             peaky ? "peaky" : "flat");
            ak_run_problem(c, &p, catches);
            ak_free(&p);
        }
        if (ck_selected(c, "attention", sel[2])) {
            ak_make_varlen(c, &p, st ? lens_st : q ? lens_q : lens_full, st || !q ? 4 : 1, HL, qm);
            ak_run_problem(c, &p, catches);
            ak_free(&p);
        }
        if (ck_selected(c, "attention", sel[3])) {
            ak_make_decode(c, &p, 2, 1024, HL, qm);
            ak_run_problem(c, &p, catches);
            ak_free(&p);
            ak_make_decode(c, &p, 1, st ? 300 : q ? 300 : 4096, HL, qm);
            ak_run_problem(c, &p, catches);
            ak_free(&p);
        }
    }
    if (st) {
        /* the planted-bug verdicts (lisa_check.c prints "planted bugs caught: N/N") */
        for (int b = 1; b < BUG_COUNT; b++) {
            if (!catches[b].applicable) continue; /* filtered out */
            ck_record(c, "planted_bug", bug_names[b], "-", catches[b].caught ? 0 : 1, NAN, 0, -1,
                      "caught in %d of %d shapes%s%s", catches[b].caught, catches[b].applicable,
                      catches[b].caught ? "; first: " : "", catches[b].first);
        }
        return; /* the launchers below need a GPU */
    }
    two_way(c, q ? 1 : 3);
    paged(c);
}
