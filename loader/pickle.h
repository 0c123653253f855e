/* loader/pickle.h — a restricted unpickler for the data.pkl of torch.save'd state dicts.
 *
 * It interprets only the opcodes torch.save (protocol 2, torch 1.6 .. 2.x) emits for a dict or
 * OrderedDict of tensors, plus the protocol-4 framing ones (FRAME, SHORT_BINUNICODE, MEMOIZE,
 * STACK_GLOBAL) so that `pickle_protocol=4` files also load. It never imports, calls or executes
 * anything: "globals" are looked up in a fixed allow-list and represented as tags:
 *
 *   collections.OrderedDict              REDUCE with () -> an empty ordered dict
 *   torch._utils._rebuild_tensor_v2      REDUCE with (storage, offset, size, stride, requires_grad,
 *                                        backward_hooks[, metadata]) -> a tensor record
 *   torch._utils._rebuild_parameter      REDUCE with (tensor, requires_grad, hooks) -> the tensor
 *                                        (nn.Parameter in a saved module state; pure data)
 *   torch.{Float,Half,BFloat16,Long,Int,Bool,Byte}Storage   storage types inside persistent ids
 *
 * Persistent ids (BINPERSID) must be ('storage', <storage type>, key, location, numel): torch's
 * `persistent_id` for a storage (torch/serialization.py `_save`). BUILD is accepted only on a dict
 * with a dict state (OrderedDict.__setstate__ of a state_dict's `_metadata` attribute), and is
 * otherwise ignored. Every other global (os.system, builtins.eval, torch.storage._load_from_bytes,
 * other storage types get LISA_ERR_UNSUPPORTED) and every other opcode is LISA_ERR_FORMAT with a
 * message naming it and its byte offset.
 *
 * Bounds: memory is linear in the pickle size (each opcode creates at most one object; memo ids
 * are limited by the pickle size), the value stack by LISA_PICKLE_MAX_STACK and MARK nesting by
 * LISA_PICKLE_MAX_DEPTH.
 *
 * Ownership: a lisa_pickle_state_dict owns its arrays and all strings they point to.
 */
#ifndef LISA_LOADER_PICKLE_H
#define LISA_LOADER_PICKLE_H

#include "core/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_PICKLE_MAX_STACK (1 << 22)
#define LISA_PICKLE_MAX_DEPTH 256

typedef struct lisa_pickle_storage {
    char *key;       /* record name below the archive's data/ folder ("0", "1", ...) */
    lisa_dtype dtype;
    int64_t numel;   /* elements, as the persistent id states */
} lisa_pickle_storage;

typedef struct lisa_pickle_tensor {
    char *name;      /* state-dict key */
    int32_t storage; /* index into storages */
    int64_t offset;  /* storage offset, in elements */
    int32_t n_dims;
    int64_t shape[LISA_MAX_DIMS];
    int64_t stride[LISA_MAX_DIMS]; /* in elements */
    bool contiguous; /* row-major dense (strides of size-1 dims ignored, as torch does) */
} lisa_pickle_tensor;

typedef struct lisa_pickle_state_dict {
    lisa_pickle_storage *storages;
    int32_t n_storages;
    lisa_pickle_tensor *tensors; /* in pickle (insertion) order */
    int64_t n_tensors;
    bool ordered;      /* an OrderedDict (torch state_dict) rather than a plain dict */
    bool has_metadata; /* BUILD supplied a `_metadata` attribute */
} lisa_pickle_state_dict;

/* Interprets data[0..size) as a torch.save'd dict of tensors. `what` names the pickle in errors
 * ("shard.bin:archive/data.pkl"). Every tensor is validated against its storage's element count:
 * dims (0..LISA_MAX_DIMS), non-negative sizes/strides/offset, no overflow of the extent
 * offset + Σ(size-1)·stride + 1 <= numel. On failure *out is empty. */
lisa_status lisa_pickle_load_state_dict(lisa_pickle_state_dict *out, const void *data, size_t size, const char *what);
void lisa_pickle_state_dict_free(lisa_pickle_state_dict *sd);

/* Name of a pickle opcode byte ("BINPUT"), or NULL if it is not a pickle opcode. */
const char *lisa_pickle_opcode_name(uint8_t op);

#ifdef __cplusplus
}
#endif

#endif
