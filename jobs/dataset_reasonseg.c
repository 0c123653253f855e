/* jobs/dataset_reasonseg.c — ReasonSeg items (see dataset.h).
 * ref: dvlab-research/LISA utils/data_processing.py get_mask_from_json, utils/dataset.py
 *      ValDataset.__init__ (glob "*.jpg") and __getitem__ (first instruction, .strip()). */
#include "jobs/dataset.h"

#include "core/error.h"
#include "core/path.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DS_JSON_MAX_BYTES (64u << 20)

bool lisa_ds_to_int32(double v, int32_t *out) {
    if (!isfinite(v) || v <= -2147483649.0 || v >= 2147483648.0) return false;
    *out = (int32_t)v; /* C conversion truncates toward zero, as numpy's float64 -> int32 cast */
    return true;
}

static bool py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

char *lisa_ds_strip(const char *s, bool lower) {
    size_t a = 0, b = strlen(s);
    while (a < b && py_space((unsigned char)s[a]))
        a++;
    while (b > a && py_space((unsigned char)s[b - 1]))
        b--;
    char *o = malloc(b - a + 1);
    if (!o) return NULL;
    for (size_t i = a; i < b; i++)
        o[i - a] = (lower && s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    o[b - a] = '\0';
    return o;
}

/* Strict UTF-8 (Python's codec: no overlongs, no surrogates, <= U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + (size_t)len > n) return false;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return false;
        if (c == 0xE0 && s[i + 1] < 0xA0) return false;
        if (c == 0xED && s[i + 1] >= 0xA0) return false;
        if (c == 0xF0 && s[i + 1] < 0x90) return false;
        if (c == 0xF4 && s[i + 1] >= 0x90) return false;
        i += (size_t)len;
    }
    return true;
}

/* cp1252 bytes 0x80..0x9F (0 = undefined: Python's decoder raises) */
static const uint16_t kCp1252[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                     0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                     0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                     0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

static char *cp1252_to_utf8(const unsigned char *s, size_t n, size_t *bad_at) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0x80 && c < 0xA0) {
            c = kCp1252[c - 0x80];
            if (!c) {
                *bad_at = i;
                free(o);
                return NULL;
            }
        }
        if (c < 0x80) {
            o[m++] = (char)c;
        } else if (c < 0x800) {
            o[m++] = (char)(0xC0 | (c >> 6));
            o[m++] = (char)(0x80 | (c & 0x3F));
        } else {
            o[m++] = (char)(0xE0 | (c >> 12));
            o[m++] = (char)(0x80 | ((c >> 6) & 0x3F));
            o[m++] = (char)(0x80 | (c & 0x3F));
        }
    }
    o[m] = '\0';
    return o;
}

