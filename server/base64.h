/* server/base64.h — RFC 4648 §4 base64 decoding of the images JSON requests carry (the encoder,
 * which the library needs for mask PNGs in result JSON, is core/base64.h).
 *
 * Decoding is strict about content and lenient about layout only where real clients differ:
 * ASCII whitespace (MIME line breaks) is skipped and the '=' padding may be omitted (JavaScript's
 * btoa pads, many CLI tools wrap at 76 columns, some JSON producers strip '='); any other character,
 * a lone final symbol (impossible length), data after padding, or non-zero trailing bits (a
 * non-canonical encoding) is LISA_ERR_FORMAT naming the offset. On padded input without whitespace
 * this accepts exactly what Python's base64.b64decode(s, validate=True) accepts, minus non-canonical
 * pad bits, and yields the same bytes.
 */
#ifndef LISA_SERVER_BASE64_H
#define LISA_SERVER_BASE64_H

#include "lisa.h"

#include <stddef.h>

/* Decodes in[0..len) into a malloc'd buffer *out of *out_len bytes (freed by the caller; never NULL
 * on success, even for empty input). `what` names the field in error messages. On failure *out is
 * NULL. (The name keeps the lisa_ prefix it had in the library; it is defined by the server's
 * library, liblisa_server.a.) */
lisa_status lisa_base64_decode(void **out, size_t *out_len, const char *in, size_t len, const char *what);

#endif
