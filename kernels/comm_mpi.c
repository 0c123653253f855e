/* kernels/comm_mpi.c — the MPI communicator over host buffers (kernels/comm.h).
 * Compiled to stubs returning LISA_ERR_UNSUPPORTED unless CMake found MPI (LISA_HAVE_MPI). */
#include "kernels/comm.h"

#include "core/error.h"

#ifdef LISA_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct mpi_impl {
    MPI_Comm comm;  /* owned (MPI_Comm_split of the world) */
    float *scratch; /* all-reduce receive buffer [size][chunk], grown on demand, owned */
    size_t scratch_n;
    int *counts, *displs; /* [size] each, owned */
} mpi_impl;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_error; /* MPI error code of MPI_Init_thread, or a provided-level shortfall (-1) */
static int init_provided;

static void finalize_at_exit(void) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

static void init_mpi(void) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Query_thread(&init_provided);
    } else {
        init_error = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &init_provided);
        if (init_error == MPI_SUCCESS) atexit(finalize_at_exit);
    }
    /* the engine steps from its scheduler thread, not always the main thread */
    if (init_error == MPI_SUCCESS && init_provided < MPI_THREAD_SERIALIZED) init_error = -1;
}

static lisa_status mpi_err(int code, const char *what) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (code > 0) MPI_Error_string(code, msg, &len);
    return lisa_fail(LISA_ERR_BACKEND, "MPI: %s failed: %s", what,
                     code > 0 ? msg : "MPI_THREAD_SERIALIZED not provided");
}

bool lisa_comm_mpi_available(void) { return true; }

lisa_status lisa_mpi_world(int32_t *rank, int32_t *size) {
    pthread_once(&init_once, init_mpi);
    if (init_error != MPI_SUCCESS) return mpi_err(init_error, "MPI_Init_thread");
    int r = 0, n = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (rank) *rank = r;
    if (size) *size = n;
    return LISA_OK;
}

/* Chunk i of n elements over `size` ranks: [i*n/size, (i+1)*n/size). */
static size_t chunk_start(size_t n, int i, int size) { return n * (size_t)i / (size_t)size; /* n <= INT_MAX */ }

static lisa_status mpi_all_reduce(lisa_comm *c, float *buf, size_t n) {
    mpi_impl *m = c->impl;
    const int P = c->size, me = c->rank;
    if (P == 1 || n == 0) return LISA_OK;
    if (n > (size_t)INT_MAX) return lisa_fail(LISA_ERR_LIMIT, "MPI all-reduce of %zu floats exceeds INT_MAX", n);
    const size_t my0 = chunk_start(n, me, P), my_n = chunk_start(n, me + 1, P) - my0;
    const size_t need = (size_t)P * (n / (size_t)P + 1);
    if (need > m->scratch_n) { /* grows to the largest message once; steady state allocates nothing */
        float *s = realloc(m->scratch, need * sizeof(float));
        if (!s) return lisa_fail(LISA_ERR_OOM, "MPI all-reduce: out of memory (%zu floats)", need);
        m->scratch = s;
        m->scratch_n = need;
    }
    /* reduce-scatter: rank i receives every rank's copy of chunk i ... */
    int *scnt = m->counts, *sdis = m->displs, *rcnt = m->counts + P, *rdis = m->displs + P;
    for (int i = 0; i < P; i++) {
        size_t a = chunk_start(n, i, P), b = chunk_start(n, i + 1, P);
        scnt[i] = (int)(b - a);
        sdis[i] = (int)a;
        rcnt[i] = (int)my_n;
        rdis[i] = (int)(my_n * (size_t)i);
    }
    int rc = MPI_Alltoallv(buf, scnt, sdis, MPI_FLOAT, m->scratch, rcnt, rdis, MPI_FLOAT, m->comm);
    if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Alltoallv (all-reduce)");
    /* ... and sums it in rank order (the same order whoever owns the chunk) */
    float *dst = buf + my0;
    for (size_t k = 0; k < my_n; k++) {
        float acc = m->scratch[k];
        for (int i = 1; i < P; i++)
            acc += m->scratch[my_n * (size_t)i + k];
        dst[k] = acc;
    }
    /* all-gather of the summed chunks, in place */
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, scnt, sdis, MPI_FLOAT, m->comm);
    return rc == MPI_SUCCESS ? LISA_OK : mpi_err(rc, "MPI_Allgatherv (all-reduce)");
}

