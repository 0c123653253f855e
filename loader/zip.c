/* loader/zip.c — strict read-only zip reader (see zip.h for the format rules and CRC policy). */
#include "loader/zip.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define EOCD_SIZE 22u
#define LOCATOR64_SIZE 20u
#define EOCD64_MIN 56u
#define CENTRAL_SIZE 46u
#define LOCAL_SIZE 30u
#define ZIP64_EXTRA_ID 0x0001u

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* ---- CRC ------------------------------------------------------------------------------------- */

#define CRC_CHUNK ((size_t)64 << 20)

uint32_t lisa_crc32(const void *data, size_t n) {
    const unsigned char *p = data;
    if (n < 2 * CRC_CHUNK) return (uint32_t)crc32_z(0, p, n);
    /* Large stored tensors (GBs): CRC each 64 MiB chunk on its own thread, then combine in order
     * (crc32_combine is O(log len)). */
    size_t n_chunks = (n + CRC_CHUNK - 1) / CRC_CHUNK;
    uint32_t *part = malloc(n_chunks * sizeof *part);
    if (!part) return (uint32_t)crc32_z(0, p, n);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (long i = 0; i < (long)n_chunks; i++) {
        size_t off = (size_t)i * CRC_CHUNK, len = n - off < CRC_CHUNK ? n - off : CRC_CHUNK;
        part[i] = (uint32_t)crc32_z(0, p + off, len);
    }
    uLong crc = part[0];
    for (size_t i = 1; i < n_chunks; i++) {
        size_t len = i + 1 < n_chunks ? CRC_CHUNK : n - i * CRC_CHUNK;
        crc = crc32_combine(crc, part[i], (z_off_t)len);
    }
    free(part);
    return (uint32_t)crc;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* Walks an extra-field area; fails if the (id, size, data) chain does not fill it exactly. When
 * `need` > 0 and a ZIP64 field (id 1) is present, reads the values of the fields that were
 * 0xFFFFFFFF in the fixed header, in the APPNOTE §4.5.3 order, into vals[0..need). */
static bool parse_extra(const unsigned char *p, size_t len, int need, uint64_t *vals, bool *found64) {
    *found64 = false;
    size_t i = 0;
    while (i < len) {
        if (len - i < 4) return false;
        uint16_t id = rd16(p + i), sz = rd16(p + i + 2);
        if (sz > len - i - 4) return false;
        if (id == ZIP64_EXTRA_ID) {
            if (*found64) return false; /* two ZIP64 fields */
            *found64 = true;
            if (need > 0) {
                if ((size_t)sz < (size_t)need * 8) return false;
                for (int k = 0; k < need; k++) vals[k] = rd64(p + i + 4 + 8 * k);
            }
        }
        i += 4u + sz;
    }
    return true;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const lisa_zip_entry *)a)->name, ((const lisa_zip_entry *)b)->name);
}

static int cmp_entry_offset(const void *a, const void *b) {
    const lisa_zip_entry *x = *(const lisa_zip_entry *const *)a, *y = *(const lisa_zip_entry *const *)b;
    return x->header_offset < y->header_offset ? -1 : x->header_offset > y->header_offset;
}

/* Finds the end of central directory record: the last signature whose comment ends exactly at the
 * end of the file. */
static lisa_status find_eocd(const lisa_zip *z, uint64_t *pos) {
    if (z->size < EOCD_SIZE)
        return lisa_fail(LISA_ERR_FORMAT, "%s: %zu bytes is too short for a zip archive", z->path, z->size);
    uint64_t last = z->size - EOCD_SIZE;
    uint64_t first = last > 0xffffu ? last - 0xffffu : 0;
    for (uint64_t p = last + 1; p-- > first;) {
        const unsigned char *q = z->data + p;
        if (rd32(q) == SIG_EOCD && p + EOCD_SIZE + rd16(q + 20) == z->size) {
            *pos = p;
            return LISA_OK;
        }
    }
    return lisa_fail(LISA_ERR_FORMAT,
                     "%s: no zip end-of-central-directory record (truncated file, or not a zip/PyTorch archive)",
                     z->path);
}

