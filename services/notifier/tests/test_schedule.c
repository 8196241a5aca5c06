/* Unit tests for schedule.h: durations, schedule parsing, jittered delays that never come
 * early, Retry-After in both forms, and the verdict after an attempt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "schedule.h"

static void test_durations(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_true(notifier_duration_parse("250ms", &ms));
    assert_int_equal(ms, 250);
    assert_true(notifier_duration_parse("30s", &ms));
    assert_int_equal(ms, 30000);
    assert_true(notifier_duration_parse("2m", &ms));
    assert_int_equal(ms, 120000);
    assert_true(notifier_duration_parse("12h", &ms));
    assert_int_equal(ms, 12LL * 3600 * 1000);
    assert_true(notifier_duration_parse("3d", &ms));
    assert_int_equal(ms, 3LL * 24 * 3600 * 1000);
    static const char *const bad[] = {"", "0s", "-1s", "1", "1w", "s", "1.5s", " 1s", "1s ", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (notifier_duration_parse(bad[i], &ms)) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }
    assert_false(notifier_duration_parse(NULL, &ms));
}

/* The default spreads 14 attempts over roughly three days. */
static void test_default_schedule_spans_three_days(void **state)
{
    (void)state;
    notifier_schedule s;
    char err[256];
    assert_true(notifier_schedule_parse(NOTIFIER_DEFAULT_SCHEDULE, 0, &s, err, sizeof(err)));
    assert_int_equal(notifier_schedule_max_attempts(&s), 14);
    int64_t total = 0;
    for (int i = 0; i < s.count; i++) {
        if (i > 0) {
            assert_true(s.delays_ms[i] >= s.delays_ms[i - 1]); /* never shrinking */
        }
        total += s.delays_ms[i];
    }
    assert_true(total >= 70LL * 3600 * 1000 && total <= 80LL * 3600 * 1000);
    assert_int_equal(notifier_schedule_longest_ms(&s), 12LL * 3600 * 1000);
    notifier_schedule_clear(&s);
    assert_null(s.delays_ms);
}

static void test_schedule_parse_errors(void **state)
{
    (void)state;
    notifier_schedule s;
    char err[256];
    assert_false(notifier_schedule_parse("", 20, &s, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
    assert_false(notifier_schedule_parse("1s,banana,3s", 20, &s, err, sizeof(err)));
    assert_non_null(strstr(err, "banana"));
    assert_false(notifier_schedule_parse("8d", 20, &s, err, sizeof(err)));
    assert_false(notifier_schedule_parse("1s", 101, &s, err, sizeof(err)));
    assert_true(notifier_schedule_parse(" 1s , 2s,3s ", 20, &s, err, sizeof(err)));
    assert_int_equal(s.count, 3);
    notifier_schedule_clear(&s);
}

/* Each wait is the schedule's delay plus 0..jitter percent: never early, and spread. */
static void test_delays_with_jitter(void **state)
{
    (void)state;
    notifier_schedule s;
    char err[256];
    uint64_t rng = 42;
    assert_true(notifier_schedule_parse("1000ms,2000ms,4000ms", 20, &s, err, sizeof(err)));
    assert_int_equal(notifier_schedule_max_attempts(&s), 4);
    for (int attempt = 1; attempt <= 3; attempt++) {
        int64_t base = s.delays_ms[attempt - 1];
        int64_t lo = INT64_MAX;
        int64_t hi = 0;
        for (int i = 0; i < 5000; i++) {
            int64_t d = notifier_schedule_next_ms(&s, attempt, -1, &rng);
            assert_true(d >= base);
            assert_true(d <= base + base / 5);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        assert_true(lo < base + base / 50);
        assert_true(hi > base + base / 5 - base / 50);
    }
    /* After the last attempt nothing is left. */
    assert_int_equal(notifier_schedule_next_ms(&s, 4, -1, &rng), -1);
    assert_int_equal(notifier_schedule_next_ms(&s, 0, -1, &rng), -1);
    notifier_schedule_clear(&s);
}

static void test_retry_after_is_honoured_and_capped(void **state)
{
    (void)state;
    notifier_schedule s;
    char err[256];
    uint64_t rng = 7;
    assert_true(notifier_schedule_parse("100ms,200ms,5s", 0, &s, err, sizeof(err)));
    /* Longer than the schedule's wait: the peer's wish wins. */
    assert_int_equal(notifier_schedule_next_ms(&s, 1, 2000, &rng), 2000);
    /* Shorter: the schedule's wait stays (a peer cannot make keel hammer it). */
    assert_int_equal(notifier_schedule_next_ms(&s, 2, 50, &rng), 200);
    /* Absurd: capped to the longest delay of the schedule. */
    assert_int_equal(notifier_schedule_next_ms(&s, 1, 86400000, &rng), 5000);
    notifier_schedule_clear(&s);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    /* 2015-10-21T07:28:00Z */
    const int64_t now = 1445412480000LL;
    assert_int_equal(notifier_retry_after_ms("120", now), 120000);
    assert_int_equal(notifier_retry_after_ms("0", now), 0);
    assert_int_equal(notifier_retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    assert_int_equal(notifier_retry_after_ms("Wed, 21 Oct 2015 07:27:00 GMT", now), 0);
    assert_int_equal(notifier_retry_after_ms("", now), -1);
    assert_int_equal(notifier_retry_after_ms(NULL, now), -1);
    assert_int_equal(notifier_retry_after_ms("soon", now), -1);
    assert_int_equal(notifier_retry_after_ms("12abc", now), -1);
    assert_int_equal(notifier_retry_after_ms("-5", now), -1);
}

static void test_verdicts(void **state)
{
    (void)state;
    assert_int_equal(notifier_decide(200, 1, 3), NOTIFIER_VERDICT_SUCCEEDED);
    assert_int_equal(notifier_decide(204, 3, 3), NOTIFIER_VERDICT_SUCCEEDED);
    assert_int_equal(notifier_decide(410, 1, 3), NOTIFIER_VERDICT_GONE);
    assert_int_equal(notifier_decide(500, 1, 3), NOTIFIER_VERDICT_RETRY);
    assert_int_equal(notifier_decide(0, 2, 3), NOTIFIER_VERDICT_RETRY);
    assert_int_equal(notifier_decide(301, 2, 3), NOTIFIER_VERDICT_RETRY); /* never followed */
    assert_int_equal(notifier_decide(404, 3, 3), NOTIFIER_VERDICT_DEAD);
    assert_int_equal(notifier_decide(0, 3, 3), NOTIFIER_VERDICT_DEAD);
    assert_string_equal(notifier_verdict_name(NOTIFIER_VERDICT_GONE), "gone");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_default_schedule_spans_three_days),
        cmocka_unit_test(test_schedule_parse_errors),
        cmocka_unit_test(test_delays_with_jitter),
        cmocka_unit_test(test_retry_after_is_honoured_and_capped),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
