/* jobs/convert.h — `lisa convert IN OUT`: rewrite a checkpoint (any format the loader reads: .bin
 * shards, safetensors, one file or a directory) as an HF model directory in safetensors or
 * torch.save .bin shards, optionally casting float tensors. The small files of an input directory
 * (config.json, tokenizer files, ...) are copied, so OUT is a complete model directory. The output
 * is then reopened and every tensor compared with the input (bit for bit, or with the input cast
 * the same way), unless verification is off.
 */
#ifndef LISA_JOBS_CONVERT_H
#define LISA_JOBS_CONVERT_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One conversion; borrowed for the call. */
typedef struct lisa_convert_job {
    const char *in, *out;  /* OUT is created; it must be empty if it exists */
    const char *format;    /* "safetensors" (NULL) or "bin" */
    const char *dtype;     /* cast F32/F16/BF16 tensors to "bf16", "f16" or "f32"; NULL: keep */
    uint64_t shard_size;   /* largest shard in bytes; 0: one file */
    bool verify;           /* reopen and compare every tensor */
    bool skip_crc;         /* skip the CRC check of large .bin entries of IN */
} lisa_convert_job;

typedef struct lisa_convert_report {
    int64_t n_tensors;
    const char *format;    /* "safetensors" or "PyTorch .bin" (static) */
    const char *cast;      /* the dtype cast to, or NULL (static) */
    bool verified;
} lisa_convert_report;

lisa_status lisa_convert_run(const lisa_convert_job *j, lisa_convert_report *rep);

#ifdef __cplusplus
}
#endif

#endif