lisa_status lisa_ds_json_load_utf8_or_cp1252(const char *path, void **root_cjson) {
    *root_cjson = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lisa_fail(LISA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = malloc(DS_JSON_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return lisa_fail(LISA_ERR_OOM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, DS_JSON_MAX_BYTES + 1, f);
    const bool err = ferror(f);
    fclose(f);
    if (err || n > DS_JSON_MAX_BYTES) {
        free(buf);
        return err ? lisa_fail(LISA_ERR_IO, "%s: read error", path)
                   : lisa_fail(LISA_ERR_LIMIT, "%s: larger than %u bytes", path, DS_JSON_MAX_BYTES);
    }
    buf[n] = '\0';
    char *text = (char *)buf;
    if (memchr(buf, 0, n)) {
        free(buf);
        return lisa_fail(LISA_ERR_FORMAT, "%s: NUL byte in a JSON file", path);
    }
    if (!valid_utf8(buf, n)) { /* get_mask_from_json: except: open(..., encoding="cp1252") */
        size_t bad = 0;
        text = cp1252_to_utf8(buf, n, &bad);
        free(buf);
        if (!text) return lisa_fail(LISA_ERR_FORMAT, "%s: neither UTF-8 nor cp1252 (byte %zu)", path, bad);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        size_t off = end ? (size_t)(end - text) : 0;
        free(text);
        return lisa_fail(LISA_ERR_FORMAT, "%s: malformed JSON near byte %zu", path, off);
    }
    free(text);
    *root_cjson = root;
    return LISA_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* str.replace(".jpg", ".json") on the whole path, as ValDataset does */
static char *json_path_of(const char *img) {
    size_t n = strlen(img), hits = 0;
    for (const char *p = img; (p = strstr(p, ".jpg")); p += 4)
        hits++;
    char *o = malloc(n + hits + 1);
    if (!o) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(img + i, ".jpg", 4) == 0) {
            memcpy(o + m, ".json", 5);
            m += 5;
            i += 4;
        } else {
            o[m++] = img[i++];
        }
    }
    o[m] = '\0';
    return o;
}

/* Parses one item's JSON into im (shapes, one query). */
static lisa_status parse_item(lisa_ds_image *im, const char *jpath) {
    cJSON *root = NULL;
    LISA_TRY(lisa_ds_json_load_utf8_or_cp1252(jpath, (void **)&root));
    lisa_status s = LISA_OK;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    const cJSON *is_sent = cJSON_GetObjectItemCaseSensitive(root, "is_sentence");
    const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(root, "shapes");
    if (!cJSON_IsArray(shapes))
        s = lisa_fail(LISA_ERR_FORMAT, "%s: \"shapes\" is missing or not a list", jpath);
    else if (!cJSON_IsArray(text) || cJSON_GetArraySize(text) < 1 || !cJSON_IsString(cJSON_GetArrayItem(text, 0)))
        s = lisa_fail(LISA_ERR_FORMAT, "%s: \"text\" is missing or not a non-empty list of strings", jpath);
    else if (!cJSON_IsBool(is_sent) && !cJSON_IsNumber(is_sent))
        s = lisa_fail(LISA_ERR_FORMAT, "%s: \"is_sentence\" is missing or not a boolean", jpath);
    int64_t total_pts = 0;
    int32_t n_shapes = 0;
    const cJSON *sh;
    if (s == LISA_OK) {
        int idx = 0;
        cJSON_ArrayForEach(sh, shapes) {
            const cJSON *label = cJSON_GetObjectItemCaseSensitive(sh, "label");
            const cJSON *pts = cJSON_GetObjectItemCaseSensitive(sh, "points");
            if (!cJSON_IsString(label) || !cJSON_IsArray(pts)) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: shape %d has no string \"label\" or list \"points\"", jpath, idx);
                break;
            }
            char *low = lisa_ds_strip(label->valuestring, true);
            if (!low) {
                s = lisa_fail(LISA_ERR_OOM, "out of memory");
                break;
            }
            /* "flag" == label.lower() (no strip in the reference: compare the lowered label whole) */
            bool flag = true;
            const char *L = label->valuestring;
            if (strlen(L) != 4) flag = false;
            for (int c = 0; flag && c < 4; c++)
                flag = (L[c] | 0x20) == "flag"[c];
            free(low);
            if (!flag) {
                const int np = cJSON_GetArraySize(pts);
                if (np < 1) {
                    s = lisa_fail(LISA_ERR_FORMAT, "%s: shape %d has no points (cv2.fillPoly rejects it)", jpath, idx);
                    break;
                }
                total_pts += np;
                n_shapes++;
            }
            idx++;
        }
    }
    if (s == LISA_OK) {
        im->shapes = calloc((size_t)(n_shapes ? n_shapes : 1), sizeof *im->shapes);
        im->pts = malloc((size_t)(total_pts ? total_pts : 1) * sizeof *im->pts);
        im->queries = calloc(1, sizeof *im->queries);
        if (!im->shapes || !im->pts || !im->queries) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    if (s == LISA_OK) {
        int idx = 0;
        int64_t off = 0;
        cJSON_ArrayForEach(sh, shapes) {
            const char *L = cJSON_GetObjectItemCaseSensitive(sh, "label")->valuestring;
            const cJSON *pts = cJSON_GetObjectItemCaseSensitive(sh, "points");
            bool flag = strlen(L) == 4;
            for (int c = 0; flag && c < 4; c++)
                flag = (L[c] | 0x20) == "flag"[c];
            if (flag) {
                idx++;
                continue;
            }
            /* "ignore" in label.lower() -> 255, else 1 */
            char *low = lisa_ds_strip(L, true);
            if (!low) {
                s = lisa_fail(LISA_ERR_OOM, "out of memory");
                break;
            }
            /* lisa_ds_strip strips; "ignore" as a substring is unaffected by the strip */
            const bool ignore = strstr(low, "ignore") != NULL;
            free(low);
            lisa_rs_shape *out = &im->shapes[im->n_shapes++];
            out->value = ignore ? 255 : 1;
            out->pts = im->pts + off;
            const cJSON *pt;
            int k = 0;
            cJSON_ArrayForEach(pt, pts) {
                const cJSON *x = cJSON_GetArrayItem(pt, 0), *y = cJSON_GetArrayItem(pt, 1);
                int32_t xi, yi;
                if (!cJSON_IsArray(pt) || cJSON_GetArraySize(pt) != 2 || !cJSON_IsNumber(x) || !cJSON_IsNumber(y) ||
                    !lisa_ds_to_int32(x->valuedouble, &xi) || !lisa_ds_to_int32(y->valuedouble, &yi) ||
                    xi < -(1 << 20) || xi > (1 << 20) || yi < -(1 << 20) || yi > (1 << 20)) {
                    /* (OpenCV scans every row from the top vertex: beyond +-2^20 it only gets slow) */
                    s = lisa_fail(LISA_ERR_FORMAT, "%s: shape %d point %d is not [x, y] with numbers within +-2^20",
                                  jpath, idx, k);
                    break;
                }
                im->pts[off + k] = (lisa_pt){xi, yi};
                k++;
            }
            if (s != LISA_OK) break;
            out->n = k;
            off += k;
            idx++;
        }
    }
    if (s == LISA_OK) {
        lisa_ds_query *q = &im->queries[0];
        q->text = lisa_ds_strip(cJSON_GetArrayItem(text, 0)->valuestring, false);
        q->is_sentence = cJSON_IsBool(is_sent) ? cJSON_IsTrue(is_sent) : is_sent->valuedouble != 0;
        if (!q->text)
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
        else
            im->n_queries = 1;
    }
    cJSON_Delete(root);
    return s;
}

