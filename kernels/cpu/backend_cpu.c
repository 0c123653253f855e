/* kernels/cpu/backend_cpu.c — the CPU reference backend: its ops table and memory hooks. */
#include "kernels/cpu/cpu.h"

#include "core/half.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const lisa_ops cpu_ops = {
#define LISA_OP(E, n, params, args) .n = lisa_cpu_##n,
#include "kernels/ops.def"
#undef LISA_OP
};

static lisa_status cpu_mem_alloc(lisa_backend *be, size_t bytes, void **out) {
    size_t rounded = (bytes + LISA_ARENA_ALIGN - 1) & ~(size_t)(LISA_ARENA_ALIGN - 1);
    *out = aligned_alloc(LISA_ARENA_ALIGN, rounded ? rounded : LISA_ARENA_ALIGN);
    if (!*out) return lisa_fail(LISA_ERR_OOM, "cpu backend: cannot allocate %zu bytes", bytes);
    return LISA_OK;
}

static void cpu_mem_free(lisa_backend *be, void *p) { free(p); }

static lisa_status cpu_copy_bytes(lisa_backend *be, void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return LISA_OK;
}

static lisa_status cpu_synchronize(lisa_backend *be) { return LISA_OK; }

static void cpu_destroy(lisa_backend *be) {
    lisa_arena_free(&be->scratch);
    free(be);
}

static lisa_status cpu_fork(const lisa_backend *be, lisa_backend **out) {
    return lisa_backend_cpu_create(out, be->scratch.cap, be->n_threads);
}

/* The CPU's model name as /proc/cpuinfo gives it ("AMD EPYC 7R13 Processor"), else "cpu". */
static void cpu_model_name(char *out, size_t cap) {
    snprintf(out, cap, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\r\n");
        if (n > 0) snprintf(out, cap, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

lisa_status lisa_backend_cpu_create(lisa_backend **out, size_t scratch_bytes, int32_t n_threads) {
    *out = NULL;
    lisa_backend *be = calloc(1, sizeof *be);
    if (!be) return lisa_fail(LISA_ERR_OOM, "cpu backend: out of memory");
    be->name = "cpu";
    be->device = LISA_DEVICE_CPU;
    cpu_model_name(be->device_name, sizeof be->device_name);
    be->ops = &cpu_ops;
    be->composed_ops = lisa_fused_ops_mask(); /* kernels/cpu/fused.c: every fused op is its composition */
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int32_t)n : 1;
    }
    be->n_threads = n_threads;
    be->mem_alloc = cpu_mem_alloc;
    be->mem_free = cpu_mem_free;
    be->upload = cpu_copy_bytes;
    be->download = cpu_copy_bytes;
    be->synchronize = cpu_synchronize;
    be->destroy = cpu_destroy;
    be->fork = cpu_fork;
    lisa_status s = lisa_arena_init(&be->scratch, "cpu scratch", scratch_bytes ? scratch_bytes : (64u << 20));
    if (s != LISA_OK) {
        free(be);
        return s;
    }
    *out = be;
    return LISA_OK;
}
