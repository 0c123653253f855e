/* loader/pytorch_bin.c — PyTorch `.bin` (torch.save zip format, torch >= 1.6) behind the
 * checkpoint interface.
 *
 * Layout (torch/serialization.py `_save`, caffe2/serialize/inline_container.cc):
 *   <archive>/data.pkl     pickled dict name -> tensor (loader/pickle.h)
 *   <archive>/data/<key>   raw little-endian bytes of storage <key>, 64-byte aligned, stored
 *   <archive>/version      "3" for torch 1.13; <archive>/byteorder "little" (torch >= 2.1)
 * <archive> is the first path component of every entry ("archive", or the file stem for torch
 * 1.x), found from the one entry named <archive>/data.pkl.
 *
 * Tensors: contiguous tensors of stored entries are views into the mapping (zero copy); storages
 * of deflated entries are inflated, and strided (non-contiguous) tensors gathered into contiguous
 * memory, both in one buffer per shard. A storage record must hold exactly numel * element size
 * bytes as its persistent id states, and every tensor must lie inside its storage. */
#include "loader/checkpoint_impl.h"
#include "loader/pickle.h"
#include "loader/zip.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct storage_view {
    const lisa_zip_entry *entry;
    const unsigned char *data; /* stored: in the mapping; deflated: in the shard buffer */
} storage_view;

/* Copies the strided tensor t (elements of `es` bytes starting at base) into dst, row-major. */
static void gather(unsigned char *dst, const unsigned char *base, size_t es, const lisa_pickle_tensor *t) {
    int64_t sh[LISA_MAX_DIMS], st[LISA_MAX_DIMS];
    for (int d = 0; d < LISA_MAX_DIMS; d++) { /* left-pad to 4 dims */
        int k = d - (LISA_MAX_DIMS - t->n_dims);
        sh[d] = k >= 0 ? t->shape[k] : 1;
        st[d] = k >= 0 ? t->stride[k] : 0;
    }
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t d = 0; d < sh[3]; d++) {
                    int64_t src = t->offset + a * st[0] + b * st[1] + c * st[2] + d * st[3];
                    memcpy(dst, base + (size_t)src * es, es);
                    dst += es;
                }
}

static lisa_status find_archive(const lisa_zip *z, char *prefix, size_t cap) {
    const lisa_zip_entry *pkl = NULL;
    for (int64_t i = 0; i < z->n_entries; i++) {
        const char *n = z->entries[i].name, *slash = strchr(n, '/');
        if (slash && slash != n && strcmp(slash, "/data.pkl") == 0) {
            if (pkl)
                return lisa_fail(LISA_ERR_FORMAT, "%s: two pickles ('%s' and '%s'): not a single torch.save archive",
                                 z->path, pkl->name, n);
            pkl = &z->entries[i];
        }
    }
    if (!pkl)
        return lisa_fail(LISA_ERR_FORMAT, "%s: no <archive>/data.pkl entry: not a torch.save (zip format) checkpoint",
                         z->path);
    size_t len = (size_t)(strchr(pkl->name, '/') - pkl->name);
    if (len + 1 >= cap) return lisa_fail(LISA_ERR_FORMAT, "%s: archive name too long", z->path);
    memcpy(prefix, pkl->name, len);
    prefix[len] = '\0';
    return LISA_OK;
}

