/* runtime/launch.c — rank and size from the launcher's environment (runtime/launch.h). */
#include "runtime/launch.h"

#include <errno.h>
#include <stdlib.h>

static bool env_int(const char *name, int32_t *out) {
    const char *s = getenv(name);
    if (!s || !*s) return false;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (*e || errno || v < 0 || v > 1000000000) return false;
    *out = (int32_t)v;
    return true;
}

bool lisa_launch_rank(int32_t *rank, int32_t *size) {
    static const char *env[][2] = {
        {"SLURM_PROCID", "SLURM_NTASKS"}, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}};
    *rank = 0;
    *size = 1;
    for (size_t k = 0; k < sizeof env / sizeof env[0]; k++) {
        int32_t r, n;
        if (env_int(env[k][0], &r) && env_int(env[k][1], &n) && n >= 1 && r < n) {
            *rank = r;
            *size = n;
            return true;
        }
    }
    return false;
}

bool lisa_launch_shard(int32_t tp, int32_t *k, int32_t *n) {
    int32_t r, s;
    *k = 0;
    *n = 1;
    if (tp < 1) tp = 1;
    if (!lisa_launch_rank(&r, &s) || s % tp) return false;
    *k = r / tp;
    *n = s / tp;
    return true;
}

int32_t lisa_launch_local_rank(void) {
    static const char *env[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    int32_t r;
    for (size_t k = 0; k < sizeof env / sizeof env[0]; k++)
        if (env_int(env[k], &r)) return r;
    return 0;
}
