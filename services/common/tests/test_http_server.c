/* Tests of the libmicrohttpd server over real loopback sockets, driven with plain libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/metrics.h"

#define TEST_MAX_BODY 1024

typedef struct test_reply {
    long status;
    char *body;
    size_t len;
    char content_type[128];
    char allow[128];
} test_reply;

typedef struct test_upload {
    const char *data;
    size_t len;
    size_t off;
} test_upload;

static atomic_int test_echo_calls;
static atomic_bool test_ready;
static atomic_bool test_slow_started;
static atomic_bool test_slow_finished;

static void test_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static size_t test_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    test_reply *r = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);
    assert_non_null(grown);
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void test_copy_header(char *dst, size_t dst_len, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n')) {
        n--;
    }
    if (n >= dst_len) {
        n = dst_len - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t test_on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    test_reply *r = userdata;
    size_t n = size * nmemb;
    if (n > 13 && strncasecmp(data, "Content-Type:", 13) == 0) {
        test_copy_header(r->content_type, sizeof r->content_type, data + 13, n - 13);
    } else if (n > 6 && strncasecmp(data, "Allow:", 6) == 0) {
        test_copy_header(r->allow, sizeof r->allow, data + 6, n - 6);
    }
    return n;
}

static size_t test_on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    test_upload *u = userdata;
    size_t n = size * nitems;
    if (n > u->len - u->off) {
        n = u->len - u->off;
    }
    memcpy(buf, u->data + u->off, n);
    u->off += n;
    return n;
}

/* One request; headers is a NULL-terminated list. chunked sends the body without a length. */
static void test_request_ex(uint16_t port, const char *method, const char *path,
                            const char *const *headers, const char *body, size_t body_len,
                            bool chunked, test_reply *out)
{
    memset(out, 0, sizeof *out);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
        hl = curl_slist_append(hl, *h);
    }
    test_upload up = {.data = body, .len = body_len};
    if (chunked) {
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, test_on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, test_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fail_msg("%s %s failed: %s", method, path, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static void test_request(uint16_t port, const char *method, const char *path,
                         const char *content_type, const char *body, test_reply *out)
{
    char ct[160];
    const char *headers[] = {NULL, NULL};
    if (content_type != NULL) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        headers[0] = ct;
    }
    test_request_ex(port, method, path, headers, body, body != NULL ? strlen(body) : 0, false, out);
}

static void test_reply_clear(test_reply *r)
{
    free(r->body);
    r->body = NULL;
}

static json_t *test_reply_json(const test_reply *r)
{
    json_error_t err;
    json_t *doc = json_loadb(r->body != NULL ? r->body : "", r->len, 0, &err);
    if (doc == NULL) {
        fail_msg("reply is not JSON (%s): %s", err.text, r->body != NULL ? r->body : "");
    }
    return doc;
}

/* Asserts keel's error shape with the given status and code. */
static void test_assert_error(const test_reply *r, long status, const char *type, const char *code)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/json");
    json_t *doc = test_reply_json(r);
    json_t *err = json_object_get(doc, "error");
    assert_true(json_is_object(err));
    assert_string_equal(json_string_value(json_object_get(err, "type")), type);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    assert_true(json_is_null(json_object_get(err, "param")));
    json_decref(doc);
}

/* --- handlers -------------------------------------------------------------------------- */

static void handle_item(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    const char *q = keel_http_request_query(req, "q");
    const char *h = keel_http_request_header(req, "x-TEST-header");
    keel_http_respond_json(
        resp, 200,
        json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s}", "id", keel_http_request_param(req, "id"), "method",
                  keel_http_request_method(req), "path", keel_http_request_path(req), "q", q,
                  "header", h, "ip", keel_http_request_client_ip(req)));
}

static void handle_note(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    keel_http_respond_json(resp, 201,
                           json_pack("{s:s,s:s,s:b}", "id", keel_http_request_param(req, "id"),
                                     "note", keel_http_request_param(req, "note"), "missing",
                                     keel_http_request_param(req, "nope") == NULL));
}

static void handle_echo(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    atomic_fetch_add(&test_echo_calls, 1);
    size_t len = 0;
    const char *body = keel_http_request_body(req, &len);
    keel_http_response_header(resp, "X-Body-Length", "set");
    keel_http_respond_raw(resp, 200, "application/octet-stream", body, len);
}

static void handle_json(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    json_t *doc = keel_http_request_json(req, resp);
    if (doc == NULL) {
        return;
    }
    keel_http_respond_json(resp, 200, json_pack("{s:o}", "got", doc));
}

