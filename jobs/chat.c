/* jobs/chat.c — see chat.h. ref: dvlab-research/LISA chat.py (the input loop, the saved files). */
#include "jobs/chat.h"

#include "core/error.h"
#include "core/mask.h"
#include "loader/image.h"

#include <stdlib.h>
#include <string.h>

/* One line of input without its line ending into *buf (grown); false at end of input. */
static bool read_line(FILE *in, char **buf, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = fgetc(in)) != EOF && c != '\n') {
        if (n + 2 > *cap) {
            const size_t nc = *cap ? *cap * 2 : 256;
            char *nb = realloc(*buf, nc);
            if (!nb) return false;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return false;
    if (!*buf && !(*buf = malloc(*cap = 256))) return false;
    while (n > 0 && ((*buf)[n - 1] == '\r' || (*buf)[n - 1] == ' ' || (*buf)[n - 1] == '\t'))
        n--;
    (*buf)[n] = '\0';
    return true;
}

/* the image file name without directories and extension */
static void stem_of(char *out, size_t cap, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

/* The current image: its handle (submitted with every query) and its pixels (for the overlays). */
typedef struct chat_image {
    lisa_image *img;
    lisa_bitmap rgb;
    char stem[256];
} chat_image;

static void image_clear(chat_image *ci) {
    lisa_image_free(ci->img);
    lisa_bitmap_free(&ci->rgb);
    memset(ci, 0, sizeof *ci);
}

static lisa_status write_outputs(const lisa_chat_params *p, lisa_chat_stats *st, const chat_image *ci,
                                 const lisa_result *r, int64_t turn) {
    lisa_bitmap pic = {0};
    lisa_status s = LISA_OK;
    for (int32_t i = 0; i < lisa_result_n_masks(r) && s == LISA_OK; i++) {
        int32_t h, w;
        const uint8_t *m = lisa_result_mask(r, i, &h, &w);
        char path[4200];
        for (int kind = 0; kind < 2 && s == LISA_OK; kind++) {
            snprintf(path, sizeof path, "%s/%s_q%lld_%s_%d.png", p->out_dir, ci->stem, (long long)turn,
                     kind ? "masked_img" : "mask", (int)i);
            s = lisa_bitmap_alloc(&pic, h, w, kind ? 3 : 1);
            if (s != LISA_OK) break;
            if (kind)
                lisa_mask_overlay_red(pic.data, ci->rgb.data, m, h, w);
            else
                lisa_mask_to_gray(pic.data, m, h, w, 255);
            s = lisa_image_write_png(path, &pic);
            lisa_bitmap_free(&pic);
            if (s == LISA_OK) {
                fprintf(p->out, "%s has been saved.\n", path);
                st->files++;
            }
        }
    }
    return s;
}

lisa_status lisa_chat_run(const lisa_chat_params *p, lisa_chat_stats *st) {
    memset(st, 0, sizeof *st);
    if (!p->engine || !p->in || !p->out || !p->err)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_chat_run: engine, input and outputs needed");
    chat_image cur = {0};
    char *query = NULL, *path = NULL;
    size_t qcap = 0, pcap = 0;
    lisa_status s = LISA_OK;
    for (int64_t turn = 0; s == LISA_OK;) {
        fputs("Please input your prompt: ", p->out);
        fflush(p->out);
        if (!read_line(p->in, &query, &qcap)) break;
        fputs("Please input the image path: ", p->out);
        fflush(p->out);
        if (!read_line(p->in, &path, &pcap)) break;
        const char *pp = path + strspn(path, " \t");
        if (*pp) { /* a new image: decoded once, kept for the next turns */
            chat_image next = {0};
            lisa_image_limits lim = lisa_image_default_limits();
            if (p->seg.max_image_pixels > 0) lim.max_pixels = p->seg.max_image_pixels;
            s = lisa_image_load(&next.rgb, pp, &lim);
            if (s == LISA_OK) s = lisa_image_create_rgb(next.rgb.data, next.rgb.h, next.rgb.w, &next.img);
            if (s == LISA_ERR_OOM) break;
            if (s != LISA_OK) {
                /* chat.py: "File not found in {}" and the loop goes on */
                fprintf(p->err, "File not found in %s (%s)\n", pp, lisa_last_error());
                image_clear(&next);
                st->failed++;
                s = LISA_OK;
                continue;
            }
            stem_of(next.stem, sizeof next.stem, pp);
            image_clear(&cur);
            cur = next;
            st->images++;
        } else if (!cur.img) {
            fprintf(p->err, "no image yet: give an image path (an empty path reuses the previous image)\n");
            st->failed++;
            continue;
        }
        lisa_request rq = lisa_request_default();
        rq.image = cur.img;
        rq.query = query;
        rq.params = p->seg;
        uint64_t id = 0;
        lisa_result *r = NULL;
        s = lisa_engine_submit(p->engine, &rq, &id);
        if (s == LISA_OK) s = lisa_engine_wait(p->engine, id, &r);
        if (s == LISA_OK && lisa_result_status(r) != LISA_OK) {
            fprintf(p->err, "%s: %s\n", lisa_status_name(lisa_result_status(r)), lisa_result_error(r));
            st->failed++;
        } else if (s == LISA_OK) {
            const lisa_timings t = lisa_result_timings(r);
            const bool encoded = t.sam_encoder_ms > 0;
            fprintf(p->out, "answer: %s\n[%.0f ms, %d mask%s; image %s]\n", lisa_result_answer(r), t.total_ms,
                    (int)lisa_result_n_masks(r), lisa_result_n_masks(r) == 1 ? "" : "s",
                    encoded ? "encoded" : "reused");
            st->queries++;
            st->encoded += encoded;
            if (p->out_dir) s = write_outputs(p, st, &cur, r, turn);
            turn++;
        } else if (s != LISA_ERR_OOM) { /* refused at submission (e.g. an over-long query): next turn */
            fprintf(p->err, "%s: %s\n", lisa_status_name(s), lisa_last_error());
            st->failed++;
            s = LISA_OK;
        }
        lisa_result_free(r);
        fflush(p->out);
    }
    if (s == LISA_OK) fputc('\n', p->out); /* after the last prompt */
    image_clear(&cur);
    free(query);
    free(path);
    return s;
}
