/* tests/common/golden.h — reading golden tap files (tests/data/golden/ files, written by
 * tests/golden/gen_golden.py) and comparing engine tensors against them. */
#ifndef LISA_TEST_GOLDEN_H
#define LISA_TEST_GOLDEN_H

#include "loader/checkpoint.h"
#include "models/graph.h"

#include <stdbool.h>

#define GOLDEN_DIR LISA_TESTDATA_DIR "/golden"
#define TINY_LISA_DIR LISA_TESTDATA_DIR "/tiny-lisa"
#define TINY_CLIP_DIR LISA_TESTDATA_DIR "/tiny-clip"
#define IMAGES_DIR LISA_TESTDATA_DIR "/images"

/* Opens GOLDEN_DIR/<name>.safetensors (aborts the test on failure). */
lisa_checkpoint *golden_open(const char *name);
/* A golden tensor (aborts if absent). */
lisa_tensor golden_get(const lisa_checkpoint *g, const char *name);
bool golden_has(const lisa_checkpoint *g, const char *name);
/* Metadata integer (aborts if absent). */
long golden_meta_int(const lisa_checkpoint *g, const char *key);

/* Compares `got` (any shape with the same element count; a leading batch dim of 1 is fine: taps
 * drop it) against golden tensor `name`: |got-ref| <= atol_rel*max|ref| + rtol*|ref|. Prints the
 * first mismatches and the max error; returns false on mismatch. */
bool golden_check(const lisa_checkpoint *g, const char *name, const lisa_tensor *got, double rtol, double atol_rel);

/* Masks: got logits vs the golden binary mask; a pixel may differ only where |golden logit| <
 * `near` (when the golden file stores full logits) — else counts must stay within the file's
 * recorded near-zero count. Returns the number of disallowed mismatches (0 = pass). */
long golden_mask_mismatches(const lisa_checkpoint *g, const lisa_tensor *logits, double near);

/* Sub-samples rows and columns [.., ::s, ::s] of a host F32 tensor [N, H, W] into a new owner. */
lisa_tensor golden_subsample(const lisa_tensor *x, int s);

/* A tap callback context: compares each tap named in `names` (NULL-terminated) against the
 * golden file and counts failures. */
typedef struct golden_taps {
    const lisa_checkpoint *g;
    double rtol, atol_rel;
    int n_checked, n_failed;
} golden_taps;
void golden_tap_cb(void *ctx, const char *name, const lisa_tensor *t);

/* Runs fn(g, ctx) on `be` twice: a counting pass, then for real with an arena of the measured
 * size and the given tap (NULL for none). Returns the graph status. */
lisa_status golden_run_graph(lisa_backend *be, lisa_graph_fn fn, void *ctx, void (*tap)(void *, const char *, const lisa_tensor *),
                             void *tap_ctx);

#endif
