/* libFuzzer target: the safetensors header parser and validator on arbitrary bytes.
 * Build: CC=clang cmake -S . -B build-fuzz -DLISA_FUZZ=ON -DLISA_CUDA=OFF -DLISA_TESTS=OFF
 *        cmake --build build-fuzz --target fuzz_safetensors
 * Run:   ./build-fuzz/tests/fuzz/fuzz_safetensors -max_total_time=60 tests/data/safetensors/bad */
#include "loader/checkpoint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copy so that the parser sees memory ending exactly at `size` (ASan catches over-reads). */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    lisa_checkpoint *ck = NULL;
    if (lisa_checkpoint_open_safetensors_memory(&ck, copy, size, "fuzz") == LISA_OK) {
        /* Touch every tensor's bytes: offsets were validated, so this must stay in bounds. */
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < lisa_checkpoint_count(ck); i++) {
            const lisa_ckpt_tensor *t = lisa_checkpoint_at(ck, i);
            for (size_t b = 0; b < t->nbytes; b += 64) sink ^= ((const uint8_t *)t->data)[b];
            if (t->nbytes) sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        }
        (void)sink;
        lisa_checkpoint_close(ck);
    }
    free(copy);
    return 0;
}
