/* runtime/shard.h — splitting a run over processes and nodes (`lisa eval`, `lisa annotate`):
 * the K/N option, the rank and size of mpirun / srun taken from the environment, which items a
 * shard owns, and the per-shard file name.
 *
 * Item i (0-based, in input order) belongs to shard i % N: shards are disjoint, cover every item,
 * and differ in size by at most one, whatever N.
 */
#ifndef LISA_RUNTIME_SHARD_H
#define LISA_RUNTIME_SHARD_H

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

static inline bool lisa_shard_owns(int64_t index, int32_t k, int32_t n) { return index % n == k; }

/* The file of shard K of N: `path` with ".shard-K-of-N" inserted before the extension of its
 * file name (out.jsonl -> out.shard-0-of-4.jsonl; out -> out.shard-0-of-4); `path` itself when
 * N == 1. False (out = "") when it does not fit. */
bool lisa_shard_path(char *out, size_t cap, const char *path, int32_t k, int32_t n);

#ifdef __cplusplus
}
#endif

#endif
