/* tests/fuzz/fuzz_serve_request.c — libFuzzer target for what `lisa serve` reads from the network
 * before the engine sees it (server/request.c, server/base64.c). Input: byte 0 picks the path
 * (even: a JSON body; odd: multipart parts), the rest is the body; for parts, each is
 * "<key>\n<value>\0" fed in chunks of (byte 0 >> 1) + 1 bytes. Properties: no crash or sanitizer
 * report; a parsed request that passes srv_input_check has a NUL-terminated query and exactly one
 * image source; base64 that decodes re-encodes to a string that decodes to the same bytes. */
#include "core/base64.h"
#include "server/base64.h"
#include "server/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_base64(const uint8_t *data, size_t size) {
    void *out = NULL;
    size_t n = 0;
    if (lisa_base64_decode(&out, &n, (const char *)data, size, "fuzz") != LISA_OK) return;
    char *enc = malloc(lisa_base64_encoded_len(n) + 1);
    lisa_base64_encode(enc, out, n);
    void *back = NULL;
    size_t m = 0;
    if (lisa_base64_decode(&back, &m, enc, strlen(enc), "fuzz") != LISA_OK || m != n || memcmp(back, out, n)) abort();
    free(back);
    free(enc);
    free(out);
}

static void check_input(const srv_input *in) {
    if (srv_input_check(in) != LISA_OK) return;
    if (!in->query) abort();
    if ((in->image_path != NULL) == in->have_image) abort();
    if (in->have_image && (!in->image || !in->image_size)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    check_base64(data, size);
    srv_input in;
    srv_input_init(&in);
    if (!(mode & 1)) {
        if (srv_parse_json(&in, (const char *)data, size, 512) == LISA_OK) check_input(&in);
        srv_input_free(&in);
        return 0;
    }
    const size_t step = (size_t)(mode >> 1) + 1;
    lisa_status s = LISA_OK;
    for (size_t p = 0; p < size && s == LISA_OK;) {
        const uint8_t *nl = memchr(data + p, '\n', size - p);
        if (!nl) break;
        char key[64];
        const size_t klen = (size_t)(nl - (data + p));
        if (klen >= sizeof key) break;
        memcpy(key, data + p, klen);
        key[klen] = '\0';
        const uint8_t *v = nl + 1, *end = memchr(v, '\0', size - (size_t)(v - data));
        const size_t vlen = end ? (size_t)(end - v) : size - (size_t)(v - data);
        for (size_t off = 0; s == LISA_OK && (off < vlen || off == 0); off += step) {
            const size_t k = vlen - off < step ? vlen - off : step;
            s = srv_form_chunk(&in, key, (const char *)v + off, off, k);
            if (vlen == 0) break;
        }
        p = (size_t)(v - data) + vlen + 1;
    }
    if (s == LISA_OK && srv_form_finish(&in, 512) == LISA_OK) check_input(&in);
    srv_input_free(&in);
    return 0;
}
