/* tests/test_serve_browser.c — the demo page in a real browser: headless Chromium, driven over the
 * DevTools protocol on a pipe (--remote-debugging-pipe: NUL-terminated JSON messages on fds 3 and
 * 4, so no websocket client is needed), loads http://127.0.0.1:PORT/ from `lisa serve`, picks
 * tests/data/images/chelsea_tiny.png in the file input (DOM.setFileInputFiles), types a query,
 * clicks Segment and waits for the page to draw. Pass: the answer shown is the model's, and the
 * overlay canvas holds, pixel for pixel, chat.py's red tint (lisa_mask_overlay_red) of the decoded
 * image under the mask that the library computes for the same request in this process (the page
 * decodes the COCO RLE and tints in JavaScript: an independent implementation).
 * Chromium is found as $LISA_CHROMIUM, chromium, chromium-browser or google-chrome on PATH; when
 * none is installed the test is skipped, unless LISA_REQUIRE_BROWSER=1 (CI) makes that a failure. */
#include "golden.h"
#include "httpc.h"
#include "loader/image.h"
#include "core/mask.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAT       IMAGES_DIR "/chelsea_tiny.png"
#define QUERY     "What is the cat doing? Please output segmentation mask."
#define T_STEP    60.0
#define T_SEGMENT 300.0

static bool find_browser(char *out, size_t cap) {
    const char *env = getenv("LISA_CHROMIUM");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        for (const char *p = path; *p;) {
            const char *colon = strchr(p, ':');
            const size_t n = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(out, cap, "%.*s/%s", (int)n, p, names[k]);
            if (n && access(out, X_OK) == 0) return true;
            p += n + (colon ? 1 : 0);
        }
    }
    return false;
}

/* ---- a DevTools-protocol client over the pipe ---- */

typedef struct cdp {
    pid_t pid;
    int to, from; /* our ends: write commands, read replies/events */
    int next_id;
    char *buf;
    size_t len, cap;
    bool loaded; /* Page.loadEventFired seen */
    char log[512];
} cdp;

static bool cdp_start(cdp *c, const char *browser, const char *dir) {
    memset(c, 0, sizeof *c);
    int to[2], from[2];
    if (pipe(to) || pipe(from)) return false;
    snprintf(c->log, sizeof c->log, "%s/chromium.log", dir);
    char profile[600];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", dir);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        /* the browser reads commands on fd 3 and writes on fd 4 */
        const int r = fcntl(to[0], F_DUPFD, 10), w = fcntl(from[1], F_DUPFD, 10);
        const int logfd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (r < 0 || w < 0 || logfd < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0) _exit(126);
        dup2(logfd, 1);
        dup2(logfd, 2);
        for (int fd = 5; fd < 1024; fd++)
            close(fd);
        execl(browser, browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--no-proxy-server",
              "--remote-debugging-pipe", profile, "about:blank", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c->pid = pid;
    c->to = to[1];
    c->from = from[0];
    c->next_id = 1;
    return true;
}

/* the next complete message (NUL-terminated), parsed; NULL on timeout or EOF */
static cJSON *cdp_read(cdp *c, double deadline) {
    for (;;) {
        char *nul = c->len ? memchr(c->buf, '\0', c->len) : NULL;
        if (nul) {
            cJSON *j = cJSON_Parse(c->buf);
            const size_t used = (size_t)(nul - c->buf) + 1;
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            if (j) return j;
            continue;
        }
        const double left = deadline - tu_now();
        if (left <= 0) return NULL;
        struct pollfd p = {.fd = c->from, .events = POLLIN};
        const int pr = poll(&p, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return NULL;
        if (c->len + 65536 > c->cap) {
            c->cap = (c->len + 65536) * 2;
            c->buf = realloc(c->buf, c->cap);
            cr_assert(c->buf);
        }
        const ssize_t n = read(c->from, c->buf + c->len, 65536);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return NULL;
        c->len += (size_t)n;
    }
}

/* Sends {"id", "method", "params", "sessionId"?} and returns the reply's "result" (caller frees the
 * returned root via *root). Events seen meanwhile are noted (load). Aborts the test on an error. */
static cJSON *cdp_call(cdp *c, cJSON **root, const char *session, const char *method, const char *params_fmt, ...)
    __attribute__((format(printf, 5, 6)));
static cJSON *cdp_call(cdp *c, cJSON **root, const char *session, const char *method, const char *params_fmt, ...) {
    char params[8192], msg[9000];
    va_list ap;
    va_start(ap, params_fmt);
    vsnprintf(params, sizeof params, params_fmt, ap);
    va_end(ap);
    const int id = c->next_id++;
    int n;
    if (session)
        n = snprintf(msg, sizeof msg, "{\"id\":%d,\"method\":\"%s\",\"params\":%s,\"sessionId\":\"%s\"}", id, method,
                     params, session);
    else
        n = snprintf(msg, sizeof msg, "{\"id\":%d,\"method\":\"%s\",\"params\":%s}", id, method, params);
    cr_assert(n > 0 && (size_t)n < sizeof msg);
    cr_assert(write(c->to, msg, (size_t)n + 1) == n + 1, "writing to the browser: %s", strerror(errno));
    const double deadline = tu_now() + T_STEP;
    for (;;) {
        cJSON *j = cdp_read(c, deadline);
        cr_assert(j, "no reply from the browser to %s (log: %s)", method, c->log);
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(j, "method"));
        if (ev && !strcmp(ev, "Page.loadEventFired")) c->loaded = true;
        cJSON *jid = cJSON_GetObjectItem(j, "id");
        if (cJSON_IsNumber(jid) && (int)jid->valuedouble == id) {
            cJSON *err = cJSON_GetObjectItem(j, "error");
            if (err) {
                char *t = cJSON_PrintUnformatted(err);
                cr_assert_fail("%s failed: %s", method, t);
            }
            *root = j;
            return cJSON_GetObjectItem(j, "result");
        }
        cJSON_Delete(j);
    }
}

/* Runtime.evaluate with returnByValue: the value as a malloc'd JSON text */
static char *cdp_eval(cdp *c, const char *session, const char *expr) {
    cJSON *s = cJSON_CreateString(expr);
    char *quoted = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    cJSON *root;
    cJSON *res = cdp_call(c, &root, session, "Runtime.evaluate", "{\"expression\":%s,\"returnByValue\":true}", quoted);
    free(quoted);
    cJSON *exc = cJSON_GetObjectItem(res, "exceptionDetails");
    if (exc) {
        char *t = cJSON_PrintUnformatted(exc);
        cr_assert_fail("page script threw: %s", t);
    }
    char *out = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "result"), "value"));
    cJSON_Delete(root);
    return out ? out : strdup("null");
}

