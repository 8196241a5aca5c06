/* Tests of the libcurl client against a real keel_http_server and raw loopback sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "keel/http_client.h"
#include "keel/http_server.h"
#include "keel/log.h"

#define TEST_BIG_BYTES 65536

static atomic_int test_slow_calls;

static void test_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* --- handlers of the server under call ------------------------------------------------ */

static void handle_hello(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    keel_http_respond_json(resp, 200, json_pack("{s:s}", "hello", "world"));
}

static void handle_echo(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    size_t len = 0;
    const char *body = keel_http_request_body(req, &len);
    const char *h = keel_http_request_header(req, "X-Caller");
    keel_http_respond_json(resp, 200,
                           json_pack("{s:s,s:s%,s:s?}", "method", keel_http_request_method(req),
                                     "body", body, len, "caller", h));
}

static void handle_slow(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    atomic_fetch_add(&test_slow_calls, 1);
    test_sleep_ms(1500);
    keel_http_respond_json(resp, 200, json_pack("{s:b}", "late", 1));
}

static void handle_big(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    char *big = malloc(TEST_BIG_BYTES);
    assert_non_null(big);
    memset(big, 'b', TEST_BIG_BYTES);
    keel_http_respond_raw(resp, 200, "application/octet-stream", big, TEST_BIG_BYTES);
    free(big);
}

static void handle_busy(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    keel_http_response_header(resp, "Retry-After", "7");
    keel_http_respond_error(resp, 503, "api_error", "overloaded", "try again later", NULL);
}

static int setup(void **state)
{
    keel_http_server_options opts = {.address = "127.0.0.1", .threads = 2};
    keel_http_server *srv = keel_http_server_new(&opts);
    assert_non_null(srv);
    keel_http_server_route(srv, "GET", "/hello", handle_hello, NULL);
    keel_http_server_route(srv, "POST", "/echo", handle_echo, NULL);
    keel_http_server_route(srv, "PUT", "/echo", handle_echo, NULL);
    keel_http_server_route(srv, "GET", "/slow", handle_slow, NULL);
    keel_http_server_route(srv, "GET", "/big", handle_big, NULL);
    keel_http_server_route(srv, "GET", "/busy", handle_busy, NULL);
    char err[256] = "";
    if (keel_http_server_start(srv, err, sizeof err) != 0) {
        fail_msg("server start failed: %s", err);
    }
    *state = srv;
    return 0;
}

static int teardown(void **state)
{
    keel_http_server_free(*state);
    *state = NULL;
    return 0;
}

static void test_url(void **state, const char *path, char *out, size_t out_len)
{
    snprintf(out, out_len, "http://127.0.0.1:%u%s", (unsigned)keel_http_server_port(*state), path);
}

/* --- a raw server for answers keel_http_server would never give ----------------------- */

typedef struct raw_server {
    int fd;
    uint16_t port;
    const char *answer; /* written after the request head; NULL = close without answering */
    size_t filler;      /* then this many 'f' bytes */
    pthread_t thread;
} raw_server;

static void *raw_server_run(void *arg)
{
    raw_server *rs = arg;
    int c = accept(rs->fd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = recv(c, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL) {
            break;
        }
    }
    if (rs->answer != NULL) {
        (void)!send(c, rs->answer, strlen(rs->answer), MSG_NOSIGNAL);
        char chunk[1024];
        memset(chunk, 'f', sizeof chunk);
        for (size_t sent = 0; sent < rs->filler;) {
            size_t n = rs->filler - sent < sizeof chunk ? rs->filler - sent : sizeof chunk;
            ssize_t w = send(c, chunk, n, MSG_NOSIGNAL);
            if (w <= 0) {
                break;
            }
            sent += (size_t)w;
        }
    }
    close(c);
    return NULL;
}

static void raw_server_start(raw_server *rs)
{
    rs->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rs->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(rs->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(rs->fd, 4), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(rs->fd, (struct sockaddr *)&sa, &len), 0);
    rs->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&rs->thread, NULL, raw_server_run, rs), 0);
}

static void raw_server_stop(raw_server *rs)
{
    pthread_join(rs->thread, NULL);
    close(rs->fd);
    rs->fd = -1;
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_get(void **state)
{
    char url[128];
    test_url(state, "/hello", url, sizeof url);
    keel_http_call call = {.method = "GET", .url = url};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.failure, KEEL_HTTP_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "{\"hello\":\"world\"}");
    assert_int_equal(res.body_len, strlen("{\"hello\":\"world\"}"));
    assert_string_equal(res.retry_after, "");
    keel_http_result_clear(&res);
    assert_null(res.body);

    /* Any HTTP answer is OK at this level, 404 included. */
    test_url(state, "/nowhere", url, sizeof url);
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.status, 404);
    keel_http_result_clear(&res);
}

static void test_post_and_put(void **state)
{
    char url[128];
    test_url(state, "/echo", url, sizeof url);
    const char *headers[] = {"Content-Type: application/json", "X-Caller: test", NULL};
    static const char body[] = "{\"amount\":1250}";
    keel_http_call call = {.method = "POST",
                           .url = url,
                           .headers = headers,
                           .body = body,
                           .body_len = sizeof body - 1};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.status, 200);
    json_t *doc = json_loads(res.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), body);
    assert_string_equal(json_string_value(json_object_get(doc, "caller")), "test");
    json_decref(doc);
    keel_http_result_clear(&res);

    call.method = "PUT";
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    doc = json_loads(res.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "PUT");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), body);
    json_decref(doc);
    keel_http_result_clear(&res);

    /* POST without a body still sends an empty one. */
    call.method = "POST";
    call.body = NULL;
    call.body_len = 0;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    doc = json_loads(res.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "");
    json_decref(doc);
    keel_http_result_clear(&res);
}

