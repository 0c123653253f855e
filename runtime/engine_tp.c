/* runtime/engine_tp.c — the TP plan's wire format (runtime/engine_tp.h): a fixed header (kind,
 * sizes, args), then for steps one payload with the arrays back to back. */
#include "runtime/engine_tp.h"

#include "core/error.h"

#include <string.h>

enum { H_KIND, H_BATCH, H_ROWS, H_TEXT, H_IDX, H_COPY, H_ARGS, HDR = H_ARGS + 6 };
_Static_assert(HDR == LISA_TP_HEADER_INTS, "engine_tp.h LISA_TP_HEADER_INTS");

size_t lisa_tp_plan_buf_len(int32_t cap_seqs, int32_t cap_rows, int32_t cap_idx, int32_t cap_copies) {
    /* qo, kvp: seqs+1; kvl: seqs; seq: 4*seqs; pos, slots, ids: rows; idx; copies: 2*copies */
    return (size_t)HDR + 7 * ((size_t)cap_seqs + 1) + 3 * (size_t)cap_rows + (size_t)cap_idx + 2 * (size_t)cap_copies;
}

static bool is_step(int32_t kind) {
    return kind == LISA_TP_PREFIX || kind == LISA_TP_PREFILL || kind == LISA_TP_DECODE;
}

lisa_status lisa_tp_plan_bcast(lisa_comm *c, lisa_tp_plan *p) {
    int32_t *h = p->buf;
    if (c->rank == 0) {
        h[H_KIND] = p->kind, h[H_BATCH] = p->n_batch, h[H_ROWS] = p->n_rows, h[H_TEXT] = p->n_text;
        h[H_IDX] = is_step(p->kind) ? p->kvp[p->n_batch] : 0;
        h[H_COPY] = p->kind == LISA_TP_PREFILL ? p->n_copy : 0;
        memcpy(h + H_ARGS, p->args, sizeof p->args);
    }
    LISA_TRY(c->broadcast(c, h, HDR * sizeof(int32_t), 0));
    p->kind = h[H_KIND], p->n_batch = h[H_BATCH], p->n_rows = h[H_ROWS], p->n_text = h[H_TEXT];
    memcpy(p->args, h + H_ARGS, sizeof p->args);
    if (!is_step(p->kind)) return LISA_OK;
    const int32_t B = p->n_batch, R = p->n_rows, n_idx = h[H_IDX], n_copy = h[H_COPY];
    if (B < 1 || B > p->cap_seqs || R < 1 || R > p->cap_rows || p->n_text < 0 || p->n_text > p->cap_rows || n_idx < 0 ||
        n_idx > p->cap_idx || n_copy < 0 || n_copy > p->cap_copies)
        return lisa_fail(LISA_ERR_INTERNAL,
                         "TP plan of %d sequences, %d rows, %d page ids, %d page copies exceeds this rank's buffers "
                         "(%d, %d, %d, %d)",
                         B, R, n_idx, n_copy, p->cap_seqs, p->cap_rows, p->cap_idx, p->cap_copies);
    p->n_copy = n_copy;
    int32_t *ptr[9] = {p->qo, p->kvp, p->kvl, p->pos, p->slots, p->ids, p->seq, p->idx, p->copies};
    const int32_t n[9] = {B + 1, B + 1, B, R, R, p->n_text, p->kind == LISA_TP_PREFILL ? 4 * B : 0, n_idx, 2 * n_copy};
    int32_t *body = h + HDR;
    size_t len = 0;
    for (int i = 0; i < 9; i++) {
        if (c->rank == 0 && n[i]) memcpy(body + len, ptr[i], (size_t)n[i] * sizeof(int32_t));
        len += (size_t)n[i];
    }
    LISA_TRY(c->broadcast(c, body, len * sizeof(int32_t), 0));
    if (c->rank != 0)
        for (size_t i = 0, off = 0; i < 9; off += (size_t)n[i], i++)
            if (n[i]) memcpy(ptr[i], body + off, (size_t)n[i] * sizeof(int32_t));
    return LISA_OK;
}

lisa_status lisa_tp_send(lisa_comm *c, int32_t kind, const int32_t args[6]) {
    int32_t h[HDR] = {0};
    h[H_KIND] = kind;
    if (args) memcpy(h + H_ARGS, args, 6 * sizeof(int32_t));
    return c->broadcast(c, h, sizeof h, 0);
}
