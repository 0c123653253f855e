/* loader/pickle_plain.h — a restricted reader for Python pickles of plain data, enough for the
 * refCOCO `refs(unc|umd|google).p` files that LISA's utils/refer.py loads with pickle.load.
 *
 * Accepted: protocols 0–5; lists, tuples, dicts, str (py2 STRING/BINSTRING taken as bytes, py3
 * unicode), bytes (as strings), int, bool, float, None; memo PUT/GET/MEMOIZE; FRAME. Rejected with
 * LISA_ERR_UNSUPPORTED: anything that would import or call code (GLOBAL, STACK_GLOBAL, REDUCE,
 * BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID), sets and out-of-band buffers. Nothing is executed.
 *
 * The result is a cJSON tree (tuples become arrays, dict keys must be strings, ints become
 * numbers: exact up to 2^53). A GET of a memoized object inserts a deep copy.
 */
#ifndef LISA_LOADER_PICKLE_PLAIN_H
#define LISA_LOADER_PICKLE_PLAIN_H

#include "lisa.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses len bytes; `name` is used in error messages. The caller owns *out (cJSON_Delete). */
lisa_status lisa_pickle_plain_parse(cJSON **out, const void *buf, size_t len, const char *name);

/* Reads and parses a whole file (at most max_bytes; 0 = 1 GiB). */
lisa_status lisa_pickle_plain_load(cJSON **out, const char *path, size_t max_bytes);

#ifdef __cplusplus
}
#endif

#endif
