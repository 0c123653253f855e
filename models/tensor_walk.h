/* models/tensor_walk.h — what the walkers (models/<net>_tensors.c) share to expand a tensor table
 * (models/tensors.h): the row flag and slot spellings, and the visit of one row. Included by the
 * walkers only. */
#ifndef LISA_MODELS_TENSOR_WALK_H
#define LISA_MODELS_TENSOR_WALK_H

#include "models/tensors.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

/* Row spellings: flags and the slot of a tensor inference never reads. M(member) is defined by each
 * group's expansion (the member of that group's struct, NULL without a model). */
#define OPT LISA_TF_OPT
#define BUF LISA_TF_BUF
#define ANYDT LISA_TF_ANYDT
#define ACT LISA_TF_ACT
#define NONE NULL

#define LISA_TT_NAME_MAX 512

static inline lisa_status lisa_tt_visit(lisa_tensor_visit fn, void *ctx, const char *name, int32_t nd, int64_t d0,
                                        int64_t d1, int64_t d2, int64_t d3, lisa_dtype dt, uint32_t flags,
                                        lisa_mf_part part, lisa_tinit init, double arg, lisa_tp_split tp,
                                        lisa_tensor *slot) {
    lisa_tensor_spec s;
    memset(&s, 0, sizeof s);
    s.name = name;
    s.n_dims = nd;
    const int64_t d[4] = {d0, d1, d2, d3};
    for (int k = 0; k < LISA_MAX_DIMS; k++) s.shape[k] = k < nd ? d[k] : 1;
    s.dtype = dt;
    s.flags = flags;
    s.part = part;
    s.init = init;
    s.init_arg = arg;
    s.tp = tp;
    s.slot = slot;
    return fn(ctx, &s);
}

/* Formats a row's name into `buf` (names are short by construction: a truncated one is a bug). */
#define LISA_TT_FORMAT(buf, ...)                                                                        \
    do {                                                                                                \
        const int n_ = snprintf(buf, sizeof buf, __VA_ARGS__);                                          \
        LISA_ASSERT(n_ >= 0 && (size_t)n_ < sizeof buf);                                                \
    } while (0)

#endif
