/* loader/pickle_plain.c — see pickle_plain.h. Opcode meanings from CPython Lib/pickletools.py. */
#include "loader/pickle_plain.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Owns every cJSON node on the stack and in `dead` (popped nodes that the memo may still name);
 * the memo only borrows. */
typedef struct pk {
    const uint8_t *start, *p, *end;
    const char *name;
    cJSON **stack;
    size_t n, cap;
    size_t *marks;
    size_t n_marks, cap_marks;
    cJSON **memo;
    size_t n_memo, cap_memo;
    cJSON **dead;
    size_t n_dead, cap_dead;
    size_t copied;      /* copy units made by DUP / GET (a sharing pickle can double per byte) */
    size_t copy_budget; /* the most copy units this input may make (copy_budget_for) */
    lisa_status s;
} pk;

static lisa_status pk_fail(pk *k, lisa_status s, const char *what) {
    if (k->s == LISA_OK) k->s = lisa_fail(s, "%s: pickle: %s at byte %zu", k->name, what, (size_t)(k->p - k->start));
    return k->s;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na) return false;
    *arr = na;
    *cap = nc;
    return true;
}

/* Nesting needs stack entries or marks (or copies, bounded below), so these bound the depth of
 * the tree, which cJSON walks recursively. Real pickles batch 1000 items per APPENDS/SETITEMS. */
#define PK_MAX_STACK ((size_t)1 << 14)
#define PK_MAX_MARKS ((size_t)1 << 12)

static bool push(pk *k, cJSON *v) {
    if (v && k->n >= PK_MAX_STACK) {
        cJSON_Delete(v);
        pk_fail(k, LISA_ERR_LIMIT, "stack deeper than 2^14");
        return false;
    }
    if (!v || !grow((void **)&k->stack, &k->cap, k->n + 1, sizeof *k->stack)) {
        cJSON_Delete(v);
        pk_fail(k, LISA_ERR_OOM, "out of memory");
        return false;
    }
    k->stack[k->n++] = v;
    return true;
}

/* items above the topmost MARK (CPython's unpickler starts a fresh stack at each MARK) */
static size_t frame_items(const pk *k) { return k->n - (k->n_marks ? k->marks[k->n_marks - 1] : 0); }

static bool need_items(pk *k, size_t m) {
    if (frame_items(k) < m) return pk_fail(k, LISA_ERR_FORMAT, "stack underflow"), false;
    return true;
}

