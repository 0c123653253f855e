/* loader/spm_model.c — proto2 wire-format reader for SentencePiece ModelProto (see spm_model.h).
 *
 * Wire format (docs/parity.md §1.1): each field is a varint key (field_number << 3 | wire_type);
 * wire types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; 3/4 (groups) do not occur in
 * sentencepiece_model.proto and are rejected. Protobuf semantics kept here:
 *   - fields may come in any order; unknown fields are skipped by wire type;
 *   - a known field with an unexpected wire type is treated as unknown (as C++ protobuf does);
 *   - a repeated message (`pieces`) appends one element per record; a singular message
 *     (`trainer_spec`, `normalizer_spec`) appearing twice is merged; for singular scalars and
 *     strings the last occurrence wins;
 *   - an enum value outside the closed proto2 enum is kept as an unknown field, i.e. the field
 *     keeps its previous (default) value;
 *   - int32 fields are the low 32 bits of the varint (negative values take 10 bytes).
 */
#include "loader/spm_model.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct pb_reader {
    const uint8_t *base; /* start of the whole buffer (for offsets in messages) */
    const uint8_t *p;
    const uint8_t *end;
    const char *name; /* file name for messages */
} pb_reader;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

static size_t pb_off(const pb_reader *r) { return (size_t)(r->p - r->base); }

static lisa_status pb_varint(pb_reader *r, uint64_t *v, const char *field) {
    uint64_t x = 0;
    const size_t at = pb_off(r);
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return lisa_fail(LISA_ERR_FORMAT, "%s: %s: truncated varint at byte offset %zu", r->name, field, at);
        const uint8_t b = *r->p++;
        /* The 10th byte may only carry the top bit of a 64-bit value. */
        if (i == 9 && b > 1)
            return lisa_fail(LISA_ERR_FORMAT, "%s: %s: varint longer than 64 bits at byte offset %zu", r->name, field,
                             at);
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return LISA_OK;
        }
    }
    return lisa_fail(LISA_ERR_FORMAT, "%s: %s: varint longer than 10 bytes at byte offset %zu", r->name, field, at);
}

/* Reads a key; *field_no > 0 on success. */
static lisa_status pb_key(pb_reader *r, uint32_t *field_no, int *wire, const char *msg) {
    uint64_t k;
    const size_t at = pb_off(r);
    LISA_TRY(pb_varint(r, &k, msg));
    if ((k >> 3) == 0 || (k >> 3) > 0x1fffffffu)
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: invalid field number %llu at byte offset %zu", r->name, msg,
                         (unsigned long long)(k >> 3), at);
    *field_no = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    return LISA_OK;
}

/* Reads the payload of a length-delimited field into *sub (a reader over those bytes). */
static lisa_status pb_len(pb_reader *r, pb_reader *sub, const char *field) {
    uint64_t n = 0;
    const size_t at = pb_off(r);
    LISA_TRY(pb_varint(r, &n, field));
    if (n > (uint64_t)(r->end - r->p))
        return lisa_fail(LISA_ERR_FORMAT,
                         "%s: %s: length %llu at byte offset %zu runs past the end of its message (%zu bytes left)",
                         r->name, field, (unsigned long long)n, at, (size_t)(r->end - r->p));
    sub->base = r->base;
    sub->name = r->name;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return LISA_OK;
}

static lisa_status pb_fixed(pb_reader *r, size_t nbytes, uint64_t *v, const char *field) {
    if ((size_t)(r->end - r->p) < nbytes)
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: truncated fixed%zu at byte offset %zu", r->name, field, nbytes * 8,
                         pb_off(r));
    uint64_t x = 0;
    for (size_t i = 0; i < nbytes; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += nbytes;
    *v = x;
    return LISA_OK;
}

