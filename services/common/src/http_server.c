/* HTTP server on libmicrohttpd: routing, bounded request bodies, keel's JSON errors, and the
 * /metrics, /healthz and /readyz endpoints. */
#include "keel/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "keel/log.h"
#include "keel/metrics.h"

#define HTTP_DEFAULT_THREADS 4u
#define HTTP_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define HTTP_DEFAULT_TIMEOUT_S 30u
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024u
/* MHD keeps the request line and headers in a per-connection pool of this size, so it is
 * what bounds header size (MHD answers 431 beyond it). Bodies are buffered by us instead. */
#define HTTP_CONNECTION_MEMORY (64u * 1024u)
/* Routes deeper than this cannot be registered, and longer paths simply match nothing. */
#define HTTP_MAX_SEGMENTS 32
/* keel_http_request_json refuses documents nested deeper than this before parsing. */
#define HTTP_JSON_MAX_DEPTH 32
/* A chunked body that overflows the limit is drained so the client can read the 413; one
 * that keeps going this far past the limit is cut off instead. */
#define HTTP_DRAIN_SLACK ((size_t)1 << 20)

#define HTTP_REQUESTS_HELP "HTTP requests answered, by route pattern, method and status"
#define HTTP_DURATION_HELP "Time from request headers to queued response, by route pattern"

typedef struct http_route {
    char *method;
    char *pattern;
    char *pattern_buf; /* the pattern split in place; segments point into it */
    char *segments[HTTP_MAX_SEGMENTS];
    size_t nsegments;
    keel_http_handler handler;
    void *ctx;
} http_route;

struct keel_http_server {
    keel_http_server_options opts;
    char *address; /* owned copy of opts.address */
    http_route *routes;
    size_t nroutes;
    size_t routes_cap;
    struct MHD_Daemon *daemon;
    uint16_t port;
    /* MHD reports why a start failed only through its logger; keep the last line. */
    pthread_mutex_t log_lock;
    char last_mhd_error[256];
};

typedef struct http_header {
    char *name;
    char *value;
} http_header;

struct keel_http_response {
    bool set;
    unsigned status;
    char *content_type;
    char *body;
    size_t body_len;
    http_header *headers;
    size_t nheaders;
    size_t headers_cap;
};

typedef enum http_match {
    HTTP_MATCH_FOUND,
    HTTP_MATCH_NO_PATH,
    HTTP_MATCH_BAD_METHOD,
} http_match;

struct keel_http_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    char client_ip[INET6_ADDRSTRLEN];
    const char *param_names[HTTP_MAX_SEGMENTS];
    const char *param_values[HTTP_MAX_SEGMENTS];
    size_t nparams;
};

/* Everything one request needs between MHD's calls of the access handler. */
typedef struct http_exchange {
    keel_http_server *srv;
    struct timespec started;
    http_match match;
    const http_route *route;
    char *path_buf; /* the request path split in place; parameter values point into it */
    char *param_values[HTTP_MAX_SEGMENTS];
    char *body;
    size_t body_len;
    size_t body_cap;
    bool too_large;
    bool headers_too_large;
    size_t drained;
    bool responded;
} http_exchange;

static void *http_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        /* Only used while registering routes at start-up: a service with silently missing
         * routes would be worse than one that refuses to start. */
        keel_log_error("http server: out of memory allocating %zu bytes", n);
        abort();
    }
    return p;
}

static char *http_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = http_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* Splits path at '/' in place (the leading '/' is skipped). Returns the number of segments,
 * or HTTP_MAX_SEGMENTS + 1 when there are too many. "/" has zero segments. */