static lisa_status parse_local(lisa_zip *z, lisa_zip_entry *e, uint64_t cd_offset) {
    const char *P = z->path;
    if (e->header_offset > cd_offset || cd_offset - e->header_offset < LOCAL_SIZE)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': local header offset %llu is outside the archive data", P,
                         e->name, (unsigned long long)e->header_offset);
    const unsigned char *h = z->data + e->header_offset;
    if (rd32(h) != SIG_LOCAL)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': no local file header at offset %llu", P, e->name,
                         (unsigned long long)e->header_offset);
    uint16_t flags = rd16(h + 6), method = rd16(h + 8), nl = rd16(h + 26), el = rd16(h + 28);
    uint32_t crc = rd32(h + 14), csz = rd32(h + 18), usz = rd32(h + 22);
    uint64_t after = e->header_offset + LOCAL_SIZE;
    if ((uint64_t)nl + el > cd_offset - after)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': local header runs past the archive data", P, e->name);
    size_t name_len = strlen(e->name);
    if (nl != name_len || memcmp(h + LOCAL_SIZE, e->name, nl) != 0)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': local header names a different file", P, e->name);
    if (method != e->method)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': local header says method %u, central directory %u", P,
                         e->name, method, e->method);
    int need = (usz == 0xffffffffu) + (csz == 0xffffffffu);
    uint64_t v[2] = {0, 0};
    bool has64;
    if (!parse_extra(h + LOCAL_SIZE + nl, el, need, v, &has64) || (need && !has64))
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': malformed extra field in the local header", P, e->name);
    int k = 0;
    uint64_t lu = usz == 0xffffffffu ? v[k++] : usz;
    uint64_t lc = csz == 0xffffffffu ? v[k++] : csz;
    bool descriptor = (flags & 8u) != 0;
    /* With a data descriptor (bit 3) the local values may be zero; otherwise they must match. */
    bool crc_ok = crc == e->crc32 || (descriptor && crc == 0);
    bool size_ok = (lu == e->size && lc == e->comp_size) || (descriptor && lu == 0 && lc == 0);
    if (!crc_ok || !size_ok)
        return lisa_fail(LISA_ERR_FORMAT,
                         "%s: entry '%s': local header (crc %08x, %llu/%llu bytes) disagrees with the central directory "
                         "(crc %08x, %llu/%llu bytes)",
                         P, e->name, crc, (unsigned long long)lc, (unsigned long long)lu, e->crc32,
                         (unsigned long long)e->comp_size, (unsigned long long)e->size);
    e->data_offset = after + nl + el;
    if (e->comp_size > cd_offset - e->data_offset)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': %llu bytes of data at offset %llu run past the archive data "
                         "(truncated?)", P, e->name, (unsigned long long)e->comp_size,
                         (unsigned long long)e->data_offset);
    return LISA_OK;
}

