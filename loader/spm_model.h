/* loader/spm_model.h — reader for SentencePiece `tokenizer.model` files (a protobuf ModelProto).
 *
 * A small hand-written proto2 wire-format reader (no protobuf dependency). It reads the fields the
 * LLaMA/LISA tokenizer needs (docs/parity.md §1.1 table) and skips every other field by its wire type;
 * absent fields take their proto2 defaults (remove_extra_whitespaces, add_dummy_prefix and
 * escape_whitespaces default to true, a piece's type defaults to NORMAL = 1, model_type to
 * UNIGRAM = 1). Schema: google/sentencepiece src/sentencepiece_model.proto.
 *
 * The reader only decodes: it does not check that the model is usable (unique pieces, one
 * <unk>, 256 byte pieces ...); models/tokenizer.c does that when it builds a tokenizer.
 * Every malformed input (truncated varint or record, length past the end, group wire types,
 * field number 0) returns LISA_ERR_FORMAT naming the field and byte offset.
 */
#ifndef LISA_LOADER_SPM_MODEL_H
#define LISA_LOADER_SPM_MODEL_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest tokenizer.model accepted (LLaMA's is 500 KB; the largest public SentencePiece models
 * are a few MB). Bigger files fail with LISA_ERR_LIMIT. */
#define LISA_SPM_MAX_FILE_BYTES (64u << 20)
/* Largest number of pieces accepted (LISA_ERR_LIMIT beyond). */
#define LISA_SPM_MAX_PIECES (1 << 22)

/* ModelProto.SentencePiece.Type */
typedef enum lisa_spm_piece_type {
    LISA_SPM_NORMAL = 1,
    LISA_SPM_UNKNOWN = 2,
    LISA_SPM_CONTROL = 3,
    LISA_SPM_USER_DEFINED = 4,
    LISA_SPM_UNUSED = 5,
    LISA_SPM_BYTE = 6,
} lisa_spm_piece_type;

/* TrainerSpec.ModelType */
typedef enum lisa_spm_model_type {
    LISA_SPM_MODEL_UNIGRAM = 1,
    LISA_SPM_MODEL_BPE = 2,
    LISA_SPM_MODEL_WORD = 3,
    LISA_SPM_MODEL_CHAR = 4,
} lisa_spm_model_type;

typedef struct lisa_spm_piece {
    uint32_t offset; /* piece bytes start at model->text + offset (NUL-terminated there) */
    uint32_t len;    /* byte length; a piece may contain NUL bytes, so use len, not strlen */
    float score;     /* default 0.0 */
    int32_t type;    /* lisa_spm_piece_type; default LISA_SPM_NORMAL */
} lisa_spm_piece;

/* The decoded model. Owns `text` (all piece strings, each NUL-terminated, plus unk_surface and
 * the normalizer name) and `pieces`; both live until lisa_spm_model_free. */
typedef struct lisa_spm_model {
    lisa_spm_piece *pieces; /* [n_pieces], in id order (id = index) */
    int32_t n_pieces;
    char *text;
    size_t text_len;

    /* TrainerSpec (field numbers in parentheses) */
    bool has_trainer_spec;
    int32_t model_type;                     /* (3)  default UNIGRAM */
    int32_t vocab_size;                     /* (4)  default 8000 */
    bool split_digits;                      /* (25) default false; informational (training only) */
    bool treat_whitespace_as_suffix;        /* (24) default false */
    bool byte_fallback;                     /* (35) default false */
    int32_t unk_id, bos_id, eos_id, pad_id; /* (40..43) defaults 0, 1, 2, -1 */
    uint32_t unk_surface_offset;            /* (44) default " \u2047 " ; text + offset, NUL-terminated */
    uint32_t unk_surface_len;

    /* NormalizerSpec (ModelProto field 3) */
    bool has_normalizer_spec;
    uint32_t normalizer_name_offset; /* (1) default "" */
    uint32_t normalizer_name_len;
    size_t precompiled_charsmap_len; /* (2) bytes; only the length is kept */
    bool add_dummy_prefix;           /* (3) default true */
    bool remove_extra_whitespaces;   /* (4) default true */
    bool escape_whitespaces;         /* (5) default true */

    /* ModelProto field 5 (denormalizer_spec): only whether it is present with a charsmap */
    bool has_denormalizer_spec;
    size_t denormalizer_charsmap_len;
} lisa_spm_model;

/* Decodes `data[0..len)`. `name` (a path or "<memory>") is used in error messages. On failure
 * *out is left zeroed (nothing to free). */
lisa_status lisa_spm_model_parse(lisa_spm_model *out, const void *data, size_t len, const char *name);

/* Reads and decodes the file at `path`. */
lisa_status lisa_spm_model_load(lisa_spm_model *out, const char *path);

void lisa_spm_model_free(lisa_spm_model *m);

static inline const char *lisa_spm_piece_str(const lisa_spm_model *m, int32_t id) {
    return m->text + m->pieces[id].offset;
}

/* Static name of a piece type ("NORMAL", ..., "?" for out-of-range). */
const char *lisa_spm_piece_type_name(int32_t type);

#ifdef __cplusplus
}
#endif

#endif
