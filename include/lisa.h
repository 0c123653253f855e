/* lisa.h — the one public C API of the LISA engine.
 *
 * LISA (reasoning segmentation) = CLIP ViT-L/14 + LLaVA/LLaMA decoder + SAM, joined by [SEG].
 * Conventions (see STYLE.md §17): `lisa_` prefix, opaque handles, status returns, sized ints,
 * `*_default_params()` by value, init/free pairs, no CUDA types. Every pointer a function returns
 * states its lifetime next to the declaration.
 */
#ifndef LISA_H
#define LISA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LISA_API __declspec(dllexport)
#else
#define LISA_API __attribute__((visibility("default")))
#endif

/* Status codes. Every fallible call returns one; LISA_OK is 0. On failure, lisa_last_error()
 * names the file, field or value that caused it. */
typedef enum lisa_status {
    LISA_OK = 0,
    LISA_ERR_INVALID_ARG = 1, /* a caller-supplied value is out of range or inconsistent */
    LISA_ERR_IO = 2,          /* a file could not be opened, read, mapped or written */
    LISA_ERR_FORMAT = 3,      /* a file or message is malformed (bad JSON, truncated, corrupt) */
    LISA_ERR_SHAPE = 4,       /* tensor shapes/dtypes do not match what the model needs */
    LISA_ERR_UNSUPPORTED = 5, /* valid, but this build/backend does not implement it */
    LISA_ERR_OOM = 6,         /* an allocation or an arena/pool budget was exhausted */
    LISA_ERR_LIMIT = 7,       /* an input exceeds a configured limit (pixels, tokens, bytes) */
    LISA_ERR_NOT_FOUND = 8,   /* a named tensor, file or key is missing */
    LISA_ERR_BACKEND = 9,     /* the compute backend (CUDA, cuBLAS, NCCL, MPI) reported a failure */
    LISA_ERR_BUSY = 10,       /* a queue or pool is full; retry later */
    LISA_ERR_INTERNAL = 11,   /* an unexpected condition that is not the caller's fault */
} lisa_status;

/* Static string naming a status ("LISA_ERR_FORMAT"). Never NULL. */
LISA_API const char *lisa_status_name(lisa_status s);

/* The message of the last failure on the calling thread ("" if none). Thread-local: valid until
 * the next failing lisa_ call on the same thread. */
LISA_API const char *lisa_last_error(void);

/* Clears the calling thread's last-error message. */
LISA_API void lisa_clear_error(void);

/* Version string of the library ("0.1.0"). Static. */
LISA_API const char *lisa_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LISA_H */
