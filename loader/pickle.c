/* loader/pickle.c — the restricted unpickler (see pickle.h for what it accepts and why).
 *
 * A tiny stack machine after CPython's Lib/pickle.py `_Unpickler`, over our own value model:
 * objects live in one growable array and are referred to by index; tuples and dicts keep their
 * items in a second array of cells (tuples: contiguous; dicts: a linked list, as SETITEM appends).
 * Nothing is ever called: "calling" an allowed global (REDUCE) builds a record. */
#include "loader/pickle.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- opcode names (all protocols, for error messages) --------------------------------------- */

static const struct {
    uint8_t op;
    const char *name;
} op_names[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
    {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
    {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
    {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
    {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
    {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"},
    {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
    {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
    {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"},
    {0x8e, "BINBYTES8"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"},
    {0x98, "READONLY_BUFFER"},
};

const char *lisa_pickle_opcode_name(uint8_t op) {
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (op_names[i].op == op) return op_names[i].name;
    return NULL;
}

/* ---- value model ----------------------------------------------------------------------------- */

typedef enum {
    K_NONE,
    K_BOOL,
    K_INT,
    K_STR,
    K_TUPLE,
    K_DICT,
    K_GLOBAL,
    K_STORAGE,
    K_TENSOR,
} kind;

static const char *kind_name(int k) {
    static const char *n[] = {"None", "bool", "int", "str", "tuple", "dict", "global", "storage", "tensor"};
    return n[k];
}

typedef enum {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_STORAGE, /* + dtype in obj.i */
} global_id;

typedef struct obj {
    uint8_t kind;
    uint8_t ordered;  /* dict */
    int32_t head;     /* tuple: first cell; dict: first cell or -1 */
    int32_t tail;     /* dict: last cell or -1 */
    int32_t count;    /* tuple/dict items */
    int64_t i;        /* int value / bool / global id / storage index / tensor index */
    int32_t sub;      /* K_GLOBAL storage: lisa_dtype or -1 for a known unsupported type */
    int32_t table;    /* K_GLOBAL: index in the allow-list */
    size_t str_off, str_len; /* K_STR: bytes in the pickle */
} obj;

typedef struct cell {
    int32_t key, val, next;
} cell;

typedef struct raw_tensor {
    int32_t storage;
    int64_t offset;
    int32_t n_dims; /* as pickled (may exceed LISA_MAX_DIMS: reported with the name later) */
    int64_t shape[LISA_MAX_DIMS], stride[LISA_MAX_DIMS];
    int32_t n_stride;
} raw_tensor;

typedef struct vm {
    const unsigned char *p;
    size_t n, pos, op_pos;
    const char *what;
    obj *objs;
    int32_t n_objs, cap_objs;
    cell *cells;
    int32_t n_cells, cap_cells;
    int32_t *stack;
    int32_t sp, cap_stack;
    int32_t marks[LISA_PICKLE_MAX_DEPTH];
    int32_t n_marks;
    int32_t *memo; /* -1 = unset */
    size_t cap_memo, n_memo_set;
    raw_tensor *tensors;
    int32_t n_tensors, cap_tensors;
    lisa_pickle_state_dict *out;
    char gname[160]; /* the last global's dotted name, for messages */
} vm;

#define FAIL(vmp, st, ...) lisa_fail_context(lisa_fail((st), __VA_ARGS__), "%s: byte %zu", (vmp)->what, (vmp)->op_pos)

static bool grow(void **p, int32_t *cap, int32_t need, size_t elem) {
    if (need <= *cap) return true;
    int64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    if (c > INT32_MAX) return false;
    void *np = realloc(*p, (size_t)c * elem);
    if (!np) return false;
    *p = np;
    *cap = (int32_t)c;
    return true;
}

static lisa_status new_obj(vm *m, kind k, int32_t *out) {
    if (!grow((void **)&m->objs, &m->cap_objs, m->n_objs + 1, sizeof *m->objs))
        return FAIL(m, LISA_ERR_OOM, "out of memory");
    obj *o = &m->objs[m->n_objs];
    memset(o, 0, sizeof *o);
    o->kind = (uint8_t)k;
    o->head = o->tail = -1;
    *out = m->n_objs++;
    return LISA_OK;
}

static lisa_status push(vm *m, int32_t v) {
    if (m->sp >= LISA_PICKLE_MAX_STACK) return FAIL(m, LISA_ERR_LIMIT, "value stack deeper than %d", LISA_PICKLE_MAX_STACK);
    if (!grow((void **)&m->stack, &m->cap_stack, m->sp + 1, sizeof *m->stack)) return FAIL(m, LISA_ERR_OOM, "out of memory");
    m->stack[m->sp++] = v;
    return LISA_OK;
}

static int32_t floor_sp(const vm *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static lisa_status pop(vm *m, int32_t *v) {
    if (m->sp <= floor_sp(m)) return FAIL(m, LISA_ERR_FORMAT, "stack underflow");
    *v = m->stack[--m->sp];
    return LISA_OK;
}

static lisa_status pop_mark(vm *m, int32_t *start) {
    if (m->n_marks == 0) return FAIL(m, LISA_ERR_FORMAT, "no MARK on the stack");
    *start = m->marks[--m->n_marks];
    return LISA_OK;
}

static lisa_status need_bytes(vm *m, size_t k) {
    if (m->n - m->pos < k) return FAIL(m, LISA_ERR_FORMAT, "pickle truncated (needs %zu more bytes)", k);
    return LISA_OK;
}

static uint64_t rd_le(const unsigned char *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static lisa_status new_tuple(vm *m, const int32_t *items, int32_t n, int32_t *out) {
    int32_t t = 0;
    LISA_TRY(new_obj(m, K_TUPLE, &t));
    if (!grow((void **)&m->cells, &m->cap_cells, m->n_cells + n, sizeof *m->cells))
        return FAIL(m, LISA_ERR_OOM, "out of memory");
    m->objs[t].head = m->n_cells;
    m->objs[t].count = n;
    for (int32_t i = 0; i < n; i++) m->cells[m->n_cells++] = (cell){-1, items[i], -1};
    *out = t;
    return LISA_OK;
}

static int32_t tuple_item(const vm *m, int32_t t, int32_t i) { return m->cells[m->objs[t].head + i].val; }

static lisa_status dict_set(vm *m, int32_t d, int32_t k, int32_t v) {
    if (m->objs[d].kind != K_DICT)
        return FAIL(m, LISA_ERR_FORMAT, "SETITEM(S) on a %s (only dicts are supported)", kind_name(m->objs[d].kind));
    if (!grow((void **)&m->cells, &m->cap_cells, m->n_cells + 1, sizeof *m->cells))
        return FAIL(m, LISA_ERR_OOM, "out of memory");
    int32_t c = m->n_cells++;
    m->cells[c] = (cell){k, v, -1};
    obj *o = &m->objs[d];
    if (o->tail >= 0) m->cells[o->tail].next = c;
    else o->head = c;
    o->tail = c;
    o->count++;
    return LISA_OK;
}

static bool str_eq(const vm *m, int32_t s, const char *lit) {
    const obj *o = &m->objs[s];
    return o->kind == K_STR && o->str_len == strlen(lit) && memcmp(m->p + o->str_off, lit, o->str_len) == 0;
}

static char *str_dup(const vm *m, int32_t s) {
    const obj *o = &m->objs[s];
    char *c = malloc(o->str_len + 1);
    if (c) {
        memcpy(c, m->p + o->str_off, o->str_len);
        c[o->str_len] = '\0';
    }
    return c;
}

/* ---- globals --------------------------------------------------------------------------------- */

static const struct {
    const char *module, *name;
    int id;
    int dtype; /* for storages: lisa_dtype, or -1 = known but unsupported */
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, 0},
    {"torch", "FloatStorage", G_STORAGE, LISA_DTYPE_F32},
    {"torch", "HalfStorage", G_STORAGE, LISA_DTYPE_F16},
    {"torch", "BFloat16Storage", G_STORAGE, LISA_DTYPE_BF16},
    {"torch", "LongStorage", G_STORAGE, LISA_DTYPE_I64},
    {"torch", "IntStorage", G_STORAGE, LISA_DTYPE_I32},
    {"torch", "BoolStorage", G_STORAGE, LISA_DTYPE_BOOL},
    {"torch", "ByteStorage", G_STORAGE, LISA_DTYPE_U8},
    /* Real storage types with dtypes the engine does not compute in: a precise error when used. */
    {"torch", "DoubleStorage", G_STORAGE, -1},
    {"torch", "ShortStorage", G_STORAGE, -1},
    {"torch", "CharStorage", G_STORAGE, -1},
    {"torch", "ComplexFloatStorage", G_STORAGE, -1},
    {"torch", "ComplexDoubleStorage", G_STORAGE, -1},
    {"torch", "QInt8Storage", G_STORAGE, -1},
    {"torch", "QUInt8Storage", G_STORAGE, -1},
    {"torch", "QInt32Storage", G_STORAGE, -1},
};

static lisa_status make_global(vm *m, const unsigned char *mod, size_t ml, const unsigned char *name, size_t nl) {
    /* The dotted name, printable, for messages (non-printable bytes shown as '?'). */
    size_t k = 0;
    for (size_t i = 0; i < ml + 1 + nl && k + 1 < sizeof m->gname; i++) {
        unsigned char c = i < ml ? mod[i] : i == ml ? '.' : name[i - ml - 1];
        m->gname[k++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
    }
    m->gname[k] = '\0';
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strlen(allowed[i].module) == ml && memcmp(allowed[i].module, mod, ml) == 0 &&
            strlen(allowed[i].name) == nl && memcmp(allowed[i].name, name, nl) == 0) {
            int32_t g;
            LISA_TRY(new_obj(m, K_GLOBAL, &g));
            m->objs[g].i = allowed[i].id;
            m->objs[g].sub = allowed[i].dtype;
            m->objs[g].table = (int32_t)i;
            return push(m, g);
        }
    }
    return FAIL(m, LISA_ERR_FORMAT,
                "global '%s' is not allowed (a checkpoint holds only tensors; this loader never executes code)",
                m->gname);
}

static void global_text(const vm *m, int32_t g, char *buf, size_t cap) {
    int32_t i = m->objs[g].table;
    snprintf(buf, cap, "%s.%s", allowed[i].module, allowed[i].name);
}

/* ---- REDUCE / BUILD / persistent ids ----------------------------------------------------------- */

static bool is_int(const vm *m, int32_t v) { return m->objs[v].kind == K_INT || m->objs[v].kind == K_BOOL; }

static lisa_status int_tuple(vm *m, int32_t t, int64_t *vals, int32_t *n, const char *what) {
    if (m->objs[t].kind != K_TUPLE) return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: %s is not a tuple", what);
    *n = m->objs[t].count;
    for (int32_t i = 0; i < *n; i++) {
        int32_t v = tuple_item(m, t, i);
        if (m->objs[v].kind != K_INT) return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: %s[%d] is not an int", what, i);
        if (i < LISA_MAX_DIMS) vals[i] = m->objs[v].i;
    }
    return LISA_OK;
}

static lisa_status rebuild_tensor_v2(vm *m, int32_t args, int32_t *out) {
    const obj *a = &m->objs[args];
    if (a->count != 6 && a->count != 7)
        return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %d", a->count);
    int32_t st = tuple_item(m, args, 0), off = tuple_item(m, args, 1), size = tuple_item(m, args, 2),
            stride = tuple_item(m, args, 3), rg = tuple_item(m, args, 4), hooks = tuple_item(m, args, 5);
    if (m->objs[st].kind != K_STORAGE)
        return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: first argument is a %s, not a storage",
                    kind_name(m->objs[st].kind));
    if (m->objs[off].kind != K_INT) return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: storage offset is not an int");
    if (!is_int(m, rg)) return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: requires_grad is not a bool");
    if (m->objs[hooks].kind != K_DICT || m->objs[hooks].count != 0)
        return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: backward hooks must be an empty OrderedDict");
    if (a->count == 7) {
        int k = m->objs[tuple_item(m, args, 6)].kind;
        if (k != K_DICT && k != K_NONE)
            return FAIL(m, LISA_ERR_FORMAT, "_rebuild_tensor_v2: metadata is a %s", kind_name(k));
    }
    raw_tensor t;
    memset(&t, 0, sizeof t);
    t.storage = (int32_t)m->objs[st].i;
    t.offset = m->objs[off].i;
    LISA_TRY(int_tuple(m, size, t.shape, &t.n_dims, "size"));
    LISA_TRY(int_tuple(m, stride, t.stride, &t.n_stride, "stride"));
    if (!grow((void **)&m->tensors, &m->cap_tensors, m->n_tensors + 1, sizeof *m->tensors))
        return FAIL(m, LISA_ERR_OOM, "out of memory");
    int32_t o = 0;
    LISA_TRY(new_obj(m, K_TENSOR, &o));
    m->objs[o].i = m->n_tensors;
    m->tensors[m->n_tensors++] = t;
    *out = o;
    return LISA_OK;
}

static lisa_status op_reduce(vm *m) {
    int32_t args = 0, fn = 0;
    LISA_TRY(pop(m, &args));
    LISA_TRY(pop(m, &fn));
    if (m->objs[fn].kind != K_GLOBAL)
        return FAIL(m, LISA_ERR_FORMAT, "REDUCE calls a %s; only allowed globals can be called", kind_name(m->objs[fn].kind));
    if (m->objs[args].kind != K_TUPLE) return FAIL(m, LISA_ERR_FORMAT, "REDUCE arguments are not a tuple");
    int32_t r = -1;
    switch ((global_id)m->objs[fn].i) {
    case G_ORDERED_DICT:
        if (m->objs[args].count != 0) return FAIL(m, LISA_ERR_FORMAT, "OrderedDict() with arguments is not supported");
        LISA_TRY(new_obj(m, K_DICT, &r));
        m->objs[r].ordered = 1;
        break;
    case G_REBUILD_TENSOR_V2: LISA_TRY(rebuild_tensor_v2(m, args, &r)); break;
    case G_REBUILD_PARAMETER:
        if (m->objs[args].count != 3 || m->objs[tuple_item(m, args, 0)].kind != K_TENSOR)
            return FAIL(m, LISA_ERR_FORMAT, "_rebuild_parameter expects (tensor, requires_grad, hooks)");
        r = tuple_item(m, args, 0);
        break;
    case G_STORAGE: {
        char g[160];
        global_text(m, fn, g, sizeof g);
        return FAIL(m, LISA_ERR_FORMAT, "REDUCE calls storage type '%s' (only persistent ids may name storages)", g);
    }
    }
    return push(m, r);
}

/* ('storage', storage_type, key, location, numel) -> a storage (deduplicated by key). */
static lisa_status op_binpersid(vm *m) {
    int32_t pid = 0;
    LISA_TRY(pop(m, &pid));
    const obj *t = &m->objs[pid];
    if (t->kind != K_TUPLE || t->count != 5 || !str_eq(m, tuple_item(m, pid, 0), "storage"))
        return FAIL(m, LISA_ERR_FORMAT, "persistent id is not ('storage', type, key, location, numel)");
    int32_t ty = tuple_item(m, pid, 1), key = tuple_item(m, pid, 2), loc = tuple_item(m, pid, 3),
            numel = tuple_item(m, pid, 4);
    if (m->objs[ty].kind != K_GLOBAL || m->objs[ty].i != G_STORAGE)
        return FAIL(m, LISA_ERR_FORMAT, "persistent id: storage type is a %s, not a torch storage class",
                    kind_name(m->objs[ty].kind));
    if (m->objs[ty].sub < 0) {
        char g[160];
        global_text(m, ty, g, sizeof g);
        return FAIL(m, LISA_ERR_UNSUPPORTED, "storage type %s is not supported (F32, F16, BF16, I64, I32, BOOL, U8 are)", g);
    }
    if (m->objs[key].kind != K_STR || m->objs[key].str_len == 0 || m->objs[key].str_len > 64 ||
        memchr(m->p + m->objs[key].str_off, '/', m->objs[key].str_len) ||
        memchr(m->p + m->objs[key].str_off, '\0', m->objs[key].str_len))
        return FAIL(m, LISA_ERR_FORMAT, "persistent id: storage key is not a short file name");
    if (m->objs[loc].kind != K_STR) return FAIL(m, LISA_ERR_FORMAT, "persistent id: location is not a string");
    if (m->objs[numel].kind != K_INT || m->objs[numel].i < 0)
        return FAIL(m, LISA_ERR_FORMAT, "persistent id: element count is not a non-negative int");
    lisa_pickle_state_dict *o = m->out;
    int32_t idx = -1;
    for (int32_t i = 0; i < o->n_storages && idx < 0; i++) {
        const obj *k = &m->objs[key];
        if (strlen(o->storages[i].key) == k->str_len && memcmp(o->storages[i].key, m->p + k->str_off, k->str_len) == 0)
            idx = i;
    }
    lisa_dtype dt = (lisa_dtype)m->objs[ty].sub;
    if (idx >= 0) {
        if (o->storages[idx].dtype != dt || o->storages[idx].numel != m->objs[numel].i)
            return FAIL(m, LISA_ERR_FORMAT, "storage '%s' is described twice with different types or sizes",
                        o->storages[idx].key);
    } else {
        int32_t cap = o->n_storages; /* grown one at a time below: storages are few */
        lisa_pickle_storage *ns = realloc(o->storages, (size_t)(cap + 1) * sizeof *ns);
        if (!ns) return FAIL(m, LISA_ERR_OOM, "out of memory");
        o->storages = ns;
        idx = o->n_storages;
        ns[idx] = (lisa_pickle_storage){str_dup(m, key), dt, m->objs[numel].i};
        if (!ns[idx].key) return FAIL(m, LISA_ERR_OOM, "out of memory");
        o->n_storages++;
    }
    int32_t s;
    LISA_TRY(new_obj(m, K_STORAGE, &s));
    m->objs[s].i = idx;
    return push(m, s);
}

static lisa_status op_build(vm *m) {
    int32_t state = 0, target = 0;
    LISA_TRY(pop(m, &state));
    LISA_TRY(pop(m, &target));
    if (m->objs[target].kind != K_DICT || !m->objs[target].ordered)
        return FAIL(m, LISA_ERR_FORMAT, "BUILD on a %s is not supported (only on an OrderedDict)",
                    m->objs[target].kind == K_DICT ? "plain dict" : kind_name(m->objs[target].kind));
    /* OrderedDict.__reduce__ gives the instance __dict__ as state: a dict, possibly in a
     * (dict, slots) pair. We keep nothing from it but note a `_metadata` entry. */
    int32_t d = state;
    if (m->objs[d].kind == K_TUPLE && m->objs[d].count == 2) d = tuple_item(m, d, 0);
    if (m->objs[d].kind != K_DICT) return FAIL(m, LISA_ERR_FORMAT, "BUILD state is a %s, not a dict", kind_name(m->objs[d].kind));
    for (int32_t c = m->objs[d].head; c >= 0; c = m->cells[c].next)
        if (str_eq(m, m->cells[c].key, "_metadata")) m->out->has_metadata = true;
    return push(m, target);
}

/* ---- the interpreter loop ------------------------------------------------------------------- */

static lisa_status memo_put(vm *m, uint64_t idx) {
    if (m->sp <= floor_sp(m)) return FAIL(m, LISA_ERR_FORMAT, "memo store with an empty stack");
    /* CPython numbers memo entries 0, 1, 2, ...; any id beyond the pickle's size is hostile. */
    if (idx >= m->n) return FAIL(m, LISA_ERR_LIMIT, "memo index %llu is out of range", (unsigned long long)idx);
    if (idx >= m->cap_memo) {
        size_t c = m->cap_memo ? m->cap_memo : 256;
        while (c <= idx) c *= 2;
        if (c > m->n) c = m->n;
        int32_t *nm = realloc(m->memo, c * sizeof *nm);
        if (!nm) return FAIL(m, LISA_ERR_OOM, "out of memory");
        for (size_t i = m->cap_memo; i < c; i++) nm[i] = -1;
        m->memo = nm;
        m->cap_memo = c;
    }
    if (m->memo[idx] < 0) m->n_memo_set++;
    m->memo[idx] = m->stack[m->sp - 1];
    return LISA_OK;
}

static lisa_status memo_get(vm *m, uint64_t idx) {
    if (idx >= m->cap_memo || m->memo[idx] < 0)
        return FAIL(m, LISA_ERR_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static lisa_status push_int(vm *m, int64_t v) {
    int32_t o = 0;
    LISA_TRY(new_obj(m, K_INT, &o));
    m->objs[o].i = v;
    return push(m, o);
}

static lisa_status push_str(vm *m, size_t len) {
    LISA_TRY(need_bytes(m, len));
    int32_t o = 0;
    LISA_TRY(new_obj(m, K_STR, &o));
    m->objs[o].str_off = m->pos;
    m->objs[o].str_len = len;
    m->pos += len;
    return push(m, o);
}

static lisa_status make_tuple_from(vm *m, int32_t start) {
    int32_t n = m->sp - start, t = 0;
    LISA_TRY(new_tuple(m, n ? m->stack + start : NULL, n, &t)); /* the stack may not exist yet */
    m->sp = start;
    return push(m, t);
}

static lisa_status run(vm *m, int32_t *result) {
    for (;;) {
        m->op_pos = m->pos;
        if (m->pos >= m->n) return FAIL(m, LISA_ERR_FORMAT, "pickle ends without STOP (truncated?)");
        uint8_t op = m->p[m->pos++];
        switch (op) {
        case 0x80: { /* PROTO */
            LISA_TRY(need_bytes(m, 1));
            uint8_t v = m->p[m->pos++];
            if (v < 2 || v > 4) return FAIL(m, LISA_ERR_UNSUPPORTED, "pickle protocol %u (torch.save writes 2; 2-4 are read)", v);
            break;
        }
        case 0x95: /* FRAME: an 8-byte length; framing does not change the opcode stream */
            LISA_TRY(need_bytes(m, 8));
            m->pos += 8;
            break;
        case '.': { /* STOP */
            LISA_TRY(pop(m, result));
            if (m->pos != m->n) return FAIL(m, LISA_ERR_FORMAT, "%zu bytes after STOP", m->n - m->pos);
            return LISA_OK;
        }
        case '(':
            if (m->n_marks >= LISA_PICKLE_MAX_DEPTH)
                return FAIL(m, LISA_ERR_LIMIT, "MARKs nested deeper than %d", LISA_PICKLE_MAX_DEPTH);
            m->marks[m->n_marks++] = m->sp;
            break;
        case 'N': {
            int32_t o = 0;
            LISA_TRY(new_obj(m, K_NONE, &o));
            LISA_TRY(push(m, o));
            break;
        }
        case 0x88:
        case 0x89: {
            int32_t o = 0;
            LISA_TRY(new_obj(m, K_BOOL, &o));
            m->objs[o].i = op == 0x88;
            LISA_TRY(push(m, o));
            break;
        }
        case 'K':
            LISA_TRY(need_bytes(m, 1));
            LISA_TRY(push_int(m, m->p[m->pos]));
            m->pos += 1;
            break;
        case 'M':
            LISA_TRY(need_bytes(m, 2));
            LISA_TRY(push_int(m, (int64_t)rd_le(m->p + m->pos, 2)));
            m->pos += 2;
            break;
        case 'J':
            LISA_TRY(need_bytes(m, 4));
            LISA_TRY(push_int(m, (int32_t)(uint32_t)rd_le(m->p + m->pos, 4)));
            m->pos += 4;
            break;
        case 0x8a: { /* LONG1: n-byte little-endian two's complement */
            LISA_TRY(need_bytes(m, 1));
            uint8_t k = m->p[m->pos++];
            if (k > 8) return FAIL(m, LISA_ERR_LIMIT, "integer of %u bytes does not fit in 64 bits", k);
            LISA_TRY(need_bytes(m, k));
            uint64_t v = rd_le(m->p + m->pos, k);
            if (k > 0 && k < 8 && (m->p[m->pos + k - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * k); /* sign-extend */
            m->pos += k;
            LISA_TRY(push_int(m, (int64_t)v));
            break;
        }
        case 'X': /* BINUNICODE */
            LISA_TRY(need_bytes(m, 4));
            m->pos += 4;
            LISA_TRY(push_str(m, (size_t)rd_le(m->p + m->pos - 4, 4)));
            break;
        case 0x8c: /* SHORT_BINUNICODE */
            LISA_TRY(need_bytes(m, 1));
            m->pos += 1;
            LISA_TRY(push_str(m, m->p[m->pos - 1]));
            break;
        case ')': {
            int32_t t = 0;
            LISA_TRY(new_tuple(m, NULL, 0, &t));
            LISA_TRY(push(m, t));
            break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {
            int32_t k = op - 0x84;
            if (m->sp - floor_sp(m) < k) return FAIL(m, LISA_ERR_FORMAT, "stack underflow");
            LISA_TRY(make_tuple_from(m, m->sp - k));
            break;
        }
        case 't': {
            int32_t start = 0;
            LISA_TRY(pop_mark(m, &start));
            LISA_TRY(make_tuple_from(m, start));
            break;
        }
        case '}': {
            int32_t d;
            LISA_TRY(new_obj(m, K_DICT, &d));
            LISA_TRY(push(m, d));
            break;
        }
        case 's': {
            int32_t k = 0, v = 0;
            LISA_TRY(pop(m, &v));
            LISA_TRY(pop(m, &k));
            if (m->sp <= floor_sp(m)) return FAIL(m, LISA_ERR_FORMAT, "stack underflow");
            LISA_TRY(dict_set(m, m->stack[m->sp - 1], k, v));
            break;
        }
        case 'u': {
            int32_t start = 0;
            LISA_TRY(pop_mark(m, &start));
            if ((m->sp - start) % 2) return FAIL(m, LISA_ERR_FORMAT, "SETITEMS with an odd number of items");
            if (start <= floor_sp(m)) return FAIL(m, LISA_ERR_FORMAT, "SETITEMS without a dict below the MARK");
            int32_t d = m->stack[start - 1];
            for (int32_t i = start; i < m->sp; i += 2) LISA_TRY(dict_set(m, d, m->stack[i], m->stack[i + 1]));
            m->sp = start;
            break;
        }
        case 'q':
            LISA_TRY(need_bytes(m, 1));
            m->pos += 1;
            LISA_TRY(memo_put(m, m->p[m->pos - 1]));
            break;
        case 'r':
            LISA_TRY(need_bytes(m, 4));
            m->pos += 4;
            LISA_TRY(memo_put(m, rd_le(m->p + m->pos - 4, 4)));
            break;
        case 0x94: /* MEMOIZE */
            LISA_TRY(memo_put(m, m->n_memo_set));
            break;
        case 'h':
            LISA_TRY(need_bytes(m, 1));
            m->pos += 1;
            LISA_TRY(memo_get(m, m->p[m->pos - 1]));
            break;
        case 'j':
            LISA_TRY(need_bytes(m, 4));
            m->pos += 4;
            LISA_TRY(memo_get(m, rd_le(m->p + m->pos - 4, 4)));
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const unsigned char *a = m->p + m->pos, *end = m->p + m->n;
            const unsigned char *nl1 = memchr(a, '\n', (size_t)(end - a));
            const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
            if (!nl2) return FAIL(m, LISA_ERR_FORMAT, "GLOBAL without two newline-terminated names");
            m->pos = (size_t)(nl2 + 1 - m->p);
            LISA_TRY(make_global(m, a, (size_t)(nl1 - a), nl1 + 1, (size_t)(nl2 - nl1 - 1)));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            int32_t mod = 0, name = 0;
            LISA_TRY(pop(m, &name));
            LISA_TRY(pop(m, &mod));
            if (m->objs[mod].kind != K_STR || m->objs[name].kind != K_STR)
                return FAIL(m, LISA_ERR_FORMAT, "STACK_GLOBAL needs two strings");
            LISA_TRY(make_global(m, m->p + m->objs[mod].str_off, m->objs[mod].str_len, m->p + m->objs[name].str_off,
                                 m->objs[name].str_len));
            break;
        }
        case 'R': LISA_TRY(op_reduce(m)); break;
        case 'Q': LISA_TRY(op_binpersid(m)); break;
        case 'b': LISA_TRY(op_build(m)); break;
        default: {
            const char *name = lisa_pickle_opcode_name(op);
            if (name)
                return FAIL(m, LISA_ERR_FORMAT, "pickle opcode %s (0x%02x) is not allowed in a tensor checkpoint", name, op);
            return FAIL(m, LISA_ERR_FORMAT, "unknown pickle opcode 0x%02x", op);
        }
        }
    }
}

/* ---- result ---------------------------------------------------------------------------------- */

void lisa_pickle_state_dict_free(lisa_pickle_state_dict *sd) {
    if (!sd) return;
    for (int32_t i = 0; i < sd->n_storages; i++) free(sd->storages[i].key);
    for (int64_t i = 0; i < sd->n_tensors; i++) free(sd->tensors[i].name);
    free(sd->storages);
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}

/* Validates one tensor record against its storage and fills the output entry. */
static lisa_status finish_tensor(vm *m, const raw_tensor *r, const char *name, lisa_pickle_tensor *t) {
    const char *W = m->what;
    const lisa_pickle_storage *st = &m->out->storages[r->storage];
    if (r->n_dims != r->n_stride)
        return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': %d sizes but %d strides", W, name, r->n_dims, r->n_stride);
    if (r->n_dims > LISA_MAX_DIMS)
        return lisa_fail(LISA_ERR_UNSUPPORTED, "%s: tensor '%s': %d dims (at most %d supported)", W, name, r->n_dims,
                         LISA_MAX_DIMS);
    if (r->offset < 0) return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': negative storage offset", W, name);
    t->storage = r->storage;
    t->offset = r->offset;
    t->n_dims = r->n_dims;
    uint64_t numel = 1;
    for (int d = 0; d < r->n_dims; d++) {
        if (r->shape[d] < 0 || r->stride[d] < 0)
            return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': negative size or stride in dim %d", W, name, d);
        t->shape[d] = r->shape[d];
        t->stride[d] = r->stride[d];
        if (__builtin_mul_overflow(numel, (uint64_t)r->shape[d], &numel))
            return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': shape overflows", W, name);
    }
    for (int d = r->n_dims; d < LISA_MAX_DIMS; d++) t->shape[d] = t->stride[d] = 1;
    uint64_t nbytes;
    if (numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)lisa_dtype_size(st->dtype), &nbytes))
        return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': shape overflows", W, name);
    if (numel > 0) {
        /* torch computes in int64: the last element's index offset + Σ (size-1)·stride must fit */
        int64_t last = 0;
        for (int d = 0; d < r->n_dims; d++) {
            int64_t step;
            if (__builtin_mul_overflow(r->shape[d] - 1, r->stride[d], &step) || __builtin_add_overflow(last, step, &last))
                return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': stride overflows", W, name);
        }
        int64_t end;
        if (__builtin_add_overflow(last, r->offset, &end) || __builtin_add_overflow(end, 1, &end))
            return lisa_fail(LISA_ERR_FORMAT, "%s: tensor '%s': storage offset overflows", W, name);
        if (end > st->numel)
            return lisa_fail(LISA_ERR_FORMAT,
                             "%s: tensor '%s' needs %lld elements of storage '%s', which holds only %lld (storage shorter "
                             "than the tensor claims)",
                             W, name, (long long)end, st->key, (long long)st->numel);
    }
    /* torch's is_contiguous: strides of size-1 dims do not matter */
    bool contig = true;
    int64_t expect = 1;
    for (int d = r->n_dims - 1; d >= 0; d--) {
        if (r->shape[d] != 1 && r->stride[d] != expect) contig = false;
        expect *= r->shape[d] ? r->shape[d] : 1;
    }
    t->contiguous = contig || numel == 0;
    return LISA_OK;
}

lisa_status lisa_pickle_load_state_dict(lisa_pickle_state_dict *out, const void *data, size_t size, const char *what) {
    memset(out, 0, sizeof *out);
    vm m;
    memset(&m, 0, sizeof m);
    m.p = data;
    m.n = size;
    m.what = what;
    m.out = out;
    int32_t root = -1;
    lisa_status s = run(&m, &root);
    if (s == LISA_OK && m.objs[root].kind != K_DICT)
        s = lisa_fail(LISA_ERR_FORMAT, "%s: the pickle holds a %s, not a dict of tensors (a state_dict)", what,
                      kind_name(m.objs[root].kind));
    if (s == LISA_OK) {
        out->ordered = m.objs[root].ordered;
        int64_t n = m.objs[root].count;
        out->tensors = calloc((size_t)(n ? n : 1), sizeof *out->tensors);
        if (!out->tensors) s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", what);
        for (int32_t c = m.objs[root].head; s == LISA_OK && c >= 0; c = m.cells[c].next) {
            int32_t k = m.cells[c].key, v = m.cells[c].val;
            if (m.objs[k].kind != K_STR || memchr(m.p + m.objs[k].str_off, '\0', m.objs[k].str_len) ||
                m.objs[k].str_len == 0) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: a state-dict key is a %s, not a non-empty string", what,
                              kind_name(m.objs[k].kind));
                break;
            }
            char *name = str_dup(&m, k);
            if (!name) {
                s = lisa_fail(LISA_ERR_OOM, "%s: out of memory", what);
                break;
            }
            lisa_pickle_tensor *t = &out->tensors[out->n_tensors];
            t->name = name;
            out->n_tensors++;
            if (m.objs[v].kind != K_TENSOR) {
                s = lisa_fail(LISA_ERR_FORMAT, "%s: entry '%s' is a %s, not a tensor (nested or non-tensor checkpoints are "
                              "not supported)", what, name, kind_name(m.objs[v].kind));
                break;
            }
            s = finish_tensor(&m, &m.tensors[m.objs[v].i], name, t);
        }
    }
    free(m.objs);
    free(m.cells);
    free(m.stack);
    free(m.memo);
    free(m.tensors);
    if (s != LISA_OK) lisa_pickle_state_dict_free(out);
    return s;
}
