/* loader/hf_tokenizer_files.c — tokenizer_config.json, special_tokens_map.json, added_tokens.json.
 * Resolution order and semantics: see hf_tokenizer_files.h; ref: transformers v4.31.0
 * tokenization_utils_base.py `_from_pretrained` (lines ~1870-2075) and
 * models/llama/tokenization_llama.py `LlamaTokenizer.__init__`. */
#include "loader/hf_tokenizer_files.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const kAttrNames[LISA_HF_N_ATTRS] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                        "pad_token", "cls_token", "mask_token"};

const char *lisa_hf_attr_name(lisa_hf_special_attr a) { return (a >= 0 && a < LISA_HF_N_ATTRS) ? kAttrNames[a] : "?"; }

static void token_clear(lisa_hf_token *t) {
    free(t->content);
    memset(t, 0, sizeof *t);
}

void lisa_hf_tokenizer_files_free(lisa_hf_tokenizer_files *f) {
    if (!f) return;
    for (int i = 0; i < LISA_HF_N_ATTRS; i++)
        token_clear(&f->attr[i]);
    for (int32_t i = 0; i < f->n_additional; i++)
        token_clear(&f->additional[i]);
    free(f->additional);
    for (int32_t i = 0; i < f->n_added; i++)
        free(f->added[i].content);
    free(f->added);
    memset(f, 0, sizeof *f);
}

/* Reads a whole file. *exists = false (and LISA_OK) when it does not exist. */
static lisa_status read_json_file(cJSON **out, bool *exists, const char *dir, const char *file) {
    char path[4096];
    *out = NULL;
    *exists = false;
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return lisa_fail(LISA_ERR_INVALID_ARG, "%s/%s: path too long", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return LISA_OK;
        return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lisa_fail(LISA_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > LISA_HF_JSON_MAX_BYTES) {
        fclose(f);
        return lisa_fail(LISA_ERR_LIMIT, "%s: %lld bytes exceeds the limit of %u bytes", path, (long long)st.st_size,
                         (unsigned)LISA_HF_JSON_MAX_BYTES);
    }
    const size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    const size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return lisa_fail(LISA_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n, &end, false);
    if (!j) {
        const size_t at = end ? (size_t)(end - buf) : 0;
        free(buf);
        return lisa_fail(LISA_ERR_FORMAT, "%s: malformed JSON near byte %zu", path, at);
    }
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lisa_fail(LISA_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    *exists = true;
    return LISA_OK;
}

/* Python truthiness of a JSON value (`if x:`). */
static bool py_truthy(const cJSON *v) {
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    if (cJSON_IsNull(v)) return false;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0.0;
    if (cJSON_IsString(v)) return v->valuestring[0] != '\0';
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return false;
}

static lisa_status dup_str(char **out, const char *s, const char *file, const char *key) {
    *out = strdup(s);
    if (!*out) return lisa_fail(LISA_ERR_OOM, "%s: %s: out of memory", file, key);
    return LISA_OK;
}

/* Python's json keeps the last of repeated keys; cJSON_GetObjectItem would return the first. */
static const cJSON *get_last(const cJSON *obj, const char *key) {
    const cJSON *it, *found = NULL;
    cJSON_ArrayForEach(it, obj) {
        if (it->string && !strcmp(it->string, key)) found = it;
    }
    return found;
}

/* A serialized AddedToken: {"content": str, "lstrip": b, "rstrip": b, "single_word": b,
 * "normalized": b} (+ "__type": "AddedToken" in tokenizer_config.json). `typed` requires the
 * __type marker (tokenizer_config: convert_added_tokens only converts marked dicts; an unmarked
 * dict reaches SpecialTokensMixin and raises TypeError) and rejects other keys like
 * AddedToken(**value) would. */
static lisa_status parse_added_token_dict(lisa_hf_token *t, const cJSON *v, bool typed, const char *file,
                                          const char *key) {
    const cJSON *ty = get_last(v, "__type");
    if (typed && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "AddedToken")))
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: a dict without \"__type\": \"AddedToken\" is not a valid token",
                         file, key);
    const cJSON *c = get_last(v, "content");
    if (!cJSON_IsString(c)) return lisa_fail(LISA_ERR_FORMAT, "%s: %s: \"content\" must be a string", file, key);
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        const char *k = it->string;
        if (!strcmp(k, "content")) continue;
        if (!strcmp(k, "__type") && typed) continue;
        if (!strcmp(k, "lstrip") || !strcmp(k, "rstrip") || !strcmp(k, "single_word") || !strcmp(k, "normalized"))
            continue;
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: unexpected AddedToken field \"%s\"", file, key, k);
    }
    token_clear(t);
    LISA_TRY(dup_str(&t->content, c->valuestring, file, key));
    t->added_token = true;
    t->lstrip = py_truthy(get_last(v, "lstrip"));
    t->rstrip = py_truthy(get_last(v, "rstrip"));
    return LISA_OK;
}

