/* kernels/cuda/paged_ops.c — the ops-table entry for PAGED_ATTENTION: unpacks lisa_paged_params
 * into lisa_cuda_paged_attention_ex (kernels/cuda/attention.cu; KV_APPEND's entry,
 * lisa_cuda_kv_append, has the op's exact signature and lives there too). */
#include "kernels/cuda/cuda_internal.h"

lisa_status lisa_cuda_paged_attention(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k_pages,
                                      const lisa_tensor *v_pages, const lisa_paged_params *p) {
    if (!p) return lisa_fail(LISA_ERR_INVALID_ARG, "paged_attention: params are required");
    return lisa_cuda_paged_attention_ex(be, y, q, k_pages, v_pages, p->batch, p->page_size, p->scale, p->causal,
                                        p->qo_indptr, p->kv_indptr, p->kv_indices, p->kv_len, p->host_qo_indptr,
                                        p->host_kv_indptr, p->host_kv_indices, p->host_kv_len);
}
