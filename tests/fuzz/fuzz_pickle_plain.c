/* libFuzzer target: the restricted plain-data pickle reader (refCOCO refs files) on arbitrary bytes.
 * Build: CC=clang cmake -S . -B build-fuzz -DLISA_FUZZ=ON -DLISA_CUDA=OFF -DLISA_TESTS=OFF
 *        cmake --build build-fuzz --target fuzz_pickle_plain
 * Run:   ./build-fuzz/tests/fuzz/fuzz_pickle_plain -max_total_time=60 tests/fuzz/corpus/pickle_plain */
#include "loader/pickle_plain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1); /* ends exactly at `size` (ASan sees over-reads) */
    if (!copy) return 0;
    memcpy(copy, data, size);
    cJSON *root = NULL;
    if (lisa_pickle_plain_parse(&root, copy, size, "fuzz") == LISA_OK) {
        char *txt = cJSON_PrintUnformatted(root); /* walk the whole tree */
        free(txt);
        cJSON_Delete(root);
    }
    free(copy);
    return 0;
}
