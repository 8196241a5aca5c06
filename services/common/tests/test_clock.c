/* Unit tests for keel/clock.h: clock sources, interruptible sleep, RFC 3339 rendering and the
 * strict RFC 3339 and calendar-date parsers the ledger and the gateway's list filters use. */
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

typedef struct parse_case {
    const char *text;
    int64_t ms;
} parse_case;

static void expect_parsed(bool (*parse)(const char *, int64_t *), const parse_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t ms = -1;
        if (!parse(cases[i].text, &ms)) {
            fail_msg("%s was refused", cases[i].text);
        }
        if (ms != cases[i].ms) {
            fail_msg("%s: got %lld, want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
        }
    }
}

/* Both RFC 3339 parsers refuse every text, leaving the output alone. */
static void expect_refused(const char *const *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t ms = 0;
        if (keel_clock_parse_rfc3339(bad[i], &ms) || keel_clock_parse_rfc3339_ceil(bad[i], &ms)) {
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ms);
        }
        assert_int_equal(ms, 0);
    }
}

static void test_parse_rfc3339_valid(void **state)
{
    static const parse_case cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-03-10T07:00:00Z", INT64_C(1710054000000)},
        {"2023-11-14T22:13:20Z", INT64_C(1700000000000)},
        {"2024-03-10T07:00:00.5Z", INT64_C(1710054000500)},
        {"2023-11-14T22:13:20.123Z", INT64_C(1700000000123)},
        {"2023-11-14T22:13:20.123000000Z", INT64_C(1700000000123)},
        /* Digits beyond the millisecond are truncated. */
        {"2024-03-10T07:00:00.123456789Z", INT64_C(1710054000123)},
        {"2023-11-14T22:13:20.123000001Z", INT64_C(1700000000123)},
        {"2024-03-11T03:59:59.999Z", INT64_C(1710129599999)},
        {"9999-12-31T23:59:59.999Z", INT64_C(253402300799999)},
        /* Any offset names the same instant. */
        {"2024-03-10T02:00:00-05:00", INT64_C(1710054000000)},
        {"2024-06-01T00:00:00+05:45", INT64_C(1717179300000)},
        {"2023-11-15T00:13:20+02:00", INT64_C(1700000000000)},
        {"2023-11-14T17:43:20-04:30", INT64_C(1700000000000)},
        {"2023-11-14T22:13:20-00:00", INT64_C(1700000000000)},
        {"2024-03-10T07:00:00+23:59", INT64_C(1709967660000)},
        {"2024-02-29t12:00:00z", INT64_C(1709208000000)},
        {"2023-11-14t22:13:20z", INT64_C(1700000000000)},
        /* Leap days; a day across the DST change in Europe is just 24 h in UTC. */
        {"2024-02-29T00:00:00Z", INT64_C(1709164800000)},
        {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
        {"2025-03-30T01:30:00+01:00", INT64_C(1743294600000)},
    };
    (void)state;
    expect_parsed(keel_clock_parse_rfc3339, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_rfc3339_leap_second(void **state)
{
    /* 23:59:60 UTC on the last day of a month reads as the next day's first second, in any
     * offset that names that instant. */
    static const parse_case cases[] = {
        {"2016-12-31T23:59:60Z", INT64_C(1483228800000)},
        {"2016-12-31T23:59:60.250Z", INT64_C(1483228800250)},
        {"2017-01-01T00:59:60+01:00", INT64_C(1483228800000)},
        {"2016-12-31T18:59:60-05:00", INT64_C(1483228800000)},
        {"2017-01-01T05:44:60+05:45", INT64_C(1483228800000)},
        {"2016-06-30T23:59:60Z", INT64_C(1467331200000)},
        {"2015-06-30T23:59:60z", INT64_C(1435708800000)},
    };
    static const char *const bad[] = {
        "2024-03-10T23:59:60Z",      /* not the last day of a month */
        "2016-12-30T23:59:60Z",      /* the day before */
        "2016-12-31T23:58:60Z",      /* not the last minute */
        "2016-12-31T22:59:60Z",      /* not the last hour */
        "2016-12-31T23:59:60+01:00", /* 22:59:60 UTC */
        "2017-01-01T00:59:60-01:00", /* 01:59:60 UTC on the 1st */
        "2016-12-31T23:59:61Z",
    };
    (void)state;
    expect_parsed(keel_clock_parse_rfc3339, cases, sizeof(cases) / sizeof(cases[0]));
    expect_parsed(keel_clock_parse_rfc3339_ceil, cases, sizeof(cases) / sizeof(cases[0]));
    expect_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_parse_rfc3339_ceil(void **state)
{
    /* Only a non-zero digit beyond the millisecond rounds up, and the carry may cross into
     * the next second and day. */
    static const parse_case cases[] = {
        {"2023-11-14T22:13:20Z", INT64_C(1700000000000)},
        {"2023-11-15T00:13:20+02:00", INT64_C(1700000000000)},
        {"2023-11-14T22:13:20.5Z", INT64_C(1700000000500)},
        {"2023-11-14T22:13:20.123Z", INT64_C(1700000000123)},
        {"2023-11-14T22:13:20.123000000Z", INT64_C(1700000000123)},
        {"2023-11-14T22:13:20.123000001Z", INT64_C(1700000000124)},
        {"2024-03-10T07:00:00.123456789Z", INT64_C(1710054000124)},
        {"2024-03-10T23:59:59.9999Z", INT64_C(1710115200000)},
    };
    int64_t ms = 0;
    (void)state;
    expect_parsed(keel_clock_parse_rfc3339_ceil, cases, sizeof(cases) / sizeof(cases[0]));
    assert_true(keel_clock_parse_rfc3339("2024-03-10T23:59:59.9999Z", &ms));
    assert_int_equal(ms, INT64_C(1710115199999));
}

static void test_parse_rfc3339_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "2024-03-10",
        "2023-11-14",
        "2024-03-10T07:00:00",  /* no zone */
        "2024-03-10T07:00Z",    /* no seconds */
        "2024-02-30T00:00:00Z", /* no such day */
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* not a leap year either */
        "2024-13-01T00:00:00Z",
        "2023-00-01T00:00:00Z",
        "2023-01-32T00:00:00Z",
        "2024-03-10T24:00:00Z",
        "2024-03-10T23:60:00Z",
        "2023-01-01T00:00:61Z",
        "2024-03-10T07:00:00.Z",
        "2024-03-10T07:00:00.1234567890Z",
        "2024-03-10T07:00:00+0500",
        "2024-03-10T07:00:00+24:00",
        "2024-03-10T07:00:00+05:60",
        "2024-03-10T07:00:00+05",
        "2024-03-10T07:00:00 05:00", /* a blank is no sign: the gateway mends its own input */
        "2024-03-10T07:00:00+05:00x",
        "2024-03-10T07:00:00Zjunk",
        "2024-02-29 12:00:00Z",      /* RFC 3339's grammar has no blank separator */
        "1969-12-31T23:59:59Z",      /* before 1970 */
        "1970-01-01T00:00:00+01:00", /* before the epoch */
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "２024-03-10T07:00:00Z",
        "2024-3-10T07:00:00Z",
        "1700000000",
    };
    (void)state;
    expect_refused(bad, sizeof(bad) / sizeof(bad[0]));
    assert_false(keel_clock_parse_rfc3339(NULL, NULL));
    assert_false(keel_clock_parse_rfc3339_ceil(NULL, NULL));
}

static void test_parse_reads_what_format_writes(void **state)
{
    static const int64_t instants[] = {
        0, 1, 999, INT64_C(1709208000123), INT64_C(2147483648000), INT64_C(253402300799999)};
    char out[KEEL_RFC3339_LEN];
    (void)state;
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        int64_t ms = -1;
        assert_true(keel_clock_parse_rfc3339(keel_clock_format_rfc3339(instants[i], out), &ms));
        assert_int_equal(ms, instants[i]);
    }
}

