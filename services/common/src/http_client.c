/* Outbound HTTP on libcurl with bounded time and size, sorting failures by whether the peer
 * could have acted on the request. */
#include "keel/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_CLIENT_DEFAULT_CONNECT_MS 1000L
#define HTTP_CLIENT_DEFAULT_TOTAL_MS 5000L
#define HTTP_CLIENT_DEFAULT_MAX_BYTES ((size_t)1 << 20)

static pthread_once_t http_client_once = PTHREAD_ONCE_INIT;
static CURLcode http_client_init_code = CURLE_OK;

static void http_client_init_once(void)
{
    http_client_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void keel_http_client_global_init(void)
{
    pthread_once(&http_client_once, http_client_init_once);
}

/* Where one call's answer accumulates. */
typedef struct http_client_sink {
    char *buf;
    size_t len;
    size_t cap;
    size_t max;
    bool too_large;
    keel_http_result *out;
} http_client_sink;

static size_t http_client_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_client_sink *sink = userdata;
    size_t n = size * nmemb;
    if (n > sink->max - sink->len) {
        /* Returning less than n makes curl abort the transfer with CURLE_WRITE_ERROR. */
        sink->too_large = true;
        return 0;
    }
    if (sink->len + n + 1 > sink->cap) {
        size_t cap = sink->cap == 0 ? 4096 : sink->cap;
        while (cap < sink->len + n + 1) {
            cap *= 2;
        }
        if (cap > sink->max + 1) {
            cap = sink->max + 1;
        }
        char *grown = realloc(sink->buf, cap);
        if (grown == NULL) {
            return 0;
        }
        sink->buf = grown;
        sink->cap = cap;
    }
    memcpy(sink->buf + sink->len, data, n);
    sink->len += n;
    sink->buf[sink->len] = '\0';
    return n;
}

static size_t http_client_on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    http_client_sink *sink = userdata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue, say): only the final answer counts. */
        sink->out->retry_after[0] = '\0';
        return n;
    }
    if (n < sizeof name - 1 || strncasecmp(data, name, sizeof name - 1) != 0) {
        return n;
    }
    const char *v = data + sizeof name - 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    size_t len = (size_t)(end - v);
    if (len >= sizeof sink->out->retry_after) {
        len = sizeof sink->out->retry_after - 1;
    }
    memcpy(sink->out->retry_after, v, len);
    sink->out->retry_after[len] = '\0';
    return n;
}

/* The URL without its query string, for messages (queries may carry tokens). */
static void http_client_url_for_log(const char *url, char *out, size_t out_len)
{
    size_t n = strcspn(url, "?#");
    if (n >= out_len) {
        n = out_len - 1;
    }
    memcpy(out, url, n);
    out[n] = '\0';
}

/* Decides whether a failed transfer could have reached the peer. curl records when the
 * connection was set up (CONNECT) and when it was about to send (PRETRANSFER); zero means
 * the step never happened. */
static keel_http_failure http_client_sort(CURL *easy, CURLcode code, const http_client_sink *sink)
{
    if (sink->too_large || code == CURLE_FILESIZE_EXCEEDED) {
        return KEEL_HTTP_TOO_LARGE;
    }
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return KEEL_HTTP_NOT_SENT;
    default:
        break;
    }
    curl_off_t connect_us = 0;
    curl_off_t pretransfer_us = 0;
    if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK) {
        connect_us = 0;
    }
    if (curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us) != CURLE_OK) {
        pretransfer_us = 0;
    }
    if (connect_us == 0 || pretransfer_us == 0) {
        /* Failed while connecting or in the TLS handshake: no request byte left. */
        return KEEL_HTTP_NOT_SENT;
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
        return KEEL_HTTP_TIMEOUT_AFTER_SEND;
    }
    return KEEL_HTTP_TRANSPORT_ERROR;
}

static const char *http_client_failure_hint(keel_http_failure f)
{
    switch (f) {
    case KEEL_HTTP_NOT_SENT:
        return "the request was not sent, so retrying is safe";
    case KEEL_HTTP_TIMEOUT_AFTER_SEND:
        return "the request was sent and the peer may have acted; check before repeating it";
    case KEEL_HTTP_TRANSPORT_ERROR:
        return "the connection failed after the request started; the peer may have acted";
    case KEEL_HTTP_TOO_LARGE:
        return "the answer is larger than the caller's limit";
    case KEEL_HTTP_OK:
        break;
    }
    return "";
}

