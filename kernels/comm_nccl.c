/* kernels/comm_nccl.c — the NCCL communicator over device buffers (kernels/comm.h).
 *
 * Compiled only when CMake finds CUDA and NCCL (LISA_HAVE_NCCL); otherwise the entry points return
 * LISA_ERR_UNSUPPORTED. The CI machines have no GPU: this file is compile-only there.
 *
 * Streams (docs/style.md §13): collectives run on the communicator's own stream. Before each one an
 * event recorded on the compute stream is waited for (the inputs are ready); after it an event
 * recorded on the communicator's stream is waited for by the compute stream (later kernels see the
 * result). The host never blocks, except in barrier().
 */
#include "kernels/comm.h"

#include "core/error.h"

#ifdef LISA_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_CHECK(x)                                                                                                  \
    do {                                                                                                               \
        cudaError_t e_ = (x);                                                                                          \
        if (e_ != cudaSuccess)                                                                                         \
            return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #x, cudaGetErrorString(e_));                   \
    } while (0)
#define NCCL_CHECK(x)                                                                                                  \
    do {                                                                                                               \
        ncclResult_t r_ = (x);                                                                                         \
        if (r_ != ncclSuccess)                                                                                         \
            return lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, #x, ncclGetErrorString(r_));                   \
    } while (0)

typedef struct nccl_impl {
    ncclComm_t comm; /* owned */
    int device;
    cudaStream_t compute;    /* borrowed: the model's stream (NULL = legacy default stream) */
    cudaStream_t stream;     /* owned: collectives run here */
    cudaEvent_t ready, done; /* owned: compute -> comm, comm -> compute */
} nccl_impl;

/* the compute stream's work so far happens before the collective */
static lisa_status enter(nccl_impl *m) {
    CUDA_CHECK(cudaSetDevice(m->device));
    CUDA_CHECK(cudaEventRecord(m->ready, m->compute));
    CUDA_CHECK(cudaStreamWaitEvent(m->stream, m->ready, 0));
    return LISA_OK;
}

/* ... and the compute stream's later work happens after it */
static lisa_status leave(nccl_impl *m) {
    CUDA_CHECK(cudaEventRecord(m->done, m->stream));
    CUDA_CHECK(cudaStreamWaitEvent(m->compute, m->done, 0));
    return LISA_OK;
}

static lisa_status nccl_all_reduce(lisa_comm *c, float *buf, size_t n) {
    nccl_impl *m = c->impl;
    if (c->size == 1 || n == 0) return LISA_OK;
    LISA_TRY(enter(m));
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, m->comm, m->stream));
    return leave(m);
}

static lisa_status nccl_all_gather(lisa_comm *c, void *recv, const void *send, size_t bytes) {
    nccl_impl *m = c->impl;
    LISA_TRY(enter(m));
    NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, m->comm, m->stream));
    return leave(m);
}

static lisa_status nccl_broadcast(lisa_comm *c, void *buf, size_t bytes, int32_t root) {
    nccl_impl *m = c->impl;
    LISA_TRY(enter(m));
    NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, (int)root, m->comm, m->stream));
    return leave(m);
}

/* NCCL has no barrier: a one-element all-reduce on the communicator's stream, waited for. */
static lisa_status nccl_barrier(lisa_comm *c) {
    nccl_impl *m = c->impl;
    float *d = NULL;
    CUDA_CHECK(cudaSetDevice(m->device));
    CUDA_CHECK(cudaMalloc((void **)&d, sizeof(float)));
    lisa_status s = enter(m);
    if (s == LISA_OK) {
        ncclResult_t r = ncclAllReduce(d, d, 1, ncclFloat32, ncclSum, m->comm, m->stream);
        if (r != ncclSuccess)
            s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "ncclAllReduce (barrier)", ncclGetErrorString(r));
    }
    if (s == LISA_OK) {
        cudaError_t e = cudaStreamSynchronize(m->stream);
        if (e != cudaSuccess)
            s = lisa_check_gen(LISA_ERR_BACKEND, __FILE__, __LINE__, "cudaStreamSynchronize", cudaGetErrorString(e));
    }
    cudaFree(d);
    return s;
}

static void nccl_destroy(lisa_comm *c) {
    nccl_impl *m = c->impl;
    if (m) {
        cudaSetDevice(m->device);
        if (m->comm) ncclCommDestroy(m->comm);
        if (m->stream) cudaStreamDestroy(m->stream);
        if (m->ready) cudaEventDestroy(m->ready);
        if (m->done) cudaEventDestroy(m->done);
        free(m);
    }
    free(c);
}

bool lisa_comm_nccl_available(void) { return true; }

static lisa_status nccl_setup(lisa_comm *c, nccl_impl *m, lisa_comm *host) {
    CUDA_CHECK(cudaSetDevice(m->device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&m->ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&m->done, cudaEventDisableTiming));
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (host->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    LISA_TRY(host->broadcast(host, &id, sizeof id, 0));
    NCCL_CHECK(ncclCommInitRank(&m->comm, host->size, id, host->rank));
    c->rank = host->rank;
    c->size = host->size;
    return LISA_OK;
}

lisa_status lisa_comm_nccl_create(lisa_comm **out, lisa_comm *host, int32_t cuda_device, void *compute_stream) {
    *out = NULL;
    if (host->device_memory)
        return lisa_fail(LISA_ERR_INVALID_ARG, "NCCL bootstrap: the host communicator must use host memory (got %s)",
                         host->name);
    lisa_comm *c = calloc(1, sizeof *c);
    nccl_impl *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        return lisa_fail(LISA_ERR_OOM, "NCCL communicator: out of memory");
    }
    m->device = cuda_device;
    m->compute = (cudaStream_t)compute_stream;
    c->impl = m;
    c->name = "nccl";
    c->device_memory = true;
    c->all_reduce_sum_f32 = nccl_all_reduce;
    c->all_gather = nccl_all_gather;
    c->broadcast = nccl_broadcast;
    c->barrier = nccl_barrier;
    c->destroy = nccl_destroy;
    lisa_status s = nccl_setup(c, m, host);
    if (s != LISA_OK) {
        nccl_destroy(c);
        return lisa_fail_context(s, "NCCL communicator (rank %d of %d, device %d)", host->rank, host->size,
                                 cuda_device);
    }
    *out = c;
    return LISA_OK;
}

#else /* !LISA_HAVE_NCCL */

bool lisa_comm_nccl_available(void) { return false; }

lisa_status lisa_comm_nccl_create(lisa_comm **out, lisa_comm *host, int32_t cuda_device, void *compute_stream) {
    *out = NULL;
    return lisa_fail(LISA_ERR_UNSUPPORTED, "this build has no NCCL (needs the CUDA toolkit and NCCL: -DLISA_NCCL=ON)");
}

#endif
