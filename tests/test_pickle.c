/* tests/test_pickle.c — the restricted unpickler: torch-written data.pkl files (from the golden
 * corpus, extracted with the zip reader), hand-assembled pickles for each rule, every opcode byte,
 * and random mutations (no crash, no leak: run under ASan/UBSan in CI). */
#include "loader/pickle.h"
#include "loader/zip.h"
#include "core/error.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <string.h>

#define BIN_DIR LISA_TESTDATA_DIR "/bin"

/* ---- a tiny pickle assembler ---------------------------------------------------------------- */

typedef struct pk {
    unsigned char b[4096];
    size_t n;
} pk;

static void raw(pk *p, const void *s, size_t n) {
    cr_assert(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static void lits(pk *p, const char *s) { raw(p, s, strlen(s)); }
/* literals may hold NUL bytes ("K\x00" = BININT1 0): use their full size */
#define lit(p, s) raw((p), (s), sizeof(s) - 1)
static void op(pk *p, unsigned v) {
    unsigned char c = (unsigned char)v;
    raw(p, &c, 1);
}
static void str(pk *p, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    op(p, 'X');
    unsigned char l[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
    raw(p, l, 4);
    lits(p, s);
}
static void i8(pk *p, unsigned v) {
    op(p, 'K');
    op(p, v);
}
/* _rebuild_tensor_v2((storage 'key', FloatStorage, numel), offset, (shape...), (stride...), False, OrderedDict()) */
static void tensor(pk *p, const char *key, unsigned numel, unsigned offset, int nd, const unsigned *shape,
                   const unsigned *stride) {
    lit(p, "ctorch._utils\n_rebuild_tensor_v2\n((");
    str(p, "storage");
    lit(p, "ctorch\nFloatStorage\n");
    str(p, key);
    str(p, "cpu");
    i8(p, numel);
    lit(p, "tQ");
    i8(p, offset);
    op(p, '(');
    for (int d = 0; d < nd; d++) i8(p, shape[d]);
    op(p, 't');
    op(p, '(');
    for (int d = 0; d < nd; d++) i8(p, stride[d]);
    op(p, 't');
    op(p, 0x89);
    lit(p, "ccollections\nOrderedDict\n)R");
    lit(p, "tR");
}
static void head(pk *p) { lit(p, "\x80\x02" "ccollections\nOrderedDict\n)R("); }
static void tail(pk *p) { lit(p, "u."); }

static lisa_status load(const pk *p, lisa_pickle_state_dict *sd) {
    /* a heap copy of exactly n bytes, so ASan sees any over-read */
    unsigned char *c = malloc(p->n ? p->n : 1);
    memcpy(c, p->b, p->n);
    lisa_status s = lisa_pickle_load_state_dict(sd, c, p->n, "test.pkl");
    free(c);
    return s;
}

static void expect_fail(const pk *p, lisa_status want, const char *needle) {
    lisa_pickle_state_dict sd;
    lisa_status s = load(p, &sd);
    cr_expect_eq(s, want, "got %s (%s), want %s", lisa_status_name(s), lisa_last_error(), lisa_status_name(want));
    cr_expect(strstr(lisa_last_error(), needle), "message '%s' lacks '%s'", lisa_last_error(), needle);
    cr_expect_eq(sd.n_tensors, 0);
    cr_expect_null(sd.tensors);
}

/* ---- torch's own pickles -------------------------------------------------------------------- */

static lisa_status load_from_zip(const char *file, lisa_pickle_state_dict *sd) {
    size_t len;
    char *bytes = tu_read_file(file, &len);
    cr_assert_not_null(bytes);
    lisa_zip z;
    cr_assert_eq(lisa_zip_open(&z, bytes, len, file, true), LISA_OK, "%s", lisa_last_error());
    const lisa_zip_entry *pkl = NULL;
    for (int64_t i = 0; i < z.n_entries; i++)
        if (strstr(z.entries[i].name, "/data.pkl")) pkl = &z.entries[i];
    cr_assert_not_null(pkl);
    lisa_status s = lisa_pickle_load_state_dict(sd, lisa_zip_stored_data(&z, pkl), (size_t)pkl->size, file);
    lisa_zip_close(&z);
    free(bytes);
    return s;
}

static const lisa_pickle_tensor *find(const lisa_pickle_state_dict *sd, const char *name) {
    for (int64_t i = 0; i < sd->n_tensors; i++)
        if (!strcmp(sd->tensors[i].name, name)) return &sd->tensors[i];
    return NULL;
}

Test(pickle, torch_state_dict) {
    lisa_pickle_state_dict sd;
    cr_assert_eq(load_from_zip(BIN_DIR "/single/pytorch_model.bin", &sd), LISA_OK, "%s", lisa_last_error());
    cr_expect(sd.ordered, "a module state_dict is an OrderedDict");
    cr_expect(sd.has_metadata, "... with a _metadata attribute set by BUILD");
    cr_expect_eq(sd.n_tensors, 19);
    cr_expect_str_eq(sd.tensors[0].name, "0.weight"); /* insertion order */
    const lisa_pickle_tensor *r = find(&sd, "view.rows"), *t = find(&sd, "view.tail"), *tr = find(&sd, "transposed");
    cr_assert(r && t && tr);
    cr_expect_eq(r->storage, t->storage, "two views of one storage");
    cr_expect_eq(r->offset, 10);
    cr_expect_eq(t->offset, 17);
    cr_expect_eq(sd.storages[r->storage].numel, 30);
    cr_expect_eq(sd.storages[r->storage].dtype, LISA_DTYPE_F32);
    cr_expect(r->contiguous && !tr->contiguous);
    cr_expect(tr->stride[0] == 1 && tr->stride[1] == 4);
    const lisa_pickle_tensor *a = find(&sd, "tied.a"), *b = find(&sd, "tied.b");
    cr_expect_eq(a->storage, b->storage);
    cr_expect_eq(find(&sd, "scalar")->n_dims, 0);
    lisa_pickle_state_dict_free(&sd);
    /* transformers' shards are plain dicts */
    cr_assert_eq(load_from_zip(BIN_DIR "/tiny-lisa/pytorch_model-00001-of-00002.bin", &sd), LISA_OK, "%s",
                 lisa_last_error());
    cr_expect(!sd.ordered && !sd.has_metadata);
    cr_expect_gt(sd.n_tensors, 10);
    lisa_pickle_state_dict_free(&sd);
}

Test(pickle, hand_made_valid) {
    pk p = {0};
    head(&p);
    str(&p, "w");
    tensor(&p, "0", 6, 0, 2, (unsigned[]){2, 3}, (unsigned[]){3, 1});
    str(&p, "v");
    tensor(&p, "0", 6, 4, 1, (unsigned[]){2}, (unsigned[]){1});
    tail(&p);
    lisa_pickle_state_dict sd;
    cr_assert_eq(load(&p, &sd), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(sd.n_tensors, 2);
    cr_expect_eq(sd.n_storages, 1, "the same storage key is one storage");
    cr_expect_eq(sd.tensors[1].offset, 4);
    lisa_pickle_state_dict_free(&sd);

    /* protocol 4 framing: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL of allowed globals */
    pk q = {0};
    lit(&q, "\x80\x04\x95");
    raw(&q, "\0\0\0\0\0\0\0\0", 8);
    lit(&q, "\x8c\x0b" "collections" "\x94" "\x8c\x0b" "OrderedDict" "\x94\x93\x94)R\x94(");
    lit(&q, "\x8c\x01w");
    lit(&q, "\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v2\x93((");
    lit(&q, "\x8c\x07storage\x8c\x05torch\x8c\x0f" "BFloat16Storage\x93\x8c\x01" "0\x8c\x03" "cpuK\x04tQ");
    lit(&q, "K\x00K\x04\x85K\x01\x85\x89h\x00)RtR"); /* BINGET 0: see below */
    tail(&q);
    /* memo 0 is the string "collections", so BINGET 0 + () + REDUCE calls a str: refused. The
     * same pickle with the OrderedDict global memoized at 2 works. */
    lisa_pickle_state_dict sd2;
    cr_expect_eq(load(&q, &sd2), LISA_ERR_FORMAT);
    cr_expect(strstr(lisa_last_error(), "REDUCE calls a str"), "%s", lisa_last_error());
    q.b[q.n - 7] = 2; /* the BINGET operand */
    cr_assert_eq(load(&q, &sd2), LISA_OK, "%s", lisa_last_error());
    cr_expect_eq(sd2.tensors[0].shape[0], 4);
    cr_expect_eq(sd2.storages[0].dtype, LISA_DTYPE_BF16);
    lisa_pickle_state_dict_free(&sd2);
}

Test(pickle, refusals) {
    pk p;
#define CASE(status, needle, ...)                                                                                     \
    do {                                                                                                               \
        memset(&p, 0, sizeof p);                                                                                       \
        __VA_ARGS__;                                                                                                   \
        expect_fail(&p, status, needle);                                                                               \
    } while (0)
    CASE(LISA_ERR_FORMAT, "global 'os.system' is not allowed", lit(&p, "\x80\x02" "cos\nsystem\n"); str(&p, "id");
         lit(&p, "\x85R."));
    CASE(LISA_ERR_FORMAT, "global 'builtins.getattr'", lit(&p, "\x80\x02" "cbuiltins\ngetattr\n."));
    CASE(LISA_ERR_FORMAT, "global 'subprocess.Popen'", lit(&p, "\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93."));
    CASE(LISA_ERR_FORMAT, "global 'torch.storage._load_from_bytes'",
         lit(&p, "\x80\x02" "ctorch.storage\n_load_from_bytes\n."));
    CASE(LISA_ERR_FORMAT, "global 'torch._utils._rebuild_qtensor'", lit(&p, "\x80\x02" "ctorch._utils\n_rebuild_qtensor\n."));
    CASE(LISA_ERR_FORMAT, "GLOBAL without two newline", lit(&p, "\x80\x02" "cos\nsystem"));
    CASE(LISA_ERR_FORMAT, "stack underflow", lit(&p, "\x80\x02R.")); /* caught, not crashed */
    CASE(LISA_ERR_FORMAT, "stack underflow", lit(&p, "\x80\x02)R."));
    CASE(LISA_ERR_FORMAT, "no MARK", lit(&p, "\x80\x02t."));
    CASE(LISA_ERR_FORMAT, "odd number", lit(&p, "\x80\x02}(K\x01u."));
    CASE(LISA_ERR_FORMAT, "never stored", lit(&p, "\x80\x02h\x05."));
    CASE(LISA_ERR_LIMIT, "64 bits", lit(&p, "\x80\x02\x8a\x09" "123456789."));
    CASE(LISA_ERR_FORMAT, "bytes after STOP", lit(&p, "\x80\x02}.xx"));
    CASE(LISA_ERR_FORMAT, "not a dict of tensors", lit(&p, "\x80\x02K\x05."));
    CASE(LISA_ERR_FORMAT, "REDUCE calls a int", lit(&p, "\x80\x02K\x05)R."));
    CASE(LISA_ERR_FORMAT, "BUILD on a plain dict", lit(&p, "\x80\x02}}b."));
    CASE(LISA_ERR_FORMAT, "OrderedDict() with arguments",
         lit(&p, "\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R."));
    CASE(LISA_ERR_FORMAT, "persistent id is not", lit(&p, "\x80\x02K\x01Q."));
    CASE(LISA_ERR_FORMAT, "REDUCE calls storage type", lit(&p, "\x80\x02" "ctorch\nFloatStorage\n)R."));
    CASE(LISA_ERR_UNSUPPORTED, "torch.DoubleStorage", lit(&p, "\x80\x02("); str(&p, "storage");
         lit(&p, "ctorch\nDoubleStorage\n"); str(&p, "0"); str(&p, "cpu"); lit(&p, "K\x01tQ."));
    CASE(LISA_ERR_FORMAT, "storage key is not a short file name", lit(&p, "\x80\x02("); str(&p, "storage");
         lit(&p, "ctorch\nFloatStorage\n"); str(&p, "../x"); str(&p, "cpu"); lit(&p, "K\x01tQ."));
    CASE(LISA_ERR_FORMAT, "described twice", head(&p); str(&p, "a");
         tensor(&p, "0", 6, 0, 1, (unsigned[]){6}, (unsigned[]){1}); str(&p, "b");
         tensor(&p, "0", 7, 0, 1, (unsigned[]){6}, (unsigned[]){1}); tail(&p));
    CASE(LISA_ERR_FORMAT, "'b' needs 9 elements", head(&p); str(&p, "b");
         tensor(&p, "0", 6, 3, 1, (unsigned[]){6}, (unsigned[]){1}); tail(&p));
    CASE(LISA_ERR_FORMAT, "2 sizes but 1 strides", head(&p); str(&p, "b");
         lit(&p, "ctorch._utils\n_rebuild_tensor_v2\n(("); str(&p, "storage"); lit(&p, "ctorch\nFloatStorage\n");
         str(&p, "0"); str(&p, "cpu"); lit(&p, "K\x06tQK\x00K\x02K\x03\x86K\x01\x85\x89}tR"); tail(&p));
    CASE(LISA_ERR_FORMAT, "backward hooks", head(&p); str(&p, "b");
         lit(&p, "ctorch._utils\n_rebuild_tensor_v2\n(("); str(&p, "storage"); lit(&p, "ctorch\nFloatStorage\n");
         str(&p, "0"); str(&p, "cpu"); lit(&p, "K\x06tQK\x00K\x06\x85K\x01\x85\x89K\x00tR"); tail(&p));
    CASE(LISA_ERR_FORMAT, "key is a int", lit(&p, "\x80\x02}K\x01K\x02s."));
    CASE(LISA_ERR_UNSUPPORTED, "pickle protocol 1", lit(&p, "\x80\x01}."));
    CASE(LISA_ERR_FORMAT, "truncated", lit(&p, "\x80\x02X\xff\x00\x00\x00ab."));
    CASE(LISA_ERR_FORMAT, "ends without STOP", lit(&p, ""));
    /* found by fuzz_pickle (clang UBSan: NULL + 0 before the first push) */
    CASE(LISA_ERR_FORMAT, "holds a tuple, not a dict", lit(&p, "\x80\x02(t."));
#undef CASE
    /* nesting and memo bounds */
    memset(&p, 0, sizeof p);
    lit(&p, "\x80\x02");
    for (int i = 0; i < LISA_PICKLE_MAX_DEPTH + 1; i++) op(&p, '(');
    op(&p, '.');
    expect_fail(&p, LISA_ERR_LIMIT, "nested deeper");
    memset(&p, 0, sizeof p);
    lit(&p, "\x80\x02}r");
    raw(&p, "\xff\xff\x00\x00", 4);
    op(&p, '.');
    expect_fail(&p, LISA_ERR_LIMIT, "memo index 65535");
}

/* Every byte value as the first opcode: each is either accepted into a dict-shaped result or
 * refused with a message naming it (by name for pickle opcodes). */
Test(pickle, every_opcode_byte) {
    for (int b = 0; b < 256; b++) {
        pk p = {0};
        lit(&p, "\x80\x02");
        op(&p, (unsigned)b);
        op(&p, '.');
        lisa_pickle_state_dict sd;
        lisa_status s = load(&p, &sd);
        if (s == LISA_OK) {
            cr_expect_eq(b, '}', "opcode 0x%02x accepted", b); /* only EMPTY_DICT makes "{}." valid */
            lisa_pickle_state_dict_free(&sd);
            continue;
        }
        const char *name = lisa_pickle_opcode_name((uint8_t)b);
        static const char handled[] = "(.NKMJX)}sutqrhjcRQb\x80\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95";
        if (name && !memchr(handled, b, sizeof handled - 1))
            cr_expect(strstr(lisa_last_error(), name), "0x%02x: '%s' lacks '%s'", b, lisa_last_error(), name);
        if (!name) cr_expect(strstr(lisa_last_error(), "unknown pickle opcode"), "0x%02x: %s", b, lisa_last_error());
    }
}

/* Random mutations of a valid pickle never crash, leak or accept an inconsistent tensor. */
Test(pickle, mutations) {
    pk base = {0};
    head(&base);
    str(&base, "w");
    tensor(&base, "0", 6, 0, 2, (unsigned[]){2, 3}, (unsigned[]){3, 1});
    str(&base, "v");
    tensor(&base, "1", 9, 1, 2, (unsigned[]){2, 2}, (unsigned[]){1, 4});
    tail(&base);
    tu_rng r = tu_rng_seed(42);
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        pk p = base;
        int k = 1 + (int)(tu_next_u64(&r) % 4);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(tu_next_u64(&r) % p.n);
            switch (tu_next_u64(&r) % 3) {
            case 0: p.b[at] = (unsigned char)tu_next_u64(&r); break;
            case 1: p.b[at] ^= (unsigned char)(1u << (tu_next_u64(&r) % 8)); break;
            default: p.n = at + 1; break; /* truncate */
            }
        }
        lisa_pickle_state_dict sd;
        if (load(&p, &sd) != LISA_OK) continue;
        ok++;
        for (int64_t i = 0; i < sd.n_tensors; i++) {
            const lisa_pickle_tensor *t = &sd.tensors[i];
            cr_assert(t->storage >= 0 && t->storage < sd.n_storages);
            int64_t numel = 1, last = t->offset;
            for (int d = 0; d < t->n_dims; d++) {
                numel *= t->shape[d];
                last += (t->shape[d] - 1) * t->stride[d];
            }
            if (numel) cr_assert_lt(last, sd.storages[t->storage].numel, "tensor past its storage accepted");
        }
        lisa_pickle_state_dict_free(&sd);
    }
    cr_log_info("%d of 20000 mutants parsed", ok);
}