/* One token value: string, AddedToken dict or null. `wrap_str` turns a string into an AddedToken
 * without stripping (LlamaTokenizer.__init__ does that for bos/eos/unk/pad). */
static lisa_status parse_token_value(lisa_hf_token *t, const cJSON *v, bool typed, bool wrap_str, const char *file,
                                     const char *key) {
    if (cJSON_IsNull(v)) {
        token_clear(t);
        return LISA_OK;
    }
    if (cJSON_IsString(v)) {
        token_clear(t);
        LISA_TRY(dup_str(&t->content, v->valuestring, file, key));
        t->added_token = wrap_str;
        return LISA_OK;
    }
    if (cJSON_IsObject(v)) return parse_added_token_dict(t, v, typed, file, key);
    return lisa_fail(LISA_ERR_FORMAT, "%s: %s: expected a string, an AddedToken object or null", file, key);
}

static lisa_status parse_additional(lisa_hf_tokenizer_files *f, const cJSON *v, bool typed, const char *file) {
    const char *key = "additional_special_tokens";
    for (int32_t i = 0; i < f->n_additional; i++)
        token_clear(&f->additional[i]);
    free(f->additional);
    f->additional = NULL;
    f->n_additional = 0;
    if (cJSON_IsNull(v)) return LISA_OK;
    /* A single string is iterated as one token by all_special_tokens_extended. */
    const int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (!cJSON_IsArray(v) && !cJSON_IsString(v) && !cJSON_IsObject(v))
        return lisa_fail(LISA_ERR_FORMAT, "%s: %s: expected a list", file, key);
    if (n == 0) return LISA_OK;
    if (n > LISA_HF_MAX_ADDED_TOKENS)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %s: %d tokens exceeds the limit of %d", file, key, n,
                         LISA_HF_MAX_ADDED_TOKENS);
    f->additional = calloc((size_t)n, sizeof *f->additional);
    if (!f->additional) return lisa_fail(LISA_ERR_OOM, "%s: %s: out of memory", file, key);
    if (!cJSON_IsArray(v)) {
        f->n_additional = 1;
        return parse_token_value(&f->additional[0], v, typed, false, file, key);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it) && !cJSON_IsObject(it))
            return lisa_fail(LISA_ERR_FORMAT, "%s: %s[%d]: expected a string or an AddedToken object", file, key,
                             f->n_additional);
        LISA_TRY(parse_token_value(&f->additional[f->n_additional++], it, typed, false, file, key));
    }
    return LISA_OK;
}

static lisa_status load_tokenizer_config(lisa_hf_tokenizer_files *f, const cJSON *j, const char *file) {
    const cJSON *v;
    v = get_last(j, "tokenizer_class");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v)) return lisa_fail(LISA_ERR_FORMAT, "%s: tokenizer_class: expected a string", file);
        if (strcmp(v->valuestring, "LlamaTokenizer") != 0 && strcmp(v->valuestring, "LlamaTokenizerFast") != 0)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: tokenizer_class \"%s\": only LlamaTokenizer is supported", file,
                             v->valuestring);
    }
    if ((v = get_last(j, "legacy"))) f->legacy = py_truthy(v);
    if ((v = get_last(j, "add_bos_token"))) f->add_bos_token = py_truthy(v);
    if ((v = get_last(j, "add_eos_token"))) f->add_eos_token = py_truthy(v);
    if ((v = get_last(j, "clean_up_tokenization_spaces"))) f->clean_up_tokenization_spaces = py_truthy(v);
    for (int a = 0; a < LISA_HF_N_ATTRS; a++) {
        v = get_last(j, kAttrNames[a]);
        if (!v) continue;
        const bool wrap = a == LISA_HF_BOS || a == LISA_HF_EOS || a == LISA_HF_UNK || a == LISA_HF_PAD;
        LISA_TRY(parse_token_value(&f->attr[a], v, true, wrap, file, kAttrNames[a]));
    }
    if ((v = get_last(j, "additional_special_tokens"))) LISA_TRY(parse_additional(f, v, true, file));
    return LISA_OK;
}

