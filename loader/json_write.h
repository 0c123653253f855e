/* loader/json_write.h — writing JSON the way Hugging Face checkpoints are written.
 *
 * transformers' save_pretrained (config.json, generation_config.json, tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json, the shard index) writes
 * `json.dumps(obj, indent=2, sort_keys=True) + "\n"`. lisa_json_print_hf reproduces that text
 * byte for byte for ASCII content, so `lisa make-tiny` writes the same files as the PyTorch
 * generator (tests/golden/gen_golden.py):
 *   - objects: keys sorted by strcmp (= Python's code-point order for ASCII), "key": value,
 *     two-space indent, empty containers as {} / [];
 *   - numbers: a cJSON number prints as a JSON integer (Python int); a float must be added with
 *     lisa_json_float(), which stores Python's repr() of the double ("1e-06", "0.02", "1.0");
 *   - strings: escaped as json.dumps does (\" \\ \n \r \t \b \f, \u00XX for other control
 *     bytes); non-ASCII bytes are written as they are (Python would write \uXXXX).
 */
#ifndef LISA_LOADER_JSON_WRITE_H
#define LISA_LOADER_JSON_WRITE_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Python's repr(float(v)) into buf (at least 32 bytes): the shortest digits that read back as v,
 * fixed notation for 1e-4 <= |v| < 1e16, else "1e-06" / "1.5e+16". v must be finite. */
void lisa_json_float_repr(char *buf, size_t cap, double v);

/* A cJSON item that prints as the float v (a raw item holding its repr). NULL when out of memory. */
cJSON *lisa_json_float(double v);

/* The text of root as json.dumps(root, indent=2, sort_keys=True) + "\n"; malloc'd, NULL when out
 * of memory. */
char *lisa_json_print_hf(const cJSON *root);

/* Writes lisa_json_print_hf(root) to path atomically (path.tmp.<pid>, then rename). */
lisa_status lisa_json_write_file(const char *path, const cJSON *root);

/* Writes bytes to path atomically (same scheme). */
lisa_status lisa_file_write_atomic(const char *path, const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif
