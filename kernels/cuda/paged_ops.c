/* kernels/cuda/paged_ops.c — the ops-table entry for PAGED_ATTENTION: unpacks lisa_paged_params
 * into lisa_cuda_paged_attention_ex (kernels/cuda/attention.cu; KV_APPEND's entry,
 * lisa_cuda_kv_append, has the op's exact signature and lives there too).
 *
 * This branch was cut before PAGED_ATTENTION, lisa_paged_params and runtime/kv_cache.h were added
 * to main (together). Until the merge, neither the op nor its parameter struct exists here, so the
 * entry compiles only where runtime/kv_cache.h does; after the merge the guard is always true and
 * can be dropped. */
#include "kernels/cuda/cuda_internal.h"

#if defined(__has_include)
#if __has_include("runtime/kv_cache.h")
#define LISA_CUDA_HAVE_PAGED_OPS 1
#endif
#endif

#ifdef LISA_CUDA_HAVE_PAGED_OPS
lisa_status lisa_cuda_paged_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k_pages,
                                      const lisa_tensor *v_pages, const lisa_paged_params *p) {
    if (!p) return lisa_fail(LISA_ERR_INVALID_ARG, "paged_attention: params are required");
    return lisa_cuda_paged_attention_ex(be, y, q, k_pages, v_pages, p->batch, p->page_size, p->scale, p->causal,
                                        p->qo_indptr, p->kv_indptr, p->kv_indices, p->kv_len, p->host_qo_indptr,
                                        p->host_kv_indptr, p->host_kv_indices, p->host_kv_len);
}
#else
typedef int lisa_cuda_paged_ops_not_yet; /* ISO C wants a non-empty translation unit */
#endif
