/* libFuzzer target: the restricted unpickler on arbitrary bytes. Every accepted tensor must lie
 * inside its storage's declared element count.
 * Build: CC=clang cmake -S . -B build-fuzz -DLISA_FUZZ=ON -DLISA_CUDA=OFF -DLISA_TESTS=OFF
 *        cmake --build build-fuzz --target fuzz_pickle
 * Run:   ./build-fuzz/tests/fuzz/fuzz_pickle -max_total_time=60 tests/fuzz/corpus/pickle */
#include "loader/pickle.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    lisa_pickle_state_dict sd;
    if (lisa_pickle_load_state_dict(&sd, copy, size, "fuzz") == LISA_OK) {
        for (int64_t i = 0; i < sd.n_tensors; i++) {
            const lisa_pickle_tensor *t = &sd.tensors[i];
            if (t->storage < 0 || t->storage >= sd.n_storages || !t->name[0]) abort();
            int64_t numel = 1, last = t->offset;
            for (int d = 0; d < t->n_dims; d++) {
                numel *= t->shape[d];
                last += (t->shape[d] - 1) * t->stride[d];
            }
            if (numel && last >= sd.storages[t->storage].numel) abort();
        }
        lisa_pickle_state_dict_free(&sd);
    }
    free(copy);
    return 0;
}
