/* runtime/launch.h — where this process stands in a multi-process launch (srun, mpirun, mpiexec),
 * read from the launcher's environment (no MPI call): the data-parallel shard of a job.
 *
 * With tensor parallelism of size tp, consecutive ranks form one TP group (runtime/comm.h,
 * lisa_comm_mpi_create), so the shard of a rank is its group: k = rank / tp of n = size / tp.
 */
#ifndef LISA_RUNTIME_LAUNCH_H
#define LISA_RUNTIME_LAUNCH_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The launcher's rank and size: SLURM_PROCID / SLURM_NTASKS (srun), OMPI_COMM_WORLD_RANK / _SIZE
 * (OpenMPI's mpirun), PMI_RANK / PMI_SIZE (MPICH, Intel MPI), first found wins. False (and 0 of
 * 1) when none is set or the values are inconsistent. */
bool lisa_launch_rank(int32_t *rank, int32_t *size);

/* The shard of this process for tensor-parallel groups of `tp` ranks (tp <= 1: one per rank):
 * *k = rank / tp, *n = size / tp. False (and 0 of 1) outside a launcher or when size % tp != 0. */
bool lisa_launch_shard(int32_t tp, int32_t *k, int32_t *n);

/* This process's rank among the launcher's processes on this node (OMPI_COMM_WORLD_LOCAL_RANK,
 * SLURM_LOCALID, MPI_LOCALRANKID); 0 outside a launcher. GPU ranks use it to pick their device. */
int32_t lisa_launch_local_rank(void);

#ifdef __cplusplus
}
#endif

#endif
