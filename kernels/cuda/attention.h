/* kernels/cuda/attention.h — attention launchers beyond the ops-table ATTENTION op
 * (kernels/cuda/attention.cu; kernel bodies in attn_kernels.cuh).
 *
 * The op (lisa_cuda_attention) picks a kernel per call:
 *   FLASH     q/k/v BF16, D in {64, 80, 128}, no additive bias, 16-byte aligned rows, Tq > 8, and a
 *             compiled variant (rel-pos only at D 80 non-causal; attn_kernels.cuh lk_flash_select):
 *             tensor-core flash attention (mma.sync m16n8k16), rel-pos and causal fused (ATTENTION_RELPOS
 *             also computes the rel-pos terms inside: lisa_cuda_attention_relpos_path below);
 *   WGMMA     the same problems on Hopper (compute capability 9.0, sm_90a code in the build): the
 *             warp-specialized wgmma + TMA kernel of attn_sm90.cuh (rel-pos with head dim 64/80
 *             only). AUTO takes it only where the per-shape choice table in attention.cu says so
 *             (today: nowhere, until a GPU run shows it correct and faster); the environment
 *             variable LISA_CUDA_ATTN_SM90=1 (0) turns it on (off) for every shape it supports;
 *   SPLITKV   Tq <= 8, D <= 128, no bias or rel-pos: split-K over the keys + a combine kernel
 *             (decode; the two-way transformer's 6 tokens -> 4096 image keys);
 *   REFERENCE everything else with D <= 256 (F32 activations, an additive bias, odd head dims,
 *             Tk small such as 4096 image queries -> 6 tokens): one warp per query row, fp32.
 * lisa_cuda_attention_path forces one (for lisa-check and benchmarks); a path that cannot take
 * the call returns LISA_ERR_UNSUPPORTED naming the reason.
 *
 * Paged KV cache (runtime/kv_cache.h; FlashInfer page.cuh's CSR plan, vLLM block tables):
 *   k_pages, v_pages   [n_pages, page_size, n_kv_heads, head_dim]   one layer's pool, contiguous
 *   kv_indptr          [B + 1]  I32: sequence b owns kv_indices[kv_indptr[b] .. kv_indptr[b+1])
 *   kv_indices         [nnz]    I32: page ids, in token order (token j: page j / page_size, slot
 *                               j % page_size; KV slot = page·page_size + slot)
 *   kv_len             [B]      I32: keys of sequence b (this step's appended ones included)
 *   qo_indptr          [B + 1]  I32: query rows of sequence b in the packed q / y (paged attention)
 * (FlashInfer's last_page_len[b] = kv_len[b] − (pages_b − 1)·page_size.) The host plans (fills
 * the index arrays), kernels only read them; KV_APPEND writes the new rows before attention runs.
 * Split-KV uses fixed 256-key splits, so a sequence's output never depends on the rest of the
 * batch (bit-identical to running it alone).
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
    LISA_CUDA_ATTN_WGMMA,
    LISA_CUDA_ATTN_UNFUSED, /* ATTENTION_RELPOS only: REL_POS, then ATTENTION (AUTO) with the terms */
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
/* The same with a forced kernel: FLASH (mma.sync) or WGMMA (sm_90a); AUTO = the choice table. */
lisa_status lisa_cuda_flash_attn_varlen_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                             const lisa_tensor *v, const lisa_tensor *cu_seqlens_q,
                                             const lisa_tensor *cu_seqlens_k, int32_t max_seqlen_q, float scale,
                                             bool causal, lisa_cuda_attn_path path);

/* REL_POS and ATTENTION in one kernel (sm_90a only; spec §5.1 add_decomposed_rel_pos): SAM's
 * y = softmax(scale·q kᵀ + rel_h + rel_w) v with rel_h[b, h, i, ky] = q[b, i, h]·rel_pos_h[qy - ky + S_h - 1]
 * and rel_w likewise, q, k, v, y [B, S_h·S_w, H, D] BF16 (q unscaled, as REL_POS reads it),
 * rel_pos_h [2 S_h - 1, D] and rel_pos_w [2 S_w - 1, D] BF16 with contiguous rows, head dim 64 or 80,
 * S_h, S_w <= 128. The q·rel_pos products are computed per CTA from the Q tile by wgmma, so the
 * rel_h / rel_w tensors never exist. LISA_ERR_UNSUPPORTED off Hopper. */
