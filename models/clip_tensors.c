/* models/clip_tensors.c — the walker of models/clip_tensors.def (see models/tensors.h). */
#include "models/clip.h"
#include "models/tensor_walk.h"

#define CLIP_ROW(nm_fmt_args, slot, nd, a, b, c, e, dt, fl, init, arg)                                 \
    do {                                                                                                \
        LISA_TT_FORMAT nm_fmt_args;                                                                     \
        LISA_TRY(lisa_tt_visit(fn, ctx, name, nd, a, b, c, e, dt, (uint32_t)(fl), LISA_PART_CLIP, \
                               init, arg, LISA_TP_NONE, slot));                             \
    } while (0);

lisa_status lisa_clip_tensors(const lisa_clip_dims *d, lisa_clip *m, lisa_tensor_visit fn, void *ctx) {
    const int64_t E = d->hidden, I = d->intermediate, PATCH = d->patch;
    const int64_t NPOS = (d->image / d->patch) * (d->image / d->patch) + 1;
    char name[LISA_TT_NAME_MAX];
    {
#define M(x) (m ? &m->x : NULL)
#define LISA_CLIP_EMB(slot, nm, nd, a, b, c, e, dt, fl, init, arg) CLIP_ROW((name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/clip_tensors.def"
#undef M
    }
    for (int32_t i = 0; i < (int32_t)d->n_layers; i++) {
        lisa_clip_layer *L = m && i < m->cfg.n_run ? &m->layers[i] : NULL;
#define M(x) (L ? &L->x : NULL)
#define LISA_CLIP_LAYER(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                    \
    CLIP_ROW((name, nm, i), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/clip_tensors.def"
#undef M
    }
    {
#define M(x) (m ? &m->x : NULL)
#define LISA_CLIP_POST(slot, nm, nd, a, b, c, e, dt, fl, init, arg) CLIP_ROW((name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/clip_tensors.def"
#undef M
    }
    return LISA_OK;
}