static size_t http_split_path(char *buf, char **segments)
{
    size_t n = 0;
    char *p = buf;
    if (*p == '/') {
        p++;
    }
    if (*p == '\0') {
        return 0;
    }
    for (;;) {
        if (n == HTTP_MAX_SEGMENTS) {
            return HTTP_MAX_SEGMENTS + 1;
        }
        segments[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

static bool http_route_matches_path(const http_route *r, char **segments, size_t nsegments)
{
    if (r->nsegments != nsegments) {
        return false;
    }
    for (size_t i = 0; i < nsegments; i++) {
        const char *want = r->segments[i];
        if (want[0] == ':') {
            if (segments[i][0] == '\0') {
                return false; /* a parameter never matches an empty segment */
            }
        } else if (strcmp(want, segments[i]) != 0) {
            return false;
        }
    }
    return true;
}

static bool http_method_matches(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0) {
        return true;
    }
    /* MHD sends only the headers for HEAD, so a GET route answers it too. */
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Finds the route for method and path, filling ex->route, ex->match and the parameter
 * values. A route matching the path with another method still sets ex->route so that the
 * 405 lists what is allowed. */
static void http_exchange_match(http_exchange *ex, const char *method, const char *url)
{
    keel_http_server *srv = ex->srv;
    char *segments[HTTP_MAX_SEGMENTS];
    ex->match = HTTP_MATCH_NO_PATH;
    ex->route = NULL;
    ex->path_buf = strdup(url);
    if (ex->path_buf == NULL) {
        return;
    }
    size_t n = http_split_path(ex->path_buf, segments);
    if (n > HTTP_MAX_SEGMENTS) {
        return;
    }
    /* An exact method match wins over HEAD falling back to GET. */
    const http_route *fallback = NULL;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const http_route *r = &srv->routes[i];
        if (!http_route_matches_path(r, segments, n)) {
            continue;
        }
        if (strcmp(r->method, method) == 0) {
            ex->route = r;
            ex->match = HTTP_MATCH_FOUND;
            break;
        }
        if (http_method_matches(r->method, method)) {
            if (fallback == NULL) {
                fallback = r;
            }
        } else if (ex->match == HTTP_MATCH_NO_PATH) {
            /* Kept for the metrics label: the pattern, not the raw path. */
            ex->route = r;
            ex->match = HTTP_MATCH_BAD_METHOD;
        }
    }
    if (ex->match != HTTP_MATCH_FOUND && fallback != NULL) {
        ex->route = fallback;
        ex->match = HTTP_MATCH_FOUND;
    }
    if (ex->match == HTTP_MATCH_FOUND) {
        for (size_t i = 0; i < n; i++) {
            ex->param_values[i] = segments[i];
        }
    }
}

/* --- responses ----------------------------------------------------------------------- */

static void http_response_clear(keel_http_response *resp)
{
    free(resp->content_type);
    resp->content_type = NULL;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    resp->headers = NULL;
    resp->nheaders = 0;
    resp->headers_cap = 0;
    resp->set = false;
    resp->status = 0;
}

/* Replaces the status and body, keeping headers already added. Takes body (malloc'd). */
static void http_response_set(keel_http_response *resp, unsigned status, const char *content_type,
                              char *body, size_t len)
{
    free(resp->content_type);
    free(resp->body);
    resp->content_type = strdup(content_type);
    resp->body = body;
    resp->body_len = len;
    resp->status = status;
    resp->set = true;
}

/* The response when even building a response failed: keep it allocation-free. */
static void http_response_set_oom(keel_http_response *resp)
{
    free(resp->content_type);
    resp->content_type = NULL;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    resp->set = true;
}

void keel_http_respond_json(keel_http_response *resp, unsigned status, json_t *body)
{
    if (body == NULL) {
        keel_log_error("http server: a handler passed a NULL JSON body (status %u); "
                       "answering 500",
                       status);
        keel_http_respond_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal_error",
                                "the server failed to build its answer", NULL);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        http_response_set_oom(resp);
        return;
    }
    http_response_set(resp, status, "application/json", text, strlen(text));
}

void keel_http_respond_raw(keel_http_response *resp, unsigned status, const char *content_type,
                           const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        http_response_set_oom(resp);
        return;
    }
    if (len > 0) {
        memcpy(copy, body, len);
    }
    copy[len] = '\0';
    http_response_set(resp, status, content_type, copy, len);
}

void keel_http_respond_error(keel_http_response *resp, unsigned status, const char *type,
                             const char *code, const char *message, const char *param)
{
    json_t *err = json_object();
    json_t *root = json_object();
    if (err == NULL || root == NULL) {
        json_decref(err);
        json_decref(root);
        http_response_set_oom(resp);
        return;
    }
    json_object_set_new(err, "type", json_string(type));
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", json_string(message));
    json_object_set_new(err, "param", param != NULL ? json_string(param) : json_null());
    json_object_set_new(root, "error", err);
    keel_http_respond_json(resp, status, root);
}

