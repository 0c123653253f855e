/* kernels/profile.c — per-op time tables (kernels/profile.h). */
#include "kernels/profile.h"

#include "core/clock.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The entry of (op, shape), created on first use; -1 when the table is full. */
static int32_t entry_of(lisa_op_profile *p, const char *op, const char *shape) {
    for (int32_t i = 0; i < p->n_entries; i++)
        if (!strcmp(p->entries[i].op, op) && !strcmp(p->entries[i].shape, shape)) return i;
    if (p->n_entries == p->cap_entries) return -1;
    lisa_profile_entry *e = &p->entries[p->n_entries];
    memset(e, 0, sizeof *e);
    snprintf(e->op, sizeof e->op, "%s", op);
    snprintf(e->shape, sizeof e->shape, "%s", shape);
    return p->n_entries++;
}

/* Opens a timed region for an outermost op; returns its mark or -1 (nested, full, failed). */
static int32_t enter(lisa_op_profile *p, const char *op, const lisa_tensor *a, const lisa_tensor *b) {
    if (p->depth++ > 0) return -1;
    if (p->n_marks == p->cap_marks) {
        p->dropped++;
        return -1;
    }
    char shape[96] = "", sa[40], sb[40];
    if (a) snprintf(shape, sizeof shape, "%s", lisa_tensor_shape_str(a, sa, sizeof sa));
    if (b) {
        const size_t n = strlen(shape);
        snprintf(shape + n, sizeof shape - n, " <- %s", lisa_tensor_shape_str(b, sb, sizeof sb));
    }
    const int32_t e = entry_of(p, op, shape);
    if (e < 0) {
        p->dropped++;
        return -1;
    }
    const int32_t m = p->n_marks;
    lisa_backend *be = p->be;
    if (be->timer_mark) {
        if (be->timer_mark(be, 2 * m) != LISA_OK) {
            p->dropped++;
            return -1;
        }
    } else {
        p->marks[m].t0 = lisa_clock_ms();
    }
    p->marks[m].entry = e;
    p->n_marks++;
    return m;
}

static void leave(lisa_op_profile *p, int32_t m) {
    p->depth--;
    if (m < 0) return;
    lisa_backend *be = p->be;
    if (be->timer_mark) {
        if (be->timer_mark(be, 2 * m + 1) != LISA_OK) p->marks[m].entry = -1;
    } else {
        p->marks[m].t1 = lisa_clock_ms();
    }
}

/* The shape argument of a wrapper: tensors only (the first two arguments of every op). */
static const lisa_tensor *shape_arg_t(const lisa_tensor *t) { return t; }
static const lisa_tensor *shape_arg_none(const void *x) {
    (void)x;
    return NULL;
}
#define SHAPE_ARG(x)                                                                                \
    _Generic((x), lisa_tensor *: shape_arg_t, const lisa_tensor *: shape_arg_t, default: shape_arg_none)(x)
#define FIRST_(a, ...) a
#define SECOND_(a, b, ...) b
#define FIRST(args) FIRST_ args
#define SECOND(args) SECOND_ args

/* One wrapper per op of kernels/ops.def: mark, call the backend's own op, mark. */
#define LISA_OP(E, n, params, args)                                                                \
    static lisa_status prof_##n(lisa_backend *be, LISA_UNPAREN params) {                           \
        lisa_op_profile *prof_p_ = be->profile; /* names unlike any op parameter's */              \
        const int32_t prof_m_ = enter(prof_p_, #n, SHAPE_ARG(FIRST(args)), SHAPE_ARG(SECOND(args))); \
        lisa_status prof_s_ = prof_p_->inner->n(be, LISA_UNPAREN args);                            \
        leave(prof_p_, prof_m_);                                                                   \
        return prof_s_;                                                                            \
    }
#include "kernels/ops.def"
#undef LISA_OP

static const lisa_ops prof_ops = {
#define LISA_OP(E, n, params, args) .n = prof_##n,
#include "kernels/ops.def"
#undef LISA_OP
};

static lisa_status prof_upload(lisa_backend *be, void *dst, const void *src, size_t bytes) {
    lisa_op_profile *p = be->profile;
    const int32_t m = enter(p, "upload", NULL, NULL);
    lisa_status s = p->inner_upload(be, dst, src, bytes);
    leave(p, m);
    return s;
}

static lisa_status prof_download(lisa_backend *be, void *dst, const void *src, size_t bytes) {
    lisa_op_profile *p = be->profile;
    const int32_t m = enter(p, "download", NULL, NULL);
    lisa_status s = p->inner_download(be, dst, src, bytes);
    leave(p, m);
    return s;
}

