/* tests/common/httpc.c — see httpc.h. */
#include "httpc.h"

#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int tu_http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool tu_http_send(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

void tu_http_free(tu_http_resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static const char *find_header(const char *head, const char *name, size_t *vlen) {
    const size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            *vlen = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

const char *tu_http_header(const tu_http_resp *r, const char *name, char *buf, size_t cap) {
    size_t n = 0;
    const char *v = r->head ? find_header(r->head, name, &n) : NULL;
    if (!v || cap == 0) return NULL;
    if (n >= cap) n = cap - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

bool tu_http_recv(int fd, tu_http_resp *out, double timeout_s) {
    memset(out, 0, sizeof *out);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return false;
    const double deadline = tu_now() + timeout_s;
    size_t head_end = 0, want = (size_t)-1;
    bool closed = false;
    for (;;) {
        if (head_end && len >= head_end + want) break;
        const double left = deadline - tu_now();
        if (left <= 0) break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        const int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) break;
            buf = nb;
        }
        const ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            closed = true;
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (!head_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (e) {
                head_end = (size_t)(e - buf) + 4;
                out->head = strndup(buf, head_end - 2);
                size_t vlen = 0;
                const char *cl = find_header(out->head, "Content-Length", &vlen);
                if (cl) want = (size_t)strtoull(cl, NULL, 10);
            }
        }
    }
    bool ok = false;
    if (head_end && (len >= head_end + want || (want == (size_t)-1 && closed))) {
        const size_t blen = want == (size_t)-1 ? len - head_end : want;
        out->body = malloc(blen + 1);
        if (out->body) {
            memcpy(out->body, buf + head_end, blen);
            out->body[blen] = '\0';
            out->body_len = blen;
            ok = sscanf(out->head, "HTTP/1.%*d %d", &out->status) == 1;
        }
    }
    free(buf);
    if (!ok) {
        tu_http_free(out);
        out->status = 0;
    }
    return ok;
}

bool tu_http_raw(tu_http_resp *out, int port, const void *req, size_t len, double timeout_s) {
    memset(out, 0, sizeof *out);
    const int fd = tu_http_connect(port);
    if (fd < 0) return false;
    /* a server may answer early (413) and close while we still send: read the answer anyway */
    tu_http_send(fd, req, len);
    const bool ok = tu_http_recv(fd, out, timeout_s);
    close(fd);
    return ok;
}

bool tu_http(tu_http_resp *out, int port, const char *method, const char *path, const char *content_type,
             const void *body, size_t body_len, double timeout_s) {
    char head[1024];
    int n;
    if (content_type)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, port, content_type, body_len);
    else
        n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", method,
                     path, port);
    char *req = malloc((size_t)n + body_len);
    if (!req) return false;
    memcpy(req, head, (size_t)n);
    if (body_len) memcpy(req + n, body, body_len);
    const bool ok = tu_http_raw(out, port, req, (size_t)n + body_len, timeout_s);
    free(req);
    return ok;
}

/* ---- multipart ---- */

static void form_put(tu_form *f, const void *p, size_t n) {
    if (f->len + n > f->cap) {
        while (f->len + n > f->cap)
            f->cap = f->cap ? 2 * f->cap : 4096;
        f->data = realloc(f->data, f->cap);
        if (!f->data) abort();
    }
    memcpy(f->data + f->len, p, n);
    f->len += n;
}

void tu_form_init(tu_form *f) {
    memset(f, 0, sizeof *f);
    static atomic_uint counter; /* client threads build forms at once (tests/threads/serve_concurrent.c) */
    snprintf(f->boundary, sizeof f->boundary, "----lisa-test-boundary-%u-%d", atomic_fetch_add(&counter, 1) + 1,
             (int)getpid());
    snprintf(f->content_type, sizeof f->content_type, "multipart/form-data; boundary=%s", f->boundary);
}

void tu_form_add(tu_form *f, const char *name, const char *filename, const char *type, const void *data, size_t len) {
    char h[512];
    int n;
    if (filename)
        n = snprintf(h, sizeof h,
                     "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
                     f->boundary, name, filename, type ? type : "application/octet-stream");
    else
        n = snprintf(h, sizeof h, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", f->boundary, name);
    form_put(f, h, (size_t)n);
    form_put(f, data, len);
    form_put(f, "\r\n", 2);
}

void tu_form_text(tu_form *f, const char *name, const char *value) {
    tu_form_add(f, name, NULL, NULL, value, strlen(value));
}

void tu_form_end(tu_form *f) {
    char h[96];
    const int n = snprintf(h, sizeof h, "--%s--\r\n", f->boundary);
    form_put(f, h, (size_t)n);
}

void tu_form_free(tu_form *f) {
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* ---- the server process ---- */

bool tu_server_start(tu_server *s, const char *dir, const char *extra, double timeout_s) {
    memset(s, 0, sizeof *s);
    s->pid = -1;
    snprintf(s->log, sizeof s->log, "%s/serve-%d.log", dir, (int)getpid());
    snprintf(s->out, sizeof s->out, "%s/serve-%d.out", dir, (int)getpid());
    char cmd[4096];
    /* exec: the child's pid is the server's, for signals; 2 BLAS threads keep 2-core CI honest */
    snprintf(
        cmd, sizeof cmd,
        "exec '%s' serve --model '%s/tiny-lisa' --vision-tower '%s/tiny-clip' --threads 2 --port 0 %s > '%s' 2> '%s'",
        LISA_TOOL_PATH, LISA_TESTDATA_DIR, LISA_TESTDATA_DIR, extra ? extra : "", s->out, s->log);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    const double deadline = tu_now() + timeout_s;
    while (tu_now() < deadline) {
        size_t n = 0;
        char *txt = tu_read_file(s->out, &n);
        const char *p = txt ? strstr(txt, "listening on http://") : NULL;
        const char *colon = p ? strrchr(p, ':') : NULL;
        if (colon && strchr(colon, '/')) {
            s->port = atoi(colon + 1);
            free(txt);
            return s->port > 0;
        }
        free(txt);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = -1;
            return false;
        }
        usleep(20000);
    }
    return false;
}

int tu_server_stop(tu_server *s, int sig, double timeout_s) {
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    const double deadline = tu_now() + timeout_s;
    int st = 0;
    while (tu_now() < deadline) {
        const pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(20000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = -1;
    return -1;
}

bool tu_server_log_has_sanitizer_report(const tu_server *s) {
    size_t n = 0;
    char *txt = tu_read_file(s->log, &n);
    const bool bad = txt && (strstr(txt, "Sanitizer") || strstr(txt, "runtime error:"));
    if (bad) fputs(txt, stderr);
    free(txt);
    return bad;
}
