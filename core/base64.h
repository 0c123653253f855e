/* core/base64.h — RFC 4648 §4 base64 (the standard alphabet, '=' padding), as the server's JSON
 * requests carry images and its responses carry mask PNGs.
 *
 * Decoding is strict about content and lenient about layout only where real clients differ:
 * ASCII whitespace (MIME line breaks) is skipped and the '=' padding may be omitted (JavaScript's
 * btoa pads, many CLI tools wrap at 76 columns, some JSON producers strip '='); any other character,
 * a lone final symbol (impossible length), data after padding, or non-zero trailing bits (a
 * non-canonical encoding) is LISA_ERR_FORMAT naming the offset. On padded input without whitespace
 * this accepts exactly what Python's base64.b64decode(s, validate=True) accepts, minus non-canonical
 * pad bits, and yields the same bytes.
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

/* Decodes in[0..len) into a malloc'd buffer *out of *out_len bytes (freed by the caller; never NULL
 * on success, even for empty input). `what` names the field in error messages. On failure *out is
 * NULL. */
lisa_status lisa_base64_decode(void **out, size_t *out_len, const char *in, size_t len, const char *what);

#ifdef __cplusplus
}
#endif

#endif