static lisa_status pb_skip(pb_reader *r, int wire, uint32_t field_no, const char *msg) {
    char what[96];
    snprintf(what, sizeof what, "%s field %u", msg, field_no);
    uint64_t v = 0;
    pb_reader sub;
    switch (wire) {
    case WT_VARINT: return pb_varint(r, &v, what);
    case WT_I64: return pb_fixed(r, 8, &v, what);
    case WT_LEN: return pb_len(r, &sub, what);
    case WT_I32: return pb_fixed(r, 4, &v, what);
    default:
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: unsupported wire type %d at byte offset %zu", r->name, what, wire,
                         pb_off(r));
    }
}

/* ---- output buffer for strings ---------------------------------------------------------------- */

typedef struct text_buf {
    char *data;
    size_t len, cap;
} text_buf;

/* Copies bytes plus a NUL; capacity was sized so that this never overflows (each stored string
 * came from a record at least len+1 bytes long in the input, plus the defaults). */
static uint32_t text_put(text_buf *t, const uint8_t *s, size_t n) {
    LISA_ASSERT(t->len + n + 1 <= t->cap);
    const uint32_t off = (uint32_t)t->len;
    if (n) memcpy(t->data + t->len, s, n);
    t->data[t->len + n] = '\0';
    t->len += n + 1;
    return off;
}

/* ---- messages ---------------------------------------------------------------------------------- */

static lisa_status parse_piece(pb_reader *r, lisa_spm_piece *pc, text_buf *t, int32_t idx) {
    char msg[64];
    snprintf(msg, sizeof msg, "ModelProto.pieces[%d]", idx);
    pc->offset = text_put(t, NULL, 0);
    pc->len = 0;
    pc->score = 0.0f;
    pc->type = LISA_SPM_NORMAL;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        LISA_TRY(pb_key(r, &f, &w, msg));
        if (f == 1 && w == WT_LEN) {
            pb_reader s;
            LISA_TRY(pb_len(r, &s, msg));
            pc->offset = text_put(t, s.p, (size_t)(s.end - s.p));
            pc->len = (uint32_t)(s.end - s.p);
        } else if (f == 2 && w == WT_I32) {
            uint64_t v = 0;
            LISA_TRY(pb_fixed(r, 4, &v, msg));
            uint32_t u = (uint32_t)v;
            memcpy(&pc->score, &u, 4);
        } else if (f == 3 && w == WT_VARINT) {
            uint64_t v = 0;
            LISA_TRY(pb_varint(r, &v, msg));
            const int32_t ty = (int32_t)(uint32_t)v;
            if (ty >= LISA_SPM_NORMAL && ty <= LISA_SPM_BYTE) pc->type = ty; /* else: unknown enum value */
        } else {
            LISA_TRY(pb_skip(r, w, f, msg));
        }
    }
    return LISA_OK;
}

static lisa_status parse_trainer(pb_reader *r, lisa_spm_model *m, text_buf *t) {
    const char *msg = "ModelProto.trainer_spec";
    m->has_trainer_spec = true;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        LISA_TRY(pb_key(r, &f, &w, msg));
        uint64_t v = 0;
        if (w == WT_VARINT && (f == 3 || f == 4 || f == 24 || f == 25 || f == 35 || (f >= 40 && f <= 43))) {
            LISA_TRY(pb_varint(r, &v, msg));
            const int32_t i32 = (int32_t)(uint32_t)v;
            switch (f) {
            case 3:
                if (i32 >= LISA_SPM_MODEL_UNIGRAM && i32 <= LISA_SPM_MODEL_CHAR) m->model_type = i32;
                break;
            case 4: m->vocab_size = i32; break;
            case 24: m->treat_whitespace_as_suffix = v != 0; break;
            case 25: m->split_digits = v != 0; break;
            case 35: m->byte_fallback = v != 0; break;
            case 40: m->unk_id = i32; break;
            case 41: m->bos_id = i32; break;
            case 42: m->eos_id = i32; break;
            case 43: m->pad_id = i32; break;
            }
        } else if (f == 44 && w == WT_LEN) {
            pb_reader s;
            LISA_TRY(pb_len(r, &s, "ModelProto.trainer_spec.unk_surface"));
            m->unk_surface_offset = text_put(t, s.p, (size_t)(s.end - s.p));
            m->unk_surface_len = (uint32_t)(s.end - s.p);
        } else {
            LISA_TRY(pb_skip(r, w, f, msg));
        }
    }
    return LISA_OK;
}

