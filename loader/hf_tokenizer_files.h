/* loader/hf_tokenizer_files.h — the JSON side of a HF checkpoint's slow LlamaTokenizer:
 * tokenizer_config.json, special_tokens_map.json and added_tokens.json (docs/parity.md §1.5, §1.7).
 *
 * Reads the three files (each optional) and resolves them the way transformers 4.31
 * `PreTrainedTokenizerBase._from_pretrained` + `LlamaTokenizer.__init__` do:
 *   1. defaults: bos "<s>", eos "</s>", unk "<unk>" as AddedToken(lstrip=False, rstrip=False),
 *      pad unset; legacy, add_bos_token true; add_eos_token, clean_up_tokenization_spaces false;
 *   2. tokenizer_config.json (init kwargs): special tokens as strings (bos/eos/unk/pad strings are
 *      wrapped as AddedToken without stripping by LlamaTokenizer.__init__; sep/cls/mask stay plain)
 *      or {"__type": "AddedToken", ...} dicts; `legacy`, `add_bos_token`, `add_eos_token`,
 *      `clean_up_tokenization_spaces` by Python truthiness;
 *   3. special_tokens_map.json overrides each attribute it names: a dict becomes an AddedToken
 *      (its lstrip/rstrip apply), a string stays a plain string (then 4.31 strips whitespace on
 *      both sides of it when encoding), null unsets it;
 *   4. added_tokens.json {token: id}, sorted by id (stable, JSON order on ties; a repeated key
 *      keeps its first position and last value, like a Python dict).
 * Checking the ids against the vocabulary (consecutive from the SentencePiece size) is done by
 * models/tokenizer.c, which knows the vocabulary.
 */
#ifndef LISA_LOADER_HF_TOKENIZER_FILES_H
#define LISA_LOADER_HF_TOKENIZER_FILES_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest JSON file accepted (LISA_ERR_LIMIT beyond); real ones are < 1 KB. */
#define LISA_HF_JSON_MAX_BYTES (16u << 20)
/* Most entries in added_tokens.json / additional_special_tokens (LISA_ERR_LIMIT beyond; LISA
 * checkpoints have 3-4). Keeps the quadratic bookkeeping of the HF emulation cheap. */
#define LISA_HF_MAX_ADDED_TOKENS 4096

/* transformers SPECIAL_TOKENS_ATTRIBUTES order, minus additional_special_tokens (kept apart). */
typedef enum lisa_hf_special_attr {
    LISA_HF_BOS = 0,
    LISA_HF_EOS,
    LISA_HF_UNK,
    LISA_HF_SEP,
    LISA_HF_PAD,
    LISA_HF_CLS,
    LISA_HF_MASK,
    LISA_HF_N_ATTRS
} lisa_hf_special_attr;

typedef struct lisa_hf_token {
    char *content;    /* NULL: unset (None). Owned. */
    bool added_token; /* an AddedToken object (own lstrip/rstrip) rather than a plain str */
    bool lstrip, rstrip;
} lisa_hf_token;

typedef struct lisa_hf_added {
    char *content; /* owned */
    int64_t id;
} lisa_hf_added;

/* Everything owned (all strings and arrays) until lisa_hf_tokenizer_files_free. */
typedef struct lisa_hf_tokenizer_files {
    lisa_hf_token attr[LISA_HF_N_ATTRS];
    lisa_hf_token *additional; /* additional_special_tokens */
    int32_t n_additional;
    lisa_hf_added *added; /* added_tokens.json, sorted by id */
    int32_t n_added;
    bool legacy;
    bool add_bos_token;
    bool add_eos_token;
    bool clean_up_tokenization_spaces;
    bool has_tokenizer_config, has_special_tokens_map, has_added_tokens; /* which files existed */
} lisa_hf_tokenizer_files;

/* Reads dir/{tokenizer_config,special_tokens_map,added_tokens}.json; a missing file keeps the
 * defaults; dir == NULL gives the defaults only. Malformed JSON or a value of the wrong type is
 * LISA_ERR_FORMAT naming the file and key; a tokenizer_class other than LlamaTokenizer(Fast) is
 * LISA_ERR_UNSUPPORTED. */
lisa_status lisa_hf_tokenizer_files_load(lisa_hf_tokenizer_files *out, const char *dir);

void lisa_hf_tokenizer_files_free(lisa_hf_tokenizer_files *f);

/* Static attribute name ("bos_token", ...). */
const char *lisa_hf_attr_name(lisa_hf_special_attr a);

#ifdef __cplusplus
}
#endif

#endif
