/* models/llama_tensors.c — the walker of models/llama_tensors.def (see models/tensors.h). */
#include "models/llama.h"
#include "models/tensor_walk.h"

#define LLAMA_ROW(nm_fmt_args, slot, nd, a, b, c, e, dt, fl, init, arg, tp)                             \
    do {                                                                                                \
        LISA_TT_FORMAT nm_fmt_args;                                                                     \
        LISA_TRY(lisa_tt_visit(fn, ctx, name, nd, a, b, c, e, dt, (uint32_t)(fl), LISA_PART_LLM, \
                               init, arg, tp, slot));                             \
    } while (0);

#define LLAMA_DIMS                                                                                      \
    const int64_t C = d->hidden, V = d->vocab;                                                          \
    char name[LISA_TT_NAME_MAX]

lisa_status lisa_llama_tensors_body(const lisa_llm_dims *d, lisa_llama *m, lisa_tensor_visit fn, void *ctx) {
    LLAMA_DIMS;
    const int64_t I = d->intermediate, HD = d->head_dim, Q = d->n_heads * HD, KV = d->n_kv_heads * HD;
    {
#define M(x) (m ? &m->x : NULL)
#define LISA_LLAMA_EMBED(slot, nm, nd, a, b, c, e, dt, fl, init, arg, tp)                               \
    LLAMA_ROW((name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg, LISA_TP_##tp)
#include "models/llama_tensors.def"
#undef M
    }
    for (int32_t i = 0; i < (int32_t)d->n_layers; i++) {
        lisa_llama_layer *L = m ? &m->layers[i] : NULL;
#define M(x) (L ? &L->x : NULL)
#define LISA_LLAMA_LAYER(slot, nm, nd, a, b, c, e, dt, fl, init, arg, tp)                               \
    LLAMA_ROW((name, nm, i), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg, LISA_TP_##tp)
#include "models/llama_tensors.def"
#undef M
    }
    {
#define M(x) (m ? &m->x : NULL)
#define LISA_LLAMA_NORM(slot, nm, nd, a, b, c, e, dt, fl, init, arg, tp)                                \
    LLAMA_ROW((name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg, LISA_TP_##tp)
#include "models/llama_tensors.def"
#undef M
    }
    return LISA_OK;
}

lisa_status lisa_llama_tensors_head(const lisa_llm_dims *d, lisa_llama *m, lisa_tensor_visit fn, void *ctx) {
    LLAMA_DIMS;
#define M(x) (m ? &m->x : NULL)
#define LISA_LLAMA_HEAD(slot, nm, nd, a, b, c, e, dt, fl, init, arg, tp)                                \
    LLAMA_ROW((name, nm), slot, nd, a, b, c, e, LISA_DTYPE_##dt, fl, LISA_INIT_##init, arg, LISA_TP_##tp)
#include "models/llama_tensors.def"
#undef M
    return LISA_OK;
}