static lisa_status parse_normalizer(pb_reader *r, lisa_spm_model *m, text_buf *t, bool denorm) {
    const char *msg = denorm ? "ModelProto.denormalizer_spec" : "ModelProto.normalizer_spec";
    if (denorm)
        m->has_denormalizer_spec = true;
    else
        m->has_normalizer_spec = true;
    while (r->p < r->end) {
        uint32_t f = 0;
        int w = 0;
        LISA_TRY(pb_key(r, &f, &w, msg));
        if (f == 1 && w == WT_LEN) {
            pb_reader s;
            LISA_TRY(pb_len(r, &s, msg));
            if (!denorm) {
                m->normalizer_name_offset = text_put(t, s.p, (size_t)(s.end - s.p));
                m->normalizer_name_len = (uint32_t)(s.end - s.p);
            }
        } else if (f == 2 && w == WT_LEN) {
            pb_reader s;
            LISA_TRY(pb_len(r, &s, msg));
            if (denorm)
                m->denormalizer_charsmap_len = (size_t)(s.end - s.p);
            else
                m->precompiled_charsmap_len = (size_t)(s.end - s.p);
        } else if (!denorm && w == WT_VARINT && f >= 3 && f <= 5) {
            uint64_t v = 0;
            LISA_TRY(pb_varint(r, &v, msg));
            if (f == 3) m->add_dummy_prefix = v != 0;
            if (f == 4) m->remove_extra_whitespaces = v != 0;
            if (f == 5) m->escape_whitespaces = v != 0;
        } else {
            LISA_TRY(pb_skip(r, w, f, msg));
        }
    }
    return LISA_OK;
}

const char *lisa_spm_piece_type_name(int32_t type) {
    switch (type) {
    case LISA_SPM_NORMAL: return "NORMAL";
    case LISA_SPM_UNKNOWN: return "UNKNOWN";
    case LISA_SPM_CONTROL: return "CONTROL";
    case LISA_SPM_USER_DEFINED: return "USER_DEFINED";
    case LISA_SPM_UNUSED: return "UNUSED";
    case LISA_SPM_BYTE: return "BYTE";
    }
    return "?";
}

void lisa_spm_model_free(lisa_spm_model *m) {
    if (!m) return;
    free(m->pieces);
    free(m->text);
    memset(m, 0, sizeof *m);
}