static lisa_status parse(lisa_checkpoint *ck, int32_t file, lisa_zip *z, lisa_pickle_state_dict *sd,
                         storage_view **views_out) {
    const lisa_ckpt_file *f = &ck->files[file];
    const char *P = f->path;
    memset(z, 0, sizeof *z);
    /* torch.save before 1.6 (or _use_new_zipfile_serialization=False) writes a bare pickle stream
     * that starts with the magic number 0x1950a86a20f9469cfc6c as a LONG1. */
    static const unsigned char legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (f->size >= sizeof legacy_magic && memcmp(f->data, legacy_magic, sizeof legacy_magic) == 0)
        return lisa_fail(LISA_ERR_UNSUPPORTED,
                         "%s: legacy (pre-1.6, non-zip) torch.save format; re-save it with torch >= 1.6 "
                         "(torch.save(torch.load(f), f))", P);
    LISA_TRY(lisa_zip_open(z, f->data, f->size, P, !ck->opt.skip_crc));
    char prefix[256], name[512];
    LISA_TRY(find_archive(z, prefix, sizeof prefix));

    snprintf(name, sizeof name, "%s/byteorder", prefix);
    const lisa_zip_entry *bo = lisa_zip_find(z, name);
    if (bo) {
        char v[16] = {0};
        if (bo->size >= sizeof v) return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s' is not 'little' or 'big'", P, name);
        LISA_TRY(lisa_zip_extract(z, bo, v, sizeof v));
        if (strcmp(v, "little") != 0)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: byte order '%.8s' (only little-endian checkpoints)", P, v);
    }

    snprintf(name, sizeof name, "%s/data.pkl", prefix);
    const lisa_zip_entry *pe = lisa_zip_find(z, name);
    LISA_ASSERT(pe);
    if (pe->size > LISA_TORCH_MAX_PICKLE)
        return lisa_fail(LISA_ERR_LIMIT, "%s: '%s' is %llu bytes (limit %u)", P, name, (unsigned long long)pe->size,
                         LISA_TORCH_MAX_PICKLE);
    char what[1024];
    snprintf(what, sizeof what, "%s:%s", P, name);
    lisa_status s;
    const void *pkl = lisa_zip_stored_data(z, pe);
    if (pkl) {
        s = lisa_pickle_load_state_dict(sd, pkl, (size_t)pe->size, what);
    } else {
        void *tmp = malloc(pe->size ? (size_t)pe->size : 1);
        if (!tmp) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", P);
        s = lisa_zip_extract(z, pe, tmp, (size_t)pe->size);
        if (s == LISA_OK) s = lisa_pickle_load_state_dict(sd, tmp, (size_t)pe->size, what);
        free(tmp);
    }
    if (s != LISA_OK) return s;

    /* Storages: find each record, check its size, sum what must be materialised. */
    storage_view *views = calloc((size_t)(sd->n_storages ? sd->n_storages : 1), sizeof *views);
    if (!views) return lisa_fail(LISA_ERR_OOM, "%s: out of memory", P);
    *views_out = views;
    uint64_t need = 0;
    for (int32_t i = 0; i < sd->n_storages; i++) {
        const lisa_pickle_storage *st = &sd->storages[i];
        snprintf(name, sizeof name, "%s/data/%s", prefix, st->key);
        const lisa_zip_entry *e = lisa_zip_find(z, name);
        if (!e) return lisa_fail(LISA_ERR_FORMAT, "%s: storage '%s' (entry '%s') is missing from the archive", P, st->key, name);
        uint64_t want = (uint64_t)st->numel * lisa_dtype_size(st->dtype); /* no overflow: numel*8 checked below */
        if ((uint64_t)st->numel > UINT64_MAX / 8 || e->size != want)
            return lisa_fail(LISA_ERR_FORMAT,
                             "%s: storage '%s' holds %llu bytes but its pickle record says %lld %s elements (%llu bytes)%s",
                             P, name, (unsigned long long)e->size, (long long)st->numel, lisa_dtype_name(st->dtype),
                             (unsigned long long)want, e->size < want ? ": storage shorter than claimed" : "");
        views[i].entry = e;
        views[i].data = lisa_zip_stored_data(z, e);
        if (!views[i].data) need += (e->size + 63) & ~(uint64_t)63;
    }
    for (int64_t i = 0; i < sd->n_tensors; i++) {
        const lisa_pickle_tensor *t = &sd->tensors[i];
        if (t->contiguous) continue;
        const lisa_pickle_storage *st = &sd->storages[t->storage];
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d]; /* no overflow: checked by the unpickler */
        /* A permuted or sliced view is never larger than its storage; only views that overlap
         * themselves (stride 0, expand()) are, and no state dict holds one. Refusing them keeps
         * the copies bounded by the file size. */
        if (n > (uint64_t)st->numel)
            return lisa_fail(LISA_ERR_UNSUPPORTED,
                             "%s: tensor '%s' has %llu elements on a storage of %lld (an expanded/overlapping view)", P,
                             t->name, (unsigned long long)n, (long long)st->numel);
        n *= lisa_dtype_size(st->dtype);
        need += (n + 63) & ~(uint64_t)63;
    }
    unsigned char *buf = NULL;
    if (need) {
        if (need > SIZE_MAX) return lisa_fail(LISA_ERR_OOM, "%s: %llu bytes to materialise", P, (unsigned long long)need);
        LISA_TRY(lisa_ckpt_alloc(ck, (size_t)need, (void **)&buf));
    }
    for (int32_t i = 0; i < sd->n_storages; i++) {
        if (views[i].data) continue;
        LISA_TRY(lisa_zip_extract(z, views[i].entry, buf, (size_t)views[i].entry->size));
        views[i].data = buf;
        buf += (views[i].entry->size + 63) & ~(uint64_t)63;
    }
    for (int64_t i = 0; i < sd->n_tensors; i++) {
        const lisa_pickle_tensor *t = &sd->tensors[i];
        const lisa_pickle_storage *st = &sd->storages[t->storage];
        size_t es = lisa_dtype_size(st->dtype);
        uint64_t nbytes = es;
        for (int d = 0; d < t->n_dims; d++) nbytes *= (uint64_t)t->shape[d];
        const unsigned char *base = views[t->storage].data;
        const void *data;
        if (nbytes == 0) {
            data = base; /* any aligned pointer: nothing is read */
        } else if (t->contiguous) {
            data = base + (size_t)t->offset * es;
        } else {
            gather(buf, base, es, t);
            data = buf;
            buf += (nbytes + 63) & ~(uint64_t)63;
        }
        LISA_TRY(lisa_ckpt_add_entry(ck, t->name, st->dtype, t->n_dims, t->shape, data, (size_t)nbytes, file));
    }
    return LISA_OK;
}

lisa_status lisa_pytorch_bin_parse(lisa_checkpoint *ck, int32_t file) {
    lisa_zip z;
    lisa_pickle_state_dict sd;
    memset(&sd, 0, sizeof sd);
    storage_view *views = NULL;
    lisa_status s = parse(ck, file, &z, &sd, &views);
    free(views);
    lisa_pickle_state_dict_free(&sd);
    lisa_zip_close(&z);
    return s;
}
