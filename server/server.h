/* server/server.h — `lisa serve`: HTTP/1.1 + JSON in front of the continuous-batching engine
 * (include/lisa.h), on libmicrohttpd.
 *
 * Endpoints:
 *   POST /v1/segment   one (image, query) request; multipart/form-data or JSON (server/request.h).
 *                      200: the result JSON of lisa_result_to_json plus "id";
 *                      errors: {"error": {"code": "...", "status": N, "message": "..."}} with
 *                      400 bad input (malformed JSON/form, not an image, image or query over a limit,
 *                      empty query), 404/405/415 wrong path/method/content type, 413 body over
 *                      max_body_bytes, 503 + Retry-After when the queue is full or the server is
 *                      shutting down, 504 after timeout_s (the engine cannot cancel: the request
 *                      runs on and its result is dropped when it arrives), 500 only for failures
 *                      that are not the input's fault (out of memory, backend errors).
 *   GET /health        {"status": "ok", ...}
 *   GET /metrics       Prometheus text (server/metrics.h)
 *   GET /              the demo page (server/web/index.html, compiled in)
 *
 * Connections: HTTP/1.1 keep-alive. Idle sockets cannot lock clients out: a connection that sends
 * nothing for read_timeout_s (before or inside a request, or between requests) is closed, one client
 * address holds at most max_connections_per_client connections, and /health and /metrics need no
 * engine slot (so they answer while the queue is full).
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by max_connections); a handler
 * submits to the engine and blocks until its result arrives or the timeout passes. One collector
 * thread claims every finished result from the engine (lisa_engine_wait_timeout on id 0) and hands
 * it to its waiting handler, or frees it if the handler has given up.
 *
 * Shutdown (lisa_server_drain): stop accepting connections, answer requests that arrive on open
 * connections with 503 "shutting_down", let every request already received finish and its
 * response be sent, then stop.
 */
#ifndef LISA_SERVER_SERVER_H
#define LISA_SERVER_SERVER_H

#include "lisa.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct lisa_server_options {
    const char *host;          /* bind address (IPv4 or IPv6 literal); default "127.0.0.1" */
    int32_t port;              /* 0: any free port (lisa_server_port tells which) */
    int64_t max_body_bytes;    /* 413 beyond; default 32 MiB */
    int64_t max_image_pixels;  /* decoded h*w; default 16 Mpx */
    int32_t max_query_tokens;  /* tokenizer ids of the query; default 512 */
    int32_t max_query_bytes;   /* default 4096 */
    int32_t max_new_tokens;    /* default and cap of options.max_new_tokens; default 512 (chat.py) */
    double timeout_s;          /* submit to result; 504 beyond; default 300 */
    int32_t read_timeout_s;    /* a connection idle this long while the server waits for (more of) a request,
                                  or between keep-alive requests, is closed; default 15. Never applies while
                                  a request waits for its result (that is timeout_s) */
    int32_t max_connections;   /* concurrent connections (threads); default 128 */
    int32_t max_connections_per_client; /* concurrent connections from one client address; default 32 */
    const char *allow_paths;   /* JSON "image_path" allowed under this directory; NULL: refused */
    bool log_requests;         /* one line per request on stderr */
    lisa_engine_params engine; /* max_queue is the 503 threshold */
} lisa_server_options;

lisa_server_options lisa_server_default_options(void);

typedef struct lisa_server lisa_server;

/* Creates the engine over m (borrowed; must outlive the server), binds and starts serving. */
lisa_status lisa_server_start(lisa_server **out, lisa_model *m, const lisa_server_options *o);
/* The bound TCP port. */
int32_t lisa_server_port(const lisa_server *s);
/* Graceful stop (see above); returns once every received request has been answered, or after
 * timeout_s + 30 s at most. */
void lisa_server_drain(lisa_server *s);
/* Stops (draining first if not done) and frees everything. */
void lisa_server_free(lisa_server *s);

#endif