static void handle_silent(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
}

static void handle_trace(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    keel_http_respond_json(resp, 200, json_pack("{s:s?}", "trace", keel_log_trace_id()));
}

static void handle_slow(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    atomic_store(&test_slow_started, true);
    test_sleep_ms(700);
    atomic_store(&test_slow_finished, true);
    keel_http_respond_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

static bool test_is_ready(void *ctx)
{
    return atomic_load((atomic_bool *)ctx);
}

/* --- fixture --------------------------------------------------------------------------- */

static keel_http_server *test_server_new(unsigned threads)
{
    keel_http_server_options opts = {
        .address = "127.0.0.1",
        .port = 0,
        .threads = threads,
        .max_body_bytes = TEST_MAX_BODY,
        .connection_timeout_s = 5,
        .ready = test_is_ready,
        .ready_ctx = &test_ready,
    };
    keel_http_server *srv = keel_http_server_new(&opts);
    assert_non_null(srv);
    keel_http_server_route(srv, "GET", "/v1/items/:id", handle_item, NULL);
    keel_http_server_route(srv, "POST", "/v1/items/:id/notes/:note", handle_note, NULL);
    keel_http_server_route(srv, "POST", "/v1/echo", handle_echo, NULL);
    keel_http_server_route(srv, "PUT", "/v1/echo", handle_echo, NULL);
    keel_http_server_route(srv, "POST", "/v1/json", handle_json, NULL);
    keel_http_server_route(srv, "GET", "/v1/silent", handle_silent, NULL);
    keel_http_server_route(srv, "GET", "/v1/trace", handle_trace, NULL);
    keel_http_server_route(srv, "GET", "/v1/slow", handle_slow, NULL);
    char err[256] = "";
    if (keel_http_server_start(srv, err, sizeof err) != 0) {
        fail_msg("start failed: %s", err);
    }
    assert_int_not_equal(keel_http_server_port(srv), 0);
    return srv;
}

static int setup(void **state)
{
    atomic_store(&test_ready, true);
    *state = test_server_new(4);
    return 0;
}

static int teardown(void **state)
{
    keel_http_server_free(*state);
    *state = NULL;
    return 0;
}

static uint16_t port_of(void **state)
{
    return keel_http_server_port(*state);
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_routes_and_params(void **state)
{
    test_reply r;
    const char *hdr[] = {"X-Test-Header: hello", NULL};
    test_request_ex(port_of(state), "GET", "/v1/items/pay_42?q=a%20b", hdr, NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = test_reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "pay_42");
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(doc, "path")), "/v1/items/pay_42");
    assert_string_equal(json_string_value(json_object_get(doc, "q")), "a b");
    assert_string_equal(json_string_value(json_object_get(doc, "header")), "hello");
    assert_string_equal(json_string_value(json_object_get(doc, "ip")), "127.0.0.1");
    json_decref(doc);
    test_reply_clear(&r);

    test_request(port_of(state), "POST", "/v1/items/7/notes/n1", NULL, NULL, &r);
    assert_int_equal(r.status, 201);
    doc = test_reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), "7");
    assert_string_equal(json_string_value(json_object_get(doc, "note")), "n1");
    assert_true(json_is_true(json_object_get(doc, "missing")));
    json_decref(doc);
    test_reply_clear(&r);

    /* A HEAD request is answered by the GET route, without a body. */
    test_request(port_of(state), "HEAD", "/v1/items/9", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    test_reply_clear(&r);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    test_reply r;
    test_request(port_of(state), "GET", "/v1/nothing/here", NULL, NULL, &r);
    test_assert_error(&r, 404, "invalid_request_error", "route_not_found");
    test_reply_clear(&r);

    /* A parameter never matches an empty segment, and extra segments do not match. */
    test_request(port_of(state), "GET", "/v1/items/", NULL, NULL, &r);
    test_assert_error(&r, 404, "invalid_request_error", "route_not_found");
    test_reply_clear(&r);
    test_request(port_of(state), "GET", "/v1/items/1/extra", NULL, NULL, &r);
    test_assert_error(&r, 404, "invalid_request_error", "route_not_found");
    test_reply_clear(&r);

    test_request(port_of(state), "DELETE", "/v1/items/1", NULL, NULL, &r);
    test_assert_error(&r, 405, "invalid_request_error", "method_not_allowed");
    assert_string_equal(r.allow, "GET");
    test_reply_clear(&r);

    test_request(port_of(state), "GET", "/v1/echo", NULL, NULL, &r);
    test_assert_error(&r, 405, "invalid_request_error", "method_not_allowed");
    assert_string_equal(r.allow, "POST, PUT");
    test_reply_clear(&r);
}

