/* core/base64.h — RFC 4648 §4 base64 encoding (the standard alphabet, '=' padding), as the result
 * JSON carries mask PNGs (LISA_JSON_MASK_PNG). The decoder is the server's, which alone reads
 * base64 (request images): server/base64.h.
 */
#ifndef LISA_CORE_BASE64_H
#define LISA_CORE_BASE64_H

#include "lisa.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length of the encoding of n bytes, without the NUL: 4 * ceil(n / 3). */
size_t lisa_base64_encoded_len(size_t n);

/* Writes the padded encoding of in[0..n) and a NUL to out (lisa_base64_encoded_len(n) + 1 bytes). */
void lisa_base64_encode(char *out, const void *in, size_t n);

#ifdef __cplusplus
}
#endif

#endif