static lisa_status mpi_all_gather(lisa_comm *c, void *recv, const void *send, size_t bytes) {
    mpi_impl *m = c->impl;
    if (bytes > (size_t)INT_MAX) return lisa_fail(LISA_ERR_LIMIT, "MPI all-gather of %zu bytes exceeds INT_MAX", bytes);
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->comm);
    return rc == MPI_SUCCESS ? LISA_OK : mpi_err(rc, "MPI_Allgather");
}

static lisa_status mpi_broadcast(lisa_comm *c, void *buf, size_t bytes, int32_t root) {
    mpi_impl *m = c->impl;
    for (size_t off = 0; off < bytes;) { /* counts are int: 1 GiB pieces */
        size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
        int rc = MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Bcast");
        off += n;
    }
    return LISA_OK;
}

static lisa_status mpi_barrier(lisa_comm *c) {
    mpi_impl *m = c->impl;
    int rc = MPI_Barrier(m->comm);
    return rc == MPI_SUCCESS ? LISA_OK : mpi_err(rc, "MPI_Barrier");
}

static void mpi_destroy(lisa_comm *c) {
    mpi_impl *m = c->impl;
    if (m) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin && m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        free(m->scratch);
        free(m->counts);
        free(m->displs);
        free(m);
    }
    free(c);
}

lisa_status lisa_comm_mpi_create(lisa_comm **out, int32_t group_size, int32_t *group, int32_t *n_groups) {
    *out = NULL;
    int32_t wr = 0, ws = 1;
    LISA_TRY(lisa_mpi_world(&wr, &ws));
    if (group_size < 1 || ws % group_size)
        return lisa_fail(LISA_ERR_INVALID_ARG,
                         "tensor parallelism: %d MPI ranks do not form groups of %d (the number of ranks must be a "
                         "multiple of the TP size)",
                         ws, group_size);
    lisa_comm *c = calloc(1, sizeof *c);
    mpi_impl *m = calloc(1, sizeof *m);
    if (m) {
        m->comm = MPI_COMM_NULL;
        m->counts = calloc((size_t)group_size * 2, sizeof(int));
        m->displs = calloc((size_t)group_size * 2, sizeof(int));
    }
    if (!c || !m || !m->counts || !m->displs) {
        if (m) free(m->counts), free(m->displs);
        free(m);
        free(c);
        return lisa_fail(LISA_ERR_OOM, "MPI communicator: out of memory");
    }
    c->impl = m;
    c->name = "mpi";
    c->all_reduce_sum_f32 = mpi_all_reduce;
    c->all_gather = mpi_all_gather;
    c->broadcast = mpi_broadcast;
    c->barrier = mpi_barrier;
    c->destroy = mpi_destroy;
    /* color = group, key = world rank: group rank r is world rank g*group_size + r */
    int rc = MPI_Comm_split(MPI_COMM_WORLD, wr / group_size, wr, &m->comm);
    if (rc != MPI_SUCCESS) {
        mpi_destroy(c);
        return mpi_err(rc, "MPI_Comm_split");
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    int r = 0, n = 1;
    MPI_Comm_rank(m->comm, &r);
    MPI_Comm_size(m->comm, &n);
    c->rank = r;
    c->size = n;
    if (group) *group = wr / group_size;
    if (n_groups) *n_groups = ws / group_size;
    *out = c;
    return LISA_OK;
}

#else /* !LISA_HAVE_MPI */

bool lisa_comm_mpi_available(void) { return false; }

lisa_status lisa_mpi_world(int32_t *rank, int32_t *size) {
    if (rank) *rank = 0;
    if (size) *size = 1;
    return lisa_fail(LISA_ERR_UNSUPPORTED,
                     "this build has no MPI (install libopenmpi-dev and rebuild with -DLISA_MPI=ON)");
}

lisa_status lisa_comm_mpi_create(lisa_comm **out, int32_t group_size, int32_t *group, int32_t *n_groups) {
    *out = NULL;
    return lisa_mpi_world(NULL, NULL);
}

#endif