lisa_status lisa_spm_model_parse(lisa_spm_model *out, const void *data, size_t len, const char *name) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    if (len > LISA_SPM_MAX_FILE_BYTES)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %zu bytes exceeds the tokenizer.model limit of %u bytes", name, len,
                         (unsigned)LISA_SPM_MAX_FILE_BYTES);
    const uint8_t *bytes = (const uint8_t *)data;
    if (!bytes && len) return lisa_fail(LISA_ERR_INVALID_ARG, "%s: NULL data", name);

    /* Pass 1: validate the top-level record structure and count the pieces. */
    int64_t n_pieces = 0;
    {
        pb_reader r = {bytes, bytes, bytes + len, name};
        while (r.p < r.end) {
            uint32_t f = 0;
            int w = 0;
            LISA_TRY(pb_key(&r, &f, &w, "ModelProto"));
            if (f == 1 && w == WT_LEN) {
                pb_reader s;
                LISA_TRY(pb_len(&r, &s, "ModelProto.pieces"));
                n_pieces++;
            } else {
                LISA_TRY(pb_skip(&r, w, f, "ModelProto"));
            }
        }
    }
    if (n_pieces > LISA_SPM_MAX_PIECES)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %lld pieces exceeds the limit of %d", name, (long long)n_pieces,
                         LISA_SPM_MAX_PIECES);

    lisa_spm_model m;
    memset(&m, 0, sizeof m);
    /* proto2 defaults (sentencepiece_model.proto) */
    m.model_type = LISA_SPM_MODEL_UNIGRAM;
    m.vocab_size = 8000;
    m.unk_id = 0;
    m.bos_id = 1;
    m.eos_id = 2;
    m.pad_id = -1;
    m.add_dummy_prefix = true;
    m.remove_extra_whitespaces = true;
    m.escape_whitespaces = true;

    text_buf t = {NULL, 0, 0};
    /* Every stored string comes from a record of at least len+1 bytes (key + length + payload);
     * the per-piece empty default and the two defaults below need the extra room. */
    t.cap = len + (size_t)n_pieces + 32;
    t.data = malloc(t.cap);
    m.pieces = malloc(sizeof(lisa_spm_piece) * (size_t)(n_pieces ? n_pieces : 1));
    if (!t.data || !m.pieces) {
        free(t.data);
        free(m.pieces);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory for %lld pieces", name, (long long)n_pieces);
    }
    static const uint8_t kDefaultUnk[] = " \xe2\x81\x87 "; /* " ⁇ " (U+2047), sentencepiece kDefaultUnknownSymbol */
    m.unk_surface_offset = text_put(&t, kDefaultUnk, sizeof kDefaultUnk - 1);
    m.unk_surface_len = sizeof kDefaultUnk - 1;
    m.normalizer_name_offset = text_put(&t, NULL, 0);
    m.normalizer_name_len = 0;

    /* Pass 2: decode. */
    lisa_status st = LISA_OK;
    pb_reader r = {bytes, bytes, bytes + len, name};
    while (st == LISA_OK && r.p < r.end) {
        uint32_t f = 0;
        int w = 0;
        st = pb_key(&r, &f, &w, "ModelProto");
        if (st != LISA_OK) break;
        pb_reader s;
        if (w == WT_LEN && (f == 1 || f == 2 || f == 3 || f == 5)) {
            st = pb_len(&r, &s, "ModelProto");
            if (st != LISA_OK) break;
            if (f == 1) {
                st = parse_piece(&s, &m.pieces[m.n_pieces], &t, m.n_pieces);
                m.n_pieces++;
            } else if (f == 2) {
                st = parse_trainer(&s, &m, &t);
            } else {
                st = parse_normalizer(&s, &m, &t, f == 5);
            }
        } else {
            st = pb_skip(&r, w, f, "ModelProto");
        }
    }
    if (st != LISA_OK) {
        free(t.data);
        free(m.pieces);
        return st;
    }
    LISA_ASSERT(m.n_pieces == n_pieces);
    m.text = t.data;
    m.text_len = t.len;
    *out = m;
    return LISA_OK;
}

lisa_status lisa_spm_model_load(lisa_spm_model *out, const char *path) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat stbuf;
    if (fstat(fileno(f), &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
        fclose(f);
        return lisa_fail(LISA_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)stbuf.st_size > LISA_SPM_MAX_FILE_BYTES) {
        fclose(f);
        return lisa_fail(LISA_ERR_LIMIT, "%s: %lld bytes exceeds the tokenizer.model limit of %u bytes", path,
                         (long long)stbuf.st_size, (unsigned)LISA_SPM_MAX_FILE_BYTES);
    }
    const size_t n = (size_t)stbuf.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory reading %zu bytes", path, n);
    }
    const size_t got = fread(buf, 1, n, f);
    const int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return lisa_fail(LISA_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    lisa_status st = lisa_spm_model_parse(out, buf, n, path);
    free(buf);
    return st;
}
