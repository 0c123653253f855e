/* tests/test_ops_coverage.c — every op in kernels/ops.def has a test (docs/style.md §15).
 *
 * The op list comes from expanding kernels/ops.def here, so a new LISA_OP without a test fails
 * this file. An op counts as tested when some tests/test_ops_*.c other than this one calls its
 * checked wrapper, i.e. contains the text "lisa_op_<name>(" (the ops tests call the wrappers
 * directly; don't hide the calls behind function pointers). */
#include "ops_testutil.h"

#include <dirent.h>

static const char *const OP_NAMES[] = {
#define LISA_OP(E, n, params, args) #n,
#include "kernels/ops.def"
#undef LISA_OP
};

/* Concatenation of every tests/test_ops_*.c except this file (malloc'd). */
static char *read_ops_tests(int *n_files) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests", LISA_SOURCE_DIR);
    DIR *d = opendir(dir);
    cr_assert(d != NULL, "cannot open %s", dir);
    char *all = calloc(1, 1);
    size_t len = 0;
    *n_files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "test_ops_", 9) != 0 || n < 2 || strcmp(e->d_name + n - 2, ".c") != 0) continue;
        if (strcmp(e->d_name, "test_ops_coverage.c") == 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t flen = 0;
        char *text = tu_read_file(path, &flen);
        cr_assert(text != NULL, "cannot read %s", path);
        all = realloc(all, len + flen + 2);
        memcpy(all + len, text, flen);
        len += flen;
        all[len++] = '\n';
        all[len] = '\0';
        free(text);
        (*n_files)++;
    }
    closedir(d);
    return all;
}

static bool op_is_called(const char *tests, const char *name) {
    char needle[128];
    snprintf(needle, sizeof needle, "lisa_op_%s(", name);
    return strstr(tests, needle) != NULL;
}

Test(ops_coverage, every_op_in_ops_def_has_a_test) {
    int n_files = 0;
    char *tests = read_ops_tests(&n_files);
    cr_assert(n_files >= 10, "found only %d tests/test_ops_*.c files", n_files);
    cr_assert_eq(sizeof OP_NAMES / sizeof *OP_NAMES, (size_t)LISA_OP_COUNT);
    int missing = 0;
    for (int i = 0; i < LISA_OP_COUNT; i++) {
        cr_expect_str_eq(OP_NAMES[i], lisa_op_name((lisa_op)i));
        if (!op_is_called(tests, OP_NAMES[i])) {
            cr_expect_fail("op '%s' (kernels/ops.def) has no test: no tests/test_ops_*.c calls lisa_op_%s()", OP_NAMES[i],
                           OP_NAMES[i]);
            missing++;
        }
    }
    /* the scan itself must be able to fail */
    cr_expect(!op_is_called(tests, "no_such_op"));
    cr_expect(!op_is_called(tests, "gelu_") && op_is_called(tests, "gelu"));
    free(tests);
    cr_expect_eq(missing, 0);
}

Test(ops_coverage, cpu_backend_implements_every_op) {
    lisa_backend *be = tu_cpu_backend();
    for (int i = 0; i < LISA_OP_COUNT; i++)
        cr_expect(lisa_backend_supports(be, (lisa_op)i), "cpu backend lacks op '%s'", lisa_op_name((lisa_op)i));
    lisa_backend_free(be);
}
