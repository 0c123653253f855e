/* loader/json.h — reading JSON files (configs, manifests) with errors that name the file and key.
 * Thin typed getters over cJSON; absent keys take the given default unless `required`. */
#ifndef LISA_LOADER_JSON_H
#define LISA_LOADER_JSON_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_JSON_MAX_FILE (64u << 20)

/* Parses a whole file (at most max_bytes; 0 = LISA_JSON_MAX_FILE). The caller owns *out
 * (cJSON_Delete). Errors: LISA_ERR_IO (missing/unreadable), LISA_ERR_LIMIT, LISA_ERR_FORMAT
 * (names the line and column of the parse error). */
lisa_status lisa_json_load_file(const char *path, size_t max_bytes, cJSON **out);

/* cJSON decodes "\u0000" (or a raw NUL byte inside a string) but hands strings out NUL-terminated
 * without their length, so such a string silently ends early. True when a string literal of the
 * JSON text[0..len) holds a NUL character; *at: its byte offset in text. The text need not be valid
 * JSON (call it after a successful parse to attribute nothing wrongly). */
bool lisa_json_has_nul_string(const char *text, size_t len, size_t *at);

/* Typed getters. `file` is only used in error messages. A present key of the wrong type is always
 * an error (LISA_ERR_FORMAT naming file and key); an absent key gives `def`, or LISA_ERR_FORMAT
 * when `required`. JSON null counts as absent. */
lisa_status lisa_json_int(const cJSON *obj, const char *file, const char *key, bool required, int64_t def,
                          int64_t *out);
/* lisa_json_int within lo..hi: LISA_ERR_FORMAT "<file>: key '<key>' = <v> is out of range (lo..hi)"
 * (the check that keeps a config from sizing allocations or overflowing int32 fields). */
lisa_status lisa_json_int_range(const cJSON *obj, const char *file, const char *key, bool required, int64_t def,
                                int64_t lo, int64_t hi, int64_t *out);
lisa_status lisa_json_double(const cJSON *obj, const char *file, const char *key, bool required, double def,
                             double *out);
lisa_status lisa_json_bool(const cJSON *obj, const char *file, const char *key, bool required, bool def, bool *out);
/* *out points into obj (lives as long as obj); def may be NULL. */
lisa_status lisa_json_string(const cJSON *obj, const char *file, const char *key, bool required, const char *def,
                             const char **out);

#ifdef __cplusplus
}
#endif

#endif
