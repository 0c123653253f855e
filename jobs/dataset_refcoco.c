/* jobs/dataset_refcoco.c — refCOCO / refCOCO+ / refCOCOg items (see dataset.h).
 * ref: dvlab-research/LISA utils/refer.py (REFER: refs(<split_by>).p + instances.json,
 *      getRefIds(split=...)), utils/dataset.py ValDataset (img2refs, every sentence a query,
 *      sent.strip().lower(), the annotation's segmentation as GT). */
#include "jobs/dataset.h"

#include "loader/json.h"
#include "loader/pickle_plain.h"
#include "core/error.h"
#include "core/path.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INSTANCES_MAX_BYTES (1024u << 20)

/* getRefIds(split=...): testA/testB/testC: split[-1] in ref["split"]; testAB/testBC/testAC: equal;
 * test: "test" in ref["split"]; train/val: equal. */
static bool split_matches(const char *split, const char *ref_split) {
    if (!strcmp(split, "testA") || !strcmp(split, "testB") || !strcmp(split, "testC"))
        return strchr(ref_split, split[4]) != NULL;
    if (!strcmp(split, "test")) return strstr(ref_split, "test") != NULL;
    return strcmp(split, ref_split) == 0;
}

static bool known_split(const char *s) {
    static const char *k[] = {"train", "val", "test", "testA", "testB", "testC", "testAB", "testBC", "testAC"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(s, k[i])) return true;
    return false;
}

static bool num_field(const cJSON *o, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return false;
    *v = x->valuedouble;
    return true;
}

typedef struct ref_item {
    double image_id;
    int32_t order; /* position in the refs file (stable order within an image) */
    const cJSON *ref;
} ref_item;

static int cmp_ref(const void *a, const void *b) {
    const ref_item *x = a, *y = b;
    if (x->image_id != y->image_id) return x->image_id < y->image_id ? -1 : 1;
    return x->order - y->order;
}

/* One RLE dict {"size": [h, w], "counts": str | [ints]} into part. */
static lisa_status parse_rle(lisa_gt_part *part, const cJSON *d, const char *what) {
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(d, "size");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(d, "counts");
    double h, w;
    if (!cJSON_IsArray(size) || cJSON_GetArraySize(size) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(size, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(size, 1)))
        return lisa_fail(LISA_ERR_FORMAT, "%s: RLE without a [h, w] \"size\"", what);
    h = cJSON_GetArrayItem(size, 0)->valuedouble;
    w = cJSON_GetArrayItem(size, 1)->valuedouble;
    if (h < 0 || w < 0 || h > 1e6 || w > 1e6) return lisa_fail(LISA_ERR_FORMAT, "%s: RLE size %g x %g", what, h, w);
    part->rle_h = (int32_t)h;
    part->rle_w = (int32_t)w;
    if (cJSON_IsString(counts)) {
        part->kind = LISA_GT_RLE_STRING;
        if (!(part->counts_str = strdup(counts->valuestring))) return lisa_fail(LISA_ERR_OOM, "out of memory");
        return LISA_OK;
    }
    if (cJSON_IsArray(counts)) { /* uncompressed (the reference's .encode() fails on it; pycocotools semantics) */
        part->kind = LISA_GT_RLE_COUNTS;
        part->n = cJSON_GetArraySize(counts);
        if (!(part->counts = malloc((size_t)(part->n ? part->n : 1) * sizeof *part->counts)))
            return lisa_fail(LISA_ERR_OOM, "out of memory");
        int64_t i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, counts) {
            if (!cJSON_IsNumber(c) || c->valuedouble < 0) return lisa_fail(LISA_ERR_FORMAT, "%s: bad RLE count", what);
            part->counts[i++] = (int64_t)c->valuedouble;
        }
        return LISA_OK;
    }
    return lisa_fail(LISA_ERR_FORMAT, "%s: RLE \"counts\" is neither a string nor a list", what);
}

/* ValDataset: len(seg) == 0 -> zeros; type(seg[0]) == list -> frPyObjects(polygons); else a list of
 * RLE dicts. A bare RLE dict (which the reference cannot index with [0]) is accepted as one part. */
