/* tests/gpu/check_util.c — see check_util.h. The RNG and fill helpers repeat tests/common/testutil.c
 * (same splitmix64) because testutil.c includes Criterion, which lisa-check must build without. */
#include "check_util.h"

#include "core/error.h"
#include "core/half.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

uint64_t ck_next(ck_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double ck_uniform(ck_rng *r, double lo, double hi) {
    return lo + (hi - lo) * ((double)(ck_next(r) >> 11) * (1.0 / 9007199254740992.0));
}

static void die(const char *what) {
    fprintf(stderr, "lisa-check: %s: %s\n", what, lisa_last_error());
    exit(2);
}

lisa_tensor ck_host(lisa_dtype dt, int32_t n_dims, const int64_t *shape) {
    lisa_tensor t;
    if (lisa_tensor_alloc(&t, dt, n_dims, shape) != LISA_OK) die("host alloc");
    return t;
}

static bool next_index(const lisa_tensor *t, int64_t *idx) {
    for (int d = t->n_dims - 1; d >= 0; d--) {
        if (++idx[d] < t->shape[d]) return true;
        idx[d] = 0;
    }
    return false;
}

void ck_fill(ck_ctx *c, lisa_tensor *t, double lo, double hi, bool integer) {
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(t) == 0) return;
    do {
        double v = ck_uniform(&c->rng, lo, hi);
        lisa_tensor_set(t, idx, integer ? floor(v) : v);
    } while (next_index(t, idx));
}

lisa_tensor ck_round_copy(const lisa_tensor *t, lisa_dtype dt) {
    lisa_tensor r = ck_host(LISA_DTYPE_F32, t->n_dims, t->shape);
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(t) == 0) return r;
    do {
        float v = (float)lisa_tensor_get(t, idx);
        if (dt == LISA_DTYPE_BF16) v = lisa_bf16_to_f32(lisa_f32_to_bf16(v));
        if (dt == LISA_DTYPE_F16) v = lisa_f16_to_f32(lisa_f32_to_f16(v));
        lisa_tensor_set(&r, idx, v);
    } while (next_index(t, idx));
    return r;
}

static void *dev_alloc(ck_ctx *c, size_t bytes) {
    void *p = NULL;
    if (c->n_dev >= CK_MAX_DEV) {
        fprintf(stderr, "lisa-check: too many device buffers in one case\n");
        exit(2);
    }
    if (c->gpu->mem_alloc(c->gpu, bytes ? bytes : 16, &p) != LISA_OK) die("device alloc");
    c->dev[c->n_dev++] = p;
    return p;
}

void ck_free_case(ck_ctx *c) {
    if (c->gpu) c->gpu->synchronize(c->gpu);
    for (int i = 0; i < c->n_dev; i++) c->gpu->mem_free(c->gpu, c->dev[i]);
    c->n_dev = 0;
}

static bool is_int(lisa_dtype dt) { return dt == LISA_DTYPE_I32 || dt == LISA_DTYPE_I64; }

lisa_tensor ck_dev_from(ck_ctx *c, const lisa_tensor *h, lisa_dtype dt, bool strided) {
    if (is_int(h->dtype)) dt = h->dtype;
    const int n = h->n_dims;
    const int64_t C = n ? h->shape[n - 1] : 1;
    strided = strided && n >= 2;
    const int64_t rs = strided ? C + 8 : C, rows = C ? lisa_tensor_numel(h) / C : 0;
    const size_t es = lisa_dtype_size(dt), span = (size_t)(rows * rs + (n ? 0 : 1));
    unsigned char *stage = malloc(span * es + 16);
    memset(stage, 0xFF, span * es + 16);
    /* host view with the device layout over the staging buffer */
    lisa_tensor v = *h;
    v.data = stage, v.dtype = dt, v.owner = false;
    if (strided) {
        v.stride[n - 1] = 1;
        v.stride[n - 2] = rs;
        for (int d = n - 3; d >= 0; d--) v.stride[d] = v.stride[d + 1] * v.shape[d + 1];
    }
    int64_t idx[4] = {0, 0, 0, 0};
    if (lisa_tensor_numel(h) > 0) do {
            lisa_tensor_set(&v, idx, lisa_tensor_get(h, idx));
        } while (next_index(h, idx));
    void *d = dev_alloc(c, span * es);
    if (c->gpu->upload(c->gpu, d, stage, span * es) != LISA_OK) die("upload");
    free(stage);
    v.data = d;
    v.device = c->gpu->device;
    v.device_id = c->gpu->device_id;
    return v;
}

