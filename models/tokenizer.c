/* models/tokenizer.c — LLaMA/LISA tokenizer, id-exact with transformers 4.31 slow LlamaTokenizer.
 *
 * References (line numbers at the tags named in docs/parity.md §4):
 *   sentencepiece v0.1.97  src/normalizer.cc Normalizer::Normalize, NormalizePrefix
 *                          src/bpe_model.cc Model::SampleEncode (alpha = 0)
 *                          src/model_interface.cc InitializePieces, PieceToId
 *                          src/sentencepiece_processor.cc PopulateSentencePieceText, Decode
 *                          src/util.cc DecodeUTF8, src/util.h IsValidDecodeUTF8
 *   transformers v4.31.0   tokenization_utils.py Trie.split, PreTrainedTokenizer.tokenize,
 *                          _add_tokens, _decode; tokenization_utils_base.py _from_pretrained;
 *                          models/llama/tokenization_llama.py tokenize/_tokenize,
 *                          convert_tokens_to_string, build_inputs_with_special_tokens
 *   dvlab-research/LISA    model/llava/mm_utils.py tokenizer_image_token, chat.py,
 *                          model/llava/conversation.py conv_llava_v1
 * Dimension letters: n bytes of text, m symbols of one segment.
 */
#include "models/tokenizer.h"

#include "loader/hf_tokenizer_files.h"
#include "loader/spm_model.h"
#include "core/error.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_SYMBOL     "\xe2\x96\x81" /* U+2581 "▁", sentencepiece kSpaceSymbol */
#define SPACE_SYMBOL_LEN 3
#define REPLACEMENT_CHAR "\xef\xbf\xbd" /* U+FFFD */

/* id_flags bits */
enum {
    FLAG_SKIP = 1,        /* in all_special_ids: dropped by skip_special_tokens */
    FLAG_SPECIAL_STR = 2, /* piece string in all_special_tokens: convert_tokens_to_string writes it literally */
    FLAG_ADDED = 4,       /* string in added_tokens_encoder: _decode makes it its own sub-text */
};

/* ---- string -> int32 map (open addressing) --------------------------------------------------- */

typedef struct strmap_entry {
    const char *key; /* borrowed from the tokenizer's own strings */
    uint32_t len;
    uint32_t hash;
    int32_t value;
} strmap_entry;

/* Owns `slots`. */
typedef struct strmap {
    strmap_entry *slots;
    uint32_t mask; /* capacity - 1 (power of two) */
    uint32_t count;
} strmap;

static inline uint32_t hash_bytes(const uint8_t *p, size_t n) {
    /* 8 bytes per multiply (pieces are short; this is the inner loop of BPE) */
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

static lisa_status strmap_init(strmap *m, uint32_t n_expected) {
    uint32_t cap = 16;
    while (cap < n_expected * 2 + 2)
        cap <<= 1;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for a %u-entry hash map", cap);
    m->mask = cap - 1;
    m->count = 0;
    return LISA_OK;
}

static void strmap_free(strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static inline int32_t strmap_get(const strmap *m, const void *key, size_t len) {
    if (!m->slots) return -1;
    const uint32_t h = hash_bytes(key, len);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const strmap_entry *e = &m->slots[i];
        if (!e->key) return -1;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e->value;
    }
}

/* Inserts if absent; returns false (and leaves the old value) when the key is present. The map
 * was sized for every insertion at init (load factor <= 1/2). */
static bool strmap_put(strmap *m, const char *key, size_t len, int32_t value) {
    const uint32_t h = hash_bytes((const uint8_t *)key, len);
    uint32_t i = h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        strmap_entry *e = &m->slots[i];
        if (!e->key) break;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return false;
    }
    LISA_ASSERT(m->count + 1 <= (m->mask + 1) / 2);
    m->slots[i] = (strmap_entry){key, (uint32_t)len, h, value};
    m->count++;
    return true;
}

/* ---- UTF-8 -------------------------------------------------------------------------------------- */

/* sentencepiece DecodeUTF8 (util.cc): returns the code point, or 0xFFFD with *mblen = 1 for a
 * malformed sequence (overlong, surrogate, > U+10FFFF, bad trail byte, truncated). */
static inline uint32_t sp_decode_utf8(const uint8_t *p, size_t len, size_t *mblen) {
    const uint32_t b0 = p[0];
    if (b0 < 0x80) {
        *mblen = 1;
        return b0;
    } else if (len >= 2 && (b0 & 0xE0) == 0xC0) {
        const uint32_t cp = ((b0 & 0x1F) << 6) | (p[1] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && cp >= 0x80) {
            *mblen = 2;
            return cp;
        }
    } else if (len >= 3 && (b0 & 0xF0) == 0xE0) {
        const uint32_t cp = ((b0 & 0x0F) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) {
            *mblen = 3;
            return cp;
        }
    } else if (len >= 4 && (b0 & 0xF8) == 0xF0) {
        const uint32_t cp = ((b0 & 0x07) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 && cp >= 0x10000 &&
            cp <= 0x10FFFF) {
            *mblen = 4;
            return cp;
        }
    }
    *mblen = 1;
    return 0xFFFD;
}

/* IsValidDecodeUTF8: the encoded U+FFFD itself is valid. */
static inline bool sp_valid_utf8(const uint8_t *p, size_t len, size_t *mblen) {
    const uint32_t c = sp_decode_utf8(p, len, mblen);
    return c != 0xFFFD || *mblen == 3;
}

