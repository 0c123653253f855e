/* tests/fuzz/fuzz_spm_model.c — libFuzzer target for the SentencePiece ModelProto reader and the
 * tokenizer built on it. Input: the bytes of a tokenizer.model. Property: no crash, no leak, no
 * sanitizer report; a model that loads can encode and decode (ids in range, no failure).
 * Seeds: tests/data/tokenizer/tiny/ (small valid models). */
#include "loader/spm_model.h"
#include "models/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lisa_spm_model m;
    if (lisa_spm_model_parse(&m, data, size, "fuzz") == LISA_OK) {
        /* every piece string lies inside the text buffer and is NUL-terminated there */
        for (int32_t i = 0; i < m.n_pieces; i++) {
            if (m.pieces[i].offset + m.pieces[i].len >= m.text_len) abort();
            if (m.text[m.pieces[i].offset + m.pieces[i].len] != '\0') abort();
        }
        lisa_spm_model_free(&m);
    }
    lisa_tokenizer *t = NULL;
    if (lisa_tokenizer_load_mem(&t, data, size, NULL, NULL) != LISA_OK) return 0;
    static const char *const texts[] = {"",
                                        " ",
                                        "Hello world",
                                        "  a  b  ",
                                        "\t\n",
                                        "<s>x</s>",
                                        "生活 😀",
                                        "\xff\xfe bad utf8 \xc3",
                                        "aaaaaaaaaaaaaaaa",
                                        "\xe2\x96\x81\xe2\x96\x81"};
    int32_t ids[512], n = 0;
    char buf[8192];
    size_t len;
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        if (lisa_tokenizer_encode(t, texts[k], strlen(texts[k]), k & 1, ids, 512, &n) != LISA_OK) abort();
        for (int32_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= lisa_tokenizer_vocab_size(t)) abort();
        if (lisa_tokenizer_decode(t, ids, n, k & 2, buf, sizeof buf, &len) != LISA_OK) abort();
    }
    /* decode every id */
    const int32_t v = lisa_tokenizer_vocab_size(t);
    for (int32_t i = 0; i < v && i < 4096; i++) {
        if (lisa_tokenizer_decode(t, &i, 1, false, buf, sizeof buf, &len) != LISA_OK) abort();
    }
    lisa_tokenizer_free(t);
    return 0;
}