lisa_tensor ck_dev_poison(ck_ctx *c, lisa_dtype dt, int32_t n_dims, const int64_t *shape) {
    lisa_tensor v = lisa_tensor_view(NULL, dt, n_dims, shape);
    size_t bytes = lisa_tensor_nbytes(&v);
    unsigned char *stage = malloc(bytes + 16);
    memset(stage, 0xFF, bytes + 16);
    v.data = dev_alloc(c, bytes);
    if (bytes && c->gpu->upload(c->gpu, v.data, stage, bytes) != LISA_OK) die("upload");
    free(stage);
    v.device = c->gpu->device;
    v.device_id = c->gpu->device_id;
    return v;
}

lisa_tensor ck_download(ck_ctx *c, const lisa_tensor *d) {
    int64_t span = 1;
    for (int i = 0; i < d->n_dims; i++) span += (d->shape[i] - 1) * d->stride[i];
    if (lisa_tensor_numel(d) == 0) span = 0;
    const size_t es = lisa_dtype_size(d->dtype);
    unsigned char *stage = malloc((size_t)span * es + 16);
    if (span && c->gpu->download(c->gpu, stage, d->data, (size_t)span * es) != LISA_OK) die("download");
    lisa_tensor v = *d;
    v.data = stage, v.device = LISA_DEVICE_CPU, v.owner = false;
    lisa_tensor out = ck_host(is_int(d->dtype) ? d->dtype : LISA_DTYPE_F32, d->n_dims, d->shape);
    int64_t idx[4] = {0, 0, 0, 0};
    if (span) do {
            lisa_tensor_set(&out, idx, lisa_tensor_get(&v, idx));
        } while (next_index(&out, idx));
    free(stage);
    return out;
}

/* Appends one record to the section's record file (see ck_ctx.rec_out). */
static void rec_write(FILE *f, const char *op, const char *name, const char *dtype, int status, double err, double tol,
                      double naive, const char *note) {
    ck_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.op, sizeof r.op, "%s", op);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.dtype, sizeof r.dtype, "%s", dtype);
    r.status = status, r.max_abs_err = err, r.tol_err = tol, r.naive_err = naive;
    snprintf(r.note, sizeof r.note, "%s", note);
    if (fwrite(&r, sizeof r, 1, f) != 1 || fflush(f) != 0) fprintf(stderr, "lisa-check: cannot write the record file\n");
}

bool ck_selected(const ck_ctx *c, const char *op, const char *name) {
    const bool sel = !c->filter || !*c->filter || strstr(op, c->filter) || strstr(name, c->filter);
    if (sel && c->rec_out) rec_write(c->rec_out, op, name, "-", 3, 0, 0, -1, ""); /* "case started" */
    return sel;
}

void ck_record(ck_ctx *c, const char *op, const char *name, const char *dtype, int status, double err, double tol,
               double naive, const char *fmt, ...) {
    ck_result *r = c->n_results < CK_MAX_RESULTS ? &c->results[c->n_results++] : NULL;
    char note[200] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(note, sizeof note, fmt, ap);
        va_end(ap);
    }
    if (status == 0) c->passed++;
    if (status == 1) c->failures++;
    if (status == 2) c->skipped++;
    static const char *tag[3] = {"PASS", "FAIL", "SKIP"};
    char errs[96] = "";
    if (status != 2) {
        if (naive >= 0)
            snprintf(errs, sizeof errs, "max|err| %.2e (tol %.1e, naive bf16 %.2e)", err, tol, naive);
        else
            snprintf(errs, sizeof errs, "max|err| %.2e (tol %.1e)", err, tol);
    }
    printf("%s  %-22s %-40s %-5s %s%s%s\n", tag[status], op, name, dtype, errs, *note ? "  " : "", note);
    fflush(stdout);
    if (r) {
        snprintf(r->op, sizeof r->op, "%s", op);
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->dtype, sizeof r->dtype, "%s", dtype);
        r->status = status, r->max_abs_err = err, r->tol_err = tol, r->naive_err = naive;
        snprintf(r->note, sizeof r->note, "%s", note);
    }
    if (c->rec_out) rec_write(c->rec_out, op, name, dtype, status, err, tol, naive, note);
    if (c->on_record) c->on_record(c);
    if (status == 1 && c->stop_first) {
        printf("lisa-check: stopping at the first failure (--stop-first)\n");
        fflush(stdout);
        exit(1);
    }
}

static bool next_index2(const lisa_tensor *t, int64_t *idx) { return next_index(t, idx); }

