/* models/tokenizer.h — the LLaMA/LISA tokenizer, id-exact with transformers 4.31's slow
 * LlamaTokenizer over sentencepiece 0.1.97-0.1.99 (spec: docs/parity.md §1, docs/inference.md §3).
 *
 * Encode = PreTrainedTokenizer.tokenize (split out added/special tokens with HF's Trie, strip
 * whitespace next to plain added tokens, encode each text segment with SentencePiece: identity
 * normalization + dummy prefix, BPE by piece score with leftmost ties, byte fallback) + BOS/EOS.
 * Decode = PreTrainedTokenizer._decode + LlamaTokenizer.convert_tokens_to_string + sp Decode.
 *
 * Thread safety: a loaded tokenizer is immutable; every function taking a const tokenizer may be
 * called from several threads at once. Encode allocates scratch proportional to the text for the
 * duration of the call (a few allocations per call, none per token); decode and the stream never
 * allocate.
 *
 * Limits: texts longer than LISA_TOKENIZER_MAX_TEXT_BYTES are rejected with LISA_ERR_LIMIT.
 *
 * Emulated as transformers 4.31 does it, quirks included: the Trie.split port keeps HF's
 * lookahead exactly (leftmost start, longest match); whitespace is Python's str.strip() set;
 * tokenizer_config.json flags use Python truthiness; added_tokens.json is added in batches by
 * specialness like _from_pretrained (so ids follow HF even for odd files), then
 * sanitize_special_tokens; legacy=False rewrites "▁" and strips the first piece's "▁" (a stripped
 * piece missing from the vocabulary becomes <unk>, as in 4.31).
 *
 * Not supported (LISA_ERR_UNSUPPORTED at load; LLaMA uses none of them): non-BPE models, a
 * precompiled_charsmap (NFKC), USER_DEFINED or UNUSED pieces, treat_whitespace_as_suffix, a
 * denormalizer. self_test_data in the model is not run.
 */
#ifndef LISA_MODELS_TOKENIZER_H
#define LISA_MODELS_TOKENIZER_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest text accepted by encode (bytes). A LISA prompt is ~1-2 KB; this bounds the encode
 * scratch (a few tens of bytes per input byte, touched only as far as used). */
#define LISA_TOKENIZER_MAX_TEXT_BYTES (4u << 20)

/* LLaVA's IMAGE_TOKEN_INDEX: the placeholder tokenizer_image_token puts where "<image>" was. */
#define LISA_IMAGE_TOKEN_INDEX (-200)

typedef struct lisa_tokenizer lisa_tokenizer;

typedef struct lisa_tokenizer_params {
    const char *sp_model_path; /* NULL: <dir>/tokenizer.model */
    int8_t legacy;             /* -1: from tokenizer_config.json (default true); 0/1: override */
    int8_t add_bos_token;      /* -1: from tokenizer_config.json (default true); 0/1: override */
    int8_t add_eos_token;      /* -1: from tokenizer_config.json (default false); 0/1: override */
} lisa_tokenizer_params;

lisa_tokenizer_params lisa_tokenizer_default_params(void);

/* Loads a checkpoint's tokenizer: dir/tokenizer.model plus the optional dir/added_tokens.json,
 * dir/special_tokens_map.json and dir/tokenizer_config.json (resolved as 4.31's
 * AutoTokenizer.from_pretrained(dir, use_fast=False) does). */
lisa_status lisa_tokenizer_load(lisa_tokenizer **out, const char *dir);

/* Same with parameters. dir may be NULL when p->sp_model_path is set: then no JSON files are read
 * (a bare LlamaTokenizer(vocab_file) with the given overrides). */
lisa_status lisa_tokenizer_load_ex(lisa_tokenizer **out, const char *dir, const lisa_tokenizer_params *p);

/* Same with the tokenizer.model bytes in memory (copied; p->sp_model_path is ignored); dir may be
 * NULL. For tests, fuzzing and embedders. */
