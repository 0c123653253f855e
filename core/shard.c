/* core/shard.c — see shard.h. */
#include "core/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool parse_i32(const char *s, const char *end, int32_t *out) {
    if (s == end || end - s > 9) return false;
    int32_t v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9') return false;
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return true;
}

bool lisa_shard_parse(const char *s, int32_t *k, int32_t *n) {
    const char *slash = s ? strchr(s, '/') : NULL;
    int32_t kk, nn;
    if (!slash || !parse_i32(s, slash, &kk) || !parse_i32(slash + 1, slash + strlen(slash), &nn)) return false;
    if (nn < 1 || nn > 1000000 || kk >= nn) return false;
    *k = kk;
    *n = nn;
    return true;
}

bool lisa_shard_from_env(int32_t *k, int32_t *n, const char **source) {
    static const char *env[][2] = {
        {"SLURM_PROCID", "SLURM_NTASKS"}, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"PMI_RANK", "PMI_SIZE"}};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        const char *r = getenv(env[i][0]), *s = getenv(env[i][1]);
        int32_t rk, nn;
        if (r && s && parse_i32(r, r + strlen(r), &rk) && parse_i32(s, s + strlen(s), &nn) && nn > 1 && rk < nn) {
            *k = rk;
            *n = nn;
            if (source) *source = env[i][0];
            return true;
        }
    }
    return false;
}

bool lisa_shard_from_env_tp(int32_t tp, int32_t *k, int32_t *n, const char **source) {
    int32_t r, s;
    if (tp <= 1) return lisa_shard_from_env(k, n, source);
    if (!lisa_shard_from_env(&r, &s, source) || s % tp || s / tp < 2) return false;
    *k = r / tp;
    *n = s / tp;
    return true;
}

int32_t lisa_shard_local_rank(void) {
    static const char *env[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        const char *v = getenv(env[i]);
        int32_t r;
        if (v && parse_i32(v, v + strlen(v), &r)) return r;
    }
    return 0;
}

bool lisa_shard_path(char *out, size_t cap, const char *path, int32_t k, int32_t n) {
    if (n <= 1) {
        if (strlen(path) + 1 > cap) goto too_long;
        memmove(out, path, strlen(path) + 1);
        return true;
    }
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path, *dot = strrchr(name, '.');
    if (dot == name) dot = NULL; /* ".jsonl" alone is a name, not an extension */
    const size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    char tag[48];
    snprintf(tag, sizeof tag, ".shard-%d-of-%d", (int)k, (int)n);
    const size_t need = stem + strlen(tag) + (dot ? strlen(dot) : 0) + 1;
    if (need > cap || out == path) goto too_long;
    memcpy(out, path, stem);
    snprintf(out + stem, cap - stem, "%s%s", tag, dot ? dot : "");
    return true;
too_long:
    if (cap) out[0] = '\0';
    return false;
}
