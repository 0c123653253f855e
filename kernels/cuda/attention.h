/* kernels/cuda/attention.h — attention launchers beyond the ops-table ATTENTION op
 * (kernels/cuda/attention.cu; kernel bodies in attn_kernels.cuh).
 *
 * The op (lisa_cuda_attention) picks a kernel per call:
 *   FLASH     q/k/v BF16, D in {64, 80, 128}, no additive bias, 16-byte aligned rows, Tq > 8:
 *             tensor-core flash attention (mma.sync m16n8k16), rel-pos and causal fused;
 *   SPLITKV   Tq <= 8, D <= 128, no bias or rel-pos: split-K over the keys + a combine kernel
 *             (decode; the two-way transformer's 6 tokens -> 4096 image keys);
 *   REFERENCE everything else with D <= 256 (F32 activations, an additive bias, odd head dims,
 *             Tk small such as 4096 image queries -> 6 tokens): one warp per query row, fp32.
 * lisa_cuda_attention_path forces one (for lisa-check and benchmarks); a path that cannot take
 * the call returns LISA_ERR_UNSUPPORTED naming the reason.
 *
 * Paged KV cache (FlashInfer's "NHD" page layout; the runtime's KV pool adopts it):
 *   k_pages, v_pages   [n_pages, page_size, n_kv_heads, head_dim]   BF16 (or F16/F32), contiguous
 *   kv_indptr          [B + 1]  I32: request b owns kv_indices[kv_indptr[b] .. kv_indptr[b+1])
 *   kv_indices         [nnz]    I32: page ids, in token order
 *   kv_last_page_len   [B]      I32: tokens in b's last page (1..page_size)
 *   => kv_len[b] = (kv_indptr[b+1] − kv_indptr[b] − 1)·page_size + kv_last_page_len[b].
 * The host plans (fills the three index arrays), kernels only read them. The new token's K/V must
 * already be in the cache: decode attends to all kv_len[b] keys.
 */
#ifndef LISA_KERNELS_CUDA_ATTENTION_H
#define LISA_KERNELS_CUDA_ATTENTION_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lisa_cuda_attn_path {
    LISA_CUDA_ATTN_AUTO = 0,
    LISA_CUDA_ATTN_FLASH,
    LISA_CUDA_ATTN_SPLITKV,
    LISA_CUDA_ATTN_REFERENCE,
} lisa_cuda_attn_path;

const char *lisa_cuda_attn_path_name(lisa_cuda_attn_path p);

/* ops.def ATTENTION with a forced kernel (AUTO = the op). */
lisa_status lisa_cuda_attention_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                     const lisa_tensor *v, const lisa_attn_params *p, lisa_cuda_attn_path path);

/* Variable-length (packed) flash attention, FlashAttention's varlen convention: sequence b is rows
 * [cu_seqlens_q[b], cu_seqlens_q[b+1]) of q[total_q, Hq, D] and rows [cu_seqlens_k[b], ..) of
 * k/v[total_k, Hkv, D]; y[total_q, Hq, D]. cu_seqlens_* are device I32 [B+1]; max_seqlen_q (host)
 * sizes the grid. BF16, D in {64, 80, 128}. Causal: query i of a sequence sees keys
 * j <= i + (len_k − len_q). One launch for all sequences (LLaMA prefill of a batch). */
lisa_status lisa_cuda_flash_attn_varlen(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                        const lisa_tensor *v, const lisa_tensor *cu_seqlens_q,
                                        const lisa_tensor *cu_seqlens_k, int32_t max_seqlen_q, float scale, bool causal);

/* Decode over the paged KV cache above: q[B, Hq, D] (one new token per request), y like q.
 * max_kv_len (host, >= every kv_len[b]) sizes the split-K. D <= 128, D a multiple of 8. */
lisa_status lisa_cuda_attn_decode_paged(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q,
                                        const lisa_tensor *k_pages, const lisa_tensor *v_pages,
                                        const lisa_tensor *kv_indptr, const lisa_tensor *kv_indices,
                                        const lisa_tensor *kv_last_page_len, int32_t max_kv_len, float scale);

/* RoPE (ops.def ROPE semantics) applied in place to q and k in one launch: q[.., T, Hq, D] and
 * k[.., T, Hkv, D] are typically strided views of the fused QKV projection's output, so this is
 * the "RoPE fused into the QKV path" step between the QKV GEMM and attention. */
lisa_status lisa_cuda_rope_qk(lisa_backend *be, lisa_tensor *q, lisa_tensor *k, const lisa_tensor *pos, float theta);

#ifdef __cplusplus
}
#endif

#endif
