/* tests/abi/abi_layout.c — prints the layout of every struct of include/lisa.h as the C compiler
 * sees it, for python/tests/test_abi.py, which compares it with the ctypes mirrors of
 * python/lisa/__init__.py (and the field lists with the header's text). Output, one per line:
 *   struct <name> <sizeof>
 *   field <struct> <field> <offsetof> <sizeof>
 * A struct or field added to lisa.h goes here too (test_abi.py fails until it does). */
#include "lisa.h"

#include <stddef.h>
#include <stdio.h>

#define S(T) printf("struct %s %zu\n", #T, sizeof(T))
#define F(T, f) printf("field %s %s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))

int main(void) {
    S(lisa_model_params);
    F(lisa_model_params, vision_tower);
    F(lisa_model_params, backend);
    F(lisa_model_params, device);
    F(lisa_model_params, n_threads);
    F(lisa_model_params, tensor_parallel);

    S(lisa_segment_params);
    F(lisa_segment_params, max_new_tokens);
    F(lisa_segment_params, max_query_bytes);
    F(lisa_segment_params, max_image_pixels);
    F(lisa_segment_params, keep_logits);

    S(lisa_timings);
    F(lisa_timings, preprocess_ms);
    F(lisa_timings, clip_ms);
    F(lisa_timings, prefill_ms);
    F(lisa_timings, decode_ms);
    F(lisa_timings, sam_encoder_ms);
    F(lisa_timings, sam_decoder_ms);
    F(lisa_timings, postprocess_ms);
    F(lisa_timings, total_ms);
    F(lisa_timings, n_prompt_tokens);
    F(lisa_timings, n_generated);
    F(lisa_timings, n_reused_tokens);

    S(lisa_engine_params);
    F(lisa_engine_params, max_batch);
    F(lisa_engine_params, max_prefill_tokens);
    F(lisa_engine_params, max_images);
    F(lisa_engine_params, page_size);
    F(lisa_engine_params, kv_cache_bytes);
    F(lisa_engine_params, max_queue);
    F(lisa_engine_params, n_workers);
    F(lisa_engine_params, share_prefix);
    F(lisa_engine_params, background);
    F(lisa_engine_params, image_cache_bytes);

    S(lisa_request);
    F(lisa_request, image_data);
    F(lisa_request, image_size);
    F(lisa_request, image_path);
    F(lisa_request, rgb);
    F(lisa_request, height);
    F(lisa_request, width);
    F(lisa_request, query);
    F(lisa_request, params);
    F(lisa_request, user_data);
    F(lisa_request, image);

    S(lisa_engine_stats);
    F(lisa_engine_stats, queued);
    F(lisa_engine_stats, ready);
    F(lisa_engine_stats, running);
    F(lisa_engine_stats, results);
    F(lisa_engine_stats, kv_pages_used);
    F(lisa_engine_stats, kv_pages_total);
    F(lisa_engine_stats, kv_prefix_pages);
    F(lisa_engine_stats, completed);
    F(lisa_engine_stats, failed);
    F(lisa_engine_stats, steps);
    F(lisa_engine_stats, last_batch);
    F(lisa_engine_stats, decode_steps);
    F(lisa_engine_stats, decode_rows);
    F(lisa_engine_stats, decode_batch_hist);
    F(lisa_engine_stats, image_cache_hits);
    F(lisa_engine_stats, image_cache_misses);
    F(lisa_engine_stats, image_cache_evictions);
    F(lisa_engine_stats, image_cache_bytes);
    F(lisa_engine_stats, image_cache_capacity);
    F(lisa_engine_stats, image_cache_entries);
    F(lisa_engine_stats, kv_prefix_nodes);
    F(lisa_engine_stats, kv_prefix_hits);
    F(lisa_engine_stats, kv_reused_tokens);
    F(lisa_engine_stats, kv_prefix_evictions);

    S(lisa_model_info);
    F(lisa_model_info, size);
    F(lisa_model_info, llm_hidden);
    F(lisa_model_info, llm_layers);
    F(lisa_model_info, llm_heads);
    F(lisa_model_info, llm_kv_heads);
    F(lisa_model_info, llm_head_dim);
    F(lisa_model_info, llm_intermediate);
    F(lisa_model_info, vocab_size);
    F(lisa_model_info, max_position);
    F(lisa_model_info, clip_hidden);
    F(lisa_model_info, clip_layers);
    F(lisa_model_info, clip_heads);
    F(lisa_model_info, clip_image_size);
    F(lisa_model_info, clip_patch_size);
    F(lisa_model_info, clip_layers_run);
    F(lisa_model_info, n_patches);
    F(lisa_model_info, sam_image_size);
    F(lisa_model_info, sam_embed_dim);
    F(lisa_model_info, sam_depth);
    F(lisa_model_info, sam_heads);
    F(lisa_model_info, sam_prompt_dim);
    F(lisa_model_info, seg_token_id);
    F(lisa_model_info, backend);
    F(lisa_model_info, backend_name);
    F(lisa_model_info, device_name);
    F(lisa_model_info, device);
    F(lisa_model_info, n_threads);
    F(lisa_model_info, activation_dtype);
    F(lisa_model_info, weight_bytes);
    F(lisa_model_info, checkpoint_bytes);
    F(lisa_model_info, scratch_bytes);
    F(lisa_model_info, device_memory_bytes);
    F(lisa_model_info, tp_rank);
    F(lisa_model_info, tp_size);
    F(lisa_model_info, tp_group);
    F(lisa_model_info, tp_groups);
    F(lisa_model_info, fused_ops);
    F(lisa_model_info, fused_ops_native);
    return 0;
}
