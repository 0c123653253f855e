/* tests/common/httpc.h — a small blocking HTTP/1.1 client over loopback and a `lisa serve`
 * process launcher, for the server tests (no libcurl: the tests must see the exact bytes, send
 * malformed requests and time everything). */
#ifndef LISA_TEST_HTTPC_H
#define LISA_TEST_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One response. Owns head and body (tu_http_free). body is NUL-terminated. */
typedef struct tu_http_resp {
    int status; /* 0: no response (connection failed, closed or timed out) */
    char *head; /* status line + headers */
    char *body;
    size_t body_len;
} tu_http_resp;

/* Opens a TCP connection to 127.0.0.1:port; -1 on failure. */
int tu_http_connect(int port);
/* Sends all bytes (false on error). */
bool tu_http_send(int fd, const void *buf, size_t len);
/* Reads one response (its body delimited by Content-Length, else by the connection closing). */
bool tu_http_recv(int fd, tu_http_resp *out, double timeout_s);

/* One request on a fresh connection ("Connection: close"); content_type NULL = no body headers. */
bool tu_http(tu_http_resp *out, int port, const char *method, const char *path, const char *content_type,
             const void *body, size_t body_len, double timeout_s);
/* Sends raw request bytes on a fresh connection and reads the response. */
bool tu_http_raw(tu_http_resp *out, int port, const void *req, size_t len, double timeout_s);
/* Header value (case-insensitive name) copied into buf; NULL when absent. */
const char *tu_http_header(const tu_http_resp *r, const char *name, char *buf, size_t cap);
void tu_http_free(tu_http_resp *r);

/* A multipart/form-data body. Owns data. */
typedef struct tu_form {
    char *data;
    size_t len, cap;
    char boundary[48];
    char content_type[96];
} tu_form;

void tu_form_init(tu_form *f);
/* A part; filename and type may be NULL (a text field). */
void tu_form_add(tu_form *f, const char *name, const char *filename, const char *type, const void *data, size_t len);
void tu_form_text(tu_form *f, const char *name, const char *value);
void tu_form_end(tu_form *f);
void tu_form_free(tu_form *f);

/* A `lisa serve` child process on the tiny model (tests/data), port 0. */
typedef struct tu_server {
    pid_t pid;
    int port;
    char log[512]; /* its stderr */
    char out[512]; /* its stdout */
} tu_server;

/* Starts `lisa serve --model tiny ... --port 0 <extra>` in dir (logs there) and waits for its
 * "listening" line (up to timeout_s). */
bool tu_server_start(tu_server *s, const char *dir, const char *extra, double timeout_s);
/* Sends sig (SIGTERM for a graceful stop) and waits up to timeout_s; returns the exit status, 128+N
 * for a signal, -1 if it had to be killed. */
int tu_server_stop(tu_server *s, int sig, double timeout_s);
/* True if the server's stderr log holds a sanitizer report (and prints it). */
bool tu_server_log_has_sanitizer_report(const tu_server *s);

double tu_now(void);

#endif
