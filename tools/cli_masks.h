/* tools/cli_masks.h — mask outputs shared by `lisa segment`, `lisa sam` and `lisa annotate`: file
 * naming, PNG writing with clean-up on failure. The pixel work (gray mask, overlay, PNG) and the
 * JSON form of results are the library's (lisa_result_write_mask_png / _overlay_png,
 * lisa_result_to_json in lisa.h). */
#ifndef LISA_TOOLS_CLI_MASKS_H
#define LISA_TOOLS_CLI_MASKS_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_PATH_MAX 4096

/* Mask i of n goes to `path` for i = 0 and to "<stem>_<i><ext>" for i >= 1 (mask.png, mask_1.png,
 * ...; ext is everything from the last '.' of the file name, "" if none). False if too long. */
bool cli_numbered_path(char *out, size_t cap, const char *path, int32_t i);

/* Checks that the directory a file would be written to exists (exit-1 message on stderr if not). */
bool cli_output_dir_ok(const char *cmd, const char *path);

/* Paths written in this run, so that a failure can remove them (never a partial output set). */
typedef struct cli_written {
    char (*paths)[CLI_PATH_MAX];
    int32_t n, cap;
} cli_written;

void cli_written_remove_all(cli_written *w);
void cli_written_free(cli_written *w);

/* Writes mask i of r as a 0/255 gray PNG to cli_numbered_path(out, i) when out is set, and
 * chat.py's red overlay on rgb [h, w, 3] (the request's image) to cli_numbered_path(overlay, i)
 * when overlay and rgb are set. The written paths are appended to w and, when the pointers are
 * given, copied to mask_path / overlay_path ("" when not written). */
lisa_status cli_write_mask(cli_written *w, const char *out, const char *overlay, const lisa_result *r, int32_t i,
                           const uint8_t *rgb, char *mask_path, char *overlay_path);

#endif