lisa_status lisa_dataset_load_reasonseg(lisa_dataset *ds, const char *split_dir) {
    memset(ds, 0, sizeof *ds);
    ds->kind = LISA_DS_REASONSEG;
    DIR *d = opendir(split_dir);
    if (!d) return lisa_fail(LISA_ERR_IO, "ReasonSeg split directory %s: %s", split_dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    lisa_status s = LISA_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        const size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 4 || strcmp(e->d_name + l - 4, ".jpg") != 0) continue; /* glob "*.jpg" */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                s = lisa_fail(LISA_ERR_OOM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (s == LISA_OK && n) qsort(names, n, sizeof *names, cmp_str);
    if (s == LISA_OK && !(ds->images = calloc(n ? n : 1, sizeof *ds->images)))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (size_t i = 0; i < n && s == LISA_OK; i++) {
        lisa_ds_image *im = &ds->images[ds->n_images++];
        char path[4096];
        if (!lisa_path_join(path, sizeof path, split_dir, names[i])) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %s/%s", split_dir, names[i]);
            break;
        }
        im->path = strdup(path);
        im->id = strdup(names[i]);
        char *jpath = json_path_of(path);
        if (!im->path || !im->id || !jpath) {
            free(jpath);
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        lisa_status is = parse_item(im, jpath);
        free(jpath);
        if (is == LISA_ERR_OOM) {
            s = is;
        } else if (is != LISA_OK) { /* a bad item: recorded, the run goes on */
            free(im->shapes);
            free(im->pts);
            free(im->queries);
            im->shapes = NULL, im->pts = NULL, im->queries = NULL;
            im->n_shapes = im->n_queries = 0;
            if (!(im->error = strdup(lisa_last_error()))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (s != LISA_OK) lisa_dataset_free(ds);
    return s;
}

void lisa_dataset_free(lisa_dataset *ds) {
    if (!ds) return;
    for (int32_t i = 0; i < ds->n_images; i++) {
        lisa_ds_image *im = &ds->images[i];
        for (int32_t q = 0; q < im->n_queries; q++) {
            lisa_ds_query *qq = &im->queries[q];
            for (int32_t p = 0; p < qq->n_parts; p++) {
                free(qq->parts[p].xy);
                free(qq->parts[p].counts_str);
                free(qq->parts[p].counts);
            }
            free(qq->parts);
            free(qq->text);
            free(qq->error);
        }
        free(im->queries);
        free(im->shapes);
        free(im->pts);
        free(im->path);
        free(im->id);
        free(im->error);
    }
    free(ds->images);
    memset(ds, 0, sizeof *ds);
}