void keel_http_response_header(keel_http_response *resp, const char *name, const char *value)
{
    if (resp->nheaders == resp->headers_cap) {
        size_t cap = resp->headers_cap == 0 ? 4 : resp->headers_cap * 2;
        http_header *grown = realloc(resp->headers, cap * sizeof *grown);
        if (grown == NULL) {
            keel_log_error("http server: out of memory adding response header %s", name);
            return;
        }
        resp->headers = grown;
        resp->headers_cap = cap;
    }
    char *n = strdup(name);
    char *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        keel_log_error("http server: out of memory adding response header %s", name);
        return;
    }
    resp->headers[resp->nheaders].name = n;
    resp->headers[resp->nheaders].value = v;
    resp->nheaders++;
}

/* --- request accessors --------------------------------------------------------------- */

const char *keel_http_request_method(const keel_http_request *req)
{
    return req->method;
}

const char *keel_http_request_path(const keel_http_request *req)
{
    return req->path;
}

const char *keel_http_request_param(const keel_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->param_names[i], name) == 0) {
            return req->param_values[i];
        }
    }
    return NULL;
}

const char *keel_http_request_header(const keel_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *keel_http_request_query(const keel_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct http_query_walk {
    keel_http_query_fn fn;
    void *ctx;
} http_query_walk;

static enum MHD_Result http_query_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    http_query_walk *walk = cls;
    (void)kind;
    return walk->fn(walk->ctx, key, value) ? MHD_YES : MHD_NO;
}

void keel_http_request_query_each(const keel_http_request *req, keel_http_query_fn fn, void *ctx)
{
    http_query_walk walk = {fn, ctx};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, http_query_visit, &walk);
}

const char *keel_http_request_body(const keel_http_request *req, size_t *len)
{
    if (len != NULL) {
        *len = req->body_len;
    }
    return req->body;
}

const char *keel_http_request_client_ip(const keel_http_request *req)
{
    return req->client_ip;
}

/* True for "application/json", ignoring case, whitespace and parameters (charset=...). */
static bool http_content_type_is_json(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL) {
        return false;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, want, sizeof want - 1) != 0) {
        return false;
    }
    ct += sizeof want - 1;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* The deepest nesting of objects and arrays in text, counting only outside strings. Stops
 * counting once limit is exceeded, so hostile input costs one linear scan. */
static int http_json_depth(const char *text, size_t len, int limit)
{
    int depth = 0;
    int max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
            if (depth > max) {
                max = depth;
                if (max > limit) {
                    return max;
                }
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

json_t *keel_http_request_json(const keel_http_request *req, keel_http_response *resp)
{
    char msg[256];
    const char *ct = keel_http_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!http_content_type_is_json(ct)) {
        snprintf(msg, sizeof msg, "Content-Type must be application/json, got '%.100s'",
                 ct != NULL ? ct : "(none)");
        keel_http_respond_error(resp, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid_request_error",
                                "unsupported_media_type", msg, NULL);
        return NULL;
    }
    if (req->body_len == 0) {
        keel_http_respond_error(resp, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "invalid_json",
                                "the request body is empty; send a JSON object", NULL);
        return NULL;
    }
    if (http_json_depth(req->body, req->body_len, HTTP_JSON_MAX_DEPTH) > HTTP_JSON_MAX_DEPTH) {
        snprintf(msg, sizeof msg, "the JSON body is nested deeper than %d levels",
                 HTTP_JSON_MAX_DEPTH);
        keel_http_respond_error(resp, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "invalid_json",
                                msg, NULL);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d (byte %d): %s", jerr.line,
                 jerr.column, jerr.position, jerr.text);
        keel_http_respond_error(resp, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "invalid_json",
                                msg, NULL);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        keel_http_respond_error(resp, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "invalid_json",
                                "the request body must be a JSON object", NULL);
        return NULL;
    }
    return doc;
}

/* --- metrics, tracing ---------------------------------------------------------------- */

/* Only well-known methods become label values: MHD accepts any token as a method and each
 * distinct label value is a new series held forever. */