static lisa_status parse_segmentation(lisa_ds_query *q, const cJSON *seg, const char *what) {
    if (cJSON_IsObject(seg)) {
        if (!(q->parts = calloc(1, sizeof *q->parts))) return lisa_fail(LISA_ERR_OOM, "out of memory");
        q->n_parts = 1;
        return parse_rle(&q->parts[0], seg, what);
    }
    if (!cJSON_IsArray(seg)) return lisa_fail(LISA_ERR_FORMAT, "%s: \"segmentation\" is not a list", what);
    const int n = cJSON_GetArraySize(seg);
    if (n == 0) return LISA_OK;
    if (!(q->parts = calloc((size_t)n, sizeof *q->parts))) return lisa_fail(LISA_ERR_OOM, "out of memory");
    const cJSON *first = cJSON_GetArrayItem(seg, 0);
    if (cJSON_IsArray(first)) {
        /* frPyObjects: len(pyobj[0]) == 4 takes the bbox path (TypeError on a list in pycocotools
         * 2.0.x), > 4 the polygon path */
        if (cJSON_GetArraySize(first) <= 4)
            return lisa_fail(LISA_ERR_FORMAT, "%s: first polygon has %d numbers; pycocotools frPyObjects needs > 4",
                             what, cJSON_GetArraySize(first));
        const cJSON *poly;
        cJSON_ArrayForEach(poly, seg) {
            lisa_gt_part *p = &q->parts[q->n_parts++];
            p->kind = LISA_GT_POLYGON;
            if (!cJSON_IsArray(poly))
                return lisa_fail(LISA_ERR_FORMAT, "%s: polygon %d is not a list", what, q->n_parts - 1);
            p->n = cJSON_GetArraySize(poly);
            if (!(p->xy = malloc((size_t)(p->n ? p->n : 1) * sizeof *p->xy)))
                return lisa_fail(LISA_ERR_OOM, "out of memory");
            int64_t i = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, poly) {
                if (!cJSON_IsNumber(v))
                    return lisa_fail(LISA_ERR_FORMAT, "%s: polygon %d has a non-number", what, q->n_parts - 1);
                p->xy[i++] = v->valuedouble;
            }
        }
        return LISA_OK;
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, seg) {
        lisa_gt_part *p = &q->parts[q->n_parts++];
        if (!cJSON_IsObject(d)) return lisa_fail(LISA_ERR_FORMAT, "%s: segmentation mixes RLE and other entries", what);
        LISA_TRY(parse_rle(p, d, what));
    }
    return LISA_OK;
}

static void free_query_parts(lisa_ds_query *q) {
    for (int32_t p = 0; p < q->n_parts; p++) {
        free(q->parts[p].xy);
        free(q->parts[p].counts_str);
        free(q->parts[p].counts);
    }
    free(q->parts);
    q->parts = NULL;
    q->n_parts = 0;
}

/* Index of the item with "id" == id in an array of objects, via a sorted id table. */
typedef struct id_ix {
    double id;
    const cJSON *item;
} id_ix;

static int cmp_id(const void *a, const void *b) {
    const id_ix *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static id_ix *build_index(const cJSON *arr, int *n_out) {
    const int n = cJSON_GetArraySize(arr);
    id_ix *ix = malloc((size_t)(n ? n : 1) * sizeof *ix);
    if (!ix) return NULL;
    int m = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        double id;
        if (num_field(it, "id", &id)) ix[m++] = (id_ix){id, it};
    }
    qsort(ix, (size_t)m, sizeof *ix, cmp_id);
    *n_out = m;
    return ix;
}

static const cJSON *find_id(const id_ix *ix, int n, double id) {
    id_ix key = {id, NULL};
    const id_ix *f = bsearch(&key, ix, (size_t)n, sizeof *ix, cmp_id);
    return f ? f->item : NULL;
}

