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

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: lisa serve --model DIR [--vision-tower DIR] [--host ADDR] [--port N] [limits...]\n"
        "\n"
        "Serves LISA over HTTP/1.1 (JSON) through the continuous-batching engine:\n"
        "  POST /v1/segment   multipart/form-data (image file, query[, options]) or JSON\n"
        "                     {\"image\": base64, \"query\": \"...\", \"options\": {...}} -> answer, masks (COCO RLE)\n"
        "  GET  /health, GET /metrics (Prometheus), GET / (a demo page)\n"
        "SIGTERM or Ctrl-C: stop accepting, finish the requests in flight, exit 0.\n"
        "\n"
        "  --model DIR            a LISA checkpoint directory\n"
        "  --vision-tower DIR     the CLIP directory (default: as `lisa segment`)\n"
        "  --host ADDR            bind address (default 127.0.0.1; 0.0.0.0 or :: exposes it to the network)\n"
        "  --port N               TCP port (default 8080; 0 = any free port, printed at start)\n"
        "  --max-body-bytes N     larger bodies are answered 413 (default 33554432)\n"
        "  --max-image-pixels N   decoded width x height limit, 400 beyond (default 16777216)\n"
        "  --max-query-tokens N   query length in tokens, 400 beyond (default 512)\n"
        "  --max-query-bytes N    query length in bytes, 400 beyond (default 4096)\n"
        "  --max-new-tokens N     default and cap of options.max_new_tokens (default 512, as chat.py)\n"
        "  --max-queue N          unfinished requests accepted; 503 + Retry-After beyond (default 64)\n"
        "  --timeout SEC          no result after SEC seconds: 504 (default 300)\n"
        "  --max-connections N    concurrent connections (default 128)\n"
        "  --max-batch N          sequences decoded together (default 16)\n"
        "  --kv-cache-mib N       KV-cache pool (default: room for max-batch requests of 1024 tokens)\n"
        "  --image-cache-mib N    images kept encoded for reuse: a further query on the same picture skips\n"
        "                         its encoding and prefills only its own tokens (default 256; 0: off)\n"
        "  --workers N            image decode + preprocessing threads (default: all cores)\n"
        "  --allow-paths DIR      JSON requests may name a server-side file under DIR (\"image_path\")\n"
        "  --quiet                no log line per request\n"
        "  --backend cpu|cuda|auto, --threads N   as `lisa segment`\n");
}

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
    /* the integer options: parsed into these, range-checked, assigned after the loop */
    int64_t port = o.port, max_body = o.max_body_bytes, max_pixels = o.max_image_pixels, max_qtok = o.max_query_tokens,
            max_qbytes = o.max_query_bytes, max_new = o.max_new_tokens, max_queue = o.engine.max_queue,
            max_conn = o.max_connections, max_batch = o.engine.max_batch, kv_mib = 0, workers = o.engine.n_workers,
            image_mib = o.engine.image_cache_bytes >> 20,
            threads = mp.n_threads;
    const struct {
        const char *flag;
        int64_t lo, hi, *v;
    } ints[] = {
        {"--port", 0, 65535, &port},
        {"--max-body-bytes", 1, 1ll << 40, &max_body},
        {"--max-image-pixels", 1, 1ll << 40, &max_pixels},
        {"--max-query-tokens", 1, 1 << 20, &max_qtok},
        {"--max-query-bytes", 1, 1 << 24, &max_qbytes},
        {"--max-new-tokens", 1, 1 << 20, &max_new},
        {"--max-queue", 1, 1 << 20, &max_queue},
        {"--max-connections", 1, 1 << 16, &max_conn},
        {"--max-batch", 1, 256, &max_batch},
        {"--kv-cache-mib", 1, 1 << 24, &kv_mib},
        {"--image-cache-mib", 0, 1 << 24, &image_mib},
        {"--workers", 0, 4096, &workers},
        {"--threads", 0, 4096, &threads},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model") && has) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--vision-tower") && has) {
            mp.vision_tower = argv[++i];
        } else if (!strcmp(a, "--host") && has) {
            o.host = argv[++i];
        } else if (!strcmp(a, "--allow-paths") && has) {
            o.allow_paths = argv[++i];
        } else if (!strcmp(a, "--quiet")) {
            o.log_requests = false;
        } else if (!strcmp(a, "--timeout") && has) {
            char *end = NULL;
            const double t = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(t > 0) || t > 86400) {
                fprintf(stderr, "lisa serve: --timeout needs seconds in (0, 86400] (got '%s')\n", argv[i]);
                return 2;
            }
            o.timeout_s = t;
        } else if (!strcmp(a, "--backend") && has) {
            const char *b = argv[++i];
            if (!cli_parse_backend(b, &mp.backend)) {
                fprintf(stderr, "lisa serve: --backend must be cpu, cuda or auto (got '%s')\n", b);
                return 2;
            }
        } else {
            size_t k = 0;
            while (k < sizeof ints / sizeof ints[0] && strcmp(a, ints[k].flag) != 0)
                k++;
            if (k == sizeof ints / sizeof ints[0] || !has) {
                fprintf(stderr, "lisa serve: unknown or incomplete option '%s'\n\n", a);
                usage(stderr);
                return 2;
            }
            if (!cli_parse_i64(argv[++i], ints[k].lo, ints[k].hi, ints[k].v)) {
                fprintf(stderr, "lisa serve: %s needs an integer in %lld..%lld (got '%s')\n", a, (long long)ints[k].lo,
                        (long long)ints[k].hi, argv[i]);
                return 2;
            }
        }
    }
    o.port = (int32_t)port;
    o.max_body_bytes = max_body;
    o.max_image_pixels = max_pixels;
    o.max_query_tokens = (int32_t)max_qtok;
    o.max_query_bytes = (int32_t)max_qbytes;
    o.max_new_tokens = (int32_t)max_new;
    o.max_connections = (int32_t)max_conn;
    o.engine.max_queue = (int32_t)max_queue;
    o.engine.max_batch = (int32_t)max_batch;
    o.engine.n_workers = (int32_t)workers;
    if (kv_mib > 0) o.engine.kv_cache_bytes = kv_mib << 20;
    o.engine.image_cache_bytes = image_mib << 20;
    mp.n_threads = (int32_t)threads;
    if (!model_dir) {
        fprintf(stderr, "lisa serve: --model is required\n\n");
        usage(stderr);
        return 2;
    }
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
    lisa_status s = lisa_model_load(model_dir, &mp, &m);
    if (s != LISA_OK) {
        fprintf(stderr, "lisa serve: %s: %s\n", lisa_status_name(s), lisa_last_error());
        return 1;
    }
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