/* Python str.isspace() / str.strip() whitespace (the 29 code points; docs/parity.md §1.5). */
static inline bool py_isspace(uint32_t c) {
    if (c <= 0x20) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- HF Trie over code points (tokenization_utils.py Trie) -------------------------------------- */

typedef struct trie_node {
    uint32_t cp;
    int32_t first_child;
    int32_t next_sibling;
    bool terminal; /* the `""` key */
} trie_node;

static inline int32_t trie_child(const trie_node *t, int32_t node, uint32_t cp) {
    for (int32_t c = t[node].first_child; c >= 0; c = t[c].next_sibling)
        if (t[c].cp == cp) return c;
    return -1;
}

/* ---- the tokenizer ------------------------------------------------------------------------------ */

typedef struct no_split_token {
    const char *str; /* borrowed from the tokenizer's strings */
    size_t len;
    bool added_token; /* AddedToken object among the special attributes: own lstrip/rstrip */
    bool lstrip, rstrip;
    int32_t id; /* convert_tokens_to_ids(str) */
} no_split_token;

/* Owns everything it points to (the SentencePiece model with all piece strings, the maps, the
 * trie, the added-token strings); immutable after lisa_tokenizer_load, freed by
 * lisa_tokenizer_free. */
struct lisa_tokenizer {
    lisa_spm_model spm;
    int32_t n_pieces;
    strmap normal;   /* NORMAL/USER_DEFINED/UNUSED pieces: the merge vocabulary (bpe pieces_) */
    strmap reserved; /* CONTROL/UNKNOWN/BYTE pieces (reserved_id_map_) */
    int32_t unk_id;  /* the UNKNOWN piece */
    int32_t byte_id[256];
    bool byte_fallback, add_dummy_prefix, remove_extra_ws, escape_ws;
    const char *unk_surface;
    size_t unk_surface_len;

    /* added tokens: id n_pieces + i */
    char **added_str;
    size_t *added_len;
    int32_t n_added;
    strmap added_map;

    /* no-split tokens (unique_no_split_tokens) */
    no_split_token *ns;
    int32_t n_ns;
    strmap ns_map; /* string -> index into ns */
    trie_node *trie;
    int32_t n_trie;
    int32_t max_ns_cps; /* longest no-split token in code points */

    char **special_strs; /* all_special_tokens (owned copies) */
    int32_t n_special;

    uint8_t *id_flags; /* [vocab_size] FLAG_* */
    int32_t vocab_size;

    bool legacy, add_bos, add_eos, clean_up;
    int32_t bos_id, eos_id; /* -1 if unset */
    size_t max_token_bytes;

    /* Character bigrams that occur inside some merge-vocabulary piece (open addressing over
     * (cp1 << 32 | cp2) + 1; 0 = empty). A BPE pair can only form across a character boundary
     * whose bigram is in this set, so the merge loop runs independently between the other
     * boundaries (exact; keeps the heap small and cache-resident). NULL when some piece is not
     * valid UTF-8 (then the boundaries of the text and of the piece need not line up). */
    uint64_t *bigrams;
    uint64_t bigram_mask;
};

lisa_tokenizer_params lisa_tokenizer_default_params(void) {
    lisa_tokenizer_params p = {NULL, -1, -1, -1};
    return p;
}

static inline const char *piece_str(const lisa_tokenizer *t, int32_t id) { return lisa_spm_piece_str(&t->spm, id); }
static inline size_t piece_len(const lisa_tokenizer *t, int32_t id) { return t->spm.pieces[id].len; }
static inline int32_t piece_type(const lisa_tokenizer *t, int32_t id) { return t->spm.pieces[id].type; }

/* ModelInterface::PieceToId: reserved map first, then the normal map, else unk. */
static inline int32_t sp_piece_to_id(const lisa_tokenizer *t, const void *s, size_t n) {
    int32_t id = strmap_get(&t->reserved, s, n);
    if (id >= 0) return id;
    id = strmap_get(&t->normal, s, n);
    return id >= 0 ? id : t->unk_id;
}

/* PreTrainedTokenizer._convert_token_to_id_with_added_voc */
static inline int32_t hf_token_to_id(const lisa_tokenizer *t, const void *s, size_t n) {
    const int32_t a = strmap_get(&t->added_map, s, n);
    return a >= 0 ? a : sp_piece_to_id(t, s, n);
}

void lisa_tokenizer_free(lisa_tokenizer *t) {
    if (!t) return;
    lisa_spm_model_free(&t->spm);
    strmap_free(&t->normal);
    strmap_free(&t->reserved);
    for (int32_t i = 0; i < t->n_added; i++)
        free(t->added_str[i]);
    free(t->added_str);
    free(t->added_len);
    strmap_free(&t->added_map);
    free(t->ns);
    strmap_free(&t->ns_map);
    free(t->trie);
    for (int32_t i = 0; i < t->n_special; i++)
        free(t->special_strs[i]);
    free(t->special_strs);
    free(t->id_flags);
    free(t->bigrams);
    free(t);
}

/* "<0xXX>" with upper-case hex (sentencepiece ByteToPiece / PieceToByte); -1 otherwise. */
static int piece_to_byte(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        const char c = s[i];
        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

static inline uint64_t bigram_hash(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 20; }

static inline bool bigram_has(const lisa_tokenizer *t, uint32_t c1, uint32_t c2) {
    const uint64_t k = (((uint64_t)c1 << 32) | c2) + 1;
    for (uint64_t i = bigram_hash(k) & t->bigram_mask;; i = (i + 1) & t->bigram_mask) {
        const uint64_t v = t->bigrams[i];
        if (v == k) return true;
        if (v == 0) return false;
    }
}

/* Fills t->bigrams from the NORMAL pieces (the merge vocabulary; USER_DEFINED/UNUSED are refused). */
static lisa_status build_bigrams(lisa_tokenizer *t) {
    size_t n_chars = 0;
    for (int32_t i = 0; i < t->n_pieces; i++) {
        if (t->spm.pieces[i].type != LISA_SPM_NORMAL) continue;
        const uint8_t *p = (const uint8_t *)lisa_spm_piece_str(&t->spm, i);
        const size_t n = t->spm.pieces[i].len;
        for (size_t k = 0; k < n;) {
            size_t ml;
            const uint32_t c = sp_decode_utf8(p + k, n - k, &ml);
            if (c == 0xFFFD && ml != 3) return LISA_OK; /* not valid UTF-8: no chunking */
            k += ml;
            n_chars++;
        }
    }
    uint64_t cap = 1024;
    while (cap < 2 * (uint64_t)n_chars + 2)
        cap <<= 1;
    t->bigrams = calloc(cap, sizeof *t->bigrams);
    if (!t->bigrams) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for the bigram set");
    t->bigram_mask = cap - 1;
    for (int32_t i = 0; i < t->n_pieces; i++) {
        if (t->spm.pieces[i].type != LISA_SPM_NORMAL) continue;
        const uint8_t *p = (const uint8_t *)lisa_spm_piece_str(&t->spm, i);
        const size_t n = t->spm.pieces[i].len;
        uint32_t prev = 0;
        for (size_t k = 0; k < n;) {
            size_t ml;
            const uint32_t c = sp_decode_utf8(p + k, n - k, &ml);
            if (k > 0) {
                const uint64_t key = (((uint64_t)prev << 32) | c) + 1;
                uint64_t j = bigram_hash(key) & t->bigram_mask;
                while (t->bigrams[j] != 0 && t->bigrams[j] != key)
                    j = (j + 1) & t->bigram_mask;
                t->bigrams[j] = key;
            }
            prev = c;
            k += ml;
        }
    }
    return LISA_OK;
}

/* ModelInterface::InitializePieces checks + the features this implementation leaves out. */
static lisa_status build_vocab(lisa_tokenizer *t, const char *path) {
    const lisa_spm_model *m = &t->spm;
    if (m->model_type != LISA_SPM_MODEL_BPE)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: trainer_spec.model_type %d: only BPE (2) is supported", path,
                         m->model_type);
    if (m->precompiled_charsmap_len)
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "%s: normalizer_spec.precompiled_charsmap (%zu bytes): character normalization (NFKC) is "
                         "not supported; LLaMA's is empty",
                         path, m->precompiled_charsmap_len);
    if (m->has_denormalizer_spec && m->denormalizer_charsmap_len)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: denormalizer_spec.precompiled_charsmap is not supported", path);
    if (m->treat_whitespace_as_suffix)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix is not supported", path);
    if (m->n_pieces <= 0) return lisa_fail(LISA_ERR_FORMAT, "%s: the model has no pieces (unk is not defined)", path);
    if (m->n_pieces > INT32_MAX / 2) return lisa_fail(LISA_ERR_LIMIT, "%s: too many pieces (%d)", path, m->n_pieces);

    t->n_pieces = m->n_pieces;
    LISA_TRY(strmap_init(&t->normal, (uint32_t)m->n_pieces));
    LISA_TRY(strmap_init(&t->reserved, (uint32_t)m->n_pieces));
    t->unk_id = -1;
    bool byte_found[256] = {false};
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    for (int32_t i = 0; i < m->n_pieces; i++) {
        const char *s = piece_str(t, i);
        const size_t n = piece_len(t, i);
        const int32_t ty = piece_type(t, i);
        if (n == 0) return lisa_fail(LISA_ERR_FORMAT, "%s: pieces[%d]: piece must not be empty", path, i);
        if (ty == LISA_SPM_USER_DEFINED || ty == LISA_SPM_UNUSED)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: pieces[%d] \"%.*s\" has type %s, which is not supported", path,
                             i, (int)(n > 64 ? 64 : n), s, lisa_spm_piece_type_name(ty));
        const bool normal = ty == LISA_SPM_NORMAL;
        if (!strmap_put(normal ? &t->normal : &t->reserved, s, n, i))
            return lisa_fail(LISA_ERR_FORMAT, "%s: pieces[%d] \"%.*s\" is already defined", path, i,
                             (int)(n > 64 ? 64 : n), s);
        if (ty == LISA_SPM_UNKNOWN) {
            if (t->unk_id >= 0) return lisa_fail(LISA_ERR_FORMAT, "%s: pieces[%d]: unk is already defined", path, i);
            t->unk_id = i;
        }
        if (ty == LISA_SPM_BYTE) {
            if (!m->byte_fallback)
                return lisa_fail(LISA_ERR_FORMAT,
                                 "%s: byte piece pieces[%d] \"%.*s\" is found although byte_fallback is false", path, i,
                                 (int)(n > 64 ? 64 : n), s);
            const int b = piece_to_byte(s, n);
            if (b < 0)
                return lisa_fail(LISA_ERR_FORMAT, "%s: byte piece pieces[%d] \"%.*s\" is invalid", path, i,
                                 (int)(n > 64 ? 64 : n), s);
            byte_found[b] = true;
        }
        if (n > t->max_token_bytes) t->max_token_bytes = n;
    }
    if (t->unk_id < 0) return lisa_fail(LISA_ERR_FORMAT, "%s: unk is not defined (no UNKNOWN piece)", path);
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            if (!byte_found[b])
                return lisa_fail(LISA_ERR_FORMAT,
                                 "%s: there are not 256 byte pieces although byte_fallback is true (missing <0x%02X>)",
                                 path, b);
            char bp[7];
            snprintf(bp, sizeof bp, "<0x%02X>", b);
            t->byte_id[b] = sp_piece_to_id(t, bp, 6);
        }
    }
    t->byte_fallback = m->byte_fallback;
    t->add_dummy_prefix = m->add_dummy_prefix;
    t->remove_extra_ws = m->remove_extra_whitespaces;
    t->escape_ws = m->escape_whitespaces;
    t->unk_surface = m->text + m->unk_surface_offset;
    t->unk_surface_len = m->unk_surface_len;
    if (t->unk_surface_len > t->max_token_bytes) t->max_token_bytes = t->unk_surface_len;
    return LISA_OK;
}