lisa_status lisa_dataset_load_refer(lisa_dataset *ds, const char *refer_root, const char *dataset, const char *split_by,
                                    const char *split) {
    memset(ds, 0, sizeof *ds);
    ds->kind = LISA_DS_REFER;
    if (!known_split(split))
        return lisa_fail(LISA_ERR_INVALID_ARG, "refer split '%s' (REFER: \"No such split\")", split);
    char dir[4096], refs_path[4200], inst_path[4200], img_dir[4200], name[64];
    struct stat st;
    if (!lisa_path_join(dir, sizeof dir, refer_root, dataset) ||
        !lisa_path_join(inst_path, sizeof inst_path, dir, "instances.json") ||
        !lisa_path_join(img_dir, sizeof img_dir, refer_root, "images/mscoco/images/train2014"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %s", refer_root);
    snprintf(name, sizeof name, "refs(%s).p", split_by);
    if (!lisa_path_join(refs_path, sizeof refs_path, dir, name))
        return lisa_fail(LISA_ERR_INVALID_ARG, "path too long");
    cJSON *refs = NULL, *inst = NULL;
    lisa_status s;
    if (stat(refs_path, &st) == 0) {
        s = lisa_pickle_plain_load(&refs, refs_path, 0);
    } else { /* a JSON conversion of the pickle: json.dump(pickle.load(open(p, "rb")), open(j, "w")) */
        snprintf(name, sizeof name, "refs(%s).json", split_by);
        char jp[4200];
        if (!lisa_path_join(jp, sizeof jp, dir, name) || stat(jp, &st) != 0)
            return lisa_fail(LISA_ERR_NOT_FOUND, "%s: not found (nor refs(%s).json beside it)", refs_path, split_by);
        s = lisa_json_load_file(jp, INSTANCES_MAX_BYTES, &refs);
    }
    if (s == LISA_OK) s = lisa_json_load_file(inst_path, INSTANCES_MAX_BYTES, &inst);
    const cJSON *images = inst ? cJSON_GetObjectItemCaseSensitive(inst, "images") : NULL;
    const cJSON *anns = inst ? cJSON_GetObjectItemCaseSensitive(inst, "annotations") : NULL;
    if (s == LISA_OK && !cJSON_IsArray(refs)) s = lisa_fail(LISA_ERR_FORMAT, "%s: not a list of refs", refs_path);
    if (s == LISA_OK && (!cJSON_IsArray(images) || !cJSON_IsArray(anns)))
        s = lisa_fail(LISA_ERR_FORMAT, "%s: no \"images\" / \"annotations\" lists", inst_path);
    id_ix *img_ix = NULL, *ann_ix = NULL;
    ref_item *sel = NULL;
    int n_img_ix = 0, n_ann_ix = 0, n_sel = 0;
    if (s == LISA_OK) {
        img_ix = build_index(images, &n_img_ix);
        ann_ix = build_index(anns, &n_ann_ix);
        sel = malloc((size_t)(cJSON_GetArraySize(refs) + 1) * sizeof *sel);
        if (!img_ix || !ann_ix || !sel) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    }
    if (s == LISA_OK) {
        const cJSON *r;
        int order = 0;
        cJSON_ArrayForEach(r, refs) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(r, "split");
            double image_id;
            if (!cJSON_IsString(sp) || !num_field(r, "image_id", &image_id)) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: ref %d has no \"split\" / \"image_id\"", refs_path, order);
                break;
            }
            if (split_matches(split, sp->valuestring)) sel[n_sel++] = (ref_item){image_id, order, r};
            order++;
        }
    }
    if (s == LISA_OK && n_sel) qsort(sel, (size_t)n_sel, sizeof *sel, cmp_ref);
    int n_imgs = 0;
    for (int i = 0; i < n_sel; i++)
        n_imgs += i == 0 || sel[i].image_id != sel[i - 1].image_id;
    if (s == LISA_OK && !(ds->images = calloc((size_t)(n_imgs ? n_imgs : 1), sizeof *ds->images)))
        s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int i = 0; i < n_sel && s == LISA_OK;) {
        int j = i;
        int n_q = 0;
        while (j < n_sel && sel[j].image_id == sel[i].image_id) {
            n_q += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sel[j].ref, "sentences"));
            j++;
        }
        lisa_ds_image *im = &ds->images[ds->n_images++];
        const cJSON *info = find_id(img_ix, n_img_ix, sel[i].image_id);
        const cJSON *fn = info ? cJSON_GetObjectItemCaseSensitive(info, "file_name") : NULL;
        double h = 0, w = 0;
        char idbuf[64];
        snprintf(idbuf, sizeof idbuf, "image %.0f", sel[i].image_id);
        if (!cJSON_IsString(fn) || !num_field(info, "height", &h) || !num_field(info, "width", &w) || h < 1 || w < 1 ||
            h > 1e6 || w > 1e6) {
            im->id = strdup(idbuf);
            char msg[4400];
            snprintf(msg, sizeof msg, "%s: %s has no entry with file_name/height/width in \"images\"", inst_path,
                     idbuf);
            im->error = strdup(msg);
            if (!im->id || !im->error) s = lisa_fail(LISA_ERR_OOM, "out of memory");
            i = j;
            continue;
        }
        char path[8400];
        if (!lisa_path_join(path, sizeof path, img_dir, fn->valuestring)) {
            s = lisa_fail(LISA_ERR_INVALID_ARG, "path too long: %s", fn->valuestring);
            break;
        }
        im->path = strdup(path);
        im->id = strdup(fn->valuestring);
        im->h = (int32_t)h;
        im->w = (int32_t)w;
        im->queries = calloc((size_t)(n_q ? n_q : 1), sizeof *im->queries);
        if (!im->path || !im->id || !im->queries) {
            s = lisa_fail(LISA_ERR_OOM, "out of memory");
            break;
        }
        for (int k = i; k < j && s == LISA_OK; k++) {
            const cJSON *ref = sel[k].ref, *sent;
            double ann_id = 0;
            const cJSON *ann = num_field(ref, "ann_id", &ann_id) ? find_id(ann_ix, n_ann_ix, ann_id) : NULL;
            cJSON_ArrayForEach(sent, cJSON_GetObjectItemCaseSensitive(ref, "sentences")) {
                lisa_ds_query *q = &im->queries[im->n_queries++];
                const cJSON *st_ = cJSON_GetObjectItemCaseSensitive(sent, "sent");
                char what[4600];
                snprintf(what, sizeof what, "%s: annotation %.0f (ref of %s)", inst_path, ann_id, im->id);
                lisa_status qs = LISA_OK;
                /* ValDataset: sent["sent"].strip().lower(), then .strip() again */
                if (!cJSON_IsString(st_))
                    qs = lisa_fail(LISA_ERR_FORMAT, "%s: a sentence has no \"sent\" string", refs_path);
                else if (!(q->text = lisa_ds_strip(st_->valuestring, true)))
                    qs = lisa_fail(LISA_ERR_OOM, "out of memory");
                if (qs == LISA_OK && !ann) qs = lisa_fail(LISA_ERR_FORMAT, "%s: not in \"annotations\"", what);
                if (qs == LISA_OK)
                    qs = parse_segmentation(q, cJSON_GetObjectItemCaseSensitive(ann, "segmentation"), what);
                if (qs == LISA_OK)
                    for (int32_t p = 0; p < q->n_parts && qs == LISA_OK; p++)
                        if (q->parts[p].kind != LISA_GT_POLYGON &&
                            (q->parts[p].rle_h != im->h || q->parts[p].rle_w != im->w))
                            qs = lisa_fail(LISA_ERR_FORMAT, "%s: RLE size %d x %d differs from the image's %d x %d",
                                           what, q->parts[p].rle_h, q->parts[p].rle_w, im->h, im->w);
                if (qs == LISA_ERR_OOM) {
                    s = qs;
                    break;
                }
                if (qs != LISA_OK) {
                    free_query_parts(q);
                    if (!(q->error = strdup(lisa_last_error()))) {
                        s = lisa_fail(LISA_ERR_OOM, "out of memory");
                        break;
                    }
                    if (!q->text && !(q->text = strdup(""))) s = lisa_fail(LISA_ERR_OOM, "out of memory");
                }
            }
        }
        i = j;
    }
    free(img_ix);
    free(ann_ix);
    free(sel);
    cJSON_Delete(refs);
    cJSON_Delete(inst);
    if (s != LISA_OK) lisa_dataset_free(ds);
    return s;
}
