/* jobs/chat.h — the loop behind `lisa chat` (issue #17): LISA's chat.py with the model loaded
 * once. Each turn asks for a query and an image path (empty: the image of the turn before), runs
 * the query on the engine, prints the answer and writes the masks and overlays. The image is
 * decoded once per new path and submitted as a lisa_image, so further queries on it reuse its
 * encoding and its KV prefix (runtime/image_cache.h, runtime/prefix_tree.h). End of input (Ctrl-D)
 * ends the conversation.
 *
 * Output, per turn (to `out`): the prompts "Please input your prompt: " and "Please input the image
 * path: " (as chat.py's input() calls), then
 *     answer: <the answer>
 *     [<ms> ms, <n> mask(s); image encoded | image reused]
 *     <out_dir>/<stem>_q<turn>_mask_<i>.png has been saved.
 *     <out_dir>/<stem>_q<turn>_masked_img_<i>.png has been saved.
 * where <stem> is the image file name without its extension and <turn> counts the queries of the
 * session from 0 (chat.py overwrites <stem>_mask_<i>.jpg every turn; these names keep every turn).
 * Masks are 0/255 gray PNGs, overlays chat.py's 50 % red tint. A missing or unreadable image, an
 * empty query or a failed request prints a notice (to `err`) and the conversation goes on.
 *
 * Ownership: lisa_chat_run borrows everything in the params; it owns the current image (a
 * lisa_image and its decoded pixels for the overlays) for the duration of the call.
 */
#ifndef LISA_JOBS_CHAT_H
#define LISA_JOBS_CHAT_H

#include "lisa.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lisa_chat_params {
    lisa_engine *engine;  /* borrowed */
    FILE *in, *out, *err; /* the conversation, and notices */
    const char *out_dir;  /* masks and overlays go there; NULL: not written */
    lisa_segment_params seg;
} lisa_chat_params;

typedef struct lisa_chat_stats {
    int64_t queries; /* answered */
    int64_t failed;  /* turns that printed a notice instead of an answer */
    int64_t images;  /* distinct images opened */
    int64_t encoded; /* answered queries whose image was encoded for them (the rest reused it) */
    int64_t files;   /* masks and overlays written */
} lisa_chat_stats;

/* Runs the conversation until end of input. Only failures writing the outputs (and out of memory)
 * end it early, with their status. */
lisa_status lisa_chat_run(const lisa_chat_params *p, lisa_chat_stats *st);

#ifdef __cplusplus
}
#endif

#endif