static const char *http_method_label(const char *method)
{
    static const char *const known[] = {"GET",   "HEAD",   "POST",    "PUT",
                                        "PATCH", "DELETE", "OPTIONS", NULL};
    for (size_t i = 0; known[i] != NULL; i++) {
        if (strcmp(method, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

/* Writes v as a Prometheus label value (backslash, quote and newline escaped). */
static void http_label_escape(char *out, size_t out_len, const char *v)
{
    size_t o = 0;
    for (; *v != '\0' && o + 3 < out_len; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

static void http_record_metrics(const http_exchange *ex, const char *method, unsigned status)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double seconds = (double)(now.tv_sec - ex->started.tv_sec) +
                     (double)(now.tv_nsec - ex->started.tv_nsec) / 1e9;
    /* The pattern, never the raw path, keeps the number of series bounded. */
    char route[256];
    http_label_escape(route, sizeof route,
                      ex->match == HTTP_MATCH_FOUND || ex->match == HTTP_MATCH_BAD_METHOD
                          ? ex->route->pattern
                          : "unmatched");
    char labels[384];
    keel_metrics *m = keel_metrics_default();
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%u\"", route,
             http_method_label(method), status);
    keel_metric_inc(
        keel_metrics_counter(m, "keel_http_requests_total", HTTP_REQUESTS_HELP, labels));
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    keel_metric_observe(keel_metrics_histogram(m, "keel_http_request_duration_seconds",
                                               HTTP_DURATION_HELP, labels, NULL, 0),
                        seconds);
}

static bool http_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool http_all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '0') {
            return false;
        }
    }
    return true;
}

/* Extracts the trace id from a W3C traceparent "vv-<32 hex trace>-<16 hex parent>-ff" into
 * out (33 bytes). Returns false for anything malformed, which is then ignored. */
static bool http_traceparent_trace_id(const char *tp, char *out)
{
    if (tp == NULL) {
        return false;
    }
    size_t len = strlen(tp);
    if (len < 55 || !http_is_hex(tp, 2) || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') {
        return false;
    }
    /* Version ff is forbidden; version 00 has exactly four fields, later ones may add more. */
    if (strncmp(tp, "ff", 2) == 0 || (len > 55 && (strncmp(tp, "00", 2) == 0 || tp[55] != '-'))) {
        return false;
    }
    const char *trace = tp + 3;
    const char *parent = tp + 36;
    if (!http_is_hex(trace, 32) || http_all_zero(trace, 32) || !http_is_hex(parent, 16) ||
        http_all_zero(parent, 16) || !http_is_hex(tp + 53, 2)) {
        return false;
    }
    memcpy(out, trace, 32);
    out[32] = '\0';
    return true;
}

/* --- the MHD side -------------------------------------------------------------------- */

static void http_client_ip(struct MHD_Connection *conn, char *out, size_t out_len)
{
    snprintf(out, out_len, "unknown");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)out_len);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)out_len);
    }
}

/* Hands resp to MHD and records the request's metrics. Clears resp. */
static enum MHD_Result http_send(http_exchange *ex, struct MHD_Connection *conn, const char *method,
                                 keel_http_response *resp)
{
    ex->responded = true;
    char *body = resp->body;
    size_t len = resp->body_len;
    resp->body = NULL;
    if (body == NULL) {
        body = strdup("");
        len = 0;
        if (body == NULL) {
            http_response_clear(resp);
            return MHD_NO;
        }
    }
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (r == NULL) {
        free(body);
        http_response_clear(resp);
        return MHD_NO;
    }
    if (resp->content_type != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    }
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value) != MHD_YES) {
            keel_log_warn("http server: libmicrohttpd refused response header '%s'",
                          resp->headers[i].name);
        }
    }
    unsigned status = resp->status;
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    http_response_clear(resp);
    http_record_metrics(ex, method, status);
    return ret;
}

static enum MHD_Result http_send_error(http_exchange *ex, struct MHD_Connection *conn,
                                       const char *method, unsigned status, const char *code,
                                       const char *message)
{
    keel_http_response resp = {0};
    keel_http_respond_error(&resp, status, "invalid_request_error", code, message, NULL);
    return http_send(ex, conn, method, &resp);
}

