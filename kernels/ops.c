/* kernels/ops.c — op names and backend-generic helpers. */
#include "kernels/ops.h"

#include <stddef.h>

static const char *const op_names[LISA_OP_COUNT] = {
#define LISA_OP(E, n, params, args) [LISA_OP_##E] = #n,
#include "kernels/ops.def"
#undef LISA_OP
};

const char *lisa_op_name(lisa_op op) { return (unsigned)op < LISA_OP_COUNT ? op_names[op] : "?"; }

bool lisa_backend_supports(const lisa_backend *be, lisa_op op) {
    switch (op) {
#define LISA_OP(E, n, params, args)                                                                \
    case LISA_OP_##E: return be->ops->n != NULL;
#include "kernels/ops.def"
#undef LISA_OP
    default: return false;
    }
}

_Static_assert(LISA_OP_COUNT <= 64, "lisa_backend.composed_ops holds one bit per op");

bool lisa_backend_fuses(const lisa_backend *be, lisa_op op) {
    return lisa_op_is_fused(op) && lisa_backend_supports(be, op) && !((be->composed_ops >> (unsigned)op) & 1u);
}

uint64_t lisa_fused_ops_mask(void) {
    uint64_t m = 0;
    for (int op = LISA_OP_FIRST_FUSED; op < LISA_OP_COUNT; op++) m |= (uint64_t)1 << (unsigned)op;
    return m;
}

lisa_status lisa_op_unsupported(const lisa_backend *be, const char *op) {
    return lisa_fail(LISA_ERR_UNSUPPORTED, "op '%s' is not implemented by the %s backend", op, be->name);
}

void lisa_backend_free(lisa_backend *be) {
    if (be && be->destroy) be->destroy(be);
}
