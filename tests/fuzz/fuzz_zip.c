/* libFuzzer target: the zip reader, and the whole .bin path behind it (zip -> data.pkl -> restricted
 * unpickler -> storages -> tensors), on arbitrary bytes.
 * Build: CC=clang cmake -S . -B build-fuzz -DLISA_FUZZ=ON -DLISA_CUDA=OFF -DLISA_TESTS=OFF
 *        cmake --build build-fuzz --target fuzz_zip
 * Run:   ./build-fuzz/tests/fuzz/fuzz_zip -max_total_time=60 tests/fuzz/corpus/zip */
#include "loader/checkpoint.h"
#include "loader/zip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copy so that the reader sees memory ending exactly at `size` (ASan catches over-reads). */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    lisa_zip z;
    if (lisa_zip_open(&z, copy, size, "fuzz", true) == LISA_OK) {
        for (int64_t i = 0; i < z.n_entries; i++) {
            const lisa_zip_entry *e = &z.entries[i];
            if (e->size > (64u << 20)) continue; /* the ratio check bounds it by 1032 x the input */
            void *dst = malloc(e->size ? (size_t)e->size : 1);
            if (dst) (void)lisa_zip_extract(&z, e, dst, (size_t)e->size);
            free(dst);
        }
        lisa_zip_close(&z);
    }
    lisa_checkpoint *ck = NULL;
    if (lisa_checkpoint_open_bin_memory(&ck, copy, size, "fuzz") == LISA_OK) {
        /* every tensor's bytes must be readable: offsets and extents were validated */
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
