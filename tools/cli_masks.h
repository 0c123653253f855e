/* tools/cli_masks.h — mask outputs shared by `lisa segment` and `lisa sam`: file naming, PNG
 * writing with clean-up on failure. The pixel work (gray mask, overlay, RLE) and the JSON form of
 * results and masks are the library's (core/mask.h, loader/image.h, runtime/result_json.h). */
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

/* Writes mask i (0/1 bytes [h, w]) as a 0/255 gray PNG to cli_numbered_path(out, i) when out is
 * set, and chat.py's red overlay on rgb [h, w, 3] to cli_numbered_path(overlay, i) when overlay is
 * set. The written paths are appended to w and, when the pointers are given, copied to
 * mask_path / overlay_path ("" when not written). */
lisa_status cli_write_mask(cli_written *w, const char *out, const char *overlay, const uint8_t *rgb,
                           const uint8_t *mask, int32_t h, int32_t w_px, int32_t i, char *mask_path,
                           char *overlay_path);

#endif