lisa_status lisa_profile_begin(lisa_backend *be, lisa_op_profile *p, int32_t max_ops) {
    memset(p, 0, sizeof *p);
    if (be->profile) return lisa_fail(LISA_ERR_INVALID_ARG, "profile: backend %s is already being profiled", be->name);
    if (max_ops < 1) return lisa_fail(LISA_ERR_INVALID_ARG, "profile: max_ops %d", max_ops);
    p->be = be;
    p->cap_marks = max_ops;
    p->cap_entries = 512;
    p->marks = calloc((size_t)max_ops, sizeof *p->marks);
    p->entries = calloc((size_t)p->cap_entries, sizeof *p->entries);
    if (!p->marks || !p->entries) {
        lisa_profile_free(p);
        return lisa_fail(LISA_ERR_OOM, "profile: %d marks", max_ops);
    }
    if (be->timer_reserve) {
        lisa_status s = be->timer_reserve(be, 2 * max_ops);
        if (s != LISA_OK) {
            lisa_profile_free(p);
            return s;
        }
    }
    if (be->synchronize) LISA_TRY(be->synchronize(be)); /* earlier work is not ours */
    p->inner = be->ops;
    p->inner_upload = be->upload;
    p->inner_download = be->download;
    be->profile = p;
    be->ops = &prof_ops;
    be->upload = prof_upload;
    be->download = prof_download;
    p->active = true;
    p->t_begin = lisa_clock_ms();
    return LISA_OK;
}

static int cmp_entry(const void *a, const void *b) {
    const double x = ((const lisa_profile_entry *)a)->ms, y = ((const lisa_profile_entry *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

lisa_status lisa_profile_end(lisa_op_profile *p) {
    if (!p->active) return lisa_fail(LISA_ERR_INVALID_ARG, "profile: not profiling");
    lisa_backend *be = p->be;
    be->ops = p->inner;
    be->upload = p->inner_upload;
    be->download = p->inner_download;
    be->profile = NULL;
    p->active = false;
    lisa_status s = be->synchronize ? be->synchronize(be) : LISA_OK;
    p->wall_ms = lisa_clock_ms() - p->t_begin;
    if (s != LISA_OK) return s;
    for (int32_t m = 0; m < p->n_marks; m++) {
        const lisa_profile_mark *k = &p->marks[m];
        if (k->entry < 0) continue;
        float ms = 0;
        if (be->timer_elapsed) {
            LISA_TRY(be->timer_elapsed(be, 2 * m, 2 * m + 1, &ms));
        } else {
            ms = (float)(k->t1 - k->t0);
        }
        p->entries[k->entry].calls++;
        p->entries[k->entry].ms += ms;
        p->total_ms += ms;
    }
    qsort(p->entries, (size_t)p->n_entries, sizeof *p->entries, cmp_entry);
    return LISA_OK;
}

void lisa_profile_print(const lisa_op_profile *p, FILE *f, int32_t top, const char *title) {
    fprintf(f, "%s: %d ops timed (%d distinct, %d not timed), %.3f ms of op time in %.3f ms wall\n", title, p->n_marks,
            p->n_entries, p->dropped, p->total_ms, p->wall_ms);
    fprintf(f, "  %-22s %-58s %6s %10s %6s\n", "op", "shape (output <- first input)", "calls", "ms", "%");
    for (int32_t i = 0; i < p->n_entries && i < top; i++) {
        const lisa_profile_entry *e = &p->entries[i];
        fprintf(f, "  %-22s %-58s %6lld %10.3f %5.1f%%\n", e->op, e->shape, (long long)e->calls, e->ms,
                p->total_ms > 0 ? 100.0 * e->ms / p->total_ms : 0.0);
    }
}

static void json_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void lisa_profile_json(const lisa_op_profile *p, FILE *f, int32_t top) {
    fprintf(f, "{\"total_ms\": %.4f, \"wall_ms\": %.4f, \"ops_timed\": %d, \"ops\": [", p->total_ms, p->wall_ms, p->n_marks);
    for (int32_t i = 0; i < p->n_entries && i < top; i++) {
        const lisa_profile_entry *e = &p->entries[i];
        fprintf(f, "%s{\"op\": ", i ? ", " : "");
        json_text(f, e->op);
        fprintf(f, ", \"shape\": ");
        json_text(f, e->shape);
        fprintf(f, ", \"calls\": %lld, \"ms\": %.4f, \"pct\": %.2f}", (long long)e->calls, e->ms,
                p->total_ms > 0 ? 100.0 * e->ms / p->total_ms : 0.0);
    }
    fprintf(f, "]}");
}

void lisa_profile_free(lisa_op_profile *p) {
    if (p->active) lisa_profile_end(p);
    free(p->marks);
    free(p->entries);
    memset(p, 0, sizeof *p);
}