static void test_body_limit(void **state)
{
    char *big = malloc(TEST_MAX_BODY + 2);
    assert_non_null(big);
    memset(big, 'x', TEST_MAX_BODY + 1);
    big[TEST_MAX_BODY + 1] = '\0';
    test_reply r;

    /* Exactly the limit is accepted and handed over intact. */
    int before = atomic_load(&test_echo_calls);
    test_request_ex(port_of(state), "POST", "/v1/echo", NULL, big, TEST_MAX_BODY, false, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, TEST_MAX_BODY);
    assert_memory_equal(r.body, big, TEST_MAX_BODY);
    assert_int_equal(atomic_load(&test_echo_calls), before + 1);
    test_reply_clear(&r);

    /* One byte more, announced by Content-Length: 413 and the handler never runs. */
    test_request_ex(port_of(state), "POST", "/v1/echo", NULL, big, TEST_MAX_BODY + 1, false, &r);
    test_assert_error(&r, 413, "invalid_request_error", "body_too_large");
    test_reply_clear(&r);

    /* The same without a Content-Length (chunked): found while reading, still 413. */
    test_request_ex(port_of(state), "PUT", "/v1/echo", NULL, big, TEST_MAX_BODY + 1, true, &r);
    test_assert_error(&r, 413, "invalid_request_error", "body_too_large");
    test_reply_clear(&r);
    assert_int_equal(atomic_load(&test_echo_calls), before + 1);

    /* A small chunked body still works. */
    test_request_ex(port_of(state), "PUT", "/v1/echo", NULL, "abc", 3, true, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abc");
    test_reply_clear(&r);
    free(big);
}

static void test_json_content_type(void **state)
{
    test_reply r;
    test_request(port_of(state), "POST", "/v1/json", "text/plain", "{\"a\":1}", &r);
    test_assert_error(&r, 415, "invalid_request_error", "unsupported_media_type");
    test_reply_clear(&r);

    test_request(port_of(state), "POST", "/v1/json", NULL, "{\"a\":1}", &r);
    /* curl sends application/x-www-form-urlencoded by default. */
    test_assert_error(&r, 415, "invalid_request_error", "unsupported_media_type");
    test_reply_clear(&r);

    test_request(port_of(state), "POST", "/v1/json", "application/jsonx", "{\"a\":1}", &r);
    test_assert_error(&r, 415, "invalid_request_error", "unsupported_media_type");
    test_reply_clear(&r);

    test_request(port_of(state), "POST", "/v1/json", "Application/JSON; charset=utf-8", "{\"a\":1}",
                 &r);
    assert_int_equal(r.status, 200);
    json_t *doc = test_reply_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "got"), "a")), 1);
    json_decref(doc);
    test_reply_clear(&r);
}