static void test_not_sent_on_closed_port(void **state)
{
    /* A port that was just free: bind, learn it, close. Nothing listens there now. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/charge?token=secret", ntohs(sa.sin_port));
    keel_http_call call = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_NOT_SENT);
    assert_int_equal(res.failure, KEEL_HTTP_NOT_SENT);
    assert_null(res.body);
    assert_non_null(strstr(res.error, "/charge"));
    assert_null(strstr(res.error, "secret"));
    keel_http_result_clear(&res);

    /* Schemes other than http and https are refused before anything is sent. */
    keel_http_call file = {.method = "GET", .url = "file:///etc/passwd"};
    assert_int_equal(keel_http_client_do(&file, &res), KEEL_HTTP_NOT_SENT);
    assert_null(res.body);
    keel_http_result_clear(&res);
}

static void test_not_sent_on_connect_timeout(void **state)
{
    /* A listener that never accepts, with its accept queue filled: the kernel drops further
     * SYNs, so a connect hangs until curl's connect timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    int fillers[4];
    for (size_t i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fillers[i] >= 0);
        (void)!connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
    }
    test_sleep_ms(50);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/charge", ntohs(sa.sin_port));
    keel_http_call call = {.method = "POST",
                           .url = url,
                           .body = "{}",
                           .body_len = 2,
                           .connect_timeout_ms = 200,
                           .total_timeout_ms = 2000};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_NOT_SENT);
    assert_non_null(strstr(res.error, "not sent"));
    keel_http_result_clear(&res);

    /* The total timeout expiring while still connecting is just as safe. */
    call.connect_timeout_ms = 2000;
    call.total_timeout_ms = 200;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_NOT_SENT);
    keel_http_result_clear(&res);
    for (size_t i = 0; i < 4; i++) {
        close(fillers[i]);
    }
    close(lfd);
}

static void test_timeout_after_send(void **state)
{
    char url[128];
    test_url(state, "/slow", url, sizeof url);
    int before = atomic_load(&test_slow_calls);
    keel_http_call call = {.method = "GET", .url = url, .total_timeout_ms = 300};
    keel_http_result res;
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_TIMEOUT_AFTER_SEND);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long elapsed_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(elapsed_ms < 1200);
    assert_true(strlen(res.error) > 0);
    keel_http_result_clear(&res);
    /* The request did reach the handler: the failure is rightly ambiguous. */
    assert_int_equal(atomic_load(&test_slow_calls), before + 1);
}

static void test_too_large(void **state)
{
    char url[128];
    test_url(state, "/big", url, sizeof url);
    keel_http_call call = {.method = "GET", .url = url, .max_response_bytes = 1000};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_TOO_LARGE);
    assert_null(res.body);
    assert_non_null(strstr(res.error, "1000"));
    keel_http_result_clear(&res);

    /* Exactly the limit fits. */
    call.max_response_bytes = TEST_BIG_BYTES;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.body_len, TEST_BIG_BYTES);
    keel_http_result_clear(&res);

    /* Without a Content-Length the cap is enforced while reading. */
    raw_server rs = {.answer = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", .filler = 50000};
    raw_server_start(&rs);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/stream", (unsigned)rs.port);
    call.max_response_bytes = 4096;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_TOO_LARGE);
    assert_null(res.body);
    keel_http_result_clear(&res);
    raw_server_stop(&rs);
}

static void test_transport_error_after_connect(void **state)
{
    /* The peer reads the request and hangs up without answering: it may have acted. */
    raw_server rs = {.answer = NULL};
    raw_server_start(&rs);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/charge", (unsigned)rs.port);
    keel_http_call call = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_TRANSPORT_ERROR);
    assert_true(strlen(res.error) > 0);
    keel_http_result_clear(&res);
    raw_server_stop(&rs);
}

static void test_retry_after(void **state)
{
    char url[128];
    test_url(state, "/busy", url, sizeof url);
    keel_http_call call = {.method = "GET", .url = url};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.retry_after, "7");
    assert_non_null(strstr(res.body, "overloaded"));
    keel_http_result_clear(&res);
}

/* A pinned address is connected to whatever the URL's host resolves to (here: nothing). */
static void test_connect_address_pins(void **state)
{
    char url[128];
    snprintf(url, sizeof url, "http://pinned.invalid:%u/hello",
             (unsigned)keel_http_server_port(*state));
    keel_http_call call = {.method = "GET", .url = url};
    keel_http_result res;
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_NOT_SENT);
    keel_http_result_clear(&res);

    call.connect_address = "127.0.0.1";
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "{\"hello\":\"world\"}");
    keel_http_result_clear(&res);

    /* Only a bare IP literal is accepted. */
    call.connect_address = "[127.0.0.1]";
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_NOT_SENT);
    assert_non_null(strstr(res.error, "not an IP literal"));
    keel_http_result_clear(&res);
}

int main(void)
{
    keel_log_init("test_http_client", KEEL_LOG_ERROR);
    keel_http_client_global_init();
    keel_http_client_global_init(); /* a second call is harmless */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_post_and_put),
        cmocka_unit_test(test_not_sent_on_closed_port),
        cmocka_unit_test(test_not_sent_on_connect_timeout),
        cmocka_unit_test(test_timeout_after_send),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_transport_error_after_connect),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_connect_address_pins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