bool ck_compare(ck_ctx *c, const char *op, const char *name, const char *dtype, const lisa_tensor *got,
                const lisa_tensor *ref, double atol, double rtol, const lisa_tensor *ref32, const lisa_tensor *naive) {
    const int64_t n = lisa_tensor_numel(ref);
    if (!lisa_tensor_same_shape(got, ref) || (ref32 && !lisa_tensor_same_shape(ref32, ref)) ||
        (naive && !lisa_tensor_same_shape(naive, ref))) {
        ck_record(c, op, name, dtype, 1, NAN, 0, -1, "shape mismatch");
        return false;
    }
    int64_t bad = 0, first[5] = {0, 0, 0, 0, 0};
    double max_err = 0, max_ref = 0, err32 = 0, naive_err = 0, max_ref32 = 0;
    int64_t idx[4] = {0, 0, 0, 0};
    int64_t i = 0;
    if (n) do {
            double g = lisa_tensor_get(got, idx), r = lisa_tensor_get(ref, idx), e = fabs(g - r);
            bool ok = isfinite(r) ? (isfinite(g) && e <= atol + rtol * fabs(r)) : (isnan(r) ? isnan(g) : g == r);
            if (!ok && !isfinite(e)) e = INFINITY;
            if (isfinite(r) && fabs(r) > max_ref) max_ref = fabs(r);
            if (e > max_err && (isfinite(r) || !ok)) max_err = e;
            if (!ok) {
                if (bad < 5) first[bad] = i;
                bad++;
            }
            if (ref32 && naive) {
                double r32 = lisa_tensor_get(ref32, idx), nv = lisa_tensor_get(naive, idx);
                if (isfinite(r32)) {
                    if (fabs(r32) > max_ref32) max_ref32 = fabs(r32);
                    double e32 = isfinite(g) ? fabs(g - r32) : INFINITY;
                    if (e32 > err32) err32 = e32;
                    if (fabs(nv - r32) > naive_err) naive_err = fabs(nv - r32);
                }
            }
            i++;
        } while (next_index2(ref, idx));
    if (bad) {
        for (int k = 0; k < 5 && k < bad; k++) {
            int64_t id[4] = {0, 0, 0, 0}, rem = first[k];
            for (int d = ref->n_dims - 1; d >= 0; d--) {
                id[d] = rem % ref->shape[d];
                rem /= ref->shape[d];
            }
            fprintf(stderr, "    %s %s %s: mismatch at [%lld,%lld,%lld,%lld]: got %.8g ref %.8g\n", op, name, dtype,
                    (long long)id[0], (long long)id[1], (long long)id[2], (long long)id[3], lisa_tensor_get(got, id),
                    lisa_tensor_get(ref, id));
        }
        ck_record(c, op, name, dtype, 1, max_err, atol + rtol * max_ref, naive ? naive_err : -1,
                  "%lld of %lld elements out of tolerance (atol %.1e rtol %.1e)", (long long)bad, (long long)n, atol, rtol);
        return false;
    }
    if (ref32 && naive) {
        const double floor_ = 1e-6 * (max_ref32 > 1 ? max_ref32 : 1);
        if (err32 > 2 * naive_err + floor_) {
            ck_record(c, op, name, dtype, 1, max_err, atol + rtol * max_ref, naive_err,
                      "vs fp32: max|err| %.2e above 2x the naive bf16 version's %.2e (docs/style.md §2)", err32, naive_err);
            return false;
        }
        ck_record(c, op, name, dtype, 0, max_err, atol + rtol * max_ref, naive_err, "vs fp32 %.2e", err32);
        return true;
    }
    ck_record(c, op, name, dtype, 0, max_err, atol + rtol * max_ref, -1, NULL);
    return true;
}

/* ---- generic runner --------------------------------------------------------------------------- */

static lisa_status cpu_call(ck_ctx *c, const ck_case *cs, lisa_tensor *ins, lisa_tensor *outs) {
    for (int o = 0; o < cs->n_out; o++) {
        outs[o] = ck_host(cs->out_int ? LISA_DTYPE_I32 : LISA_DTYPE_F32, cs->out[o].n_dims, cs->out[o].shape);
        memset(outs[o].data, 0xFF, lisa_tensor_nbytes(&outs[o]));
    }
    lisa_status s = cs->call(c->cpu, outs, ins, cs->arg);
    if (s != LISA_OK)
        for (int o = 0; o < cs->n_out; o++) lisa_tensor_free(&outs[o]);
    return s;
}

