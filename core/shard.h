/* core/shard.h — splitting a run over processes and nodes (`lisa eval`, `lisa annotate`):
 * the K/N option, the rank and size of mpirun / srun taken from the environment, which items a
 * shard owns, and the per-shard file name.
 *
 * Item i (0-based, in input order) belongs to shard i % N: shards are disjoint, cover every item,
 * and differ in size by at most one, whatever N.
 */
#ifndef LISA_CORE_SHARD_H
#define LISA_CORE_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "K/N" with 0 <= K < N <= 1e6 (nothing else on the string). */
bool lisa_shard_parse(const char *s, int32_t *k, int32_t *n);

/* The rank and size of a launcher, when one started us with more than one task:
 *   SLURM_PROCID / SLURM_NTASKS (srun), OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE (Open MPI),
 *   PMI_RANK / PMI_SIZE (MPICH, Intel MPI), checked in that order.
 * *source (may be NULL) names the rank variable used. False (outputs untouched) otherwise. */
bool lisa_shard_from_env(int32_t *k, int32_t *n, const char **source);

/* The same for tensor-parallel groups of `tp` consecutive ranks (kernels/comm.h,
 * lisa_comm_mpi_create): a group is one shard, *k = rank / tp of *n = size / tp. tp <= 1 is
 * lisa_shard_from_env. False (outputs untouched) outside a launcher, with a single group, or when
 * the size is not a multiple of tp (model loading reports that one). */
bool lisa_shard_from_env_tp(int32_t tp, int32_t *k, int32_t *n, const char **source);

/* This process's rank among the launcher's tasks on this node (OMPI_COMM_WORLD_LOCAL_RANK,
 * SLURM_LOCALID, MPI_LOCALRANKID); 0 outside a launcher. GPU ranks pick their device with it. */
int32_t lisa_shard_local_rank(void);

static inline bool lisa_shard_owns(int64_t index, int32_t k, int32_t n) { return index % n == k; }

/* The file of shard K of N: `path` with ".shard-K-of-N" inserted before the extension of its
 * file name (out.jsonl -> out.shard-0-of-4.jsonl; out -> out.shard-0-of-4); `path` itself when
 * N == 1. False (out = "") when it does not fit. */
bool lisa_shard_path(char *out, size_t cap, const char *path, int32_t k, int32_t n);

#ifdef __cplusplus
}
#endif

#endif