static void http_set_allow(const http_exchange *ex, keel_http_response *resp, const char *url)
{
    char allow[128] = "";
    size_t used = 0;
    char *segments[HTTP_MAX_SEGMENTS];
    char *buf = strdup(url);
    if (buf == NULL) {
        return;
    }
    size_t n = http_split_path(buf, segments);
    for (size_t i = 0; i < ex->srv->nroutes && n <= HTTP_MAX_SEGMENTS; i++) {
        const http_route *r = &ex->srv->routes[i];
        if (http_route_matches_path(r, segments, n)) {
            int w = snprintf(allow + used, sizeof allow - used, "%s%s", used > 0 ? ", " : "",
                             r->method);
            if (w < 0 || (size_t)w >= sizeof allow - used) {
                break;
            }
            used += (size_t)w;
        }
    }
    free(buf);
    if (used > 0) {
        keel_http_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    }
}

static enum MHD_Result http_dispatch(http_exchange *ex, struct MHD_Connection *conn,
                                     const char *url, const char *method)
{
    char msg[256];
    keel_http_response resp = {0};
    if (ex->headers_too_large) {
        snprintf(msg, sizeof msg,
                 "the request line and headers are larger than the limit of %zu bytes",
                 ex->srv->opts.max_header_bytes);
        return http_send_error(ex, conn, method, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                               "headers_too_large", msg);
    }
    if (ex->too_large) {
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes",
                 ex->srv->opts.max_body_bytes);
        return http_send_error(ex, conn, method, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", msg);
    }
    if (ex->match == HTTP_MATCH_NO_PATH) {
        snprintf(msg, sizeof msg, "no route for %.16s %.180s", method, url);
        return http_send_error(ex, conn, method, MHD_HTTP_NOT_FOUND, "route_not_found", msg);
    }
    if (ex->match == HTTP_MATCH_BAD_METHOD) {
        snprintf(msg, sizeof msg, "method %.16s is not allowed on %.180s (see the Allow header)",
                 method, url);
        http_set_allow(ex, &resp, url);
        keel_http_respond_error(&resp, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                                "method_not_allowed", msg, NULL);
        return http_send(ex, conn, method, &resp);
    }

    keel_http_request req = {
        .conn = conn,
        .method = method,
        .path = url,
        .body = ex->body != NULL ? ex->body : "",
        .body_len = ex->body_len,
    };
    http_client_ip(conn, req.client_ip, sizeof req.client_ip);
    const http_route *route = ex->route;
    for (size_t i = 0; i < route->nsegments; i++) {
        if (route->segments[i][0] == ':') {
            req.param_names[req.nparams] = route->segments[i] + 1;
            req.param_values[req.nparams] = ex->param_values[i];
            req.nparams++;
        }
    }

    char trace_id[33];
    bool traced = http_traceparent_trace_id(
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent"), trace_id);
    if (traced) {
        keel_log_set_trace_id(trace_id);
    }
    route->handler(&req, &resp, route->ctx);
    if (!resp.set) {
        keel_log_error("http server: the handler for %s %s set no response; answering 500",
                       route->method, route->pattern);
        keel_http_respond_error(&resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "api_error",
                                "internal_error", "the server failed to answer this request", NULL);
    }
    keel_log_debug("http %s %s -> %u", method, url, resp.status);
    if (traced) {
        keel_log_set_trace_id(NULL);
    }
    return http_send(ex, conn, method, &resp);
}

static enum MHD_Result http_header_size_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                              const char *value)
{
    size_t *total = cls;
    (void)kind;
    /* "Name: value\r\n" as sent. */
    *total += strlen(key) + (value != NULL ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* The size of the request line (query string included) and headers as the client sent
 * them, near enough: MHD has already decoded and unfolded them. */
static size_t http_header_bytes(struct MHD_Connection *conn, const char *method, const char *url)
{
    size_t total = strlen(method) + strlen(url) + 12;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, http_header_size_visit, &total);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, http_header_size_visit, &total);
    return total;
}