/* Fills out->error; long URLs or curl details are cut, never overflow. */
static void http_client_set_error(keel_http_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void http_client_set_error(keel_http_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
}

keel_http_failure keel_http_client_do(const keel_http_call *call, keel_http_result *out)
{
    memset(out, 0, sizeof *out);
    keel_http_client_global_init();

    long connect_ms =
        call->connect_timeout_ms > 0 ? call->connect_timeout_ms : HTTP_CLIENT_DEFAULT_CONNECT_MS;
    long total_ms =
        call->total_timeout_ms > 0 ? call->total_timeout_ms : HTTP_CLIENT_DEFAULT_TOTAL_MS;
    size_t max_bytes =
        call->max_response_bytes > 0 ? call->max_response_bytes : HTTP_CLIENT_DEFAULT_MAX_BYTES;
    const char *method = call->method != NULL ? call->method : "GET";
    char url_log[160];
    http_client_url_for_log(call->url != NULL ? call->url : "", url_log, sizeof url_log);

    http_client_sink sink = {.max = max_bytes, .out = out};
    struct curl_slist *headers = NULL;
    struct curl_slist *connect_to = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *easy = NULL;

    if (http_client_init_code != CURLE_OK) {
        out->failure = KEEL_HTTP_NOT_SENT;
        http_client_set_error(out, "%s %s: libcurl failed to initialise (%s)", method, url_log,
                              curl_easy_strerror(http_client_init_code));
        goto done;
    }
    easy = curl_easy_init();
    if (easy == NULL) {
        out->failure = KEEL_HTTP_NOT_SENT;
        snprintf(out->error, sizeof out->error,
                 "%s %s: cannot create a libcurl handle (out of memory?)", method, url_log);
        goto done;
    }
    /* curl waits up to a second for "100 Continue" before sending a large body; the peers we
     * call answer directly, so the wait would only eat into the timeout. */
    bool headers_ok = true;
    for (const char *const *h = call->headers; h != NULL && *h != NULL && headers_ok; h++) {
        struct curl_slist *grown = curl_slist_append(headers, *h);
        headers_ok = grown != NULL;
        headers = grown != NULL ? grown : headers;
    }
    if (headers_ok) {
        struct curl_slist *grown = curl_slist_append(headers, "Expect:");
        headers_ok = grown != NULL;
        headers = grown != NULL ? grown : headers;
    }
    if (!headers_ok) {
        out->failure = KEEL_HTTP_NOT_SENT;
        http_client_set_error(out, "%s %s: out of memory building the headers", method, url_log);
        goto done;
    }

    if (call->connect_address != NULL) {
        /* "::ADDR:" matches every host and port of the URL and connects to ADDR on the URL's
         * port: no name is resolved at all. */
        char entry[80];
        bool v6 = strchr(call->connect_address, ':') != NULL;
        if (strlen(call->connect_address) > 64 || strpbrk(call->connect_address, "[]/ ") != NULL) {
            out->failure = KEEL_HTTP_NOT_SENT;
            http_client_set_error(out, "%s %s: connect address \"%.64s\" is not an IP literal",
                                  method, url_log, call->connect_address);
            goto done;
        }
        snprintf(entry, sizeof entry, v6 ? "::[%s]:" : "::%s:", call->connect_address);
        connect_to = curl_slist_append(NULL, entry);
        if (connect_to == NULL) {
            out->failure = KEEL_HTTP_NOT_SENT;
            http_client_set_error(out, "%s %s: out of memory pinning the address", method, url_log);
            goto done;
        }
        curl_easy_setopt(easy, CURLOPT_CONNECT_TO, connect_to);
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
    }
    curl_easy_setopt(easy, CURLOPT_URL, call->url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_client_on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, http_client_on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &sink);
    if (call->body != NULL) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode code = curl_easy_perform(easy);
    if (code == CURLE_OK) {
        out->failure = KEEL_HTTP_OK;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out->status);
        if (sink.len > 0) {
            out->body = sink.buf;
            out->body_len = sink.len;
            sink.buf = NULL;
        }
        goto done;
    }
    out->failure = http_client_sort(easy, code, &sink);
    if (out->failure == KEEL_HTTP_TOO_LARGE) {
        http_client_set_error(out, "%s %s: the answer exceeds %zu bytes; %s", method, url_log,
                              max_bytes, http_client_failure_hint(out->failure));
    } else {
        http_client_set_error(out, "%s %s: %s (%s); %s", method, url_log, curl_easy_strerror(code),
                              errbuf[0] != '\0' ? errbuf : "no detail",
                              http_client_failure_hint(out->failure));
    }

done:
    free(sink.buf);
    sink.buf = NULL;
    curl_slist_free_all(headers);
    headers = NULL;
    curl_slist_free_all(connect_to);
    connect_to = NULL;
    if (easy != NULL) {
        curl_easy_cleanup(easy);
        easy = NULL;
    }
    return out->failure;
}

void keel_http_result_clear(keel_http_result *r)
{
    if (r == NULL) {
        return;
    }
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