static void test_parse_date(void **state)
{
    int y = 0, m = 0, d = 0;
    (void)state;
    assert_true(keel_clock_parse_date("2024-03-10", &y, &m, &d));
    assert_int_equal(y, 2024);
    assert_int_equal(m, 3);
    assert_int_equal(d, 10);
    assert_true(keel_clock_parse_date("2024-02-29", &y, &m, &d));
    assert_int_equal(m, 2);
    assert_int_equal(d, 29);
    assert_true(keel_clock_parse_date("1970-01-01", &y, &m, &d));
    assert_true(keel_clock_parse_date("9999-12-31", &y, &m, &d));
    assert_false(keel_clock_parse_date("2023-02-29", &y, &m, &d));
    assert_false(keel_clock_parse_date("2024-04-31", &y, &m, &d));
    assert_false(keel_clock_parse_date("2024-3-10", &y, &m, &d));
    assert_false(keel_clock_parse_date("2024-03-10x", &y, &m, &d));
    assert_false(keel_clock_parse_date("2024-03-10T00:00:00Z", &y, &m, &d));
    assert_false(keel_clock_parse_date("20240310", &y, &m, &d));
    assert_false(keel_clock_parse_date("1969-12-31", &y, &m, &d));
    assert_false(keel_clock_parse_date("", &y, &m, &d));
    assert_false(keel_clock_parse_date(NULL, &y, &m, &d));
    assert_int_equal(y, 9999); /* refusals left the last good date alone */
    assert_int_equal(m, 12);
    assert_int_equal(d, 31);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wall_clock_matches_time),
        cmocka_unit_test(test_monotonic_never_goes_back),
        cmocka_unit_test(test_sleep_waits_at_least_requested),
        cmocka_unit_test(test_sleep_returns_early_on_signal),
        cmocka_unit_test(test_rfc3339_known_instants),
        cmocka_unit_test(test_parse_rfc3339_valid),
        cmocka_unit_test(test_parse_rfc3339_leap_second),
        cmocka_unit_test(test_parse_rfc3339_ceil),
        cmocka_unit_test(test_parse_rfc3339_invalid),
        cmocka_unit_test(test_parse_reads_what_format_writes),
        cmocka_unit_test(test_parse_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