lisa_status lisa_cuda_attention_relpos_fused(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                             const lisa_tensor *v, float scale, const lisa_tensor *rel_pos_h,
                                             const lisa_tensor *rel_pos_w);

/* ops.def ATTENTION_RELPOS with a forced kernel. AUTO (the op): on Hopper the sm_90a fused kernel
 * where the choice table says so (lisa_cuda_attention_relpos_fused; today nowhere), else the
 * mma.sync flash kernel computing the terms from its Q tile (REL 2 in attn_kernels.cuh: BF16 q/k/v
 * and tables with 16-byte aligned rows, a BF16/F32 output, head dim 64 or 80, grids up to
 * 255x255), else the composition (UNFUSED: REL_POS with lk_rel_pos into F32 scratch terms, then
 * ATTENTION on AUTO, per group of batch entries that fits the scratch arena). FLASH and WGMMA force
 * the fused kernels (LISA_ERR_UNSUPPORTED when they cannot take the call); UNFUSED and REFERENCE
 * the composition, the latter with ATTENTION's reference kernel. */
lisa_status lisa_cuda_attention_relpos_path(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q, const lisa_tensor *k,
                                            const lisa_tensor *v, const lisa_tensor *rel_pos_h, const lisa_tensor *rel_pos_w,
                                            int32_t q_h, int32_t q_w, float scale, lisa_cuda_attn_path path);

/* True when this backend's device runs the sm_90a (wgmma) attention kernel. */
bool lisa_cuda_attn_wgmma_available(lisa_backend *be);

/* PAGED_ATTENTION (main's ops.def, with lisa_paged_params unpacked): packed variable-length queries
 * q, y [T, Hq, D] — sequence b owns rows qo_indptr[b] .. qo_indptr[b+1] — over the paged cache;
 * causal: local query row i of b sits at position kv_len[b] − qlen_b + i and sees keys 0 .. that
 * position. The host_* arrays hold the same values as the device index tensors (validation and
 * launch planning). Sequences with more than 8 query rows (prefill chunks) run in the paged flash
 * kernel (BF16, D 128: LLaMA; otherwise — F32 checks, other head dims — their keys are gathered page
 * by page into scratch and the ATTENTION op runs on them), the others (decode) in split-KV (F32/BF16/F16,
 * D <= 128); each sequence is computed independently of the others. */
lisa_status lisa_cuda_paged_attention_ex(lisa_backend *be, lisa_tensor *y, const lisa_tensor *q,
                                         const lisa_tensor *k_pages, const lisa_tensor *v_pages, int32_t batch,
                                         int32_t page_size, float scale, bool causal, const lisa_tensor *qo_indptr,
                                         const lisa_tensor *kv_indptr, const lisa_tensor *kv_indices,
                                         const lisa_tensor *kv_len, const int32_t *host_qo_indptr,
                                         const int32_t *host_kv_indptr, const int32_t *host_kv_indices,
                                         const int32_t *host_kv_len);

/* KV_APPEND (main's ops.def, same signature): k_pages/v_pages[slot] = k/v[t] for slots[t] >= 0
 * (I32 [T] = page·page_size + offset, -1 = padding); k, v [T, Hkv, D] with strided rows, converted
 * to the pool's dtype. A slot outside the pool writes nothing and is LISA_ERR_INVALID_ARG at the
 * backend's next wait (checked on the device without waiting, cuda.h). */
lisa_status lisa_cuda_kv_append(lisa_backend *be, lisa_tensor *k_pages, lisa_tensor *v_pages, const lisa_tensor *k,
                                const lisa_tensor *v, const lisa_tensor *slots);

#ifdef __cplusplus
}
#endif

#endif
