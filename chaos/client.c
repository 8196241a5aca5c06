/* The chaos driver's kept-alive HTTP client (see client.h for why it is not libkeel's). */
#include "client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct chaos_client {
    CURL *easy;
};

typedef struct chaos_client_sink {
    keel_http_result *out;
    char *buf;
    size_t len;
    size_t max;
    bool too_large;
} chaos_client_sink;

chaos_client *chaos_client_new(void)
{
    chaos_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    keel_http_client_global_init();
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void chaos_client_free(chaos_client *c)
{
    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->easy);
    c->easy = NULL;
    free(c);
}

/* Keeps at most max bytes of the answer; one byte more aborts the transfer. */
static size_t chaos_client_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    chaos_client_sink *sink = userdata;
    size_t n = size * nmemb;
    if (n > sink->max - sink->len) {
        sink->too_large = true;
        return 0;
    }
    char *grown = realloc(sink->buf, sink->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    sink->buf = grown;
    memcpy(sink->buf + sink->len, data, n);
    sink->len += n;
    sink->buf[sink->len] = '\0';
    return n;
}

/* Copies the whole-seconds Retry-After of the final answer. */
static size_t chaos_client_on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    chaos_client_sink *sink = userdata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        sink->out->retry_after[0] = '\0';
    } else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        size_t v = sizeof(name) - 1;
        size_t len = strspn(data + v, " \t");
        v += len;
        len = strspn(data + v, "0123456789");
        if (len >= sizeof(sink->out->retry_after)) {
            len = sizeof(sink->out->retry_after) - 1;
        }
        memcpy(sink->out->retry_after, data + v, len);
        sink->out->retry_after[len] = '\0';
    }
    return n;
}

/* Whether the peer may have acted: nothing was sent unless a connection stood and the request
 * went out (CURLINFO_PRETRANSFER_TIME is set once it is about to be sent). */
static keel_http_failure chaos_client_sort(CURL *easy, CURLcode code, const chaos_client_sink *sink)
{
    curl_off_t pretransfer_us = 0;
    if (sink->too_large || code == CURLE_FILESIZE_EXCEEDED) {
        return KEEL_HTTP_TOO_LARGE;
    }
    if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
        code == CURLE_URL_MALFORMAT) {
        return KEEL_HTTP_NOT_SENT;
    }
    if (curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us) != CURLE_OK ||
        pretransfer_us == 0) {
        return KEEL_HTTP_NOT_SENT;
    }
    return code == CURLE_OPERATION_TIMEDOUT ? KEEL_HTTP_TIMEOUT_AFTER_SEND
                                            : KEEL_HTTP_TRANSPORT_ERROR;
}

keel_http_failure chaos_client_do(chaos_client *c, const keel_http_call *call,
                                  keel_http_result *out)
{
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    const char *method = call->method != NULL ? call->method : "GET";
    chaos_client_sink sink = {
        .out = out, .max = call->max_response_bytes > 0 ? call->max_response_bytes : 1 << 20};

    memset(out, 0, sizeof(*out));
    for (const char *const *h = call->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *grown = curl_slist_append(headers, *h);
        if (grown == NULL) {
            out->failure = KEEL_HTTP_NOT_SENT;
            snprintf(out->error, sizeof(out->error), "out of memory building the headers");
            goto done;
        }
        headers = grown;
    }
    /* No "Expect: 100-continue" wait before a body: the gateway answers directly. */
    struct curl_slist *grown = curl_slist_append(headers, "Expect:");
    if (grown == NULL) {
        out->failure = KEEL_HTTP_NOT_SENT;
        snprintf(out->error, sizeof(out->error), "out of memory building the headers");
        goto done;
    }
    headers = grown;
    /* Reset drops the previous call's options but keeps the connection cache. */
    curl_easy_reset(c->easy);
    curl_easy_setopt(c->easy, CURLOPT_URL, call->url);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     call->connect_timeout_ms > 0 ? call->connect_timeout_ms : 1000L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
                     call->total_timeout_ms > 0 ? call->total_timeout_ms : 5000L);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, chaos_client_on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, chaos_client_on_header);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, &sink);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, call->body != NULL ? call->body : "");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode code = curl_easy_perform(c->easy);
    if (code == CURLE_OK) {
        out->failure = KEEL_HTTP_OK;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = sink.buf;
        out->body_len = sink.len;
        sink.buf = NULL;
    } else {
        out->failure = chaos_client_sort(c->easy, code, &sink);
        /* The detail first: it is what a person needs when the line is cut. */
        snprintf(out->error, sizeof(out->error), "%s (%.120s) on %.8s %.100s",
                 curl_easy_strerror(code), errbuf[0] != '\0' ? errbuf : "no detail", method,
                 call->url);
    }
done:
    free(sink.buf);
    sink.buf = NULL;
    curl_slist_free_all(headers);
    headers = NULL;
    return out->failure;
}