lisa_status lisa_tokenizer_load_mem(lisa_tokenizer **out, const void *model, size_t model_len, const char *dir,
                                    const lisa_tokenizer_params *p);

void lisa_tokenizer_free(lisa_tokenizer *tok);

/* len(tokenizer): SentencePiece pieces + added tokens. Valid ids are [0, vocab_size). */
int32_t lisa_tokenizer_vocab_size(const lisa_tokenizer *tok);
/* Number of SentencePiece pieces (ids below this come from tokenizer.model). */
int32_t lisa_tokenizer_n_pieces(const lisa_tokenizer *tok);
int32_t lisa_tokenizer_bos_id(const lisa_tokenizer *tok); /* -1 if bos_token is unset */
int32_t lisa_tokenizer_eos_id(const lisa_tokenizer *tok); /* -1 if eos_token is unset */
int32_t lisa_tokenizer_unk_id(const lisa_tokenizer *tok);
bool lisa_tokenizer_legacy(const lisa_tokenizer *tok);

/* convert_ids_to_tokens for one id: the piece or added-token string (not NUL-safe: use *len),
 * or NULL if id is out of range. Lives as long as the tokenizer. */
const char *lisa_tokenizer_id_to_piece(const lisa_tokenizer *tok, int32_t id, size_t *len);

/* Exact lookup of a token string: an added token's id, else the SentencePiece piece's id;
 * -1 if neither (no <unk> fallback). */
int32_t lisa_tokenizer_piece_to_id(const lisa_tokenizer *tok, const char *piece);

/* LISA's rule for special ids (chat.py: `tokenizer("[SEG]", add_special_tokens=False).input_ids[0]`):
 * the first id of encode(text) without BOS/EOS; -1 if that encoding is empty or fails. Callers
 * should also check it against lisa_tokenizer_piece_to_id (LISA issue #55: a missing [SEG] gives
 * the id of "▁" instead). */
int32_t lisa_tokenizer_token_id(const lisa_tokenizer *tok, const char *text);

/* True for the ids that skip_special_tokens drops (ids of bos/eos/unk/pad/... tokens). */
bool lisa_tokenizer_is_special(const lisa_tokenizer *tok, int32_t id);

/* tokenizer(text, add_special_tokens=add_special).input_ids. Writes up to cap ids; *n is the full
 * count. If cap < *n: LISA_ERR_LIMIT ("need N ids") and ids holds the first cap. ids may be NULL
 * when cap is 0 (to size a buffer). Invalid UTF-8 is accepted: each bad byte is treated as
 * U+FFFD by SentencePiece (Python callers cannot produce it). */
lisa_status lisa_tokenizer_encode(const lisa_tokenizer *tok, const char *text, size_t len, bool add_special,
                                  int32_t *ids, int32_t cap, int32_t *n);

/* LLaVA mm_utils.tokenizer_image_token(prompt): split on the literal "<image>", encode each chunk
 * with BOS, keep the first BOS and put LISA_IMAGE_TOKEN_INDEX between chunks. Same buffer
 * contract as lisa_tokenizer_encode. */
lisa_status lisa_tokenizer_encode_image_prompt(const lisa_tokenizer *tok, const char *prompt, size_t len, int32_t *ids,
                                               int32_t cap, int32_t *n);

/* tokenizer.decode(ids, skip_special_tokens). Writes the UTF-8 text and a NUL into buf; *len is
 * the text length. If cap < *len + 1: LISA_ERR_LIMIT and buf holds a truncated prefix (still
 * NUL-terminated when cap > 0). An id outside [0, vocab_size) is LISA_ERR_INVALID_ARG (filter
 * LISA_IMAGE_TOKEN_INDEX first, as chat.py does). */
lisa_status lisa_tokenizer_decode(const lisa_tokenizer *tok, const int32_t *ids, int32_t n, bool skip_special,
                                  char *buf, size_t cap, size_t *len);