lisa_status lisa_zip_open(lisa_zip *z, const void *data, size_t size, const char *path, bool verify_stored_crc) {
    memset(z, 0, sizeof *z);
    z->data = data;
    z->size = size;
    z->path = path;
    const char *P = path;
    uint64_t eocd = 0;
    LISA_TRY(find_eocd(z, &eocd));
    const unsigned char *q = z->data + eocd;
    uint64_t disk = rd16(q + 4), cd_disk = rd16(q + 6), n_here = rd16(q + 8), n_total = rd16(q + 10);
    uint64_t cd_size = rd32(q + 12), cd_offset = rd32(q + 16);
    uint64_t cd_end_limit = eocd; /* the central directory must end where the end records begin */

    if (eocd >= LOCATOR64_SIZE && rd32(z->data + eocd - LOCATOR64_SIZE) == SIG_LOCATOR64) {
        const unsigned char *loc = z->data + eocd - LOCATOR64_SIZE;
        uint64_t rec = rd64(loc + 8);
        uint32_t loc_disk = rd32(loc + 4), n_disks = rd32(loc + 16);
        if (loc_disk != 0 || n_disks > 1)
            return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: multi-disk (split) zip archives are not supported", P);
        uint64_t loc_pos = eocd - LOCATOR64_SIZE;
        if (rec > loc_pos || loc_pos - rec < EOCD64_MIN || rd32(z->data + rec) != SIG_EOCD64)
            return lisa_fail(LISA_ERR_FORMAT, "%s: ZIP64 locator points to offset %llu, where there is no ZIP64 end record",
                             P, (unsigned long long)rec);
        const unsigned char *r = z->data + rec;
        uint64_t rec_size = rd64(r + 4);
        if (rec_size < EOCD64_MIN - 12 || rec_size != loc_pos - rec - 12)
            return lisa_fail(LISA_ERR_FORMAT, "%s: ZIP64 end record size %llu does not fit before its locator", P,
                             (unsigned long long)rec_size);
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_here = rd64(r + 24);
        n_total = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_offset = rd64(r + 48);
        cd_end_limit = rec;
        z->zip64 = true;
    } else if (n_here == 0xffffu || n_total == 0xffffu || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
        return lisa_fail(LISA_ERR_FORMAT, "%s: end record defers to ZIP64 values but there is no ZIP64 locator", P);
    }
    if (disk != 0 || cd_disk != 0 || n_here != n_total)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: multi-disk (split) zip archives are not supported", P);
    if (cd_offset > cd_end_limit || cd_size != cd_end_limit - cd_offset)
        return lisa_fail(LISA_ERR_FORMAT,
                         "%s: central directory (offset %llu, %llu bytes) does not end where the end record starts "
                         "(offset %llu): truncated or corrupt archive",
                         P, (unsigned long long)cd_offset, (unsigned long long)cd_size, (unsigned long long)cd_end_limit);
    if (n_total > LISA_ZIP_MAX_ENTRIES)
        return lisa_fail(LISA_ERR_LIMIT, "%s: %llu entries exceed the limit of %u", P, (unsigned long long)n_total,
                         LISA_ZIP_MAX_ENTRIES);
    if (n_total * CENTRAL_SIZE > cd_size)
        return lisa_fail(LISA_ERR_FORMAT, "%s: %llu entries cannot fit in a %llu-byte central directory", P,
                         (unsigned long long)n_total, (unsigned long long)cd_size);

    z->entries = calloc(n_total ? n_total : 1, sizeof *z->entries);
    z->names = malloc(cd_size + 1);
    lisa_zip_entry **by_offset = malloc((n_total ? n_total : 1) * sizeof *by_offset);
    lisa_status s = LISA_OK;
    if (!z->entries || !z->names || !by_offset) {
        s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", P);
        goto done;
    }
    uint64_t pos = cd_offset, name_used = 0;
    for (uint64_t i = 0; i < n_total; i++) {
        if (cd_end_limit - pos < CENTRAL_SIZE || rd32(z->data + pos) != SIG_CENTRAL) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: central directory entry %llu at offset %llu is corrupt", P,
                          (unsigned long long)i, (unsigned long long)pos);
            goto done;
        }
        const unsigned char *c = z->data + pos;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint32_t crc = rd32(c + 16), csz = rd32(c + 20), usz = rd32(c + 24);
        uint16_t nl = rd16(c + 28), el = rd16(c + 30), cl = rd16(c + 32), dstart = rd16(c + 34);
        uint32_t lho = rd32(c + 42);
        uint64_t len = (uint64_t)CENTRAL_SIZE + nl + el + cl;
        if (len > cd_end_limit - pos) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: central directory entry %llu runs past the directory", P,
                          (unsigned long long)i);
            goto done;
        }
        lisa_zip_entry *e = &z->entries[i];
        e->name = z->names + name_used;
        memcpy(z->names + name_used, c + CENTRAL_SIZE, nl);
        z->names[name_used + nl] = '\0';
        name_used += (uint64_t)nl + 1;
        if (nl == 0 || memchr(c + CENTRAL_SIZE, 0, nl)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: central directory entry %llu has an empty name or a NUL in its name", P,
                          (unsigned long long)i);
            goto done;
        }
        int need = (usz == 0xffffffffu) + (csz == 0xffffffffu) + (lho == 0xffffffffu) + (dstart == 0xffffu);
        uint64_t v[4] = {0, 0, 0, 0};
        bool has64;
        if (!parse_extra(c + CENTRAL_SIZE + nl, el, need, v, &has64) || (need && !has64)) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': malformed extra field (ZIP64 sizes/offset)", P, e->name);
            goto done;
        }
        int k = 0;
        e->size = usz == 0xffffffffu ? v[k++] : usz;
        e->comp_size = csz == 0xffffffffu ? v[k++] : csz;
        e->header_offset = lho == 0xffffffffu ? v[k++] : lho;
        uint64_t d = dstart == 0xffffu ? v[k++] : dstart;
        e->crc32 = crc;
        e->method = method;
        e->flags = flags;
        if (d != 0) {
            s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: entry '%s' lives on disk %llu (split archives are not supported)", P,
                          e->name, (unsigned long long)d);
            goto done;
        }
        if (flags & 0x41u) {
            s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: entry '%s' is encrypted", P, e->name);
            goto done;
        }
        if (method != LISA_ZIP_STORED && method != LISA_ZIP_DEFLATED) {
            s = lisa_fail(LISA_ERR_UNSUPPORTED, "%s: entry '%s' uses compression method %u (only stored and deflate)", P,
                          e->name, method);
            goto done;
        }
        /* deflate expands at most ~1032:1; anything claiming more is a zip bomb or corrupt, and
         * would make callers allocate the claimed size */
        if (method == LISA_ZIP_DEFLATED && e->size / 1032 > e->comp_size + 1) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s' claims %llu bytes from %llu compressed (impossible ratio)", P,
                          e->name, (unsigned long long)e->size, (unsigned long long)e->comp_size);
            goto done;
        }
        if (method == LISA_ZIP_STORED && e->comp_size != e->size) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: stored entry '%s' has compressed size %llu != size %llu", P, e->name,
                          (unsigned long long)e->comp_size, (unsigned long long)e->size);
            goto done;
        }
        s = parse_local(z, e, cd_offset);
        if (s != LISA_OK) goto done;
        by_offset[i] = e;
        pos += len;
    }
    if (pos != cd_end_limit) {
        s = lisa_fail(LISA_ERR_FORMAT, "%s: %llu stray bytes after the last central directory entry", P,
                      (unsigned long long)(cd_end_limit - pos));
        goto done;
    }
    z->n_entries = (int64_t)n_total;
    /* Entries may not share bytes (a classic zip-bomb and parser-confusion trick). */
    if (n_total > 1) qsort(by_offset, n_total, sizeof *by_offset, cmp_entry_offset);
    for (uint64_t i = 1; i < n_total; i++) {
        const lisa_zip_entry *a = by_offset[i - 1], *b = by_offset[i];
        if (a->data_offset + a->comp_size > b->header_offset) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: entries '%s' and '%s' overlap", P, a->name, b->name);
            goto done;
        }
    }
    if (n_total > 1) qsort(z->entries, n_total, sizeof *z->entries, cmp_entry_name);
    for (uint64_t i = 1; i < n_total; i++) {
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0) {
            s = lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s' appears twice", P, z->entries[i].name);
            goto done;
        }
    }
    for (uint64_t i = 0; i < n_total; i++) {
        const lisa_zip_entry *e = &z->entries[i];
        if (e->method == LISA_ZIP_STORED && (verify_stored_crc || e->size <= LISA_ZIP_SMALL_ENTRY)) {
            s = lisa_zip_verify_crc(z, e);
            if (s != LISA_OK) goto done;
        }
    }
