/* tests/test_base64.c — base64 (the encoder core/base64.c, the decoder server/base64.c): RFC 4648
 * §10 test vectors, round trips of random data against a bit-at-a-time reference encoder, the
 * lenient layout (whitespace, missing padding) and every rejection (alphabet, padding, lone
 * symbol, non-canonical pad bits). */
#include "core/base64.h"
#include "server/base64.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* reference: the input as a bit string, 6 bits at a time (RFC 4648 §4), then '=' to a multiple of 4 */
static void ref_encode(char *out, const uint8_t *in, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t bit = 0; bit < n * 8; bit += 6) {
        int v = 0;
        for (size_t b = bit; b < bit + 6; b++) {
            const int x = b < n * 8 ? (in[b / 8] >> (7 - b % 8)) & 1 : 0;
            v = v << 1 | x;
        }
        out[o++] = A[v];
    }
    while (o % 4)
        out[o++] = '=';
    out[o] = '\0';
}

static void expect_decodes(const char *in, const void *want, size_t want_len) {
    void *got = NULL;
    size_t n = 0;
    cr_assert_eq(lisa_base64_decode(&got, &n, in, strlen(in), "t"), LISA_OK, "'%s': %s", in, lisa_last_error());
    cr_expect_eq(n, want_len, "'%s': %zu bytes, want %zu", in, n, want_len);
    cr_expect(n == want_len && memcmp(got, want, n) == 0, "'%s': bytes differ", in);
    free(got);
}

static void expect_rejected(const char *in, const char *msg_part) {
    void *got = (void *)1;
    size_t n = 7;
    cr_expect_eq(lisa_base64_decode(&got, &n, in, strlen(in), "field"), LISA_ERR_FORMAT, "'%s' accepted", in);
    cr_expect_null(got);
    cr_expect_eq(n, 0);
    cr_expect(strstr(lisa_last_error(), msg_part) != NULL, "'%s': message '%s' lacks '%s'", in, lisa_last_error(),
              msg_part);
    cr_expect(strstr(lisa_last_error(), "field") != NULL, "the message names the field");
}

Test(base64, rfc4648_vectors) {
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        const size_t n = strlen(plain[i]);
        cr_expect_eq(lisa_base64_encoded_len(n), strlen(enc[i]));
        lisa_base64_encode(out, plain[i], n);
        cr_expect_str_eq(out, enc[i]);
        expect_decodes(enc[i], plain[i], n);
    }
}

Test(base64, random_round_trips) {
    tu_rng r = tu_rng_seed(9);
    uint8_t in[300] = {0};
    char enc[420], ref[420];
    for (size_t n = 0; n < sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)tu_next_u64(&r);
        lisa_base64_encode(enc, in, n);
        ref_encode(ref, in, n);
        cr_assert_str_eq(enc, ref, "n = %zu", n);
        expect_decodes(enc, in, n);
    }
    /* every byte value, including the ones that map to '+' and '/' */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char e[400];
    lisa_base64_encode(e, all, 256);
    cr_expect(strchr(e, '+') && strchr(e, '/'));
    expect_decodes(e, all, 256);
}

Test(base64, lenient_layout) {
    expect_decodes("Zm9v\r\nYmFy\n", "foobar", 6); /* MIME line breaks */
    expect_decodes(" Zm 9v YmE= ", "fooba", 5);
    expect_decodes("Zg", "f", 1); /* padding omitted */
    expect_decodes("Zm8", "fo", 2);
    expect_decodes("Zm9vYg", "foob", 4);
}

Test(base64, rejections) {
    expect_rejected("Zm9v!", "invalid base64 character 0x21 at offset 4");
    expect_rejected("Zm-v", "0x2d"); /* base64url alphabet is not accepted */
    expect_rejected("Zm9vY", "lone final symbol");
    expect_rejected("Zg=", "padding");
    expect_rejected("Zg===", "padding");
    expect_rejected("Zm9v=", "padding");
    expect_rejected("====", "padding");
    expect_rejected("Zg==Zg==", "after the '=' padding");
    expect_rejected("Zh==", "non-canonical"); /* 'h' leaves pad bits set */
    expect_rejected("Zm9=", "non-canonical");
    char nul[] = "Zm\0v";
    void *got = NULL;
    size_t n = 0;
    cr_expect_eq(lisa_base64_decode(&got, &n, nul, 4, NULL), LISA_ERR_FORMAT, "a NUL inside the data");
}