static cJSON *pop(pk *k) {
    if (k->n == 0 || (k->n_marks && k->marks[k->n_marks - 1] >= k->n)) {
        pk_fail(k, LISA_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return k->stack[--k->n];
}

static void bury(pk *k, cJSON *v) {
    if (!grow((void **)&k->dead, &k->cap_dead, k->n_dead + 1, sizeof *k->dead)) {
        pk_fail(k, LISA_ERR_OOM, "out of memory");
        cJSON_Delete(v); /* the memo may dangle, but parsing stops here */
        return;
    }
    k->dead[k->n_dead++] = v;
}

static bool memo_put(pk *k, size_t idx) {
    if (!need_items(k, 1)) return false;
    /* picklers number memo entries 0, 1, 2, ...: more than the input has bytes is not one of them */
    if (idx > (size_t)(k->end - k->start) + 1024) {
        pk_fail(k, LISA_ERR_FORMAT, "memo index beyond the input size");
        return false;
    }
    if (!grow((void **)&k->memo, &k->cap_memo, idx + 1, sizeof *k->memo)) {
        pk_fail(k, LISA_ERR_OOM, "out of memory");
        return false;
    }
    for (size_t i = k->n_memo; i <= idx; i++)
        k->memo[i] = NULL;
    if (idx + 1 > k->n_memo) k->n_memo = idx + 1;
    k->memo[idx] = k->stack[k->n - 1];
    return true;
}

/* DUP and memo GET deep-copy (a cJSON tree shares nothing), so a pickle that duplicates a list
 * and appends it to itself doubles its size per few bytes. Copies are counted in units of one node
 * or 64 string bytes (~100 bytes of heap each with malloc's overhead), and an input may make at
 * most 16 units per byte of itself, at least 2^20 and at most 2^24 units: a 1 KiB input stops at
 * ~100 MB (a 1172-byte fuzz input used to reach the old flat 2^24-node bound at 1.9 GB), while
 * refCOCO's refs(*).p, tens of MB with a memo GET every few bytes, keep their full 2^24. */
#define PK_MIN_COPY_UNITS ((size_t)1 << 20)
#define PK_MAX_COPY_UNITS ((size_t)1 << 24)

static size_t copy_budget_for(size_t input_bytes) {
    const size_t b = input_bytes > PK_MAX_COPY_UNITS / 16 ? PK_MAX_COPY_UNITS : input_bytes * 16;
    return b < PK_MIN_COPY_UNITS ? PK_MIN_COPY_UNITS : b;
}

/* the copy units of v's tree, counting stops once past limit */
static size_t copy_units(const cJSON *v, size_t limit) {
    size_t n = 1 + (v->valuestring ? strlen(v->valuestring) / 64 : 0) + (v->string ? strlen(v->string) / 64 : 0);
    for (const cJSON *c = v->child; c && n <= limit; c = c->next)
        n += copy_units(c, limit);
    return n;
}

/* a deep copy of v (shared references are copied, so their total size is bounded) */
static bool push_copy(pk *k, const cJSON *v) {
    k->copied += copy_units(v, k->copy_budget);
    if (k->copied > k->copy_budget)
        return pk_fail(k, LISA_ERR_LIMIT, "shared objects (memo GET / DUP) expand past the copy budget of this input"),
               false;
    return push(k, cJSON_Duplicate(v, 1));
}

static bool memo_get(pk *k, size_t idx) {
    if (idx >= k->n_memo || !k->memo[idx]) {
        pk_fail(k, LISA_ERR_FORMAT, "GET of an unknown memo entry");
        return false;
    }
    return push_copy(k, k->memo[idx]);
}

static bool need(pk *k, size_t n) {
    if ((size_t)(k->end - k->p) < n) {
        pk_fail(k, LISA_ERR_FORMAT, "truncated");
        return false;
    }
    return true;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* a text line (protocol 0 argument), without the '\n'; *len its length */
static const char *line(pk *k, size_t *len) {
    const uint8_t *nl = memchr(k->p, '\n', (size_t)(k->end - k->p));
    if (!nl) {
        pk_fail(k, LISA_ERR_FORMAT, "unterminated text argument");
        return NULL;
    }
    const char *s = (const char *)k->p;
    *len = (size_t)(nl - k->p);
    k->p = nl + 1;
    return s;
}

static bool parse_int_line(pk *k, const char *s, size_t n, long long *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return pk_fail(k, LISA_ERR_FORMAT, "bad integer"), false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[n - 1] == 'L') buf[n - 1] = '\0';
    char *e;
    errno = 0;
    *out = strtoll(buf, &e, 10);
    if (*e || errno) return pk_fail(k, LISA_ERR_FORMAT, "bad integer"), false;
    return true;
}

static void put_utf8(char *o, size_t *n, uint32_t c) {
    if (c < 0x80) {
        o[(*n)++] = (char)c;
    } else if (c < 0x800) {
        o[(*n)++] = (char)(0xC0 | (c >> 6));
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (c >> 12));
        o[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (c >> 18));
        o[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* a string node from raw bytes (no NUL allowed inside: cJSON strings end there) */
static bool push_bytes(pk *k, const char *s, size_t n) {
    char *t = malloc(n + 1);
    if (!t) return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
    memcpy(t, s, n);
    t[n] = '\0';
    bool ok = push(k, cJSON_CreateString(t));
    free(t);
    return ok;
}

/* protocol 0 STRING: a Python 2 repr, 'text' or "text", with backslash escapes */
static bool push_repr(pk *k, const char *s, size_t n) {
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return pk_fail(k, LISA_ERR_FORMAT, "bad STRING argument"), false;
    char *o = malloc(n + 1);
    if (!o) return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
    size_t m = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = s[i];
        if (c != '\\' || i + 2 >= n) {
            o[m++] = c;
            continue;
        }
        c = s[++i];
        switch (c) {
        case 'n': o[m++] = '\n'; break;
        case 't': o[m++] = '\t'; break;
        case 'r': o[m++] = '\r'; break;
        case '\\': o[m++] = '\\'; break;
        case '\'': o[m++] = '\''; break;
        case '"': o[m++] = '"'; break;
        case 'x':
            if (i + 3 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                o[m++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                i += 2;
            } else {
                o[m++] = '\\', o[m++] = 'x';
            }
            break;
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0', d = 1;
                while (d < 3 && i + 2 < n && s[i + 1] >= '0' && s[i + 1] <= '7')
                    v = v * 8 + (s[++i] - '0'), d++;
                o[m++] = (char)v;
            } else {
                o[m++] = '\\', o[m++] = c;
            }
        }
    }
    bool ok = push_bytes(k, o, m);
    free(o);
    return ok;
}

/* protocol 0 UNICODE: raw-unicode-escape (\uXXXX, \UXXXXXXXX; other bytes are Latin-1) */
static bool push_raw_unicode(pk *k, const char *s, size_t n) {
    char *o = malloc(4 * n + 1);
    if (!o) return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const int w = (s[i] == '\\' && i + 1 < n) ? (s[i + 1] == 'u' ? 4 : s[i + 1] == 'U' ? 8 : 0) : 0;
        if (w && i + 1 + w < n + 0 && i + 2 + w <= n) {
            uint32_t c = 0;
            bool ok = true;
            for (int d = 0; d < w; d++) {
                int h = hexval(s[i + 2 + d]);
                ok = ok && h >= 0;
                c = c * 16 + (uint32_t)(h < 0 ? 0 : h);
            }
            if (ok && c <= 0x10FFFF) {
                put_utf8(o, &m, c);
                i += 1 + (size_t)w;
                continue;
            }
        }
        put_utf8(o, &m, (unsigned char)s[i]);
    }
    bool ok = push_bytes(k, o, m);
    free(o);
    return ok;
}

static bool push_num(pk *k, double v) { return push(k, cJSON_CreateNumber(v)); }

/* collect the items above the topmost mark into container c (list/dict) or a new array */
static size_t mark_top(pk *k) {
    if (k->n_marks == 0) {
        pk_fail(k, LISA_ERR_FORMAT, "no MARK");
        return SIZE_MAX;
    }
    return k->marks[--k->n_marks];
}

static bool add_items(pk *k, cJSON *list, size_t from) {
    if (!cJSON_IsArray(list)) return pk_fail(k, LISA_ERR_UNSUPPORTED, "APPEND to a non-list"), false;
    for (size_t i = from; i < k->n; i++)
        cJSON_AddItemToArray(list, k->stack[i]);
    k->n = from;
    return true;
}

static bool set_items(pk *k, cJSON *dict, size_t from) {
    if (!cJSON_IsObject(dict)) return pk_fail(k, LISA_ERR_UNSUPPORTED, "SETITEM on a non-dict"), false;
    if ((k->n - from) % 2) return pk_fail(k, LISA_ERR_FORMAT, "odd number of SETITEMS entries"), false;
    for (size_t i = from; i < k->n; i += 2) {
        cJSON *key = k->stack[i], *val = k->stack[i + 1];
        char kb[32];
        const char *ks = NULL;
        if (cJSON_IsString(key)) {
            ks = key->valuestring;
        } else if (cJSON_IsNumber(key)) { /* int keys: as their decimal text */
            snprintf(kb, sizeof kb, "%.17g", key->valuedouble);
            ks = kb;
        } else {
            for (size_t j = i; j < k->n; j++)
                bury(k, k->stack[j]);
            k->n = from;
            return pk_fail(k, LISA_ERR_UNSUPPORTED, "dict key that is not a string or int"), false;
        }
        cJSON *prev = cJSON_DetachItemFromObjectCaseSensitive(dict, ks); /* later keys win, as in Python */
        if (prev) bury(k, prev);                                         /* the memo may still name it */
        cJSON_AddItemToObject(dict, ks, val);
        bury(k, key);
    }
    k->n = from;
    return true;
}

static bool make_tuple(pk *k, size_t from) {
    cJSON *a = cJSON_CreateArray();
    if (!a) return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
    for (size_t i = from; i < k->n; i++)
        cJSON_AddItemToArray(a, k->stack[i]);
    k->n = from;
    return push(k, a);
}

static bool run(pk *k, cJSON **out) {
    while (k->s == LISA_OK) {
        if (!need(k, 1)) return false;
        const uint8_t op = *k->p++;
        size_t n = 0;
        const char *s;
        long long iv;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(k, 1)) return false;
            if (*k->p > 5) return pk_fail(k, LISA_ERR_UNSUPPORTED, "protocol > 5"), false;
            k->p++;
            break;
        case 0x95: /* FRAME */
            if (!need(k, 8)) return false;
            k->p += 8;
            break;
        case '.': /* STOP */
            if (k->n != 1 || k->n_marks) return pk_fail(k, LISA_ERR_FORMAT, "STOP with a bad stack"), false;
            *out = k->stack[--k->n];
            return true;
        case '(':
            if (k->n_marks >= PK_MAX_MARKS) return pk_fail(k, LISA_ERR_LIMIT, "more than 2^12 open MARKs"), false;
            if (!grow((void **)&k->marks, &k->cap_marks, k->n_marks + 1, sizeof *k->marks))
                return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
            k->marks[k->n_marks++] = k->n;
            break;
        case '0': { /* POP */
            cJSON *v = pop(k);
            if (!v) return false;
            bury(k, v);
            break;
        }
        case '1': { /* POP_MARK */
            size_t from = mark_top(k);
            if (from == SIZE_MAX) return false;
            for (size_t i = from; i < k->n; i++)
                bury(k, k->stack[i]);
            k->n = from;
            break;
        }
        case '2': /* DUP */
            if (!need_items(k, 1)) return false;
            if (!push_copy(k, k->stack[k->n - 1])) return false;
            break;
        case 'N':
            if (!push(k, cJSON_CreateNull())) return false;
            break;
        case 0x88:
            if (!push(k, cJSON_CreateTrue())) return false;
            break;
        case 0x89:
            if (!push(k, cJSON_CreateFalse())) return false;
            break;
        case 'I':
            if (!(s = line(k, &n))) return false;
            if (n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
                if (!push(k, s[1] == '1' ? cJSON_CreateTrue() : cJSON_CreateFalse())) return false;
                break;
            }
            if (!parse_int_line(k, s, n, &iv) || !push_num(k, (double)iv)) return false;
            break;
        case 'L':
            if (!(s = line(k, &n)) || !parse_int_line(k, s, n, &iv) || !push_num(k, (double)iv)) return false;
            break;
        case 'J':
            if (!need(k, 4)) return false;
            iv = (int32_t)(uint32_t)le(k->p, 4);
            k->p += 4;
            if (!push_num(k, (double)iv)) return false;
            break;
        case 'K':
            if (!need(k, 1) || !push_num(k, *k->p++)) return false;
            break;
        case 'M':
            if (!need(k, 2)) return false;
            iv = (long long)le(k->p, 2);
            k->p += 2;
            if (!push_num(k, (double)iv)) return false;
            break;
        case 0x8a:
        case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
            const int w = op == 0x8a ? 1 : 4;
            if (!need(k, (size_t)w)) return false;
            n = (size_t)le(k->p, w);
            k->p += w;
            if (n > 8 || !need(k, n)) return pk_fail(k, LISA_ERR_UNSUPPORTED, "integer wider than 64 bits"), false;
            uint64_t u = n ? le(k->p, (int)n) : 0;
            if (n && n < 8 && (k->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
            k->p += n;
            if (!push_num(k, (double)(int64_t)u)) return false;
            break;
        }
        case 'F': {
            char buf[64];
            if (!(s = line(k, &n))) return false;
            if (n == 0 || n >= sizeof buf) return pk_fail(k, LISA_ERR_FORMAT, "bad FLOAT"), false;
            memcpy(buf, s, n);
            buf[n] = '\0';
            char *e;
            double d = strtod(buf, &e);
            if (*e) return pk_fail(k, LISA_ERR_FORMAT, "bad FLOAT"), false;
            if (!push_num(k, d)) return false;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (!need(k, 8)) return false;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = (u << 8) | k->p[i];
            k->p += 8;
            double d;
            memcpy(&d, &u, sizeof d);
            if (!push_num(k, d)) return false;
            break;
        }
        case 'S':
            if (!(s = line(k, &n)) || !push_repr(k, s, n)) return false;
            break;
        case 'V':
            if (!(s = line(k, &n)) || !push_raw_unicode(k, s, n)) return false;
            break;
        case 'T':
        case 'X':
        case 'B':
        case 'U':
        case 'C':
        case 0x8c:
        case 0x8d:
        case 0x8e: {
            const int w = (op == 'U' || op == 'C' || op == 0x8c) ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            if (!need(k, (size_t)w)) return false;
            const uint64_t len = le(k->p, w);
            k->p += w;
            if (len > (uint64_t)(k->end - k->p)) return pk_fail(k, LISA_ERR_FORMAT, "truncated string"), false;
            if (!push_bytes(k, (const char *)k->p, (size_t)len)) return false;
            k->p += len;
            break;
        }
        case ']':
            if (!push(k, cJSON_CreateArray())) return false;
            break;
        case ')':
            if (!push(k, cJSON_CreateArray())) return false;
            break;
        case '}':
            if (!push(k, cJSON_CreateObject())) return false;
            break;
        case 'l':
        case 't': { /* LIST, TUPLE from the mark */
            size_t from = mark_top(k);
            if (from == SIZE_MAX || !make_tuple(k, from)) return false;
            break;
        }
        case 0x85:
        case 0x86:
        case 0x87: { /* TUPLE1..3 */
            const size_t m = (size_t)(op - 0x84);
            if (!need_items(k, m)) return false;
            if (!make_tuple(k, k->n - m)) return false;
            break;
        }
        case 'd': { /* DICT from the mark */
            size_t from = mark_top(k);
            if (from == SIZE_MAX) return false;
            cJSON *d = cJSON_CreateObject();
            if (!d) return pk_fail(k, LISA_ERR_OOM, "out of memory"), false;
            if (!set_items(k, d, from)) {
                cJSON_Delete(d);
                return false;
            }
            if (!push(k, d)) return false;
            break;
        }
        case 'a': { /* APPEND */
            if (!need_items(k, 2)) return false;
            if (!add_items(k, k->stack[k->n - 2], k->n - 1)) return false;
            break;
        }
        case 'e': { /* APPENDS */
            size_t from = mark_top(k);
            if (from == SIZE_MAX) return false;
            if (from < 1 + (k->n_marks ? k->marks[k->n_marks - 1] : 0))
                return pk_fail(k, LISA_ERR_FORMAT, "APPENDS without a list"), false;
            if (!add_items(k, k->stack[from - 1], from)) return false;
            break;
        }
        case 's': /* SETITEM */
            if (!need_items(k, 3)) return false;
            if (!set_items(k, k->stack[k->n - 3], k->n - 2)) return false;
            break;
        case 'u': { /* SETITEMS */
            size_t from = mark_top(k);
            if (from == SIZE_MAX) return false;
            if (from < 1 + (k->n_marks ? k->marks[k->n_marks - 1] : 0))
                return pk_fail(k, LISA_ERR_FORMAT, "SETITEMS without a dict"), false;
            if (!set_items(k, k->stack[from - 1], from)) return false;
            break;
        }
        case 'p':
            if (!(s = line(k, &n)) || !parse_int_line(k, s, n, &iv) || iv < 0 || !memo_put(k, (size_t)iv)) return false;
            break;
        case 'g':
            if (!(s = line(k, &n)) || !parse_int_line(k, s, n, &iv) || iv < 0 || !memo_get(k, (size_t)iv)) return false;
            break;
        case 'q':
        case 'h':
            if (!need(k, 1)) return false;
            n = *k->p++;
            if (!(op == 'q' ? memo_put(k, n) : memo_get(k, n))) return false;
            break;
        case 'r':
        case 'j':
            if (!need(k, 4)) return false;
            n = (size_t)le(k->p, 4);
            k->p += 4;
            if (!(op == 'r' ? memo_put(k, n) : memo_get(k, n))) return false;
            break;
        case 0x94: /* MEMOIZE */
            if (!memo_put(k, k->n_memo)) return false;
            break;
        default: {
            char what[96];
            snprintf(what, sizeof what, "opcode 0x%02x (%s) is not plain data", op,
                     strchr("cRbiPQo\x81\x82\x83\x84\x92\x93\x90\x91\x96\x97\x98", op) ? "code or objects" : "unknown");
            return pk_fail(k, LISA_ERR_UNSUPPORTED, what), false;
        }
        }
    }
    return false;
}

lisa_status lisa_pickle_plain_parse(cJSON **out, const void *buf, size_t len, const char *name) {
    *out = NULL;
    pk k = {.start = buf,
            .p = buf,
            .end = (const uint8_t *)buf + len,
            .name = name ? name : "<memory>",
            .copy_budget = copy_budget_for(len)};
    cJSON *root = NULL;
    bool ok = run(&k, &root);
    for (size_t i = 0; i < k.n; i++)
        cJSON_Delete(k.stack[i]);
    for (size_t i = 0; i < k.n_dead; i++)
        cJSON_Delete(k.dead[i]);
    free(k.stack);
    free(k.marks);
    free(k.memo);
    free(k.dead);
    if (!ok) {
        cJSON_Delete(root);
        return k.s != LISA_OK ? k.s : lisa_fail(LISA_ERR_FORMAT, "%s: pickle: no STOP", k.name);
    }
    *out = root;
    return LISA_OK;
}

lisa_status lisa_pickle_plain_load(cJSON **out, const char *path, size_t max_bytes) {
    *out = NULL;
    if (!max_bytes) max_bytes = (size_t)1 << 30;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return lisa_fail(LISA_ERR_IO, "%s: cannot seek", path);
    }
    long sz = ftell(f);
    rewind(f);
    if (sz < 0 || (size_t)sz > max_bytes) {
        fclose(f);
        return lisa_fail(LISA_ERR_LIMIT, "%s: %ld bytes (limit %zu)", path, sz, max_bytes);
    }
    uint8_t *buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        free(buf);
        return lisa_fail(LISA_ERR_IO, "%s: short read", path);
    }
    lisa_status s = lisa_pickle_plain_parse(out, buf, got, path);
    free(buf);
    return s;
}
