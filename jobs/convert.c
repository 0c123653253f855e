/* jobs/convert.c — see jobs/convert.h. */
#include "jobs/convert.h"

#include "core/error.h"
#include "loader/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
static lisa_status copy_side_files(const char *in, const char *out) {
    DIR *d = opendir(in);
    if (!d) return LISA_OK; /* IN is a file: nothing to copy */
    struct dirent *e;
    lisa_status rc = LISA_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || is_weight_file(e->d_name)) continue;
        char src[8192], dst[8192];
        snprintf(src, sizeof src, "%s/%s", in, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", out, e->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) continue;
        if (copy_file(src, dst) != 0 && rc == 0)
            rc = lisa_fail(LISA_ERR_IO, "cannot copy %s to %s: %s", src, dst, strerror(errno));
    }
    closedir(d);
    return rc;
}

static lisa_status prepare_out(const char *out) {
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return lisa_fail(LISA_ERR_IO, "%s exists and is not a directory", out);
        DIR *d = opendir(out);
        struct dirent *e;
        int n = 0;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
        if (d) closedir(d);
        if (n) return lisa_fail(LISA_ERR_IO, "%s is not empty (refusing to mix old and new shards)", out);
        return LISA_OK;
    }
    if (mkdir(out, 0755) != 0) return lisa_fail(LISA_ERR_IO, "cannot create %s: %s", out, strerror(errno));
    return LISA_OK;
}

static lisa_status verify(const lisa_checkpoint *src, const char *out, lisa_dtype cast) {
    lisa_checkpoint *ck = NULL;
    lisa_status st = lisa_checkpoint_open(&ck, out);
    if (st == LISA_OK) st = lisa_checkpoint_compare(src, ck, cast);
    if (st != LISA_OK) lisa_fail_context(st, "verification");
    lisa_checkpoint_close(ck);
    return st;
}

lisa_status lisa_convert_run(const lisa_convert_job *j, lisa_convert_report *rep) {
    memset(rep, 0, sizeof *rep);
    lisa_ckpt_write_params p = {.format = LISA_CKPT_SAFETENSORS, .shard_size = j->shard_size, .cast = LISA_DTYPE_COUNT};
    if (j->format && !strcmp(j->format, "bin"))
        p.format = LISA_CKPT_TORCH_BIN;
    else if (j->format && strcmp(j->format, "safetensors"))
        return lisa_fail(LISA_ERR_INVALID_ARG, "convert: format '%s' (safetensors or bin)", j->format);
    if (j->dtype) {
        if (!strcmp(j->dtype, "bf16")) p.cast = LISA_DTYPE_BF16;
        else if (!strcmp(j->dtype, "f16")) p.cast = LISA_DTYPE_F16;
        else if (!strcmp(j->dtype, "f32")) p.cast = LISA_DTYPE_F32;
        else return lisa_fail(LISA_ERR_INVALID_ARG, "convert: dtype '%s' (bf16, f16 or f32)", j->dtype);
    }
    lisa_checkpoint *ck = NULL;
    lisa_checkpoint_options opt = {.skip_crc = j->skip_crc};
    LISA_TRY(lisa_checkpoint_open_ex(&ck, j->in, &opt));
    lisa_status s = prepare_out(j->out);
    const int64_t n = lisa_checkpoint_count(ck);
    lisa_st_write_item *items = s == LISA_OK ? malloc((size_t)(n ? n : 1) * sizeof *items) : NULL;
    if (s == LISA_OK && !items) s = lisa_fail(LISA_ERR_OOM, "out of memory");
    for (int64_t i = 0; s == LISA_OK && i < n; i++) {
        const lisa_ckpt_tensor *t = lisa_checkpoint_at(ck, i);
        items[i] = (lisa_st_write_item){t->name, lisa_ckpt_tensor_view(t)};
    }
    if (s == LISA_OK) s = lisa_checkpoint_write_dir(j->out, items, n, &p);
    free(items);
    if (s == LISA_OK) s = copy_side_files(j->in, j->out);
    if (s == LISA_OK && j->verify) s = verify(ck, j->out, p.cast);
    if (s == LISA_OK) {
        rep->n_tensors = n;
        rep->format = p.format == LISA_CKPT_TORCH_BIN ? "PyTorch .bin" : "safetensors";
        rep->cast = p.cast != LISA_DTYPE_COUNT ? lisa_dtype_name(p.cast) : NULL;
        rep->verified = j->verify;
    }
    lisa_checkpoint_close(ck);
    return s;
}