/* chat.py's cleanup of the decoded answer: .replace("\n", "").replace("  ", " ") (one
 * left-to-right pass each, like Python). In place; returns the new length and NUL-terminates. */
size_t lisa_tokenizer_chat_cleanup(char *text, size_t len);

/* The chat.py prompt for one query (conv_llava_v1, separator style TWO):
 *   "<system> USER: " + msg + " ASSISTANT:"  with msg = "<image>\n" + query, and when
 *   use_mm_start_end every "<image>" in msg (the query's too) replaced by
 *   "<im_start><image><im_end>". Writes it NUL-terminated; *len (may be NULL) gets its length.
 *   If cap is too small: LISA_ERR_LIMIT and *len is the length needed. */
lisa_status lisa_prompt_llava_v1(char *buf, size_t cap, const char *query, bool use_mm_start_end, size_t *len);

/* ---- streaming decode ---------------------------------------------------------------------------
 * For a server emitting text while ids are generated: push one id at a time, get the newly final
 * UTF-8 text. No allocation; O(piece length) per id. Guarantee: the concatenation of every
 * chunk from push() and finish() equals lisa_tokenizer_decode(all ids, skip_special), except in
 * the one case below. Choices:
 *   - leading-space rule: exact (sp strips the "▁" of the first piece of each stretch; that
 *     decision only needs the pieces already seen);
 *   - byte pieces: an incomplete UTF-8 sequence (at most 3 bytes) is held back until it completes,
 *     becomes invalid (then U+FFFD per bad byte, like sp), or a non-byte piece / finish() ends it;
 *   - the exception: with skip_special == false, HF inserts one " " *before* a stretch of text
 *     that is followed by a special piece (<s>, </s>, <unk>) — it cannot be known while the
 *     stretch streams, so the stream emits that " " just before the special token's text instead
 *     (same characters, one position later). With skip_special == true (what a server shows)
 *     the stream is exact.
 * The tokenizer must outlive the stream. Streams for tokenizers with
 * clean_up_tokenization_spaces are LISA_ERR_UNSUPPORTED (the cleanup is not incremental). */
typedef struct lisa_tokenizer_stream {
    const lisa_tokenizer *tok; /* borrowed */
    bool skip_special;
    int32_t n_subtexts; /* HF sub_texts emitted (joined by " ") */
    bool run_open;      /* inside a run of SentencePiece ids (between added tokens) */
    int32_t run_index;  /* index inside the run (convert_tokens_to_string's i) */
    bool prev_special;  /* previous token of the run was a special piece */
    bool is_bos_ws;     /* sp Decode state of the current stretch */
    bool bos_ws_seen;
    bool text_empty;
    uint8_t pending[4]; /* held-back bytes of an incomplete UTF-8 sequence */
    int32_t n_pending;
} lisa_tokenizer_stream;

lisa_status lisa_tokenizer_stream_init(lisa_tokenizer_stream *s, const lisa_tokenizer *tok, bool skip_special);

/* Largest chunk one push/finish can produce (bytes, without NUL). Size `out` with +1. */
size_t lisa_tokenizer_stream_chunk_max(const lisa_tokenizer *tok);

/* Appends one id; writes the new text (NUL-terminated) to out and its length to *len (may be 0).
 * cap must be > lisa_tokenizer_stream_chunk_max (else LISA_ERR_INVALID_ARG, state unchanged).
 * A bad id is LISA_ERR_INVALID_ARG with the state unchanged. */
lisa_status lisa_tokenizer_stream_push(lisa_tokenizer_stream *s, int32_t id, char *out, size_t cap, size_t *len);

/* Ends the sequence: flushes held-back bytes (as U+FFFD). The stream may then be reused for a new
 * sequence (it is reset). */
lisa_status lisa_tokenizer_stream_finish(lisa_tokenizer_stream *s, char *out, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
