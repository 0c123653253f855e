/* models/lisa_tensors.c — the walker of models/lisa_tensors.def and of a whole LISA checkpoint
 * (see models/tensors.h). */
#include "models/lisa_model.h"
#include "models/tensor_walk.h"

#define GLUE_ROW(part, nm_fmt_args, slot, nd, a, b, c, e, dt, fl, init, arg)                            \
    do {                                                                                                \
        LISA_TT_FORMAT nm_fmt_args;                                                                     \
        LISA_TRY(lisa_tt_visit(fn, ctx, name, nd, a, b, c, e, dt, (uint32_t)(fl), part, init, arg, LISA_TP_NONE, slot)); \
    } while (0);

/* lisa_model holds two projector Linears (linear, or mlp2x_gelu: the ones LISA's configs use) */
#define MAX_PROJ ((int32_t)(sizeof((struct lisa_model *)0)->proj_w / sizeof(lisa_tensor)))

lisa_status lisa_glue_tensors_projector(const lisa_llm_dims *d, lisa_model *m, lisa_tensor_visit fn, void *ctx) {
    const int64_t C = d->hidden, MM = d->mm_hidden;
    char name[LISA_TT_NAME_MAX];
    if (d->projector_layers == 1) {
#define M(x) (m ? &m->x : NULL)
#define LISA_GLUE_PROJ(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                     \
    GLUE_ROW(LISA_PART_PROJECTOR, (name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/lisa_tensors.def"
#undef M
    } else {
        for (int32_t i = 0; i < d->projector_layers; i++) {
            const int64_t IN = i == 0 ? MM : C;
            lisa_model *pm = i < MAX_PROJ ? m : NULL;
#define M(x) (pm ? &pm->x : NULL)
#define LISA_GLUE_PROJ_MLP(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                 \
    GLUE_ROW(LISA_PART_PROJECTOR, (name, nm, 2 * i), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/lisa_tensors.def"
#undef M
        }
    }
    return LISA_OK;
}

lisa_status lisa_glue_tensors_fcs(const lisa_llm_dims *d, lisa_model *m, lisa_tensor_visit fn, void *ctx) {
    const int64_t C = d->hidden, OD = d->out_dim;
    char name[LISA_TT_NAME_MAX];
#define M(x) (m ? &m->x : NULL)
#define LISA_GLUE_FCS(slot, nm, nd, a, b, c, e, dt, fl, init, arg)                                      \
    GLUE_ROW(LISA_PART_FCS, (name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg)
#include "models/lisa_tensors.def"
#undef M
    return LISA_OK;
}

lisa_status lisa_lisa_tensors(const lisa_llm_dims *llm, const lisa_sam_dims *sam, lisa_tensor_visit fn, void *ctx) {
    LISA_TRY(lisa_llama_tensors_body(llm, NULL, fn, ctx));
    LISA_TRY(lisa_glue_tensors_projector(llm, NULL, fn, ctx));
    LISA_TRY(lisa_sam_tensors(sam, "model.visual_model.", NULL, fn, ctx));
    LISA_TRY(lisa_glue_tensors_fcs(llm, NULL, fn, ctx));
    return lisa_llama_tensors_head(llm, NULL, fn, ctx);
}
