/* TEMPORARY: ops not yet implemented on the CPU backend report LISA_ERR_UNSUPPORTED.
 * Each op moves out of this file into its family file (norm.c, linear.c, ...) when implemented;
 * the file is deleted when empty. */
#include "kernels/cpu/cpu.h"

#define TODO_OP(n, params)                                                                         \
    lisa_status lisa_cpu_##n(lisa_backend *be, LISA_UNPAREN params) { return lisa_op_unsupported(be, #n); }

#define LISA_OP(E, n, params, args) TODO_OP(n, params)
#include "kernels/ops.def"
#undef LISA_OP
