/* HTTP server on libmicrohttpd: routes, JSON bodies, limits, and the /metrics, /healthz,
 * /readyz endpoints every keel service serves. */
#ifndef KEEL_HTTP_SERVER_H
#define KEEL_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct keel_http_server keel_http_server;
typedef struct keel_http_request keel_http_request;
typedef struct keel_http_response keel_http_response;

typedef struct keel_http_server_options {
    const char *address;             /* e.g. "127.0.0.1"; NULL = 0.0.0.0 */
    uint16_t port;                   /* 0 = pick a free port (see keel_http_server_port) */
    unsigned threads;                /* libmicrohttpd internal thread pool size; 0 = 4 */
    size_t max_body_bytes;           /* larger bodies get 413 before the handler runs; 0 = 1 MiB */
    unsigned connection_timeout_s;   /* idle connections are closed after this; 0 = 30 */
    unsigned max_connections;        /* 0 = 1024 */
    unsigned max_connections_per_ip; /* 0 = unlimited */
    /* Request line plus headers larger than this get 431 with keel's JSON error; 0 = only
     * libmicrohttpd's own bound (about 64 KiB, answered with its plain 431). */
    size_t max_header_bytes;
    /* /readyz answers 200 only when this returns true (NULL: always ready). */
    bool (*ready)(void *ctx);
    void *ready_ctx;
} keel_http_server_options;

/* A handler fills resp; it runs on one of the server's threads and must be thread-safe.
 * The request and everything it points to live until the handler returns. */
typedef void (*keel_http_handler)(const keel_http_request *req, keel_http_response *resp,
                                  void *ctx);

keel_http_server *keel_http_server_new(const keel_http_server_options *opts);
/* Adds a route. pattern is a path whose segments may be ":name" parameters, e.g.
 * "/v1/payments/:id". A path that matches no route gets 404; one that matches a route with
 * another method gets 405; both as keel's JSON error object. Call before start. */
void keel_http_server_route(keel_http_server *srv, const char *method, const char *pattern,
                            keel_http_handler handler, void *ctx);
/* Starts listening. Returns 0, or -1 with a message in err (e.g. the port is taken). */
int keel_http_server_start(keel_http_server *srv, char *err, size_t err_len);
/* The port actually bound (useful with port 0). */
uint16_t keel_http_server_port(const keel_http_server *srv);
/* Stops accepting and waits for handlers in progress to finish, then frees. NULL is fine. */
void keel_http_server_free(keel_http_server *srv);

/* --- request accessors ------------------------------------------------------------- */
const char *keel_http_request_method(const keel_http_request *req);
const char *keel_http_request_path(const keel_http_request *req);
/* A ":name" segment of the matched route, or NULL. */
const char *keel_http_request_param(const keel_http_request *req, const char *name);
/* A header (case-insensitive name) or NULL. */
const char *keel_http_request_header(const keel_http_request *req, const char *name);
/* A query-string argument (already URL-decoded) or NULL. */
const char *keel_http_request_query(const keel_http_request *req, const char *name);
/* Calls fn(ctx, name, value) for every query-string argument in the order sent (both
 * URL-decoded; value is NULL for an argument without '='), until fn returns false. */
typedef bool (*keel_http_query_fn)(void *ctx, const char *name, const char *value);
void keel_http_request_query_each(const keel_http_request *req, keel_http_query_fn fn, void *ctx);
/* The raw body bytes (NUL-terminated for convenience) and length; "" and 0 when none. */
const char *keel_http_request_body(const keel_http_request *req, size_t *len);
/* The client's address as text. */
const char *keel_http_request_client_ip(const keel_http_request *req);

/* --- responses ------------------------------------------------------------------- */
/* Sets status and a JSON body (the response takes the reference to body). */
void keel_http_respond_json(keel_http_response *resp, unsigned status, json_t *body);
/* Sets status and a body of the given content type (copied). */
void keel_http_respond_raw(keel_http_response *resp, unsigned status, const char *content_type,
                           const char *body, size_t len);
/* keel's one error shape: {"error":{"type":..,"code":..,"message":..,"param":..}}.
 * param may be NULL (then it is JSON null). */
void keel_http_respond_error(keel_http_response *resp, unsigned status, const char *type,
                             const char *code, const char *message, const char *param);
/* Adds a response header (both strings copied). */
void keel_http_response_header(keel_http_response *resp, const char *name, const char *value);

/* Parses the request body as a JSON object. On failure responds 400/415 itself (content
 * type not application/json → 415 "unsupported_media_type"; invalid JSON → 400
 * "invalid_json" with the position in the message) and returns NULL. The caller owns
 * the returned reference. */
json_t *keel_http_request_json(const keel_http_request *req, keel_http_response *resp);

#endif
