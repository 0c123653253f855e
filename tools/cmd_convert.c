/* tools/cmd_convert.c — `lisa convert IN OUT`: rewrite a checkpoint (any format the loader reads:
 * .bin shards, safetensors, one file or a directory) as an HF model directory in safetensors
 * (default) or torch.save .bin shards, optionally casting float tensors. The small files of an input
 * directory (config.json, tokenizer files, ...) are copied, so OUT is a complete model directory.
 * The output is then reopened and every tensor compared with the input (bit for bit, or with the
 * input cast the same way), unless --no-verify. */
#include "loader/checkpoint.h"
#include "core/error.h"
#include "tools/commands.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: lisa convert IN OUT [--dtype bf16|f16|f32] [--shard-size 5GB] [--format safetensors|bin]\n"
               "                      [--no-verify] [--no-crc]\n"
               "  IN            checkpoint: a model directory, a .bin/.safetensors file or a *.index.json\n"
               "  OUT           output directory (created; must be empty if it exists)\n"
               "  --dtype       cast F32/F16/BF16 tensors (integer tensors are kept)\n"
               "  --shard-size  largest shard, as transformers spells it: 5GB = 5e9 bytes, 4GiB = 2^32;\n"
               "                0 = one file (default 5GB)\n"
               "  --format      output format (default safetensors)\n");
}

/* transformers' convert_file_size_to_int: GiB/MiB/KiB are powers of 2, GB/MB/KB of 10. */
static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return false;
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"KiB", 1024.0},
                 {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            *out = (uint64_t)(v * units[i].mul);
            return true;
        }
    return false;
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static bool is_weight_file(const char *name) {
    return ends_with(name, ".bin") || ends_with(name, ".safetensors") || ends_with(name, ".index.json") ||
           ends_with(name, ".pt") || ends_with(name, ".pth") || ends_with(name, ".tmp");
}

static int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (ferror(in)) rc = -1;
    fclose(in);
    if (fclose(out) != 0) rc = -1;
    return rc;
}

/* Copies the non-weight regular files (configs, tokenizer) of directory `in` to `out`. */
static int copy_side_files(const char *in, const char *out) {
    DIR *d = opendir(in);
    if (!d) return 0; /* IN is a file: nothing to copy */
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || is_weight_file(e->d_name)) continue;
        char src[8192], dst[8192];
        snprintf(src, sizeof src, "%s/%s", in, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", out, e->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) continue;
        if (copy_file(src, dst) != 0) {
            fprintf(stderr, "lisa convert: cannot copy %s to %s: %s\n", src, dst, strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

static int prepare_out(const char *out) {
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "lisa convert: %s exists and is not a directory\n", out);
            return -1;
        }
        DIR *d = opendir(out);
        struct dirent *e;
        int n = 0;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
        if (d) closedir(d);
        if (n) {
            fprintf(stderr, "lisa convert: %s is not empty (refusing to mix old and new shards)\n", out);
            return -1;
        }
        return 0;
    }
    if (mkdir(out, 0755) != 0) {
        fprintf(stderr, "lisa convert: cannot create %s: %s\n", out, strerror(errno));
        return -1;
    }
    return 0;
}

static int verify(const lisa_checkpoint *src, const char *out, lisa_dtype cast) {
    lisa_checkpoint *ck;
    lisa_status st = lisa_checkpoint_open(&ck, out);
    if (st == LISA_OK) st = lisa_checkpoint_compare(src, ck, cast);
    if (st != LISA_OK) fprintf(stderr, "lisa convert: verification: %s\n", lisa_last_error());
    lisa_checkpoint_close(ck);
    return st == LISA_OK ? 0 : -1;
}

int lisa_cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    lisa_ckpt_write_params p = {.format = LISA_CKPT_SAFETENSORS, .shard_size = 5000000000ull, .cast = LISA_DTYPE_COUNT};
    bool do_verify = true, no_crc = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "bf16")) p.cast = LISA_DTYPE_BF16;
            else if (!strcmp(v, "f16")) p.cast = LISA_DTYPE_F16;
            else if (!strcmp(v, "f32")) p.cast = LISA_DTYPE_F32;
            else {
                fprintf(stderr, "lisa convert: --dtype must be bf16, f16 or f32, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--shard-size") && i + 1 < argc) {
            if (!parse_size(argv[++i], &p.shard_size)) {
                fprintf(stderr, "lisa convert: --shard-size '%s' is not a size like 5GB, 500MB or 4GiB\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "safetensors")) p.format = LISA_CKPT_SAFETENSORS;
            else if (!strcmp(v, "bin")) p.format = LISA_CKPT_TORCH_BIN;
            else {
                fprintf(stderr, "lisa convert: --format must be safetensors or bin, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--no-verify")) {
            do_verify = false;
        } else if (!strcmp(a, "--no-crc")) {
            no_crc = true;
        } else if (a[0] == '-' || (in && out)) {
            fprintf(stderr, "lisa convert: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            out = a;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 2;
    }
    lisa_checkpoint *ck;
    lisa_checkpoint_options opt = {.skip_crc = no_crc};
    if (lisa_checkpoint_open_ex(&ck, in, &opt) != LISA_OK) {
        fprintf(stderr, "lisa convert: %s\n", lisa_last_error());
        return 1;
    }
    if (prepare_out(out) != 0) {
        lisa_checkpoint_close(ck);
        return 1;
    }
    int64_t n = lisa_checkpoint_count(ck);
    lisa_st_write_item *items = malloc((size_t)(n ? n : 1) * sizeof *items);
    if (!items) {
        fprintf(stderr, "lisa convert: out of memory\n");
        lisa_checkpoint_close(ck);
        return 1;
    }
    for (int64_t i = 0; i < n; i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(ck, i);
        items[i] = (lisa_st_write_item){t->name, lisa_ckpt_tensor_view(t)};
    }
    int rc = 0;
    if (lisa_checkpoint_write_dir(out, items, n, &p) != LISA_OK) {
        fprintf(stderr, "lisa convert: %s\n", lisa_last_error());
        rc = 1;
    }
    free(items);
    if (rc == 0 && copy_side_files(in, out) != 0) rc = 1;
    if (rc == 0 && do_verify && verify(ck, out, p.cast) != 0) rc = 1;
    if (rc == 0)
        printf("lisa convert: %lld tensors from %s written to %s (%s%s%s)%s\n", (long long)n, in, out,
               p.format == LISA_CKPT_TORCH_BIN ? "PyTorch .bin" : "safetensors", p.cast != LISA_DTYPE_COUNT ? ", cast to " : "",
               p.cast != LISA_DTYPE_COUNT ? lisa_dtype_name(p.cast) : "", do_verify ? "; verified" : "");
    lisa_checkpoint_close(ck);
    return rc;
}
