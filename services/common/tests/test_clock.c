/* Unit tests for keel/clock.h: clock sources, interruptible sleep and RFC 3339 rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "keel/clock.h"

static void test_wall_clock_matches_time(void **state)
{
    (void)state;
    /* time(2) may read a coarse clock that lags CLOCK_REALTIME by a tick, so allow a second
     * on each side: the check is that the unit and epoch are right, not the precision. */
    int64_t before = (int64_t)time(NULL) * 1000 - 1000;
    int64_t ms = keel_clock_now_ms();
    int64_t us = keel_clock_now_us();
    int64_t after = (int64_t)time(NULL) * 1000 + 2000;
    assert_true(ms >= before && ms <= after);
    /* Microseconds read just after milliseconds: same instant within a second. */
    assert_true(us / 1000 >= ms && us / 1000 - ms < 1000);
}

static void test_monotonic_never_goes_back(void **state)
{
    (void)state;
    int64_t prev = keel_clock_monotonic_ms();
    for (int i = 0; i < 10000; i++) {
        int64_t now = keel_clock_monotonic_ms();
        assert_true(now >= prev);
        prev = now;
    }
}

static void test_sleep_waits_at_least_requested(void **state)
{
    (void)state;
    int64_t start = keel_clock_monotonic_ms();
    keel_clock_sleep_ms(60);
    int64_t elapsed = keel_clock_monotonic_ms() - start;
    assert_true(elapsed >= 59);
    assert_true(elapsed < 2000);

    start = keel_clock_monotonic_ms();
    keel_clock_sleep_ms(0);
    keel_clock_sleep_ms(-5);
    assert_true(keel_clock_monotonic_ms() - start < 50);
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void test_sleep_returns_early_on_signal(void **state)
{
    (void)state;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {.it_interval = {0, 0}, .it_value = {0, 50000}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

    int64_t start = keel_clock_monotonic_ms();
    keel_clock_sleep_ms(10000);
    int64_t elapsed = keel_clock_monotonic_ms() - start;
    assert_true(elapsed >= 40);
    assert_true(elapsed < 5000);
}

static void test_rfc3339_known_instants(void **state)
{
    (void)state;
    char out[KEEL_RFC3339_LEN];
    assert_string_equal(keel_clock_format_rfc3339(0, out), "1970-01-01T00:00:00.000Z");
    assert_string_equal(keel_clock_format_rfc3339(1796056618123LL, out),
                        "2026-11-30T16:36:58.123Z");
    assert_string_equal(keel_clock_format_rfc3339(1709208000000LL, out),
                        "2024-02-29T12:00:00.000Z");
    /* Past the 32-bit time_t limit. */
    assert_string_equal(keel_clock_format_rfc3339(2147483648000LL, out),
                        "2038-01-19T03:14:08.000Z");
    assert_string_equal(keel_clock_format_rfc3339(253402300799999LL, out),
                        "9999-12-31T23:59:59.999Z");
    /* Before the epoch the millisecond part must not go negative. */
    assert_string_equal(keel_clock_format_rfc3339(-1, out), "1969-12-31T23:59:59.999Z");
    assert_string_equal(keel_clock_format_rfc3339(-1001, out), "1969-12-31T23:59:58.999Z");
    assert_ptr_equal(keel_clock_format_rfc3339(5, out), out);
    assert_string_equal(out, "1970-01-01T00:00:00.005Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wall_clock_matches_time),
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_sleep_waits_at_least_requested),
        cmocka_unit_test(test_sleep_returns_early_on_signal),
        cmocka_unit_test(test_rfc3339_known_instants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
