/* kernels/comm.h — the communicator behind tensor parallelism (docs/style.md §13).
 *
 * One small vtable, three implementations:
 *   "single"  size 1; every collective is a no-op (TP off; the code path is the same).
 *   "mpi"     MPI (OpenMPI from Debian) over HOST buffers: the CPU backend's tensor parallelism,
 *             tested in CI with `mpirun -np 2` / `-np 4` on one machine; also the control channel
 *             (engine plans, NCCL's unique id) on GPUs. Built when CMake finds MPI (LISA_MPI).
 *   "nccl"    NCCL over DEVICE buffers, on its own CUDA stream joined to the compute stream by
 *             events. Built when CUDA and NCCL are found (LISA_NCCL); compile-only in CI (no GPU).
 *
 * Determinism: every rank ends a collective with the same bits, and a run gives the same bits
 * each time. MPI's own MPI_Allreduce does not promise either (its algorithm, and so the order of
 * the additions, depends on the message size and the rank), so the "mpi" all-reduce is written
 * out: a reduce-scatter where the owner of each chunk sums the ranks' contributions in rank order
 * 0, 1, ..., n-1, then an all-gather of the summed chunks. NCCL's ring and tree all-reduces compute
 * each element once and copy it to every rank, so its ranks agree too (fixed topology, fixed
 * NCCL_ALGO/NCCL_PROTO: same bits run to run).
 *
 * Buffers: `device_memory` tells where they live (false: host; true: the CUDA device of the
 * communicator). A collective on a backend whose memory is elsewhere is the caller's bug.
 * Collectives are blocking on the host for "mpi"; for "nccl" they are ordered on the compute
 * stream (the host returns at once; results are visible to later work on that stream).
 *
 * Threads: a communicator is used by one thread at a time (the engine's stepping thread); MPI is
 * initialized with MPI_THREAD_SERIALIZED.
 *
 * Ownership: a lisa_comm owns its implementation state (MPI sub-communicator, scratch buffer,
 * NCCL communicator, stream and events); the "nccl" one borrows the host communicator it was
 * bootstrapped from only during creation. Lives until lisa_comm_free.
 */
#ifndef LISA_KERNELS_COMM_H
#define LISA_KERNELS_COMM_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_comm lisa_comm;

struct lisa_comm {
    const char *name;   /* "single", "mpi", "nccl" */
    int32_t rank, size; /* within this communicator (a TP group) */
    bool device_memory; /* buffers are device pointers (NCCL) rather than host memory */
    /* buf[n] <- the sum over ranks of buf[n] (in place; same bits on every rank). */
    lisa_status (*all_reduce_sum_f32)(lisa_comm *c, float *buf, size_t n);
    /* recv[size][bytes] <- every rank's send[bytes], in rank order (send may not overlap recv). */
    lisa_status (*all_gather)(lisa_comm *c, void *recv, const void *send, size_t bytes);
    /* buf[bytes] <- root's buf[bytes]. */
    lisa_status (*broadcast)(lisa_comm *c, void *buf, size_t bytes, int32_t root);
    lisa_status (*barrier)(lisa_comm *c);
    void (*destroy)(lisa_comm *c);
    void *impl;
};

/* size 1: collectives copy or do nothing. */
lisa_status lisa_comm_single_create(lisa_comm **out);

/* True when this build has the MPI communicator. */
bool lisa_comm_mpi_available(void);
/* The MPI world (MPI initialized on first use, MPI_THREAD_SERIALIZED, finalized at exit).
 * LISA_ERR_UNSUPPORTED when built without MPI. */
lisa_status lisa_mpi_world(int32_t *rank, int32_t *size);
/* A communicator over the group of `group_size` consecutive world ranks holding this rank
 * (TP group g = world ranks [g*group_size, (g+1)*group_size)); the world size must be a multiple
 * of group_size (LISA_ERR_INVALID_ARG naming both). *group (may be NULL) receives g, and
 * *n_groups the number of groups (data-parallel replicas). */
lisa_status lisa_comm_mpi_create(lisa_comm **out, int32_t group_size, int32_t *group, int32_t *n_groups);

/* True when this build has the NCCL communicator. */
bool lisa_comm_nccl_available(void);
/* NCCL over the ranks of `host` (same rank and size): rank 0 makes the unique id and broadcasts it
 * through `host`; `cuda_device` is this rank's device; `compute_stream` (a cudaStream_t, NULL = the
 * legacy default stream) is the stream the model's kernels run on: each collective waits for the
 * work queued there (event), runs on the communicator's own stream, and the compute stream waits
 * for it (event). LISA_ERR_UNSUPPORTED when built without NCCL. */
lisa_status lisa_comm_nccl_create(lisa_comm **out, lisa_comm *host, int32_t cuda_device, void *compute_stream);

void lisa_comm_free(lisa_comm *c);

#ifdef __cplusplus
}
#endif

#endif
