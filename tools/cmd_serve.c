/* tools/cmd_serve.c — `lisa serve`: loads a model and serves it over HTTP/JSON until SIGTERM or
 * SIGINT, then shuts down gracefully (server/server.h): no new connections, every request already
 * received is answered, exit 0.
 * Exit: 0 after a clean shutdown, 1 runtime failure (model, port), 2 usage error. */
#include "cli_args.h"
#include "lisa.h"
#include "tools/commands.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LISA_HAVE_SERVER
int lisa_cmd_serve(int argc, char **argv) {
    fprintf(stderr, "lisa serve: this build has no server (configure with -DLISA_SERVER=ON and libmicrohttpd-dev)\n");
    return 1;
}
#else
#include "server/server.h"

static const char *const NAME = "serve";

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
    const unsigned char b = (unsigned char)sig;
    const ssize_t n = write(stop_pipe[1], &b, 1); /* async-signal-safe */
    (void)n;
}

int lisa_cmd_serve(int argc, char **argv) {
    const char *model_dir = NULL;
    lisa_model_params mp = lisa_model_default_params();
    lisa_server_options o = lisa_server_default_options();
    int64_t kv_mib = 0, image_mib = o.engine.image_cache_bytes >> 20;
    bool quiet = false;
    const cli_opt opts[] = {
        CLI_STR_REQ("model", &model_dir, "DIR", "a LISA checkpoint directory"),
        CLI_STR_D("vision-tower", &mp.vision_tower, "DIR", "the CLIP directory (default: as `lisa segment`)", ""),
        CLI_STR("host", &o.host, "ADDR", "bind address (0.0.0.0 or :: exposes the server to the network)"),
        CLI_INT("port", &o.port, 0, 65535, "N", "TCP port (0 = any free port, printed at start)"),
        CLI_I64("max-body-bytes", &o.max_body_bytes, 1, 1ll << 40, "N", "larger bodies are answered 413"),
        CLI_I64("max-image-pixels", &o.max_image_pixels, 1, 1ll << 40, "N", "decoded width x height limit, 400 beyond"),
        CLI_INT("max-query-tokens", &o.max_query_tokens, 1, 1 << 20, "N", "query length in tokens, 400 beyond"),
        CLI_INT("max-query-bytes", &o.max_query_bytes, 1, 1 << 24, "N", "query length in bytes, 400 beyond"),
        CLI_INT("max-new-tokens", &o.max_new_tokens, 1, 1 << 20, "N",
                "default and cap of options.max_new_tokens (as chat.py)"),
        CLI_INT("max-queue", &o.engine.max_queue, 1, 1 << 20, "N",
                "unfinished requests accepted; 503 + Retry-After beyond"),
        CLI_DOUBLE("timeout", &o.timeout_s, 0, 86400, "SEC", "no result after SEC seconds: 504"),
        CLI_INT("max-connections", &o.max_connections, 1, 1 << 16, "N", "concurrent connections"),
        CLI_INT("max-batch", &o.engine.max_batch, 1, 256, "N", "sequences decoded together"),
        CLI_I64_D("kv-cache-mib", &kv_mib, 1, 1 << 24, "N", "KV-cache pool in MiB",
                  "room for max-batch requests of 1024 tokens"),
        CLI_I64("image-cache-mib", &image_mib, 0, 1 << 24, "N",
                "images kept encoded for reuse: a further query on the same picture skips\n"
                "its encoding and prefills only its own tokens (0: off)"),
        CLI_INT_D("workers", &o.engine.n_workers, 0, 4096, "N", "image decode + preprocessing threads (0: all cores)",
                  "all cores"),
        CLI_STR("allow-paths", &o.allow_paths, "DIR",
                "JSON requests may name a server-side file under DIR (\"image_path\")"),
        CLI_FLAG("quiet", &quiet, "no log line per request"),
        CLI_BACKEND("backend", &mp.backend),
        CLI_INT_D("threads", &mp.n_threads, 0, 4096, "N", "CPU threads (0: all cores)", "all cores"),
    };
    const cli_cmd cmd = {
        .name = NAME,
        .usage = "--model DIR [--vision-tower DIR] [--host ADDR] [--port N] [limits...]",
        .about = "Serves LISA over HTTP/1.1 (JSON) through the continuous-batching engine:\n"
                 "  POST /v1/segment   multipart/form-data (image file, query[, options]) or JSON\n"
                 "                     {\"image\": base64, \"query\": \"...\", \"options\": {...}} -> answer,\n"
                 "                     masks (COCO RLE)\n"
                 "  GET  /health, GET /metrics (Prometheus), GET / (a demo page)\n"
                 "SIGTERM or Ctrl-C: stop accepting, finish the requests in flight, exit 0.",
        .opts = opts,
        .n_opts = (int)(sizeof opts / sizeof opts[0]),
        .notes = "Exit status: 0 after a clean shutdown, 1 runtime failure (model, port), 2 usage error.",
    };
    const int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_RUN) return rc;
    o.log_requests = !quiet;
    if (kv_mib > 0) o.engine.kv_cache_bytes = kv_mib << 20;
    o.engine.image_cache_bytes = image_mib << 20;
    if (o.engine.max_images > o.engine.max_batch) o.engine.max_images = o.engine.max_batch;

    /* SIGTERM / SIGINT: the handler writes the signal number to a pipe that the main thread reads.
     * Threads started below (engine, HTTP) inherit a mask that blocks both, so that the signal
     * does not interrupt their system calls; threads that exist before main (OpenBLAS starts its
     * pool in a constructor) may run the handler, which is harmless. */
    if (pipe(stop_pipe) != 0) {
        fprintf(stderr, "lisa serve: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

#if defined(__GLIBC__)
    /* Every request allocates and frees buffers of megabytes (the encoded and decoded image, SAM's
     * 1024 x 1024 input, the mask stage's arena). glibc raises its mmap threshold to the size of
     * the first such block freed, after which they come from per-thread heaps that keep the memory:
     * the tiny model's server then settles at ~4x its working set. A fixed threshold hands large
     * blocks back to the kernel on free, so the resident size follows the load (and a leak shows). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    lisa_model *m = NULL;
    lisa_status s = cli_model_load(NAME, model_dir, &mp, &m);
    if (s != LISA_OK) return cli_fail(NAME, NULL, s);
    lisa_server *srv = NULL;
    s = lisa_server_start(&srv, m, &o);
    if (s != LISA_OK) {
        fprintf(stderr, "lisa serve: %s: %s\n", lisa_status_name(s), lisa_last_error());
        lisa_model_free(m);
        return 1;
    }
    const int ipv6 = strchr(o.host, ':') != NULL;
    printf("lisa serve: listening on http://%s%s%s:%d/\n", ipv6 ? "[" : "", o.host, ipv6 ? "]" : "",
           lisa_server_port(srv));
    fflush(stdout);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    unsigned char sig = 0;
    while (read(stop_pipe[0], &sig, 1) < 0 && errno == EINTR)
        continue;
    fprintf(stderr, "lisa serve: %s: finishing the requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    lisa_server_drain(srv);
    lisa_server_free(srv);
    lisa_model_free(m);
    fprintf(stderr, "lisa serve: stopped\n");
    return 0;
}
#endif
