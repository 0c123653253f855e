/* kernels/backend.c — picking and creating a backend by kind (kernels/ops.h lisa_backend_create).
 * The one place above kernels/cuda that knows whether this build has CUDA. */
#include "kernels/ops.h"

#include "lisa.h"
#ifdef LISA_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

lisa_status lisa_backend_create(lisa_backend **out, int32_t kind, int32_t device, int32_t n_threads) {
    *out = NULL;
    if (kind != LISA_BACKEND_AUTO && kind != LISA_BACKEND_CPU && kind != LISA_BACKEND_CUDA)
        return lisa_fail(LISA_ERR_INVALID_ARG, "backend: unknown kind %d (0 auto, 1 cpu, 2 cuda)", kind);
    if (kind == LISA_BACKEND_CUDA || kind == LISA_BACKEND_AUTO) {
#ifdef LISA_HAVE_CUDA
        lisa_status s = lisa_backend_cuda_create(out, device, 0);
        if (s == LISA_OK || kind == LISA_BACKEND_CUDA) return s;
        lisa_clear_error(); /* AUTO falls back to the CPU */
#else
        if (kind == LISA_BACKEND_CUDA)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "this build has no CUDA backend (configure with -DLISA_CUDA=ON)");
#endif
    }
    return lisa_backend_cpu_create(out, 0, n_threads);
}

lisa_status lisa_backend_fork(const lisa_backend *be, lisa_backend **out) {
    *out = NULL;
    if (!be->fork) return lisa_fail(LISA_ERR_UNSUPPORTED, "%s backend: cannot make another execution context", be->name);
    return be->fork(be, out);
}
