/* tests/threads/serve_concurrent.c — `lisa serve` under concurrent clients, as a plain program so
 * that the ThreadSanitizer build runs it (Criterion cannot start under TSan): four clients send
 * segment requests (multipart and JSON) while two others scrape /health and /metrics and open and
 * drop idle connections; every answer must be 200 with the same mask, and the server's log must
 * hold no sanitizer report after a SIGTERM (exit 0). Closing line "N passed, M failed". */
#include "core/base64.h"
#include "httpc.h"
#include "plain_check.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAT   LISA_TESTDATA_DIR "/images/chelsea_tiny.png"
#define QUERY "What is the cat doing? Please output segmentation mask."


static tu_server srv;
static char *img;
static size_t img_len;
static atomic_int n_ok, n_bad, done_clients;
static char first_counts[4096];
static pthread_mutex_t first_mu = PTHREAD_MUTEX_INITIALIZER;

/* the "counts" of the first mask in a 200 body */
static void counts_of(const char *body, char *out, size_t cap) {
    const char *c = body ? strstr(body, "\"counts\":\"") : NULL;
    out[0] = '\0';
    if (!c) return;
    c += 10;
    const char *e = strchr(c, '"');
    if (e && (size_t)(e - c) < cap) snprintf(out, cap, "%.*s", (int)(e - c), c);
}

static void *client(void *arg) {
    const int k = (int)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        tu_http_resp r;
        if ((k + i) % 2) {
            tu_form f;
            tu_form_init(&f);
            tu_form_add(&f, "image", "cat.png", "image/png", img, img_len);
            tu_form_text(&f, "query", QUERY);
            tu_form_end(&f);
            tu_http(&r, srv.port, "POST", "/v1/segment", f.content_type, f.data, f.len, 600);
            tu_form_free(&f);
        } else {
            size_t n = 0;
            char *json = malloc(lisa_base64_encoded_len(img_len) + 200);
            n += (size_t)sprintf(json, "{\"query\": \"%s\", \"image\": \"", QUERY);
            lisa_base64_encode(json + n, img, img_len);
            n += lisa_base64_encoded_len(img_len);
            n += (size_t)sprintf(json + n, "\"}");
            tu_http(&r, srv.port, "POST", "/v1/segment", "application/json", json, n, 600);
            free(json);
        }
        char counts[4096];
        counts_of(r.body, counts, sizeof counts);
        bool same = false;
        if (r.status == 200 && counts[0]) {
            pthread_mutex_lock(&first_mu);
            if (!first_counts[0]) snprintf(first_counts, sizeof first_counts, "%s", counts);
            same = !strcmp(first_counts, counts);
            pthread_mutex_unlock(&first_mu);
        }
        if (same) atomic_fetch_add(&n_ok, 1);
        else {
            atomic_fetch_add(&n_bad, 1);
            fprintf(stderr, "client %d request %d: HTTP %d %.300s\n", k, i, r.status, r.body ? r.body : "");
        }
        tu_http_free(&r);
    }
    atomic_fetch_add(&done_clients, 1);
    return NULL;
}

/* scrapes and idle connections while the clients run */
static void *pester(void *arg) {
    (void)arg;
    while (atomic_load(&done_clients) < 4) {
        tu_http_resp r;
        tu_http(&r, srv.port, "GET", "/metrics", NULL, NULL, 0, 60);
        if (r.status != 200) atomic_fetch_add(&n_bad, 1);
        tu_http_free(&r);
        tu_http(&r, srv.port, "GET", "/health", NULL, NULL, 0, 60);
        if (r.status != 200) atomic_fetch_add(&n_bad, 1);
        tu_http_free(&r);
        const int fd = tu_http_connect(srv.port); /* opened and dropped without a request */
        if (fd >= 0) close(fd);
        usleep(50000);
    }
    return NULL;
}

int main(void) {
    img = tu_read_file(CAT, &img_len);
    char *dir = tu_make_tmpdir("lisa-serve-threads");
    if (!img || !dir || !tu_server_start(&srv, dir, "--quiet --read-timeout 5", 300)) {
        fprintf(stderr, "lisa serve did not start; log %s\n", srv.log);
        return 2;
    }
    pthread_t th[6];
    for (intptr_t k = 0; k < 4; k++) pthread_create(&th[k], NULL, client, (void *)k);
    for (int k = 4; k < 6; k++) pthread_create(&th[k], NULL, pester, NULL);
    for (int k = 0; k < 6; k++) pthread_join(th[k], NULL);
    CHECK(atomic_load(&n_ok) == 12, "%d of 12 segment requests answered 200 with the same mask", atomic_load(&n_ok));
    CHECK(atomic_load(&n_bad) == 0, "%d failed requests", atomic_load(&n_bad));
    const int rc = tu_server_stop(&srv, SIGTERM, 300);
    CHECK(rc == 0, "lisa serve exit status %d after SIGTERM", rc);
    if (rc != 0) { /* what it was doing */
        size_t n;
        char *log = tu_read_file(srv.log, &n);
        fprintf(stderr, "---- %s (last 4000 bytes)\n%s\n----\n", srv.log, log ? log + (n > 4000 ? n - 4000 : 0) : "");
        free(log);
    }
    CHECK(!tu_server_log_has_sanitizer_report(&srv), "sanitizer report in %s", srv.log);
    tu_remove_tree(dir);
    free(dir);
    free(img);
    printf("%d passed, %d failed\n", plain_n_pass, plain_n_fail);
    return plain_n_fail ? 1 : 0;
}
