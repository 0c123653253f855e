/* server/base64.c — see base64.h. ref: RFC 4648 §4 (alphabet, padding), §3.5 (canonical encoding:
 * pad bits must be zero). */
#include "server/base64.h"

#include <stdint.h>
#include <stdlib.h>

static int sym(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

lisa_status lisa_base64_decode(void **out, size_t *out_len, const char *in, size_t len, const char *what) {
    *out = NULL;
    *out_len = 0;
    if (!what) what = "base64";
    /* at most 3 bytes per 4 symbols; whitespace only makes the real size smaller */
    uint8_t *buf = malloc(len / 4 * 3 + 3);
    if (!buf) return lisa_fail(LISA_ERR_OOM, "%s: out of memory decoding %zu base64 characters", what, len);
    uint32_t acc = 0;
    int nsym = 0; /* symbols in the current quantum */
    size_t o = 0, pad_at = 0;
    int npad = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)in[i];
        if (is_space(c)) continue;
        if (c == '=') {
            if (npad == 0) pad_at = i;
            npad++;
            continue;
        }
        const int v = sym(c);
        if (v < 0 || npad > 0) {
            free(buf);
            if (v >= 0)
                return lisa_fail(LISA_ERR_FORMAT, "%s: base64 data after the '=' padding at offset %zu", what, pad_at);
            return lisa_fail(LISA_ERR_FORMAT, "%s: invalid base64 character 0x%02x at offset %zu", what, c, i);
        }
        acc = acc << 6 | (uint32_t)v;
        if (++nsym == 4) {
            buf[o++] = (uint8_t)(acc >> 16);
            buf[o++] = (uint8_t)(acc >> 8);
            buf[o++] = (uint8_t)acc;
            acc = 0;
            nsym = 0;
        }
    }
    /* the final quantum: 2 symbols -> 1 byte (+ "=="), 3 -> 2 bytes (+ "=") */
    lisa_status s = LISA_OK;
    if (nsym == 1) {
        s = lisa_fail(LISA_ERR_FORMAT, "%s: truncated base64 (a lone final symbol)", what);
    } else if (npad > 0 && (nsym == 0 || nsym + npad != 4)) {
        s = lisa_fail(LISA_ERR_FORMAT, "%s: wrong base64 padding at offset %zu", what, pad_at);
    } else if (nsym == 2) {
        if (acc & 0xf) s = lisa_fail(LISA_ERR_FORMAT, "%s: non-canonical base64 (non-zero pad bits at the end)", what);
        buf[o++] = (uint8_t)(acc >> 4);
    } else if (nsym == 3) {
        if (acc & 0x3) s = lisa_fail(LISA_ERR_FORMAT, "%s: non-canonical base64 (non-zero pad bits at the end)", what);
        buf[o++] = (uint8_t)(acc >> 10);
        buf[o++] = (uint8_t)(acc >> 2);
    }
    if (s != LISA_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    *out_len = o;
    return LISA_OK;
}
