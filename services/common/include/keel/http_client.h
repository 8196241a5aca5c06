/* Outbound HTTP on libcurl: every call has a connect and a total timeout and a size cap, and
 * failures are sorted so callers know whether the peer could have acted on the request. */
#ifndef KEEL_HTTP_CLIENT_H
#define KEEL_HTTP_CLIENT_H

#include <stddef.h>

typedef enum keel_http_failure {
    KEEL_HTTP_OK = 0,             /* an HTTP answer arrived (any status) */
    KEEL_HTTP_NOT_SENT,           /* connection refused, DNS failure, connect timeout: the
                                     request never reached the peer */
    KEEL_HTTP_TIMEOUT_AFTER_SEND, /* connected and sent, then no full answer in time: the
                                     peer may have acted */
    KEEL_HTTP_TRANSPORT_ERROR,    /* reset or other error after connecting: may have acted */
    KEEL_HTTP_TOO_LARGE,          /* the answer exceeded max_response_bytes */
} keel_http_failure;

typedef struct keel_http_call {
    const char *method; /* "GET", "POST", ... */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" strings, or NULL */
    const char *body;           /* may be NULL */
    size_t body_len;
    long connect_timeout_ms;   /* 0 = 1000 */
    long total_timeout_ms;     /* 0 = 5000 */
    size_t max_response_bytes; /* 0 = 1 MiB */
    /* An IPv4/IPv6 literal (no brackets) to connect to instead of resolving the URL's host:
     * pins the address a caller checked (see keel/ssrf.h), so DNS cannot change it between
     * the check and the connection. The URL's host still goes into Host and TLS (SNI,
     * certificate). Proxies are bypassed when set. NULL = resolve as usual. */
    const char *connect_address;
} keel_http_call;

typedef struct keel_http_result {
    keel_http_failure failure;
    long status; /* the HTTP status when failure == KEEL_HTTP_OK */
    char *body;  /* malloc'd, NUL-terminated; NULL when none. Free with _result_clear */
    size_t body_len;
    char retry_after[64]; /* the Retry-After header if present, else "" */
    char error[256];      /* a human-readable reason when failure != KEEL_HTTP_OK */
} keel_http_result;

/* One-time global init (curl_global_init); call once in main before threads start. */
void keel_http_client_global_init(void);

/* Performs one call, blocking up to its total timeout. Never retries by itself. Thread-safe
 * (each call uses its own easy handle). Always fills out; returns out->failure. */
keel_http_failure keel_http_client_do(const keel_http_call *call, keel_http_result *out);
void keel_http_result_clear(keel_http_result *r);

#endif