/* Appends data to the exchange's body, switching to drain mode past the limit. */
static enum MHD_Result http_take_upload(http_exchange *ex, const char *data, size_t n)
{
    size_t max = ex->srv->opts.max_body_bytes;
    if (!ex->too_large && n > max - ex->body_len) {
        ex->too_large = true;
        free(ex->body);
        ex->body = NULL;
        ex->body_len = 0;
        ex->body_cap = 0;
    }
    if (ex->too_large) {
        ex->drained += n;
        return ex->drained > HTTP_DRAIN_SLACK ? MHD_NO : MHD_YES;
    }
    if (ex->body_len + n + 1 > ex->body_cap) {
        size_t cap = ex->body_cap == 0 ? 4096 : ex->body_cap;
        while (cap < ex->body_len + n + 1) {
            cap *= 2;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        char *grown = realloc(ex->body, cap);
        if (grown == NULL) {
            keel_log_error("http server: out of memory buffering a %zu-byte body",
                           ex->body_len + n);
            return MHD_NO;
        }
        ex->body = grown;
        ex->body_cap = cap;
    }
    memcpy(ex->body + ex->body_len, data, n);
    ex->body_len += n;
    ex->body[ex->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    keel_http_server *srv = cls;
    http_exchange *ex = *con_cls;
    if (ex == NULL) {
        /* First call: only the headers are in. */
        ex = calloc(1, sizeof *ex);
        if (ex == NULL) {
            return MHD_NO;
        }
        ex->srv = srv;
        clock_gettime(CLOCK_MONOTONIC, &ex->started);
        *con_cls = ex;
        http_exchange_match(ex, method, url);
        if (srv->opts.max_header_bytes > 0 &&
            http_header_bytes(conn, method, url) > srv->opts.max_header_bytes) {
            ex->headers_too_large = true;
            return http_dispatch(ex, conn, url, method);
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL) {
            char *end = NULL;
            errno = 0;
            unsigned long long declared = strtoull(cl, &end, 10);
            if (errno == ERANGE || declared > srv->opts.max_body_bytes) {
                /* Answering now spares reading the body; MHD then closes the connection. */
                ex->too_large = true;
                return http_dispatch(ex, conn, url, method);
            }
        }
        return MHD_YES;
    }
    if (ex->responded) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        enum MHD_Result ok = http_take_upload(ex, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok;
    }
    return http_dispatch(ex, conn, url, method);
}

static void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    http_exchange *ex = *con_cls;
    if (ex == NULL) {
        return;
    }
    free(ex->body);
    ex->body = NULL;
    free(ex->path_buf);
    ex->path_buf = NULL;
    free(ex);
    *con_cls = NULL;
}

/* The format comes from libmicrohttpd; the attribute tells the compiler it is one. */
static void http_on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void http_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    keel_http_server *srv = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    pthread_mutex_lock(&srv->log_lock);
    memcpy(srv->last_mhd_error, line, n + 1);
    pthread_mutex_unlock(&srv->log_lock);
    keel_log_warn("libmicrohttpd: %s", line);
}

/* --- built-in routes ----------------------------------------------------------------- */

static void http_handle_metrics(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    char *text = keel_metrics_render(keel_metrics_default());
    if (text == NULL) {
        keel_http_respond_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal_error",
                                "rendering the metrics failed", NULL);
        return;
    }
    http_response_set(resp, MHD_HTTP_OK, "text/plain; version=0.0.4", text, strlen(text));
}