static bool str_in_list(char **list, int32_t n, const char *s) {
    for (int32_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

/* all_special_tokens_extended order: bos, eos, unk, sep, pad, cls, mask, additional...; unset or
 * empty values are skipped (`if attr_value:`). Returns the count; fills vals when non-NULL. */
static int32_t collect_specials(const lisa_hf_tokenizer_files *f, const lisa_hf_token **vals) {
    int32_t n = 0;
    for (int a = 0; a < LISA_HF_N_ATTRS; a++)
        if (f->attr[a].content && f->attr[a].content[0]) {
            if (vals) vals[n] = &f->attr[a];
            n++;
        }
    for (int32_t i = 0; i < f->n_additional; i++)
        if (f->additional[i].content) {
            if (vals) vals[n] = &f->additional[i];
            n++;
        }
    return n;
}

/* Growable list of no-split strings during the build (owned by the builder). */
typedef struct ns_builder {
    char **strs;
    int32_t n, cap;
} ns_builder;

static lisa_status ns_add(ns_builder *b, const char *s) {
    for (int32_t i = 0; i < b->n; i++)
        if (!strcmp(b->strs[i], s)) return LISA_OK; /* sorted(set(...)) in HF: a set */
    if (b->n == b->cap) {
        const int32_t cap = b->cap ? b->cap * 2 : 16;
        char **p = realloc(b->strs, sizeof *p * (size_t)cap);
        if (!p) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        b->strs = p;
        b->cap = cap;
    }
    b->strs[b->n] = strdup(s);
    if (!b->strs[b->n]) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
    b->n++;
    return LISA_OK;
}

static void ns_builder_free(ns_builder *b) {
    for (int32_t i = 0; i < b->n; i++)
        free(b->strs[i]);
    free(b->strs);
}

/* Growable list of added tokens during the build. */
typedef struct added_builder {
    char **strs;
    int32_t n, cap;
} added_builder;

static int32_t added_find(const added_builder *a, const char *s) {
    for (int32_t i = 0; i < a->n; i++)
        if (!strcmp(a->strs[i], s)) return i;
    return -1;
}

/* PreTrainedTokenizer._add_tokens(new_tokens, special_tokens) (tokenization_utils.py). */
static lisa_status hf_add_tokens(lisa_tokenizer *t, added_builder *ab, ns_builder *nsb, const char *unk_token,
                                 char *const *new_tokens, int32_t n_new, bool special) {
    if (n_new == 0) return LISA_OK;
    const int32_t unk_ref = unk_token
                                ? (added_find(ab, unk_token) >= 0 ? t->n_pieces + added_find(ab, unk_token)
                                                                  : sp_piece_to_id(t, unk_token, strlen(unk_token)))
                                : -1;
    const int32_t first_new = ab->n;
    for (int32_t i = 0; i < n_new; i++) {
        const char *tok = new_tokens[i];
        if (unk_token && !strcmp(tok, unk_token)) continue;
        const int32_t known = added_find(ab, tok);
        const int32_t cur = known >= 0 ? t->n_pieces + known : sp_piece_to_id(t, tok, strlen(tok));
        /* known tokens (pieces or earlier additions, this call's included: `token not in
         * tokens_to_add`) have an id other than unk's */
        if (cur != unk_ref) continue;
        if (ab->n == ab->cap) {
            const int32_t cap = ab->cap ? ab->cap * 2 : 16;
            char **p = realloc(ab->strs, sizeof *p * (size_t)cap);
            if (!p) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
            ab->strs = p;
            ab->cap = cap;
        }
        ab->strs[ab->n] = strdup(tok);
        if (!ab->strs[ab->n]) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        ab->n++;
    }
    if (special) {
        for (int32_t i = 0; i < n_new; i++)
            LISA_TRY(ns_add(nsb, new_tokens[i]));
    } else {
        for (int32_t i = first_new; i < ab->n; i++)
            LISA_TRY(ns_add(nsb, ab->strs[i]));
    }
    return LISA_OK;
}

/* Decodes s into code points the way Python would hold it (invalid bytes: 0x110000 + byte, which
 * no token can contain and no whitespace test matches). Returns the count. */
static size_t to_cps(const uint8_t *s, size_t n, uint32_t *cps, uint32_t *offs) {
    size_t k = 0, i = 0;
    while (i < n) {
        size_t ml;
        const uint32_t c = sp_decode_utf8(s + i, n - i, &ml);
        const bool ok = c != 0xFFFD || ml == 3;
        if (offs) offs[k] = (uint32_t)i;
        cps[k++] = ok ? c : 0x110000u + s[i];
        i += ok ? ml : 1;
    }
    if (offs) offs[k] = (uint32_t)n;
    return k;
}

static lisa_status build_trie(lisa_tokenizer *t) {
    size_t total = 1;
    for (int32_t i = 0; i < t->n_ns; i++)
        total += strlen(t->ns[i].str);
    t->trie = malloc(sizeof *t->trie * total);
    if (!t->trie) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for the added-token trie");
    t->trie[0] = (trie_node){0, -1, -1, false};
    t->n_trie = 1;
    uint32_t cps[256];
    for (int32_t i = 0; i < t->n_ns; i++) {
        const no_split_token *x = &t->ns[i];
        size_t n = x->len;
        if (n == 0) continue; /* Trie.add("") is a no-op */
        /* A token is at most a few dozen characters; longer ones are decoded in pieces. */
        int32_t node = 0;
        size_t done = 0;
        int32_t n_cps = 0;
        while (done < n) {
            size_t chunk = n - done > 240 ? 240 : n - done;
            /* do not cut a UTF-8 sequence: extend to the next lead byte */
            while (done + chunk < n && ((unsigned char)x->str[done + chunk] & 0xC0) == 0x80)
                chunk++;
            size_t k = to_cps((const uint8_t *)x->str + done, chunk, cps, NULL);
            for (size_t j = 0; j < k; j++) {
                int32_t c = trie_child(t->trie, node, cps[j]);
                if (c < 0) {
                    c = t->n_trie++;
                    t->trie[c] = (trie_node){cps[j], -1, t->trie[node].first_child, false};
                    t->trie[node].first_child = c;
                }
                node = c;
            }
            n_cps += (int32_t)k;
            done += chunk;
        }
        t->trie[node].terminal = true;
        if (n_cps > t->max_ns_cps) t->max_ns_cps = n_cps;
    }
    return LISA_OK;
}

/* Reproduces AutoTokenizer.from_pretrained(dir, use_fast=False) for LlamaTokenizer (4.31):
 * special attributes, added_tokens.json (checked consecutive, batched by specialness, added via
 * _add_tokens), then sanitize_special_tokens. */
static lisa_status build_added(lisa_tokenizer *t, const lisa_hf_tokenizer_files *f, const char *dir) {
    lisa_status st = LISA_OK;
    added_builder ab = {0};
    ns_builder nsb = {0};
    const lisa_hf_token **specials = NULL;
    char **batch = NULL;
    const char *unk_token =
        f->attr[LISA_HF_UNK].content && f->attr[LISA_HF_UNK].content[0] ? f->attr[LISA_HF_UNK].content : NULL;

    const int32_t n_spec = collect_specials(f, NULL);
    specials = calloc((size_t)n_spec + 1, sizeof *specials);
    batch = calloc((size_t)f->n_added + (size_t)n_spec + 1, sizeof *batch);
    t->special_strs = calloc((size_t)n_spec + 1, sizeof *t->special_strs);
    if (!specials || !batch || !t->special_strs) {
        st = lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        goto done;
    }
    collect_specials(f, specials);
    for (int32_t i = 0; i < n_spec; i++) {
        if (str_in_list(t->special_strs, t->n_special, specials[i]->content)) continue;
        t->special_strs[t->n_special] = strdup(specials[i]->content);
        if (!t->special_strs[t->n_special]) {
            st = lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
            goto done;
        }
        t->n_special++;
    }

    /* added_tokens.json, sorted by index (tokenization_utils_base.py _from_pretrained). */
    {
        int32_t n_batch = 0;
        int is_last_special = -1;
        for (int32_t i = 0; i < f->n_added; i++) {
            const char *tok = f->added[i].content;
            const int64_t current = (int64_t)t->n_pieces + ab.n + n_batch;
            if (f->added[i].id != current) {
                st = lisa_fail(LISA_ERR_FORMAT,
                               "%s/added_tokens.json: non-consecutive added token \"%s\": should have index %lld but "
                               "has index %lld",
                               dir ? dir : ".", tok, (long long)current, (long long)f->added[i].id);
                goto done;
            }
            const int is_special = str_in_list(t->special_strs, t->n_special, tok) ? 1 : 0;
            if (is_last_special == -1 || is_last_special == is_special) {
                batch[n_batch++] = (char *)tok;
            } else {
                st = hf_add_tokens(t, &ab, &nsb, unk_token, batch, n_batch, is_last_special == 1);
                if (st != LISA_OK) goto done;
                n_batch = 0;
                batch[n_batch++] = (char *)tok;
            }
            is_last_special = is_special;
        }
        if (n_batch) {
            st = hf_add_tokens(t, &ab, &nsb, unk_token, batch, n_batch, is_last_special == 1);
            if (st != LISA_OK) goto done;
        }
    }
    /* sanitize_special_tokens: add_tokens(all_special_tokens_extended, special_tokens=True) */
    {
        for (int32_t i = 0; i < n_spec; i++)
            batch[i] = specials[i]->content;
        st = hf_add_tokens(t, &ab, &nsb, unk_token, batch, n_spec, true);
        if (st != LISA_OK) goto done;
    }

    /* Move the added tokens into the tokenizer. */
    t->n_added = ab.n;
    t->added_str = ab.strs;
    ab.strs = NULL;
    t->added_len = calloc((size_t)t->n_added + 1, sizeof *t->added_len);
    if (!t->added_len) {
        st = lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        goto done;
    }
    st = strmap_init(&t->added_map, (uint32_t)t->n_added);
    if (st != LISA_OK) goto done;
    for (int32_t i = 0; i < t->n_added; i++) {
        t->added_len[i] = strlen(t->added_str[i]);
        strmap_put(&t->added_map, t->added_str[i], t->added_len[i], t->n_pieces + i);
        if (t->added_len[i] > t->max_token_bytes) t->max_token_bytes = t->added_len[i];
    }
    if ((int64_t)t->n_pieces + t->n_added > INT32_MAX / 2) {
        st = lisa_fail(LISA_ERR_LIMIT, "tokenizer: vocabulary too large");
        goto done;
    }
    t->vocab_size = t->n_pieces + t->n_added;

    /* No-split tokens with their strip behaviour (PreTrainedTokenizer.tokenize: the dict of
     * special AddedTokens by content, last one wins). Strings are borrowed from special_strs or
     * added_str, which the tokenizer owns. */
    t->ns = calloc((size_t)nsb.n + 1, sizeof *t->ns);
    if (!t->ns) {
        st = lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        goto done;
    }
    st = strmap_init(&t->ns_map, (uint32_t)nsb.n);
    if (st != LISA_OK) goto done;
    for (int32_t i = 0; i < nsb.n; i++) {
        const char *s = nsb.strs[i];
        const char *owned = NULL;
        for (int32_t k = 0; k < t->n_special && !owned; k++)
            if (!strcmp(t->special_strs[k], s)) owned = t->special_strs[k];
        for (int32_t k = 0; k < t->n_added && !owned; k++)
            if (!strcmp(t->added_str[k], s)) owned = t->added_str[k];
        LISA_ASSERT(owned); /* every no-split token is a special token or an added token */
        no_split_token *x = &t->ns[t->n_ns];
        x->str = owned;
        x->len = strlen(owned);
        for (int32_t k = 0; k < n_spec; k++)
            if (specials[k]->added_token && !strcmp(specials[k]->content, s)) {
                x->added_token = true;
                x->lstrip = specials[k]->lstrip;
                x->rstrip = specials[k]->rstrip;
            }
        x->id = hf_token_to_id(t, x->str, x->len);
        strmap_put(&t->ns_map, x->str, x->len, t->n_ns);
        t->n_ns++;
    }
    st = build_trie(t);
    if (st != LISA_OK) goto done;

    /* ids and flags */
    t->bos_id = f->attr[LISA_HF_BOS].content
                    ? hf_token_to_id(t, f->attr[LISA_HF_BOS].content, strlen(f->attr[LISA_HF_BOS].content))
                    : -1;
    t->eos_id = f->attr[LISA_HF_EOS].content
                    ? hf_token_to_id(t, f->attr[LISA_HF_EOS].content, strlen(f->attr[LISA_HF_EOS].content))
                    : -1;
    t->id_flags = calloc((size_t)t->vocab_size, 1);
    if (!t->id_flags) {
        st = lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
        goto done;
    }
    for (int32_t k = 0; k < t->n_special; k++) {
        const size_t n = strlen(t->special_strs[k]);
        t->id_flags[hf_token_to_id(t, t->special_strs[k], n)] |= FLAG_SKIP; /* all_special_ids */
        const int32_t r = strmap_get(&t->reserved, t->special_strs[k], n);
        const int32_t m = strmap_get(&t->normal, t->special_strs[k], n);
        if (r >= 0) t->id_flags[r] |= FLAG_SPECIAL_STR;
        if (m >= 0) t->id_flags[m] |= FLAG_SPECIAL_STR;
    }
    for (int32_t i = 0; i < t->n_added; i++) {
        t->id_flags[t->n_pieces + i] |= FLAG_ADDED;
        /* a piece whose string is an added token is decoded as that added token */
        const int32_t r = strmap_get(&t->reserved, t->added_str[i], t->added_len[i]);
        const int32_t m = strmap_get(&t->normal, t->added_str[i], t->added_len[i]);
        if (r >= 0) t->id_flags[r] |= FLAG_ADDED;
        if (m >= 0) t->id_flags[m] |= FLAG_ADDED;
    }
    for (int32_t i = 0; i < t->n_special; i++) {
        const size_t n = strlen(t->special_strs[i]);
        if (n > t->max_token_bytes) t->max_token_bytes = n;
    }

done:
    for (int32_t i = 0; i < ab.n && ab.strs; i++)
        free(ab.strs[i]);
    free(ab.strs);
    ns_builder_free(&nsb);
    free(specials);
    free(batch);
    return st;
}

/* Builds the tokenizer around a decoded model (t->spm already set); frees t on failure. */
static lisa_status finish_load(lisa_tokenizer **out, lisa_tokenizer *t, const char *model_name, const char *dir,
                               const lisa_tokenizer_params *p) {
    lisa_hf_tokenizer_files f;
    lisa_status st = build_vocab(t, model_name);
    if (st == LISA_OK) st = build_bigrams(t);
    if (st != LISA_OK) {
        lisa_tokenizer_free(t);
        return st;
    }
    st = lisa_hf_tokenizer_files_load(&f, dir);
    if (st != LISA_OK) {
        lisa_tokenizer_free(t);
        return st;
    }
    st = build_added(t, &f, dir);
    t->legacy = p->legacy >= 0 ? p->legacy != 0 : f.legacy;
    t->add_bos = p->add_bos_token >= 0 ? p->add_bos_token != 0 : f.add_bos_token;
    t->add_eos = p->add_eos_token >= 0 ? p->add_eos_token != 0 : f.add_eos_token;
    t->clean_up = f.clean_up_tokenization_spaces;
    if (st == LISA_OK && t->add_bos && t->bos_id < 0)
        st = lisa_fail(LISA_ERR_FORMAT, "%s: add_bos_token is set but bos_token is null", dir ? dir : model_name);
    if (st == LISA_OK && t->add_eos && t->eos_id < 0)
        st = lisa_fail(LISA_ERR_FORMAT, "%s: add_eos_token is set but eos_token is null", dir ? dir : model_name);
    lisa_hf_tokenizer_files_free(&f);
    if (st != LISA_OK) {
        lisa_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LISA_OK;
}

lisa_status lisa_tokenizer_load_ex(lisa_tokenizer **out, const char *dir, const lisa_tokenizer_params *p) {
    *out = NULL;
    lisa_tokenizer_params defaults = lisa_tokenizer_default_params();
    if (!p) p = &defaults;
    if (!dir && !p->sp_model_path)
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_tokenizer_load: need a checkpoint directory or sp_model_path");
    char path[4096];
    if (p->sp_model_path) {
        if (snprintf(path, sizeof path, "%s", p->sp_model_path) >= (int)sizeof path)
            return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer model path too long");
    } else if (snprintf(path, sizeof path, "%s/tokenizer.model", dir) >= (int)sizeof path) {
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s: path too long", dir);
    }
    lisa_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
    lisa_status st = lisa_spm_model_load(&t->spm, path);
    if (st != LISA_OK) {
        lisa_tokenizer_free(t);
        return st;
    }
    return finish_load(out, t, path, dir, p);
}

lisa_status lisa_tokenizer_load_mem(lisa_tokenizer **out, const void *model, size_t model_len, const char *dir,
                                    const lisa_tokenizer_params *p) {
    *out = NULL;
    lisa_tokenizer_params defaults = lisa_tokenizer_default_params();
    if (!p) p = &defaults;
    lisa_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory");
    lisa_status st = lisa_spm_model_parse(&t->spm, model, model_len, "<tokenizer.model in memory>");
    if (st != LISA_OK) {
        lisa_tokenizer_free(t);
        return st;
    }
    return finish_load(out, t, "<tokenizer.model in memory>", dir, p);
}

lisa_status lisa_tokenizer_load(lisa_tokenizer **out, const char *dir) {
    if (!dir) {
        *out = NULL;
        return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_tokenizer_load: dir is NULL");
    }
    return lisa_tokenizer_load_ex(out, dir, NULL);
}

int32_t lisa_tokenizer_vocab_size(const lisa_tokenizer *t) { return t->vocab_size; }
int32_t lisa_tokenizer_n_pieces(const lisa_tokenizer *t) { return t->n_pieces; }
int32_t lisa_tokenizer_bos_id(const lisa_tokenizer *t) { return t->bos_id; }
int32_t lisa_tokenizer_eos_id(const lisa_tokenizer *t) { return t->eos_id; }
int32_t lisa_tokenizer_unk_id(const lisa_tokenizer *t) { return t->unk_id; }
bool lisa_tokenizer_legacy(const lisa_tokenizer *t) { return t->legacy; }

bool lisa_tokenizer_is_special(const lisa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && (t->id_flags[id] & FLAG_SKIP);
}

const char *lisa_tokenizer_id_to_piece(const lisa_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (id >= t->n_pieces) {
        if (len) *len = t->added_len[id - t->n_pieces];
        return t->added_str[id - t->n_pieces];
    }
    if (len) *len = piece_len(t, id);
    return piece_str(t, id);
}

int32_t lisa_tokenizer_piece_to_id(const lisa_tokenizer *t, const char *piece) {
    const size_t n = strlen(piece);
    int32_t id = strmap_get(&t->added_map, piece, n);
    if (id >= 0) return id;
    id = strmap_get(&t->reserved, piece, n);
    if (id >= 0) return id;
    return strmap_get(&t->normal, piece, n);
}

/* ==== encode ===================================================================================== */

/* Growable scratch owned by one encode call (freed at its end). */
typedef struct enc_ws {
    /* whole text */
    uint8_t *text;               /* [n + 3] the (non-legacy: rewritten) text */
    uint32_t *cps;               /* [n] code points */
    uint32_t *offs;              /* [n + 1] byte offset of each code point */
    int32_t *st_start, *st_node; /* trie states, ordered by start */
    uint8_t *st_remove;
    int32_t *offsets; /* Trie.split offsets (2 per match + 2), growable */
    size_t n_offsets, offsets_cap;
    int32_t *seg_a, *seg_b; /* segments as code point ranges [n_offsets] */
    int32_t n_seg;
    /* one segment */
    uint8_t *norm; /* normalized bytes */
    size_t norm_cap;
    struct sym {
        uint32_t start, len; /* bytes in norm; len 0 = merged away */
        int32_t prev, next;
    } * sym;
    size_t sym_cap;
    struct cand {
        float score;
        int32_t left;
        uint32_t size;
    } * heap;
    size_t heap_n, heap_cap;
    /* output */
    int32_t *ids;
    size_t ids_n, ids_cap;
} enc_ws;

static void enc_ws_free(enc_ws *w) {
    free(w->text);
    free(w->cps);
    free(w->offs);
    free(w->st_start);
    free(w->st_node);
    free(w->st_remove);
    free(w->offsets);
    free(w->seg_a);
    free(w->seg_b);
    free(w->norm);
    free(w->sym);
    free(w->heap);
    free(w->ids);
}

static lisa_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return LISA_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory (%zu bytes of encode scratch)", c * elem);
    *p = q;
    *cap = c;
    return LISA_OK;
}

static inline lisa_status push_id(enc_ws *w, int32_t id) {
    if (w->ids_n == w->ids_cap) LISA_TRY(grow((void **)&w->ids, &w->ids_cap, w->ids_n + 1, sizeof *w->ids));
    w->ids[w->ids_n++] = id;
    return LISA_OK;
}

/* Normalizer::Normalize with an empty charsmap (docs/parity.md §1.2). Returns the normalized length. */
static size_t sp_normalize(const lisa_tokenizer *t, const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0, i = 0;
    if (n == 0) return 0;
    if (t->remove_extra_ws)
        while (i < n && s[i] == ' ')
            i++; /* NormalizePrefix(" ") == " " only for ASCII space */
    if (i == n) return 0;
    if (t->add_dummy_prefix) {
        if (t->escape_ws) {
            memcpy(out + o, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
            o += SPACE_SYMBOL_LEN;
        } else {
            out[o++] = ' ';
        }
    }
    bool is_prev_space = t->remove_extra_ws;
    while (i < n) {
        size_t ml;
        const bool ok = sp_valid_utf8(s + i, n - i, &ml);
        const uint8_t *c = ok ? s + i : (const uint8_t *)REPLACEMENT_CHAR;
        const size_t cl = ok ? ml : 3;
        i += ok ? ml : 1;
        if (is_prev_space && cl == 1 && c[0] == ' ') {
            /* consumed: a space right after a space (remove_extra_whitespaces) */
        } else {
            if (t->escape_ws && cl == 1 && c[0] == ' ') {
                memcpy(out + o, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
                o += SPACE_SYMBOL_LEN;
            } else {
                memcpy(out + o, c, cl);
                o += cl;
            }
            is_prev_space = cl == 1 && c[0] == ' ';
        }
        if (!t->remove_extra_ws) is_prev_space = false;
    }
    if (t->remove_extra_ws) {
        if (t->escape_ws) {
            while (o >= SPACE_SYMBOL_LEN && memcmp(out + o - SPACE_SYMBOL_LEN, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0)
                o -= SPACE_SYMBOL_LEN;
        } else {
            while (o >= 1 && out[o - 1] == ' ')
                o--;
        }
    }
    return o;
}

/* Max-heap on (score, then smaller left) — bpe_model.cc SymbolPairComparator. */
static inline bool cand_before(const struct cand *a, const struct cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static lisa_status heap_push(enc_ws *w, struct cand c) {
    if (w->heap_n == w->heap_cap) LISA_TRY(grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap));
    size_t i = w->heap_n++;
    while (i > 0) {
        const size_t p = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return LISA_OK;
}

static struct cand heap_pop(enc_ws *w) {
    const struct cand top = w->heap[0];
    const struct cand last = w->heap[--w->heap_n];
    size_t i = 0;
    const size_t n = w->heap_n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        if (l + 1 < n && cand_before(&w->heap[l + 1], &w->heap[l])) l++;
        if (!cand_before(&w->heap[l], &last)) break;
        w->heap[i] = w->heap[l];
        i = l;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* MaybeAddNewSymbolPair */
static inline lisa_status maybe_add_pair(const lisa_tokenizer *t, enc_ws *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return LISA_OK;
    const uint32_t size = w->sym[left].len + w->sym[right].len;
    const int32_t id = strmap_get(&t->normal, w->norm + w->sym[left].start, size);
    if (id < 0) return LISA_OK;
    return heap_push(w, (struct cand){t->spm.pieces[id].score, left, size});
}

/* sp.encode(segment, out_type=str) mapped to ids (bpe Model::SampleEncode with alpha 0, then
 * PopulateSentencePieceText). Appends ids to w->ids. When first_str is non-NULL it receives the
 * first output piece's string (for the non-legacy "▁" strip), or len 0 if there is none. */
static lisa_status sp_encode(const lisa_tokenizer *t, enc_ws *w, const uint8_t *s, size_t n, const uint8_t **first_str,
                             size_t *first_len, size_t *first_index) {
    if (first_str) {
        *first_str = NULL;
        *first_len = 0;
        *first_index = w->ids_n;
    }
    if (n == 0) return LISA_OK;
    LISA_TRY(grow((void **)&w->norm, &w->norm_cap, 3 * n + SPACE_SYMBOL_LEN, 1));
    const size_t L = sp_normalize(t, s, n, w->norm);
    if (L == 0) return LISA_OK;

    /* PopulateSentencePieceText state, carried across stretches */
    bool is_prev_unk = false;
    bool first = true;           /* nothing emitted yet */
    bool first_unk_open = false; /* the first emitted piece is an unknown run still growing */

    /* Characters (PrefixMatcher without user-defined symbols: OneCharLen; the normalized text is
     * valid UTF-8, bad bytes having become U+FFFD) are cut into stretches at the boundaries that
     * no piece spans (see lisa_tokenizer.bigrams). The merge loop (bpe Model::SampleEncode) runs on
     * one stretch at a time: merges in different stretches never interact, and inside a stretch
     * the heap order (score, then leftmost) is the one of the whole segment. Scratch is sized by
     * the longest stretch. */
    static const uint8_t kOneCharLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t pos = 0;
    uint32_t prev_cp = 0;
    while (pos < L) {
        int32_t m = 0;
        size_t i = pos;
        while (i < L) {
            size_t cl = kOneCharLen[w->norm[i] >> 4];
            if (cl > L - i) cl = L - i;
            size_t ml;
            const uint32_t cp = sp_decode_utf8(w->norm + i, L - i, &ml);
            if (m > 0 && t->bigrams && !bigram_has(t, prev_cp, cp)) break; /* stretch ends */
            if ((size_t)m == w->sym_cap) LISA_TRY(grow((void **)&w->sym, &w->sym_cap, (size_t)m + 1, sizeof *w->sym));
            w->sym[m] = (struct sym){(uint32_t)i, (uint32_t)cl, m - 1, -1};
            if (m > 0) w->sym[m - 1].next = m;
            m++;
            prev_cp = cp;
            i += cl;
        }
        pos = i;

        w->heap_n = 0;
        for (int32_t k = 1; k < m; k++)
            LISA_TRY(maybe_add_pair(t, w, k - 1, k));
        while (w->heap_n) {
            const struct cand top = heap_pop(w);
            struct sym *l = &w->sym[top.left];
            if (l->len == 0 || l->next < 0) continue;
            struct sym *r = &w->sym[l->next];
            if (r->len == 0 || l->len + r->len != top.size) continue; /* stale */
            /* merge: the left symbol absorbs the right one */
            l->len += r->len;
            l->next = r->next;
            if (r->next >= 0) w->sym[r->next].prev = top.left;
            r->len = 0;
            LISA_TRY(maybe_add_pair(t, w, l->prev, top.left));
            LISA_TRY(maybe_add_pair(t, w, top.left, l->next));
        }

        /* PopulateSentencePieceText + piece_to_id */
        for (int32_t k = 0; k >= 0 && k < m; k = w->sym[k].next) {
            const uint8_t *p = w->norm + w->sym[k].start;
            const size_t len = w->sym[k].len;
            const int32_t id = sp_piece_to_id(t, p, len);
            const int32_t ty = t->spm.pieces[id].type;
            const bool is_unk = ty == LISA_SPM_UNKNOWN;
            if (is_unk && !t->byte_fallback && is_prev_unk) {
                /* merged into the previous unknown piece: one <unk> id for the whole run */
                if (first_unk_open && first_str) *first_len = (size_t)(p + len - *first_str);
            } else if (is_unk && t->byte_fallback) {
                for (size_t q = 0; q < len; q++)
                    LISA_TRY(push_id(w, t->byte_id[p[q]]));
                if (first && first_str) {
                    *first_str = (const uint8_t *)"<"; /* "<0xXX>": does not start with "▁" */
                    *first_len = 1;
                }
                first = false;
                first_unk_open = false;
            } else {
                LISA_TRY(push_id(w, id));
                if (first && first_str) {
                    *first_str = p;
                    *first_len = len;
                }
                first_unk_open = first && is_unk;
                first = false;
            }
            if (!is_unk) first_unk_open = false;
            is_prev_unk = is_unk;
        }
    }
    return LISA_OK;
}

static inline lisa_status off_push(enc_ws *w, int32_t v) {
    if (w->n_offsets == w->offsets_cap)
        LISA_TRY(grow((void **)&w->offsets, &w->offsets_cap, w->n_offsets + 1, sizeof *w->offsets));
    w->offsets[w->n_offsets++] = v;
    return LISA_OK;
}

/* Port of transformers 4.31 Trie.split: fills w->offsets as cut_text expects. */
static lisa_status trie_split(const lisa_tokenizer *t, enc_ws *w, int32_t n, int32_t max_states) {
    const trie_node *T = t->trie;
    w->n_offsets = 0;
    LISA_TRY(off_push(w, 0));
    int32_t ns = 0; /* number of states; ordered by start (OrderedDict insertion order) */
    int32_t skip = 0;
    for (int32_t current = 0; current < n; current++) {
        const uint32_t ch = w->cps[current];
        if (skip && current < skip) continue;
        bool reset = false;
        for (int32_t si = 0; si < ns; si++)
            w->st_remove[si] = 0;
        for (int32_t si = 0; si < ns; si++) {
            int32_t start = w->st_start[si];
            const int32_t tp = w->st_node[si];
            if (T[tp].terminal) {
                /* lookahead for the longest match among states that started at or before this one */
                int32_t end = 0;
                for (int32_t li = 0; li < ns; li++) {
                    const int32_t lookstart = w->st_start[li];
                    int32_t looktp = w->st_node[li];
                    int32_t lookahead_index;
                    if (lookstart > start) break;
                    if (lookstart < start) {
                        lookahead_index = current + 1;
                        end = current + 1;
                    } else {
                        lookahead_index = current;
                        end = current;
                    }
                    bool has_next = lookahead_index < n;
                    uint32_t next_char = has_next ? w->cps[lookahead_index] : 0;
                    if (T[looktp].terminal) {
                        start = lookstart;
                        end = lookahead_index;
                        skip = lookahead_index;
                    }
                    for (;;) {
                        if (!has_next) break;
                        const int32_t c = trie_child(T, looktp, next_char);
                        if (c < 0) break;
                        looktp = c;
                        lookahead_index++;
                        if (T[looktp].terminal) {
                            start = lookstart;
                            end = lookahead_index;
                            skip = lookahead_index;
                        }
                        if (lookahead_index == n) break;
                        next_char = w->cps[lookahead_index];
                    }
                }
                LISA_TRY(off_push(w, start));
                LISA_TRY(off_push(w, end));
                reset = true;
                break;
            }
            const int32_t c = trie_child(T, tp, ch);
            if (c >= 0)
                w->st_node[si] = c;
            else
                w->st_remove[si] = 1;
        }
        if (reset) {
            ns = 0;
        } else {
            int32_t k = 0;
            for (int32_t si = 0; si < ns; si++)
                if (!w->st_remove[si]) {
                    w->st_start[k] = w->st_start[si];
                    w->st_node[k] = w->st_node[si];
                    k++;
                }
            ns = k;
        }
        if (current >= skip) {
            const int32_t c = trie_child(T, 0, ch);
            if (c >= 0) {
                /* live states started within the last max_ns_cps characters: bounded */
                LISA_ASSERT(ns < max_states);
                w->st_start[ns] = current;
                w->st_node[ns] = c;
                ns++;
            }
        }
    }
    for (int32_t si = 0; si < ns; si++) {
        if (T[w->st_node[si]].terminal) {
            LISA_TRY(off_push(w, w->st_start[si]));
            LISA_TRY(off_push(w, n));
            break;
        }
    }
    return LISA_OK;
}

/* The no-split token a segment equals (`token in no_split_token`), or -1. */
static inline int32_t seg_token(const lisa_tokenizer *t, const enc_ws *w, int32_t a, int32_t b) {
    if (a >= b || t->n_ns == 0) return -1;
    const uint32_t lo = w->offs[a], hi = w->offs[b];
    return strmap_get(&t->ns_map, w->text + lo, hi - lo);
}

/* tokenize(text) + convert_tokens_to_ids (+ BOS/EOS): appends to w->ids. */
static lisa_status encode_into(const lisa_tokenizer *t, enc_ws *w, const char *text, size_t len, bool add_special) {
    if (len > LISA_TOKENIZER_MAX_TEXT_BYTES)
        return lisa_fail(LISA_ERR_LIMIT, "tokenizer: text of %zu bytes exceeds the limit of %u bytes", len,
                         (unsigned)LISA_TOKENIZER_MAX_TEXT_BYTES);
    if (!text && len) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer: NULL text");

    /* LlamaTokenizer.tokenize (non-legacy): "▁" + text.replace("▁", " ") */
    size_t n = 0;
    free(w->text);
    w->text = malloc(len + SPACE_SYMBOL_LEN + 1);
    if (!w->text) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for a %zu-byte text", len);
    if (t->legacy) {
        if (len) memcpy(w->text, text, len);
        n = len;
    } else {
        memcpy(w->text, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
        n = SPACE_SYMBOL_LEN;
        for (size_t i = 0; i < len;) {
            if (i + 3 <= len && memcmp(text + i, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
                w->text[n++] = ' ';
                i += 3;
            } else {
                w->text[n++] = (uint8_t)text[i++];
            }
        }
    }

    /* code points, then the Trie split */
    const size_t cap_cp = n + 1;
    free(w->cps);
    free(w->offs);
    free(w->st_start);
    free(w->st_node);
    free(w->st_remove);
    const size_t n_states = (size_t)t->max_ns_cps + 2;
    w->cps = malloc(sizeof *w->cps * cap_cp);
    w->offs = malloc(sizeof *w->offs * (cap_cp + 1));
    w->st_start = malloc(sizeof *w->st_start * n_states);
    w->st_node = malloc(sizeof *w->st_node * n_states);
    w->st_remove = malloc(n_states);
    if (!w->cps || !w->offs || !w->st_start || !w->st_node || !w->st_remove)
        return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for a %zu-byte text", len);
    const int32_t ncp = (int32_t)to_cps(w->text, n, w->cps, w->offs);

    /* cut_text */
    w->n_seg = 0;
    if (t->n_ns == 0) {
        w->n_offsets = 0;
        LISA_TRY(off_push(w, 0));
    } else {
        LISA_TRY(trie_split(t, w, ncp, (int32_t)n_states));
    }
    LISA_TRY(off_push(w, ncp));
    free(w->seg_a);
    free(w->seg_b);
    w->seg_a = malloc(sizeof *w->seg_a * w->n_offsets);
    w->seg_b = malloc(sizeof *w->seg_b * w->n_offsets);
    if (!w->seg_a || !w->seg_b) return lisa_fail(LISA_ERR_OOM, "tokenizer: out of memory for a %zu-byte text", len);
    int32_t start = 0;
    for (size_t k = 0; k < w->n_offsets; k++) {
        const int32_t end = w->offsets[k];
        if (start > end) continue; /* "There was a bug in Trie algorithm": HF logs and skips */
        if (start == end) continue;
        w->seg_a[w->n_seg] = start;
        w->seg_b[w->n_seg] = end;
        w->n_seg++;
        start = end;
    }

    /* strip whitespace around no-split tokens (PreTrainedTokenizer.tokenize), in list order with
     * the mutations visible to later iterations */
    for (int32_t i = 0; i < w->n_seg; i++) {
        const int32_t k = seg_token(t, w, w->seg_a[i], w->seg_b[i]);
        if (k < 0) continue;
        const no_split_token *x = &t->ns[k];
        const bool has_left = i > 0, has_right = i < w->n_seg - 1;
        const bool strip_right_nb = x->added_token ? x->rstrip : true; /* right neighbour: lstrip() */
        const bool strip_left_nb = x->added_token ? x->lstrip : true;  /* left neighbour: rstrip() */
        if (strip_right_nb && has_right && w->seg_a[i + 1] < w->seg_b[i + 1])
            while (w->seg_a[i + 1] < w->seg_b[i + 1] && py_isspace(w->cps[w->seg_a[i + 1]]))
                w->seg_a[i + 1]++;
        if (strip_left_nb && has_left && w->seg_a[i - 1] < w->seg_b[i - 1])
            while (w->seg_a[i - 1] < w->seg_b[i - 1] && py_isspace(w->cps[w->seg_b[i - 1] - 1]))
                w->seg_b[i - 1]--;
    }

    if (add_special && t->add_bos) LISA_TRY(push_id(w, t->bos_id));
    for (int32_t i = 0; i < w->n_seg; i++) {
        const int32_t a = w->seg_a[i], b = w->seg_b[i];
        if (a >= b) continue; /* fully stripped */
        const int32_t k = seg_token(t, w, a, b);
        if (k >= 0) {
            LISA_TRY(push_id(w, t->ns[k].id));
            continue;
        }
        const uint8_t *s = w->text + w->offs[a];
        size_t sn = w->offs[b] - w->offs[a];
        if (t->legacy) {
            LISA_TRY(sp_encode(t, w, s, sn, NULL, NULL, NULL));
            continue;
        }
        /* LlamaTokenizer._tokenize (legacy=False) */
        const bool is_first = sn >= SPACE_SYMBOL_LEN && memcmp(s, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0;
        if (is_first) {
            s += SPACE_SYMBOL_LEN;
            sn -= SPACE_SYMBOL_LEN;
        }
        const uint8_t *fs;
        size_t fl, fi;
        LISA_TRY(sp_encode(t, w, s, sn, &fs, &fl, &fi));
        if (!is_first && !(sn > 0 && s[0] == ' ') && fl >= SPACE_SYMBOL_LEN &&
            memcmp(fs, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
            if (fl == SPACE_SYMBOL_LEN) {
                /* tokens[0] was "▁" alone: dropped */
                memmove(w->ids + fi, w->ids + fi + 1, sizeof *w->ids * (w->ids_n - fi - 1));
                w->ids_n--;
            } else {
                w->ids[fi] = hf_token_to_id(t, fs + SPACE_SYMBOL_LEN, fl - SPACE_SYMBOL_LEN);
            }
        }
    }
    if (add_special && t->add_eos) LISA_TRY(push_id(w, t->eos_id));
    return LISA_OK;
}

static lisa_status copy_out(const enc_ws *w, int32_t *ids, int32_t cap, int32_t *n) {
    if (!ids && cap > 0) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer: ids is NULL with cap %d", cap);
    if (w->ids_n > (size_t)INT32_MAX) return lisa_fail(LISA_ERR_LIMIT, "tokenizer: too many ids");
    *n = (int32_t)w->ids_n;
    const int32_t k = *n < cap ? *n : (cap > 0 ? cap : 0);
    if (k > 0) memcpy(ids, w->ids, sizeof *ids * (size_t)k);
    if (*n > cap) return lisa_fail(LISA_ERR_LIMIT, "tokenizer: output holds %d ids, need %d", cap, *n);
    return LISA_OK;
}

lisa_status lisa_tokenizer_encode(const lisa_tokenizer *t, const char *text, size_t len, bool add_special, int32_t *ids,
                                  int32_t cap, int32_t *n) {
    enc_ws w;
    memset(&w, 0, sizeof w);
    *n = 0;
    lisa_status st = encode_into(t, &w, text, len, add_special);
    if (st == LISA_OK) st = copy_out(&w, ids, cap, n);
    enc_ws_free(&w);
    return st;
}

lisa_status lisa_tokenizer_encode_image_prompt(const lisa_tokenizer *t, const char *prompt, size_t len, int32_t *ids,
                                               int32_t cap, int32_t *n) {
    static const char kImage[] = "<image>";
    const size_t ki = sizeof kImage - 1;
    *n = 0;
    if (len > LISA_TOKENIZER_MAX_TEXT_BYTES)
        return lisa_fail(LISA_ERR_LIMIT, "tokenizer: prompt of %zu bytes exceeds the limit of %u bytes", len,
                         (unsigned)LISA_TOKENIZER_MAX_TEXT_BYTES);
    if (!prompt && len) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer: NULL prompt");
    enc_ws w;
    memset(&w, 0, sizeof w);
    enc_ws chunk;
    memset(&chunk, 0, sizeof chunk);
    lisa_status st = LISA_OK;
    /* prompt_chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]; offset = 1 if the
     * first chunk starts with BOS; result = chunk0[:1] + chunk0[offset:] + [-200] + chunk1[offset:] ... */
    size_t pos = 0;
    int offset = 0;
    for (int32_t ci = 0; st == LISA_OK; ci++) {
        const char *hit = NULL;
        for (size_t i = pos; i + ki <= len; i++)
            if (prompt[i] == '<' && memcmp(prompt + i, kImage, ki) == 0) {
                hit = prompt + i;
                break;
            }
        const size_t end = hit ? (size_t)(hit - prompt) : len;
        chunk.ids_n = 0;
        st = encode_into(t, &chunk, prompt + pos, end - pos, true);
        if (st != LISA_OK) break;
        if (ci == 0) {
            if (chunk.ids_n > 0 && chunk.ids[0] == t->bos_id) {
                offset = 1;
                st = push_id(&w, chunk.ids[0]);
            }
        } else {
            for (int k = 0; k < offset + 1 && st == LISA_OK; k++)
                if (k >= offset) st = push_id(&w, LISA_IMAGE_TOKEN_INDEX); /* [sep]*(offset+1) sliced [offset:] */
        }
        for (size_t k = (size_t)offset; k < chunk.ids_n && st == LISA_OK; k++)
            st = push_id(&w, chunk.ids[k]);
        if (!hit) break;
        pos = end + ki;
    }
    if (st == LISA_OK) st = copy_out(&w, ids, cap, n);
    enc_ws_free(&chunk);
    enc_ws_free(&w);
    return st;
}

int32_t lisa_tokenizer_token_id(const lisa_tokenizer *t, const char *text) {
    int32_t first = -1, n = 0;
    enc_ws w;
    memset(&w, 0, sizeof w);
    if (encode_into(t, &w, text, strlen(text), false) == LISA_OK) {
        n = (int32_t)w.ids_n;
        if (n > 0) first = w.ids[0];
    }
    enc_ws_free(&w);
    return first;
}

/* ==== decode ===================================================================================== */

typedef struct sink {
    char *buf;
    size_t cap; /* usable bytes (excluding the NUL) */
    size_t len; /* bytes produced (may exceed cap: counting only) */
} sink;

static inline void sink_put(sink *s, const void *p, size_t n) {
    if (s->len < s->cap) {
        const size_t k = n < s->cap - s->len ? n : s->cap - s->len;
        memcpy(s->buf + s->len, p, k);
    }
    s->len += n;
}

/* sp Decode state for one stretch of pieces (one sp_model.decode call). */
typedef struct sp_dec {
    bool is_bos_ws, bos_ws_seen, text_empty;
    uint8_t pending[4];
    int32_t n_pending;
} sp_dec;

static inline void sp_dec_reset(sp_dec *d) {
    d->is_bos_ws = true;
    d->bos_ws_seen = false;
    d->text_empty = true;
    d->n_pending = 0;
}

/* Bytes needed by a UTF-8 lead byte as sp's DecodeUTF8 reads it: 1 ASCII, 2/3/4 multi-byte, 0 never valid. */
static inline int utf8_need(uint8_t b) {
    if (b < 0x80) return 1;
    if ((b & 0xE0) == 0xC0) return 2;
    if ((b & 0xF0) == 0xE0) return 3;
    if ((b & 0xF8) == 0xF0) return 4;
    return 0;
}

/* Whether some continuation makes p[0..k) (k < need) a valid sequence. Trail bytes 0x80, 0x90,
 * 0xA0, 0xBF cover every second-byte range DecodeUTF8 accepts (E0: A0-BF, ED: 80-9F, F0: 90-BF,
 * F4: 80-8F). */
static bool utf8_completable(const uint8_t *p, int k, int need) {
    static const uint8_t kTrail[4] = {0x80, 0x90, 0xA0, 0xBF};
    uint8_t q[4];
    memcpy(q, p, (size_t)k);
    const int miss = need - k;
    int combos = 1;
    for (int i = 0; i < miss; i++)
        combos *= 4;
    for (int c = 0; c < combos; c++) {
        int x = c;
        for (int i = k; i < need; i++) {
            q[i] = kTrail[x & 3];
            x >>= 2;
        }
        size_t ml;
        if (sp_valid_utf8(q, (size_t)need, &ml) && (int)ml == need) return true;
    }
    return false;
}

/* ProcessBytePieces, incrementally: emits every character whose bytes are final; with `final`
 * set, the held-back tail is resolved as sp does at the end of a byte run. */
static void sp_dec_bytes(sp_dec *d, sink *out, bool final) {
    while (d->n_pending > 0) {
        const uint8_t *p = d->pending;
        const int need = utf8_need(p[0]);
        int consume;
        bool valid;
        if (need == 1) {
            consume = 1;
            valid = true;
        } else if (need == 0) {
            consume = 1;
            valid = false;
        } else if (d->n_pending >= need) {
            size_t ml;
            valid = sp_valid_utf8(p, (size_t)need, &ml);
            consume = valid ? (int)ml : 1;
        } else if (!final && utf8_completable(p, d->n_pending, need)) {
            return; /* hold: more bytes may complete it */
        } else {
            consume = 1;
            valid = false;
        }
        if (valid)
            sink_put(out, p, (size_t)consume);
        else
            sink_put(out, REPLACEMENT_CHAR, 3);
        d->text_empty = false;
        memmove(d->pending, d->pending + consume, (size_t)(d->n_pending - consume));
        d->n_pending -= consume;
    }
}

/* Writes `piece` with every "▁" replaced by " ". */
static void put_unescaped(sink *out, const char *p, size_t n) {
    size_t i = 0, run = 0;
    while (i + run < n) {
        if (i + run + 3 <= n && memcmp(p + i + run, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
            sink_put(out, p + i, run);
            sink_put(out, " ", 1);
            i += run + SPACE_SYMBOL_LEN;
            run = 0;
        } else {
            run++;
        }
    }
    sink_put(out, p + i, run);
}

/* One SentencePiece id inside a stretch (SentencePieceProcessor::Decode loop body). */
static void sp_dec_piece(const lisa_tokenizer *t, sp_dec *d, int32_t id, sink *out) {
    const int32_t ty = piece_type(t, id);
    if (ty == LISA_SPM_BYTE) {
        LISA_ASSERT(d->n_pending < 4);
        d->pending[d->n_pending++] = (uint8_t)piece_to_byte(piece_str(t, id), piece_len(t, id));
        sp_dec_bytes(d, out, false);
        return;
    }
    sp_dec_bytes(d, out, true);
    if (d->bos_ws_seen || !d->text_empty) d->is_bos_ws = false;
    const size_t before = out->len;
    if (ty == LISA_SPM_CONTROL) {
        d->bos_ws_seen = false;
    } else if (ty == LISA_SPM_UNKNOWN) {
        sink_put(out, t->unk_surface, t->unk_surface_len);
        d->bos_ws_seen = false;
    } else {
        const char *p = piece_str(t, id);
        size_t n = piece_len(t, id);
        bool has_bos_ws = false;
        if (d->is_bos_ws && (t->add_dummy_prefix || t->remove_extra_ws)) {
            if (n >= SPACE_SYMBOL_LEN && memcmp(p, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
                p += SPACE_SYMBOL_LEN;
                n -= SPACE_SYMBOL_LEN;
                has_bos_ws = true;
            }
            if (t->remove_extra_ws) has_bos_ws = false;
        }
        put_unescaped(out, p, n);
        d->bos_ws_seen = has_bos_ws;
    }
    if (out->len != before) d->text_empty = false;
}

static inline bool is_added_like(const lisa_tokenizer *t, int32_t id) { return t->id_flags[id] & FLAG_ADDED; }
static inline bool is_special_str(const lisa_tokenizer *t, int32_t id) {
    return id < t->n_pieces && (t->id_flags[id] & FLAG_SPECIAL_STR);
}

/* PreTrainedTokenizer.clean_up_tokenization: sequential str.replace calls, each shrinking. */
static size_t clean_up_tokenization(char *s, size_t n) {
    static const char *const kFrom[10] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    static const char *const kTo[10] = {".", "?", "!", ",", "'", "n't", "'m", "'s", "'ve", "'re"};
    for (int r = 0; r < 10; r++) {
        const size_t fl = strlen(kFrom[r]), tl = strlen(kTo[r]);
        size_t i = 0, o = 0;
        while (i < n) {
            if (i + fl <= n && memcmp(s + i, kFrom[r], fl) == 0) {
                memmove(s + o, kTo[r], tl);
                o += tl;
                i += fl;
            } else {
                s[o++] = s[i++];
            }
        }
        n = o;
    }
    return n;
}

lisa_status lisa_tokenizer_decode(const lisa_tokenizer *t, const int32_t *ids, int32_t n, bool skip_special, char *buf,
                                  size_t cap, size_t *len) {
    *len = 0;
    if (n < 0 || (n > 0 && !ids)) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer decode: bad id array");
    if (!buf && cap > 0) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer decode: buf is NULL with cap %zu", cap);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer decode: ids[%d] = %d is outside [0, %d)", i, ids[i],
                             t->vocab_size);
    sink out = {buf, cap ? cap - 1 : 0, 0};
    int32_t n_sub = 0;
    for (int32_t i = 0; i < n;) {
        const int32_t id = ids[i];
        if (skip_special && (t->id_flags[id] & FLAG_SKIP)) {
            i++;
            continue;
        }
        if (is_added_like(t, id)) {
            if (n_sub++) sink_put(&out, " ", 1);
            size_t l = 0; /* (a piece spelled like an added token is written as that piece) */
            const char *s = lisa_tokenizer_id_to_piece(t, id, &l);
            sink_put(&out, s, l);
            i++;
            continue;
        }
        /* a run of SentencePiece tokens: convert_tokens_to_string */
        if (n_sub++) sink_put(&out, " ", 1);
        int32_t j = i;
        while (j < n && ((skip_special && (t->id_flags[ids[j]] & FLAG_SKIP)) || !is_added_like(t, ids[j])))
            j++;
        sp_dec d;
        sp_dec_reset(&d);
        bool in_stretch = false;
        for (int32_t k = i; k < j; k++) {
            const int32_t x = ids[k];
            if (skip_special && (t->id_flags[x] & FLAG_SKIP)) continue;
            if (is_special_str(t, x)) {
                if (in_stretch) sp_dec_bytes(&d, &out, true);
                sink_put(&out, piece_str(t, x), piece_len(t, x));
                in_stretch = false;
                sp_dec_reset(&d);
                continue;
            }
            if (!in_stretch) {
                /* HF puts " " before a non-empty stretch that a special piece ends */
                for (int32_t q = k + 1; q < j; q++) {
                    const int32_t y = ids[q];
                    if (skip_special && (t->id_flags[y] & FLAG_SKIP)) continue;
                    if (is_special_str(t, y)) {
                        sink_put(&out, " ", 1);
                        break;
                    }
                }
                in_stretch = true;
            }
            sp_dec_piece(t, &d, x, &out);
        }
        if (in_stretch) sp_dec_bytes(&d, &out, true);
        i = j;
    }
    if (t->clean_up && out.len <= out.cap) out.len = clean_up_tokenization(out.buf, out.len);
    if (cap) out.buf[out.len < out.cap ? out.len : out.cap] = '\0';
    *len = out.len;
    if (out.len > out.cap)
        return lisa_fail(LISA_ERR_LIMIT, "tokenizer decode: the text needs %zu bytes, the buffer holds %zu",
                         out.len + 1, cap);
    return LISA_OK;
}

size_t lisa_tokenizer_chat_cleanup(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\n') s[o++] = s[i];
    n = o;
    o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == ' ' && s[i + 1] == ' ') {
            s[o++] = ' ';
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    s[o] = '\0';
    return o;
}

lisa_status lisa_prompt_llava_v1(char *buf, size_t cap, const char *query, bool use_mm_start_end, size_t *len) {
    static const char kSystem[] = "A chat between a curious human and an artificial intelligence assistant. "
                                  "The assistant gives helpful, detailed, and polite answers to the human's questions.";
    static const char kImage[] = "<image>";
    static const char kImageMM[] = "<im_start><image><im_end>";
    if (!query) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_prompt_llava_v1: query is NULL");
    sink out = {buf, cap ? cap - 1 : 0, 0};
    /* get_prompt (SeparatorStyle.TWO): system + sep + "USER: " + msg + sep + "ASSISTANT:" */
    sink_put(&out, kSystem, sizeof kSystem - 1);
    sink_put(&out, " USER: ", 7);
    /* msg = ("<image>" + "\n" + query).replace("<image>", "<im_start><image><im_end>") */
    const char *img = use_mm_start_end ? kImageMM : kImage;
    const size_t img_len = use_mm_start_end ? sizeof kImageMM - 1 : sizeof kImage - 1;
    sink_put(&out, img, img_len);
    sink_put(&out, "\n", 1);
    const size_t ql = strlen(query), ki = sizeof kImage - 1;
    size_t i = 0, run = 0;
    while (i + run < ql) {
        if (use_mm_start_end && i + run + ki <= ql && memcmp(query + i + run, kImage, ki) == 0) {
            sink_put(&out, query + i, run);
            sink_put(&out, img, img_len);
            i += run + ki;
            run = 0;
        } else {
            run++;
        }
    }
    sink_put(&out, query + i, run);
    sink_put(&out, " ASSISTANT:", 11);
    if (cap) buf[out.len < out.cap ? out.len : out.cap] = '\0';
    if (len) *len = out.len;
    if (out.len > out.cap)
        return lisa_fail(LISA_ERR_LIMIT, "lisa_prompt_llava_v1: the prompt needs %zu bytes, the buffer holds %zu",
                         out.len + 1, cap);
    return LISA_OK;
}

/* ==== streaming decode =========================================================================== */

size_t lisa_tokenizer_stream_chunk_max(const lisa_tokenizer *t) {
    /* separator " " + space before a special + the token text + 3 flushed bytes as U+FFFD */
    return t->max_token_bytes + 2 + 3 * 3 + 4;
}

static void stream_reset(lisa_tokenizer_stream *s) {
    const lisa_tokenizer *t = s->tok;
    const bool skip = s->skip_special;
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->skip_special = skip;
    s->is_bos_ws = true;
    s->text_empty = true;
}

lisa_status lisa_tokenizer_stream_init(lisa_tokenizer_stream *s, const lisa_tokenizer *t, bool skip_special) {
    memset(s, 0, sizeof *s);
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "lisa_tokenizer_stream_init: NULL tokenizer");
    if (t->clean_up)
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "tokenizer stream: clean_up_tokenization_spaces is set; its replacements are not incremental");
    s->tok = t;
    s->skip_special = skip_special;
    stream_reset(s);
    return LISA_OK;
}

static inline void stream_load(const lisa_tokenizer_stream *s, sp_dec *d) {
    d->is_bos_ws = s->is_bos_ws;
    d->bos_ws_seen = s->bos_ws_seen;
    d->text_empty = s->text_empty;
    memcpy(d->pending, s->pending, sizeof d->pending);
    d->n_pending = s->n_pending;
}

static inline void stream_store(lisa_tokenizer_stream *s, const sp_dec *d) {
    s->is_bos_ws = d->is_bos_ws;
    s->bos_ws_seen = d->bos_ws_seen;
    s->text_empty = d->text_empty;
    memcpy(s->pending, d->pending, sizeof s->pending);
    s->n_pending = d->n_pending;
}

lisa_status lisa_tokenizer_stream_push(lisa_tokenizer_stream *s, int32_t id, char *outbuf, size_t cap, size_t *len) {
    const lisa_tokenizer *t = s->tok;
    *len = 0;
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer stream: not initialized");
    if (cap <= lisa_tokenizer_stream_chunk_max(t))
        return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer stream: output buffer of %zu bytes is below %zu", cap,
                         lisa_tokenizer_stream_chunk_max(t) + 1);
    if (id < 0 || id >= t->vocab_size)
        return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer stream: id %d is outside [0, %d)", id, t->vocab_size);
    sink out = {outbuf, cap - 1, 0};
    if (!(s->skip_special && (t->id_flags[id] & FLAG_SKIP))) {
        sp_dec d;
        stream_load(s, &d);
        if (is_added_like(t, id)) {
            if (s->run_open) sp_dec_bytes(&d, &out, true);
            if (s->n_subtexts++) sink_put(&out, " ", 1);
            const char *p = id < t->n_pieces ? piece_str(t, id) : t->added_str[id - t->n_pieces];
            const size_t l = id < t->n_pieces ? piece_len(t, id) : t->added_len[id - t->n_pieces];
            sink_put(&out, p, l);
            s->run_open = false;
            sp_dec_reset(&d);
        } else {
            if (!s->run_open) {
                if (s->n_subtexts++) sink_put(&out, " ", 1);
                s->run_open = true;
                s->run_index = 0;
                s->prev_special = false;
                sp_dec_reset(&d);
            }
            if (is_special_str(t, id)) {
                sp_dec_bytes(&d, &out, true);
                /* HF's " " goes before the stretch; streamed, it comes here (see tokenizer.h) */
                if (!s->prev_special && s->run_index != 0) sink_put(&out, " ", 1);
                sink_put(&out, piece_str(t, id), piece_len(t, id));
                s->prev_special = true;
                sp_dec_reset(&d);
            } else {
                sp_dec_piece(t, &d, id, &out);
                s->prev_special = false;
            }
            s->run_index++;
        }
        stream_store(s, &d);
    }
    LISA_ASSERT(out.len <= out.cap);
    outbuf[out.len] = '\0';
    *len = out.len;
    return LISA_OK;
}

lisa_status lisa_tokenizer_stream_finish(lisa_tokenizer_stream *s, char *outbuf, size_t cap, size_t *len) {
    const lisa_tokenizer *t = s->tok;
    *len = 0;
    if (!t) return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer stream: not initialized");
    if (cap <= lisa_tokenizer_stream_chunk_max(t))
        return lisa_fail(LISA_ERR_INVALID_ARG, "tokenizer stream: output buffer of %zu bytes is below %zu", cap,
                         lisa_tokenizer_stream_chunk_max(t) + 1);
    sink out = {outbuf, cap - 1, 0};
    sp_dec d;
    stream_load(s, &d);
    sp_dec_bytes(&d, &out, true);
    outbuf[out.len] = '\0';
    *len = out.len;
    stream_reset(s);
    return LISA_OK;
}