/* {"a":[[...[1]...]]} nested depth levels deep (the object counts as one). */
static char *test_nested(int depth)
{
    size_t n = (size_t)depth * 2 + 16;
    char *s = malloc(n);
    assert_non_null(s);
    size_t o = 0;
    memcpy(s, "{\"a\":", 5);
    o += 5;
    for (int i = 1; i < depth; i++) {
        s[o++] = '[';
    }
    s[o++] = '1';
    for (int i = 1; i < depth; i++) {
        s[o++] = ']';
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static void test_invalid_json(void **state)
{
    static const char *const bad[] = {
        "{\"a\":",            /* truncated */
        "[1,2]",              /* not an object */
        "\"text\"",           /* not an object */
        "{\"a\":1,\"a\":2}",  /* duplicate key */
        "",                   /* empty */
        "{\"a\":1} trailing", /* garbage after the document */
    };
    test_reply r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_request(port_of(state), "POST", "/v1/json", "application/json", bad[i], &r);
        test_assert_error(&r, 400, "invalid_request_error", "invalid_json");
        test_reply_clear(&r);
    }

    test_request(port_of(state), "POST", "/v1/json", "application/json", "{\"a\":\n  tru}", &r);
    test_assert_error(&r, 400, "invalid_request_error", "invalid_json");
    assert_non_null(strstr(r.body, "line 2"));
    test_reply_clear(&r);

    /* Nesting: 32 levels parse, 33 are refused; brackets inside strings do not count. */
    char *ok = test_nested(32);
    test_request(port_of(state), "POST", "/v1/json", "application/json", ok, &r);
    assert_int_equal(r.status, 200);
    test_reply_clear(&r);
    char *deep = test_nested(33);
    test_request(port_of(state), "POST", "/v1/json", "application/json", deep, &r);
    test_assert_error(&r, 400, "invalid_request_error", "invalid_json");
    assert_non_null(strstr(r.body, "deeper than 32"));
    test_reply_clear(&r);
    free(ok);
    free(deep);

    char strings[200];
    snprintf(strings, sizeof strings, "{\"s\":\"%s\"}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\\\"");
    test_request(port_of(state), "POST", "/v1/json", "application/json", strings, &r);
    assert_int_equal(r.status, 200);
    test_reply_clear(&r);
}

static void test_handler_without_response(void **state)
{
    test_reply r;
    test_request(port_of(state), "GET", "/v1/silent", NULL, NULL, &r);
    test_assert_error(&r, 500, "api_error", "internal_error");
    test_reply_clear(&r);
}

static void test_metrics_endpoint(void **state)
{
    keel_metric *probe = keel_metrics_counter(keel_metrics_default(), "test_http_probe_total",
                                              "A counter this test registers", "kind=\"probe\"");
    keel_metric_add(probe, 3);
    test_reply r;
    test_request(port_of(state), "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4");
    assert_non_null(strstr(r.body, "# TYPE test_http_probe_total counter"));
    assert_non_null(strstr(r.body, "test_http_probe_total{kind=\"probe\"} 3"));
    test_reply_clear(&r);
}

static void test_health_and_readiness(void **state)
{
    test_reply r;
    test_request(port_of(state), "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    test_reply_clear(&r);

    atomic_store(&test_ready, false);
    test_request(port_of(state), "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body, "{\"status\":\"not_ready\"}");
    test_reply_clear(&r);

    atomic_store(&test_ready, true);
    test_request(port_of(state), "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    test_reply_clear(&r);
}

static double test_counter(const char *labels)
{
    return keel_metric_value(keel_metrics_counter(
        keel_metrics_default(), "keel_http_requests_total", "HTTP requests answered", labels));
}

static void test_request_metrics(void **state)
{
    const char *ok = "route=\"/v1/items/:id\",method=\"GET\",status=\"200\"";
    const char *not_found = "route=\"unmatched\",method=\"GET\",status=\"404\"";
    const char *not_allowed = "route=\"/v1/items/:id\",method=\"DELETE\",status=\"405\"";
    const char *odd = "route=\"/v1/items/:id\",method=\"other\",status=\"405\"";
    double ok0 = test_counter(ok);
    double nf0 = test_counter(not_found);
    double na0 = test_counter(not_allowed);
    double odd0 = test_counter(odd);
    test_reply r;
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/items/metric-%d", i);
        test_request(port_of(state), "GET", path, NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        test_reply_clear(&r);
    }
    test_request(port_of(state), "GET", "/v1/unknown-raw-path-xyz", NULL, NULL, &r);
    test_reply_clear(&r);
    test_request(port_of(state), "DELETE", "/v1/items/1", NULL, NULL, &r);
    test_reply_clear(&r);
    test_request(port_of(state), "BREW", "/v1/items/1", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    test_reply_clear(&r);

    assert_true(test_counter(ok) == ok0 + 3);
    assert_true(test_counter(not_found) == nf0 + 1);
    assert_true(test_counter(not_allowed) == na0 + 1);
    assert_true(test_counter(odd) == odd0 + 1);

    char *text = keel_metrics_render(keel_metrics_default());
    assert_non_null(text);
    assert_non_null(
        strstr(text, "keel_http_request_duration_seconds_count{route=\"/v1/items/:id\"}"));
    /* Raw paths never become label values. */
    assert_null(strstr(text, "metric-1"));
    assert_null(strstr(text, "unknown-raw-path-xyz"));
    assert_null(strstr(text, "BREW"));
    free(text);
}

static void test_traceparent(void **state)
{
    /* One thread, so the second request runs where the first set the trace id. */
    keel_http_server *srv = test_server_new(1);
    uint16_t port = keel_http_server_port(srv);
    test_reply r;
    const char *tp[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        NULL};
    test_request_ex(port, "GET", "/v1/trace", tp, NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}");
    test_reply_clear(&r);

    test_request(port, "GET", "/v1/trace", NULL, NULL, &r);
    assert_string_equal(r.body, "{\"trace\":null}");
    test_reply_clear(&r);

    const char *bad[] = {"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                         NULL};
    test_request_ex(port, "GET", "/v1/trace", bad, NULL, 0, false, &r);
    assert_string_equal(r.body, "{\"trace\":null}");
    test_reply_clear(&r);
    keel_http_server_free(srv);
}

static void test_port_taken(void **state)
{
    keel_http_server_options opts = {.address = "127.0.0.1", .port = port_of(state)};
    keel_http_server *srv = keel_http_server_new(&opts);
    char err[256] = "";
    assert_int_equal(keel_http_server_start(srv, err, sizeof err), -1);
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)port_of(state));
    assert_non_null(strstr(err, port));
    keel_http_server_free(srv);

    keel_http_server_options bad = {.address = "not-an-address"};
    srv = keel_http_server_new(&bad);
    assert_int_equal(keel_http_server_start(srv, err, sizeof err), -1);
    assert_non_null(strstr(err, "not-an-address"));
    keel_http_server_free(srv);
}

static void *test_call_slow(void *arg)
{
    test_reply r;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/slow", (unsigned)*(uint16_t *)arg);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_perform(c); /* the server may close before answering: only the wait matters */
    curl_easy_cleanup(c);
    test_reply_clear(&r);
    return NULL;
}

static void test_free_waits_for_handlers(void **state)
{
    keel_http_server *srv = test_server_new(2);
    uint16_t port = keel_http_server_port(srv);
    atomic_store(&test_slow_started, false);
    atomic_store(&test_slow_finished, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, test_call_slow, &port), 0);
    for (int i = 0; i < 500 && !atomic_load(&test_slow_started); i++) {
        test_sleep_ms(10);
    }
    assert_true(atomic_load(&test_slow_started));
    assert_false(atomic_load(&test_slow_finished)); /* the handler is now sleeping */
    keel_http_server_free(srv);
    assert_true(atomic_load(&test_slow_finished));
    pthread_join(t, NULL);
}

static bool test_collect_query(void *ctx, const char *name, const char *value)
{
    json_array_append_new(ctx, json_pack("[s,s?]", name, value));
    return true;
}

static void handle_query(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    json_t *pairs = json_array();
    keel_http_request_query_each(req, test_collect_query, pairs);
    keel_http_respond_json(resp, 200, json_pack("{s:o}", "pairs", pairs));
}

/* keel_http_request_query_each sees every argument in order, decoded, repeats included; and
 * max_header_bytes answers 431 with keel's error object, counting headers and query. */
static void test_query_each_and_header_limit(void **state)
{
    keel_http_server_options opts = {.address = "127.0.0.1", .threads = 2, .max_header_bytes = 400};
    keel_http_server *srv = keel_http_server_new(&opts);
    char err[256] = "";
    char big[600];
    char path[480];
    const char *headers[] = {big, NULL};
    test_reply r;

    keel_http_server_route(srv, "GET", "/v1/query", handle_query, NULL);
    if (keel_http_server_start(srv, err, sizeof err) != 0) {
        fail_msg("start failed: %s", err);
    }
    uint16_t port = keel_http_server_port(srv);
    test_request(port, "GET", "/v1/query?a=1&b=&c&a=2&created%5Bgte%5D=x%2By", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = test_reply_json(&r);
    char *pairs = json_dumps(json_object_get(j, "pairs"), JSON_COMPACT);
    assert_string_equal(
        pairs,
        "[[\"a\",\"1\"],[\"b\",\"\"],[\"c\",null],[\"a\",\"2\"],[\"created[gte]\",\"x+y\"]]");
    free(pairs);
    json_decref(j);
    test_reply_clear(&r);

    /* 600 bytes of one header: over the 400-byte limit; 100 bytes: under it. */
    memset(big, 'h', sizeof big);
    memcpy(big, "X-Big: ", 7);
    big[sizeof big - 1] = '\0';
    test_request_ex(port, "GET", "/v1/query", headers, NULL, 0, false, &r);
    test_assert_error(&r, 431, "invalid_request_error", "headers_too_large");
    test_reply_clear(&r);
    big[100] = '\0';
    test_request_ex(port, "GET", "/v1/query", headers, NULL, 0, false, &r);
    assert_int_equal(r.status, 200);
    test_reply_clear(&r);
    /* A long query string counts too. */
    memset(path, 'q', sizeof path);
    memcpy(path, "/v1/query?q=", 12);
    path[sizeof path - 1] = '\0';
    test_request(port, "GET", path, NULL, NULL, &r);
    test_assert_error(&r, 431, "invalid_request_error", "headers_too_large");
    test_reply_clear(&r);
    keel_http_server_free(srv);
}

int main(void)
{
    keel_log_init("test_http_server", KEEL_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_without_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_and_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traceparent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_waits_for_handlers, setup, teardown),
        cmocka_unit_test(test_query_each_and_header_limit),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