static lisa_status load_special_tokens_map(lisa_hf_tokenizer_files *f, const cJSON *j, const char *file) {
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (!strcmp(k, "additional_special_tokens")) {
            LISA_TRY(parse_additional(f, it, false, file));
            continue;
        }
        for (int a = 0; a < LISA_HF_N_ATTRS; a++)
            if (!strcmp(k, kAttrNames[a])) LISA_TRY(parse_token_value(&f->attr[a], it, false, false, file, k));
        /* other keys: setattr of an attribute the tokenizer never reads */
    }
    return LISA_OK;
}

static int cmp_added(const void *a, const void *b) {
    const lisa_hf_added *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static lisa_status load_added_tokens(lisa_hf_tokenizer_files *f, const cJSON *j, const char *file) {
    const int n = cJSON_GetArraySize(j);
    if (n == 0) return LISA_OK;
    if (n > LISA_HF_MAX_ADDED_TOKENS)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %d added tokens exceeds the limit of %d", file, n,
                         LISA_HF_MAX_ADDED_TOKENS);
    f->added = calloc((size_t)n, sizeof *f->added);
    if (!f->added) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble > 2147483647.0)
            return lisa_fail(LISA_ERR_FORMAT, "%s: \"%s\": id must be a non-negative integer", file, it->string);
        const int64_t id = (int64_t)it->valuedouble;
        int32_t k = 0;
        while (k < f->n_added && strcmp(f->added[k].content, it->string) != 0)
            k++;
        if (k == f->n_added) {
            LISA_TRY(dup_str(&f->added[k].content, it->string, file, it->string));
            f->n_added++;
        }
        f->added[k].id = id;
    }
    /* Python's sorted() is stable: insertion sort keeps JSON order on equal ids (qsort is not). */
    for (int32_t i = 1; i < f->n_added; i++) {
        lisa_hf_added x = f->added[i];
        int32_t k = i;
        while (k > 0 && cmp_added(&f->added[k - 1], &x) > 0) {
            f->added[k] = f->added[k - 1];
            k--;
        }
        f->added[k] = x;
    }
    return LISA_OK;
}

static lisa_status set_default(lisa_hf_token *t, const char *s) {
    t->content = strdup(s);
    if (!t->content) return lisa_fail(LISA_ERR_OOM, "tokenizer defaults: out of memory");
    t->added_token = true;
    t->lstrip = t->rstrip = false;
    return LISA_OK;
}

static lisa_status load_all(lisa_hf_tokenizer_files *f, const char *dir) {
    LISA_TRY(set_default(&f->attr[LISA_HF_BOS], "<s>"));
    LISA_TRY(set_default(&f->attr[LISA_HF_EOS], "</s>"));
    LISA_TRY(set_default(&f->attr[LISA_HF_UNK], "<unk>"));
    f->legacy = true;
    f->add_bos_token = true;
    f->add_eos_token = false;
    f->clean_up_tokenization_spaces = false;
    if (!dir) return LISA_OK;

    static const char *const files[3] = {"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"};
    for (int i = 0; i < 3; i++) {
        cJSON *j = NULL;
        bool exists = false;
        LISA_TRY(read_json_file(&j, &exists, dir, files[i]));
        if (!exists) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        lisa_status st;
        if (i == 0) {
            f->has_tokenizer_config = true;
            st = load_tokenizer_config(f, j, path);
        } else if (i == 1) {
            f->has_special_tokens_map = true;
            st = load_special_tokens_map(f, j, path);
        } else {
            f->has_added_tokens = true;
            st = load_added_tokens(f, j, path);
        }
        cJSON_Delete(j);
        LISA_TRY(st);
    }
    return LISA_OK;
}

lisa_status lisa_hf_tokenizer_files_load(lisa_hf_tokenizer_files *out, const char *dir) {
    memset(out, 0, sizeof *out);
    lisa_status st = load_all(out, dir);
    if (st != LISA_OK) lisa_hf_tokenizer_files_free(out);
    return st;
}