done:
    free(by_offset);
    if (s != LISA_OK) lisa_zip_close(z);
    return s;
}

void lisa_zip_close(lisa_zip *z) {
    if (!z) return;
    free(z->entries);
    free(z->names);
    z->entries = NULL;
    z->names = NULL;
    z->n_entries = 0;
}

const lisa_zip_entry *lisa_zip_find(const lisa_zip *z, const char *name) {
    int64_t lo = 0, hi = z->n_entries - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0) return &z->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const void *lisa_zip_stored_data(const lisa_zip *z, const lisa_zip_entry *e) {
    return e->method == LISA_ZIP_STORED ? z->data + e->data_offset : NULL;
}

lisa_status lisa_zip_verify_crc(const lisa_zip *z, const lisa_zip_entry *e) {
    LISA_ASSERT(e->method == LISA_ZIP_STORED);
    uint32_t crc = lisa_crc32(z->data + e->data_offset, (size_t)e->size);
    if (crc != e->crc32)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': CRC-32 mismatch (stored %08x, computed %08x): corrupt file",
                         z->path, e->name, e->crc32, crc);
    return LISA_OK;
}

lisa_status lisa_zip_extract(const lisa_zip *z, const lisa_zip_entry *e, void *dst, size_t cap) {
    LISA_ASSERT(cap >= e->size);
    const char *P = z->path;
    const unsigned char *src = z->data + e->data_offset;
    if (e->method == LISA_ZIP_STORED) {
        LISA_TRY(lisa_zip_verify_crc(z, e));
        if (e->size) memcpy(dst, src, (size_t)e->size);
        return LISA_OK;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return lisa_fail(LISA_ERR_OOM, "%s: cannot initialise zlib", P);
    /* zlib counts in uInt (32 bits): feed and drain in pieces of at most 1 GiB (next_in/next_out
     * advance by themselves, so consecutive pieces continue where the last one stopped). */
    const uint64_t piece = (uint64_t)1 << 30;
    uint64_t in_left = e->comp_size, out_left = e->size;
    unsigned char spill; /* one byte past the declared size: a longer stream is caught here */
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.next_out = dst;
    int rc;
    for (;;) {
        if (zs.avail_in == 0 && in_left) {
            zs.avail_in = (uInt)(in_left < piece ? in_left : piece);
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = (uInt)(out_left < piece ? out_left : piece);
            out_left -= zs.avail_out;
        }
        if (zs.avail_out == 0) {
            zs.next_out = &spill;
            zs.avail_out = 1;
            rc = inflate(&zs, Z_NO_FLUSH);
            break;
        }
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) break;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) break; /* input ended early */
        if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    }
    bool ok = rc == Z_STREAM_END && zs.total_out == e->size && zs.total_in == e->comp_size;
    inflateEnd(&zs);
    if (!ok)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': corrupt deflate stream (%s)", P, e->name,
                         rc == Z_STREAM_END ? "size differs from the directory" : "decompression failed or truncated");
    uint32_t crc = lisa_crc32(dst, (size_t)e->size);
    if (crc != e->crc32)
        return lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s': CRC-32 mismatch (stored %08x, computed %08x): corrupt file",
                         P, e->name, e->crc32, crc);
    return LISA_OK;
}
