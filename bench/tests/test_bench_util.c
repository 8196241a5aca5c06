/* Unit tests of the benchmark helpers: loopback-only address checks and option parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench_msg.h"
#include "bench_util.h"

static bool host_ok(const char *h)
{
    return bench_host_is_loopback(h, strlen(h));
}

static void test_loopback_hosts(void **state)
{
    (void)state;
    assert_true(host_ok("127.0.0.1"));
    assert_true(host_ok("127.1.2.3"));
    assert_true(host_ok("localhost"));
    assert_true(host_ok("LOCALHOST"));
    assert_true(host_ok("::1"));
    assert_true(host_ok("[::1]"));
    assert_false(host_ok("128.0.0.1"));
    assert_false(host_ok("10.0.0.1"));
    assert_false(host_ok("192.168.1.1"));
    assert_false(host_ok("127.0.0.256"));
    assert_false(host_ok("127.0.0.1.example.com"));
    assert_false(host_ok("localhost.example.com"));
    assert_false(host_ok("example.com"));
    assert_false(host_ok(""));
    assert_false(bench_host_is_loopback(NULL, 0));
}

static void test_urls(void **state)
{
    (void)state;
    char err[256];
    assert_true(bench_url_is_loopback("http://127.0.0.1:28080", err, sizeof(err)));
    assert_true(bench_url_is_loopback("http://localhost:8080/v1", err, sizeof(err)));
    assert_true(bench_url_is_loopback("http://[::1]:8080/", err, sizeof(err)));
    assert_false(bench_url_is_loopback("https://127.0.0.1:8080", err, sizeof(err)));
    assert_false(bench_url_is_loopback("http://10.1.1.1:8080", err, sizeof(err)));
    assert_non_null(strstr(err, "loopback"));
    /* A user-info part could hide the real host. */
    assert_false(bench_url_is_loopback("http://127.0.0.1@example.com/", err, sizeof(err)));
    assert_false(bench_url_is_loopback(NULL, err, sizeof(err)));
}

static void test_brokers(void **state)
{
    (void)state;
    char err[256];
    assert_true(bench_brokers_are_loopback("127.0.0.1:28092", err, sizeof(err)));
    assert_true(bench_brokers_are_loopback("127.0.0.1:1,localhost:2,[::1]:3", err, sizeof(err)));
    assert_true(bench_brokers_are_loopback("PLAINTEXT://127.0.0.1:9092", err, sizeof(err)));
    assert_false(bench_brokers_are_loopback("127.0.0.1:1,10.0.0.2:9092", err, sizeof(err)));
    assert_non_null(strstr(err, "10.0.0.2"));
    assert_false(bench_brokers_are_loopback("", err, sizeof(err)));
    assert_false(bench_brokers_are_loopback(",", err, sizeof(err)));
}

static void test_numbers(void **state)
{
    (void)state;
    int64_t n = 0;
    double d = 0.0;
    assert_true(bench_parse_i64("42", 1, 100, &n));
    assert_int_equal(n, 42);
    assert_false(bench_parse_i64("0", 1, 100, &n));
    assert_false(bench_parse_i64("101", 1, 100, &n));
    assert_false(bench_parse_i64("4x", 1, 100, &n));
    assert_false(bench_parse_i64("", 1, 100, &n));
    assert_true(bench_parse_double("2.5", 0.1, 10.0, &d));
    assert_true(d == 2.5);
    assert_false(bench_parse_double("nan", 0.0, 10.0, &d));
    assert_false(bench_parse_double("11", 0.0, 10.0, &d));
}

static void test_message_keys_look_like_payment_ids(void **state)
{
    (void)state;
    char a[BENCH_MSG_KEY_LEN];
    char b[BENCH_MSG_KEY_LEN];
    bench_msg_key(1, a);
    bench_msg_key(2, b);
    assert_int_equal(strlen(a), 36);
    assert_memory_equal(a, "pay_", 4);
    assert_string_not_equal(a, b);
    size_t len = 0;
    uint8_t *payload = bench_msg_payload(&len);
    assert_non_null(payload);
    assert_true(len > 60 && len < 400);
    free(payload);
}

static void test_clock_moves_forward(void **state)
{
    (void)state;
    int64_t a = bench_now_ns();
    int64_t b = bench_now_ns();
    assert_true(b >= a);
    assert_true(a > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_hosts),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_brokers),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_message_keys_look_like_payment_ids),
        cmocka_unit_test(test_clock_moves_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
