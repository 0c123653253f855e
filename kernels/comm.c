/* kernels/comm.c — the "single" communicator (size 1) and lisa_comm_free. MPI: comm_mpi.c;
 * NCCL: comm_nccl.c. */
#include "kernels/comm.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static lisa_status single_all_reduce(lisa_comm *c, float *buf, size_t n) { return LISA_OK; }

static lisa_status single_all_gather(lisa_comm *c, void *recv, const void *send, size_t bytes) {
    if (bytes) memcpy(recv, send, bytes);
    return LISA_OK;
}

static lisa_status single_broadcast(lisa_comm *c, void *buf, size_t bytes, int32_t root) {
    LISA_ASSERT(root == 0);
    return LISA_OK;
}

static lisa_status single_barrier(lisa_comm *c) { return LISA_OK; }

static void single_destroy(lisa_comm *c) { free(c); }

lisa_status lisa_comm_single_create(lisa_comm **out) {
    *out = NULL;
    lisa_comm *c = calloc(1, sizeof *c);
    if (!c) return lisa_fail(LISA_ERR_OOM, "communicator: out of memory");
    c->name = "single";
    c->rank = 0;
    c->size = 1;
    c->all_reduce_sum_f32 = single_all_reduce;
    c->all_gather = single_all_gather;
    c->broadcast = single_broadcast;
    c->barrier = single_barrier;
    c->destroy = single_destroy;
    *out = c;
    return LISA_OK;
}

void lisa_comm_free(lisa_comm *c) {
    if (c) c->destroy(c);
}