/* polls expr until it evaluates to true */
static bool cdp_wait_true(cdp *c, const char *session, const char *expr, double seconds) {
    const double until = tu_now() + seconds;
    while (tu_now() < until) {
        char *v = cdp_eval(c, session, expr);
        const bool ok = !strcmp(v, "true");
        free(v);
        if (ok) return true;
        usleep(100000);
    }
    return false;
}

static void cdp_stop(cdp *c) {
    if (c->pid > 0) {
        static const char close_msg[] = "{\"id\":999999,\"method\":\"Browser.close\",\"params\":{}}";
        if (write(c->to, close_msg, sizeof close_msg) < 0) {
            /* already gone */
        }
        int st;
        const double until = tu_now() + 20;
        while (tu_now() < until && waitpid(c->pid, &st, WNOHANG) == 0)
            usleep(50000);
        if (waitpid(c->pid, &st, WNOHANG) == 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
        }
    }
    close(c->to);
    close(c->from);
    free(c->buf);
    c->pid = -1;
}

Test(serve_browser, pick_image_type_query_see_overlay, .timeout = 900) {
    char browser[1024];
    if (!find_browser(browser, sizeof browser)) {
        const char *req = getenv("LISA_REQUIRE_BROWSER");
        cr_assert(!(req && !strcmp(req, "1")),
                  "LISA_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)");
        cr_skip_test("no chromium on PATH (apt-get install chromium); set LISA_CHROMIUM to use another");
    }
    char *dir = tu_make_tmpdir("lisa-browser");
    tu_server srv;
    cr_assert(tu_server_start(&srv, dir, "", 120), "lisa serve did not start; log %s", srv.log);

    /* the reference overlay: the library's result for the same request, tinted as chat.py does */
    lisa_model_params mp = lisa_model_default_params();
    mp.vision_tower = TINY_CLIP_DIR;
    mp.backend = LISA_BACKEND_CPU;
    mp.n_threads = 2;
    lisa_model *m = NULL;
    cr_assert_eq(lisa_model_load(TINY_LISA_DIR, &mp, &m), LISA_OK, "%s", lisa_last_error());
    lisa_segment_params sp = lisa_segment_default_params();
    lisa_result *res = NULL;
    cr_assert_eq(lisa_segment_file(m, CAT, QUERY, &sp, &res), LISA_OK, "%s", lisa_last_error());
    cr_assert_eq(lisa_result_n_masks(res), 1);
    int32_t h, w;
    const uint8_t *mask = lisa_result_mask(res, 0, &h, &w);
    lisa_bitmap img;
    cr_assert_eq(lisa_image_load(&img, CAT, NULL), LISA_OK);
    cr_assert(img.h == h && img.w == w);
    uint8_t *want = malloc((size_t)h * w * 3);
    lisa_mask_overlay_red(want, img.data, mask, h, w);
    long area = 0;
    for (int i = 0; i < h * w; i++)
        area += mask[i] != 0;
    cr_assert_gt(area, 0, "the reference mask is empty");

    cdp c;
    cr_assert(cdp_start(&c, browser, dir), "cannot start %s", browser);
    cJSON *root;
    cJSON *r = cdp_call(&c, &root, NULL, "Target.createTarget", "{\"url\":\"about:blank\"}");
    char target[128];
    snprintf(target, sizeof target, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "targetId")));
    cJSON_Delete(root);
    r = cdp_call(&c, &root, NULL, "Target.attachToTarget", "{\"targetId\":\"%s\",\"flatten\":true}", target);
    char session[128];
    snprintf(session, sizeof session, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(r, "sessionId")));
    cJSON_Delete(root);
    cdp_call(&c, &root, session, "Page.enable", "{}");
    cJSON_Delete(root);
    c.loaded = false;
    r = cdp_call(&c, &root, session, "Page.navigate", "{\"url\":\"http://127.0.0.1:%d/\"}", srv.port);
    cr_assert(!cJSON_GetObjectItem(r, "errorText"), "navigation failed: %s",
              cJSON_GetStringValue(cJSON_GetObjectItem(r, "errorText")));
    cJSON_Delete(root);
    const double until = tu_now() + T_STEP;
    while (!c.loaded && tu_now() < until) {
        cJSON *ev = cdp_read(&c, until);
        const char *name = ev ? cJSON_GetStringValue(cJSON_GetObjectItem(ev, "method")) : NULL;
        if (name && !strcmp(name, "Page.loadEventFired")) c.loaded = true;
        cJSON_Delete(ev);
        if (!ev) break;
    }
    cr_assert(c.loaded, "the page did not load");

    /* pick the file, as a user would through the file dialog */
    r = cdp_call(&c, &root, session, "DOM.getDocument", "{\"depth\":0}");
    const int doc = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "root"), "nodeId"));
    cJSON_Delete(root);
    r = cdp_call(&c, &root, session, "DOM.querySelector", "{\"nodeId\":%d,\"selector\":\"#image\"}", doc);
    const int input = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "nodeId"));
    cJSON_Delete(root);
    cr_assert_gt(input, 0, "no #image input on the page");
    cdp_call(&c, &root, session, "DOM.setFileInputFiles", "{\"nodeId\":%d,\"files\":[\"%s\"]}", input, CAT);
    cJSON_Delete(root);
    cr_assert(cdp_wait_true(&c, session, "document.getElementById('status').textContent.includes('45 x 30')", T_STEP),
              "the page did not show the picked image");
    free(cdp_eval(&c, session,
                  "document.getElementById('query').value = '" QUERY "'; document.getElementById('go').click(); true"));
    cr_assert(cdp_wait_true(&c, session, "['done', 'error'].includes(document.getElementById('result').dataset.state)",
                            T_SEGMENT),
              "no answer on the page");
    char *state = cdp_eval(&c, session,
                           "document.getElementById('result').dataset.state + ': ' + "
                           "document.getElementById('status').textContent");
    cr_assert(!strncmp(state, "\"done", 5), "page state %s", state);
    free(state);
    char *answer = cdp_eval(&c, session, "document.getElementById('answer').textContent");
    cr_expect_str_eq(answer, "\"Sure, [SEG] .\"", "the answer on the page");
    free(answer);
    char *tinted = cdp_eval(&c, session, "Number(document.getElementById('result').dataset.overlayPixels)");
    cr_expect_gt(atol(tinted), 0, "no pixel tinted");
    free(tinted);

    /* the canvas, pixel for pixel */
    char *px = cdp_eval(&c, session,
                        "(() => { const cv = document.getElementById('overlay');"
                        " const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;"
                        " const rgb = []; for (let i = 0; i < d.length; i += 4) rgb.push(d[i], d[i + 1], d[i + 2]);"
                        " return [cv.width, cv.height, rgb]; })()");
    cJSON *pj = cJSON_Parse(px);
    cr_assert(cJSON_IsArray(pj), "canvas readback: %.200s", px);
    cr_assert_eq((int)cJSON_GetNumberValue(cJSON_GetArrayItem(pj, 0)), w, "canvas width");
    cr_assert_eq((int)cJSON_GetNumberValue(cJSON_GetArrayItem(pj, 1)), h, "canvas height");
    cJSON *rgb = cJSON_GetArrayItem(pj, 2);
    cr_assert_eq(cJSON_GetArraySize(rgb), h * w * 3);
    long bad = 0, in_mask_red = 0;
    int i = 0;
    for (cJSON *v = rgb->child; v; v = v->next, i++) {
        const int got = (int)v->valuedouble;
        if (got != want[i]) {
            if (bad < 5)
                fprintf(stderr, "pixel %d (y %d, x %d) channel %d: canvas %d, want %d (mask %d)\n", i / 3, i / 3 / w,
                        i / 3 % w, i % 3, got, want[i], mask[i / 3]);
            bad++;
        }
        if (i % 3 == 0 && mask[i / 3] && got >= 127) in_mask_red++;
    }
    cr_expect_eq(bad, 0, "%ld canvas values differ from chat.py's overlay of the library's mask", bad);
    cr_expect_eq(in_mask_red, area, "every mask pixel is tinted red");
    cJSON_Delete(pj);
    free(px);

    cdp_stop(&c);
    const int rc = tu_server_stop(&srv, SIGTERM, 120);
    cr_expect_eq(rc, 0, "lisa serve exit status %d", rc);
    cr_expect(!tu_server_log_has_sanitizer_report(&srv));
    free(want);
    lisa_bitmap_free(&img);
    lisa_result_free(res);
    lisa_model_free(m);
    tu_remove_tree(dir);
    free(dir);
}
