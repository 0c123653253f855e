/* loader/zip.h — a strict, read-only zip reader over memory (an mmap'd file), enough for PyTorch
 * checkpoints (torch.save since 1.6 writes a zip of stored entries, 64-byte aligned, always with
 * ZIP64 end records; the released LISA shards are 6-10 GB, so ZIP64 sizes and offsets matter).
 *
 * Format: PKWARE APPNOTE.TXT 6.3 (§4.3.7 local header, §4.3.12 central directory header, §4.3.14-16
 * ZIP64 end of central directory record/locator and end of central directory, §4.5.3 ZIP64 extra).
 * Written by hand rather than on libzip because zero-copy tensor access needs the data offset of
 * each stored entry, which libzip does not expose.
 *
 * Strictness (everything in the file is untrusted): single-disk archives only; the end record must
 * end exactly at the end of the file (after its comment); every offset and size is checked against
 * the file size and against the central directory start; entries may not overlap; names are unique
 * and NUL-free; the local header must repeat the central directory's name and method, and its CRC
 * and sizes unless bit 3 (data descriptor) is set, in which case they may be 0 (miniz, hence
 * torch.save, writes zeros there and puts the values in the descriptor; the central directory is
 * authoritative and the descriptor is not read). Methods: 0 (stored) and 8 (deflate); encrypted
 * entries are refused.
 *
 * CRC policy: CRC-32 of deflated entries is checked whenever they are extracted (zlib computes it
 * while inflating, so it is free). Stored entries are checked at open time when `verify_stored_crc`
 * is true (the default of the checkpoint loader), otherwise only stored entries of at most
 * LISA_ZIP_SMALL_ENTRY bytes (data.pkl, version) are. Cost, measured on the 2-vCPU build machine
 * with zlib 1.2.13 (no hardware CRC): 0.79 s per GiB in memory on one core; opening a 4.3 GB
 * torch.save file from the page cache took 3.7 s with the check and < 1 ms without (12 s cold,
 * where reading the file dominates), i.e. ~13 s of CPU for the 16 GB of LISA-7B. Entries above
 * 128 MiB are split into 64 MiB pieces CRC'd on OpenMP threads and combined with crc32_combine,
 * so a many-core host pays about (bytes / cores) * 0.8 s/GiB. Use skip_crc for repeated loads.
 *
 * Ownership: a lisa_zip owns its entry table and one buffer holding all entry names; it borrows the
 * archive bytes and the path string, which must outlive it.
 */
#ifndef LISA_LOADER_ZIP_H
#define LISA_LOADER_ZIP_H

#include "lisa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LISA_ZIP_SMALL_ENTRY (1u << 20)
#define LISA_ZIP_MAX_ENTRIES (1u << 20) /* a hostile directory cannot make us allocate more */

enum { LISA_ZIP_STORED = 0, LISA_ZIP_DEFLATED = 8 };

typedef struct lisa_zip_entry {
    const char *name;     /* NUL-terminated copy, owned by the lisa_zip */
    uint64_t header_offset; /* local file header */
    uint64_t data_offset;   /* first byte of the (compressed) data */
    uint64_t comp_size;
    uint64_t size;          /* uncompressed */
    uint32_t crc32;
    uint16_t method;        /* LISA_ZIP_STORED or LISA_ZIP_DEFLATED */
    uint16_t flags;
} lisa_zip_entry;

typedef struct lisa_zip {
    const unsigned char *data; /* borrowed */
    size_t size;
    const char *path;          /* borrowed; used in error messages */
    lisa_zip_entry *entries;   /* owned, sorted by name (strcmp) */
    int64_t n_entries;
    char *names;               /* owned */
    bool zip64;                /* the archive has ZIP64 end records */
} lisa_zip;

/* Parses and validates the archive in data[0..size). `path` names it in errors. On failure *z is
 * left empty (lisa_zip_close is still safe). */
lisa_status lisa_zip_open(lisa_zip *z, const void *data, size_t size, const char *path, bool verify_stored_crc);
void lisa_zip_close(lisa_zip *z);

/* Exact name lookup; NULL when absent. */
const lisa_zip_entry *lisa_zip_find(const lisa_zip *z, const char *name);

/* For a stored entry: its bytes inside the archive (zero copy). NULL for deflated entries. */
const void *lisa_zip_stored_data(const lisa_zip *z, const lisa_zip_entry *e);

/* Writes the uncompressed bytes of `e` to dst (cap >= e->size), inflating if needed; the CRC is
 * always checked. LISA_ERR_FORMAT naming the entry on a corrupt stream or a CRC mismatch. */
lisa_status lisa_zip_extract(const lisa_zip *z, const lisa_zip_entry *e, void *dst, size_t cap);

/* Checks the CRC-32 of a stored entry (parallel for large entries). */
lisa_status lisa_zip_verify_crc(const lisa_zip *z, const lisa_zip_entry *e);

/* CRC-32 (zlib polynomial) of a buffer, split over threads when large. */
uint32_t lisa_crc32(const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