void ck_run_case(ck_ctx *c, const ck_case *cs) {
    if (!ck_selected(c, cs->op, cs->label)) return;
    lisa_tensor host[CK_MAX_IN], ref[CK_MAX_OUT], dev_in[CK_MAX_IN], dev_out[CK_MAX_OUT];
    for (int i = 0; i < cs->n_in; i++) {
        const ck_tspec *t = &cs->in[i];
        lisa_dtype dt = t->kind == CK_INT32 ? LISA_DTYPE_I32 : t->kind == CK_INT64 ? LISA_DTYPE_I64 : LISA_DTYPE_F32;
        host[i] = ck_host(dt, t->n_dims, t->shape);
        ck_fill(c, &host[i], t->lo, t->hi, t->kind == CK_INT32 || t->kind == CK_INT64);
    }
    lisa_clear_error();
    lisa_status s = cpu_call(c, cs, host, ref);
    if (s != LISA_OK) {
        ck_record(c, cs->op, cs->label, "-", 2, 0, 0, -1, "cpu reference: %s %s", lisa_status_name(s), lisa_last_error());
        for (int i = 0; i < cs->n_in; i++) lisa_tensor_free(&host[i]);
        return;
    }
    const lisa_dtype runs[2] = {LISA_DTYPE_F32, LISA_DTYPE_BF16};
    /* self-test: the CPU backend takes F32 contiguous activations, out of place */
    const bool strided0 = cs->strided_in0 && !c->self_test, inplace = cs->inplace && !c->self_test;
    for (int ri = cs->no_f32 && !c->self_test ? 1 : 0; ri < (cs->no_bf16 || c->self_test ? 1 : 2); ri++) {
        const lisa_dtype dt = runs[ri];
        const char *dname = lisa_dtype_name(dt);
        for (int i = 0; i < cs->n_in; i++) {
            lisa_dtype idt = cs->in[i].kind == CK_PARAM_F32 ? LISA_DTYPE_F32 : dt;
            dev_in[i] = ck_dev_from(c, &host[i], idt, i == 0 && strided0);
        }
        for (int o = 0; o < cs->n_out; o++)
            dev_out[o] = o == 0 && inplace ? dev_in[0]
                                               : ck_dev_poison(c, cs->out_int ? LISA_DTYPE_I32 : dt, cs->out[o].n_dims,
                                                               cs->out[o].shape);
        lisa_clear_error();
        s = cs->call(c->gpu, dev_out, dev_in, cs->arg);
        if (s == LISA_OK) s = c->gpu->synchronize(c->gpu);
        if (s != LISA_OK) {
            ck_record(c, cs->op, cs->label, dname, 1, NAN, 0, -1, "cuda: %s %s", lisa_status_name(s), lisa_last_error());
            ck_free_case(c);
            continue;
        }
        /* bf16: ref16 = CPU op on the bf16-rounded inputs; naive = ref16 stored in bf16 */
        lisa_tensor ref16[CK_MAX_OUT], naive[CK_MAX_OUT];
        bool have16 = dt != LISA_DTYPE_F32 && !cs->out_int;
        if (have16) {
            lisa_tensor rin[CK_MAX_IN];
            for (int i = 0; i < cs->n_in; i++) {
                bool conv = cs->in[i].kind == CK_ACT || cs->in[i].kind == CK_PARAM;
                rin[i] = conv ? ck_round_copy(&host[i], dt) : host[i];
            }
            s = cpu_call(c, cs, rin, ref16);
            for (int i = 0; i < cs->n_in; i++)
                if (cs->in[i].kind == CK_ACT || cs->in[i].kind == CK_PARAM) lisa_tensor_free(&rin[i]);
            if (s != LISA_OK) {
                ck_record(c, cs->op, cs->label, dname, 2, 0, 0, -1, "cpu reference on bf16 inputs: %s",
                          lisa_last_error());
                ck_free_case(c);
                continue;
            }
            for (int o = 0; o < cs->n_out; o++) naive[o] = ck_round_copy(&ref16[o], dt);
        }
        for (int o = 0; o < cs->n_out; o++) {
            lisa_tensor got = ck_download(c, &dev_out[o]);
            char name[112];
            static const char *const out_names[CK_MAX_OUT] = {" out0", " out1", " out2"};
            snprintf(name, sizeof name, "%s%s%s%s", cs->label, cs->n_out > 1 ? out_names[o] : "",
                     strided0 ? " strided" : "", inplace ? " in-place" : "");
            if (cs->out_int)
                ck_compare(c, cs->op, name, dname, &got, &ref[o], 0, 0, NULL, NULL);
            else if (!have16)
                ck_compare(c, cs->op, name, dname, &got, &ref[o], cs->atol32, cs->rtol32, NULL, NULL);
            else
                ck_compare(c, cs->op, name, dname, &got, &ref16[o], cs->atol16, cs->rtol16, &ref[o], &naive[o]);
            lisa_tensor_free(&got);
            if (have16) {
                lisa_tensor_free(&ref16[o]);
                lisa_tensor_free(&naive[o]);
            }
        }
        ck_free_case(c);
    }
    for (int o = 0; o < cs->n_out; o++) lisa_tensor_free(&ref[o]);
    for (int i = 0; i < cs->n_in; i++) lisa_tensor_free(&host[i]);
}