static void http_handle_healthz(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    keel_http_respond_json(resp, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static void http_handle_readyz(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    const keel_http_server *srv = ctx;
    bool ready = srv->opts.ready == NULL || srv->opts.ready(srv->opts.ready_ctx);
    keel_http_respond_json(resp, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                           json_pack("{s:s}", "status", ready ? "ready" : "not_ready"));
}

/* --- lifecycle ----------------------------------------------------------------------- */

keel_http_server *keel_http_server_new(const keel_http_server_options *opts)
{
    keel_http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        return NULL;
    }
    srv->opts = *opts;
    if (opts->address != NULL) {
        srv->address = strdup(opts->address);
        if (srv->address == NULL) {
            free(srv);
            return NULL;
        }
    }
    srv->opts.address = srv->address;
    if (srv->opts.threads == 0) {
        srv->opts.threads = HTTP_DEFAULT_THREADS;
    }
    if (srv->opts.max_body_bytes == 0) {
        srv->opts.max_body_bytes = HTTP_DEFAULT_MAX_BODY;
    }
    if (srv->opts.connection_timeout_s == 0) {
        srv->opts.connection_timeout_s = HTTP_DEFAULT_TIMEOUT_S;
    }
    if (srv->opts.max_connections == 0) {
        srv->opts.max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
    }
    pthread_mutex_init(&srv->log_lock, NULL);
    keel_http_server_route(srv, "GET", "/metrics", http_handle_metrics, srv);
    keel_http_server_route(srv, "GET", "/healthz", http_handle_healthz, srv);
    keel_http_server_route(srv, "GET", "/readyz", http_handle_readyz, srv);
    return srv;
}

void keel_http_server_route(keel_http_server *srv, const char *method, const char *pattern,
                            keel_http_handler handler, void *ctx)
{
    if (srv->daemon != NULL) {
        /* Routes are read without a lock by the server's threads. */
        keel_log_error("http server: route %s %s added after start; ignored (add routes "
                       "before keel_http_server_start)",
                       method, pattern);
        return;
    }
    if (srv->nroutes == srv->routes_cap) {
        size_t cap = srv->routes_cap == 0 ? 16 : srv->routes_cap * 2;
        http_route *grown = realloc(srv->routes, cap * sizeof *grown);
        if (grown == NULL) {
            keel_log_error("http server: out of memory adding route %s %s", method, pattern);
            abort();
        }
        srv->routes = grown;
        srv->routes_cap = cap;
    }
    http_route *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    r->pattern_buf = http_xstrdup(pattern);
    r->nsegments = http_split_path(r->pattern_buf, r->segments);
    if (r->nsegments > HTTP_MAX_SEGMENTS) {
        keel_log_error("http server: route %s %s has more than %d segments; ignored", method,
                       pattern, HTTP_MAX_SEGMENTS);
        free(r->pattern_buf);
        r->pattern_buf = NULL;
        return;
    }
    r->method = http_xstrdup(method);
    r->pattern = http_xstrdup(pattern);
    r->handler = handler;
    r->ctx = ctx;
    srv->nroutes++;
}

int keel_http_server_start(keel_http_server *srv, char *err, size_t err_len)
{
    if (srv->daemon != NULL) {
        snprintf(err, err_len, "the HTTP server is already started");
        return -1;
    }
    const char *addr = srv->address != NULL ? srv->address : "0.0.0.0";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(srv->opts.port);
    } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(srv->opts.port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, err_len,
                 "HTTP listen address '%s' is not a numeric IPv4 or IPv6 address; use e.g. "
                 "127.0.0.1, 0.0.0.0 or ::1",
                 addr);
        return -1;
    }
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    /* MHD splits the connection limit across its threads and refuses less than one each. */
    unsigned max_conn = srv->opts.max_connections;
    if (max_conn < srv->opts.threads) {
        max_conn = srv->opts.threads;
    }
    pthread_mutex_lock(&srv->log_lock);
    srv->last_mhd_error[0] = '\0';
    pthread_mutex_unlock(&srv->log_lock);
    srv->daemon = MHD_start_daemon(
        /* The logger goes first so that MHD routes every message, including option errors. */
        flags, srv->opts.port, NULL, NULL, http_on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        http_on_mhd_log, srv, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)srv->opts.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)srv->opts.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)srv->opts.max_connections_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        pthread_mutex_lock(&srv->log_lock);
        snprintf(err, err_len,
                 "cannot listen for HTTP on %s port %u: %s; check that the port is free and "
                 "the address belongs to this host",
                 addr, (unsigned)srv->opts.port,
                 srv->last_mhd_error[0] != '\0' ? srv->last_mhd_error : "libmicrohttpd failed");
        pthread_mutex_unlock(&srv->log_lock);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL && info->port != 0 ? info->port : srv->opts.port;
    keel_log_info("HTTP server listening on %s port %u with %u threads", addr, (unsigned)srv->port,
                  srv->opts.threads);
    return 0;
}

uint16_t keel_http_server_port(const keel_http_server *srv)
{
    return srv->port;
}

void keel_http_server_free(keel_http_server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->daemon != NULL) {
        /* Joins the worker threads, so handlers in progress finish first. */
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].method);
        free(srv->routes[i].pattern);
        free(srv->routes[i].pattern_buf);
    }
    free(srv->routes);
    srv->routes = NULL;
    free(srv->address);
    srv->address = NULL;
    pthread_mutex_destroy(&srv->log_lock);
    free(srv);
}
