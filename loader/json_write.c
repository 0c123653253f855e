/* loader/json_write.c — Hugging Face style JSON text (see json_write.h).
 * ref: CPython Lib/json/encoder.py (indent, sort_keys, separators), Python/pystrtod.c
 *      (format_float_short: repr uses exponent notation when decpt <= -4 or decpt > 16). */
#include "loader/json_write.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lisa_json_float_repr(char *buf, size_t cap, double v) {
    LISA_ASSERT(isfinite(v) && cap >= 32);
    char e[40];
    int prec = 1;
    for (; prec <= 17; prec++) { /* shortest %e that reads back as v */
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d[.ddd]e[+-]XX -> digits and decimal exponent */
    const char *p = e;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    const int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    const bool zero = nd == 1 && digits[0] == '0';
    const int decpt = zero ? 1 : exp10 + 1; /* v = 0.digits * 10^decpt */
    size_t n = 0;
    if (neg) buf[n++] = '-';
    if (!zero && (decpt <= -4 || decpt > 16)) {
        buf[n++] = digits[0];
        if (nd > 1) {
            buf[n++] = '.';
            memcpy(buf + n, digits + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        snprintf(buf + n, cap - n, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
        return;
    }
    if (decpt <= 0) {
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = 0; i < -decpt; i++)
            buf[n++] = '0';
        memcpy(buf + n, digits, (size_t)nd);
        n += (size_t)nd;
    } else if (decpt < nd) {
        memcpy(buf + n, digits, (size_t)decpt);
        n += (size_t)decpt;
        buf[n++] = '.';
        memcpy(buf + n, digits + decpt, (size_t)(nd - decpt));
        n += (size_t)(nd - decpt);
    } else {
        memcpy(buf + n, digits, (size_t)nd);
        n += (size_t)nd;
        for (int i = nd; i < decpt; i++)
            buf[n++] = '0';
        buf[n++] = '.';
        buf[n++] = '0';
    }
    buf[n] = '\0';
}

cJSON *lisa_json_float(double v) {
    char b[40];
    lisa_json_float_repr(b, sizeof b, v);
    return cJSON_CreateRaw(b);
}

/* A growing string; `oom` latches the first allocation failure. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void indent(sbuf *b, int level) {
    for (int i = 0; i < level; i++)
        put(b, "  ", 2);
}

static void put_string(sbuf *b, const char *s) {
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': puts_(b, "\\\""); break;
        case '\\': puts_(b, "\\\\"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\r': puts_(b, "\\r"); break;
        case '\t': puts_(b, "\\t"); break;
        case '\b': puts_(b, "\\b"); break;
        case '\f': puts_(b, "\\f"); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                puts_(b, esc);
            } else {
                put(b, (const char *)p, 1);
            }
        }
    }
    put(b, "\"", 1);
}

static int cmp_keys(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static void put_value(sbuf *b, const cJSON *v, int level) {
    if (cJSON_IsNull(v)) {
        puts_(b, "null");
    } else if (cJSON_IsTrue(v)) {
        puts_(b, "true");
    } else if (cJSON_IsFalse(v)) {
        puts_(b, "false");
    } else if (cJSON_IsRaw(v)) {
        puts_(b, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        char num[48];
        const double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            snprintf(num, sizeof num, "%lld", (long long)d);
        else
            lisa_json_float_repr(num, sizeof num, d);
        puts_(b, num);
    } else if (cJSON_IsString(v)) {
        put_string(b, v->valuestring);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        const bool obj = cJSON_IsObject(v);
        const int n = cJSON_GetArraySize(v);
        if (n == 0) {
            puts_(b, obj ? "{}" : "[]");
            return;
        }
        const cJSON **items = malloc((size_t)n * sizeof *items);
        if (!items) {
            b->oom = true;
            return;
        }
        int i = 0;
        for (const cJSON *c = v->child; c; c = c->next)
            items[i++] = c;
        if (obj) qsort(items, (size_t)n, sizeof *items, cmp_keys);
        puts_(b, obj ? "{\n" : "[\n");
        for (i = 0; i < n; i++) {
            indent(b, level + 1);
            if (obj) {
                put_string(b, items[i]->string);
                puts_(b, ": ");
            }
            put_value(b, items[i], level + 1);
            puts_(b, i + 1 < n ? ",\n" : "\n");
        }
        indent(b, level);
        puts_(b, obj ? "}" : "]");
        free(items);
    } else {
        LISA_ASSERT(!"unknown cJSON item type");
    }
}

char *lisa_json_print_hf(const cJSON *root) {
    sbuf b = {0};
    put_value(&b, root, 0);
    put(&b, "\n", 1);
    if (b.oom) {
        free(b.s);
        lisa_fail(LISA_ERR_OOM, "out of memory printing JSON");
        return NULL;
    }
    return b.s;
}

lisa_status lisa_file_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return lisa_fail(LISA_ERR_INVALID_ARG, "output path too long: %.200s...", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = len == 0 || fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return lisa_fail(LISA_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return LISA_OK;
}

lisa_status lisa_json_write_file(const char *path, const cJSON *root) {
    char *txt = lisa_json_print_hf(root);
    if (!txt) return LISA_ERR_OOM;
    lisa_status s = lisa_file_write_atomic(path, txt, strlen(txt));
    free(txt);
    return s;
}
