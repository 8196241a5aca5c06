/* Unit tests for keel/retry.h: full-jitter bounds, growth then cap, overflow safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>

#include "keel/retry.h"

enum { SAMPLES = 20000 };

static int64_t expected_ceiling(int64_t base, int64_t cap, int attempt)
{
    int64_t c = base;
    for (int i = 0; i < attempt && c < cap; i++) {
        c *= 2;
    }
    return c < cap ? c : cap;
}

static void test_delays_within_full_jitter_bounds(void **state)
{
    (void)state;
    keel_backoff b = {.base_ms = 100, .cap_ms = 10000, .max_attempts = 0};
    uint64_t rng = 12345;
    int64_t prev_ceiling = 0;
    for (int attempt = 0; attempt < 16; attempt++) {
        int64_t ceiling = expected_ceiling(100, 10000, attempt);
        int64_t lo = INT64_MAX;
        int64_t hi = INT64_MIN;
        double sum = 0;
        for (int i = 0; i < SAMPLES; i++) {
            int64_t d = keel_backoff_delay_ms(&b, attempt, &rng);
            assert_true(d >= 0);
            assert_true(d <= ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        /* Full jitter spreads over the whole range: the extremes are reached and the mean
         * sits near the middle. */
        assert_true(lo <= ceiling / 50);
        assert_true(hi >= ceiling - ceiling / 50);
        double mean = sum / SAMPLES;
        assert_true(mean > ceiling * 0.45 && mean < ceiling * 0.55);
        /* The ceiling doubles until it reaches the cap, then stays there. */
        assert_true(ceiling >= prev_ceiling);
        prev_ceiling = ceiling;
    }
    assert_int_equal(expected_ceiling(100, 10000, 3), 800);
    assert_int_equal(prev_ceiling, 10000);
}

static void test_ceiling_grows_then_caps(void **state)
{
    (void)state;
    keel_backoff b = {.base_ms = 50, .cap_ms = 3000, .max_attempts = 0};
    uint64_t rng = 99;
    int64_t observed_max[12] = {0};
    for (int attempt = 0; attempt < 12; attempt++) {
        for (int i = 0; i < SAMPLES; i++) {
            int64_t d = keel_backoff_delay_ms(&b, attempt, &rng);
            observed_max[attempt] = d > observed_max[attempt] ? d : observed_max[attempt];
        }
    }
    /* 50, 100, 200, 400, 800, 1600, then 3000 for ever. */
    assert_true(observed_max[0] <= 50 && observed_max[0] >= 45);
    assert_true(observed_max[1] <= 100 && observed_max[1] > 50);
    assert_true(observed_max[4] <= 800 && observed_max[4] > 400);
    assert_true(observed_max[5] <= 1600 && observed_max[5] > 800);
    for (int attempt = 6; attempt < 12; attempt++) {
        assert_true(observed_max[attempt] <= 3000);
        assert_true(observed_max[attempt] > 2900);
    }
}

static void test_never_overflows(void **state)
{
    (void)state;
    uint64_t rng = 7;
    keel_backoff huge = {.base_ms = INT64_MAX / 2, .cap_ms = INT64_MAX, .max_attempts = 0};
    keel_backoff small = {.base_ms = 1, .cap_ms = 60000, .max_attempts = 0};
    const int attempts[] = {0, 1, 2, 30, 31, 32, 62, 63, 64, 65, 1000, INT_MAX};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        for (int k = 0; k < 100; k++) {
            int64_t d = keel_backoff_delay_ms(&huge, attempts[i], &rng);
            assert_true(d >= 0);
            int64_t s = keel_backoff_delay_ms(&small, attempts[i], &rng);
            assert_true(s >= 0 && s <= 60000);
        }
    }
    /* A negative attempt is treated as the first. */
    for (int k = 0; k < 1000; k++) {
        int64_t d = keel_backoff_delay_ms(&small, -5, &rng);
        assert_true(d >= 0 && d <= 1);
    }
}

static void test_degenerate_settings(void **state)
{
    (void)state;
    uint64_t rng = 1;
    keel_backoff zero = {.base_ms = 0, .cap_ms = 1000, .max_attempts = 0};
    keel_backoff cap_below_base = {.base_ms = 5000, .cap_ms = 200, .max_attempts = 0};
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(keel_backoff_delay_ms(&zero, i % 40, &rng), 0);
        int64_t d = keel_backoff_delay_ms(&cap_below_base, i % 40, &rng);
        assert_true(d >= 0 && d <= 200);
    }
}

static void test_rng_state_is_deterministic_and_null_works(void **state)
{
    (void)state;
    keel_backoff b = {.base_ms = 1000, .cap_ms = 1000000, .max_attempts = 0};
    uint64_t s1 = 42;
    uint64_t s2 = 42;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(keel_backoff_delay_ms(&b, 10, &s1), keel_backoff_delay_ms(&b, 10, &s2));
    }
    /* The thread-local generator varies its answers. */
    int64_t first = keel_backoff_delay_ms(&b, 10, NULL);
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        int64_t d = keel_backoff_delay_ms(&b, 10, NULL);
        assert_true(d >= 0 && d <= 1000000);
        differs |= d != first;
    }
    assert_true(differs);
}

static void test_rand_next_bits_are_balanced(void **state)
{
    (void)state;
    uint64_t s = 0; /* zero must not trap the generator in its fixed point */
    int ones[64] = {0};
    enum { N = 20000 };
    uint64_t prev = keel_rand_next(&s);
    assert_true(s != 0);
    for (int i = 0; i < N; i++) {
        uint64_t r = keel_rand_next(&s);
        assert_true(r != prev);
        prev = r;
        for (int bit = 0; bit < 64; bit++) {
            ones[bit] += (int)((r >> bit) & 1);
        }
    }
    for (int bit = 0; bit < 64; bit++) {
        assert_true(ones[bit] > N * 45 / 100 && ones[bit] < N * 55 / 100);
    }
}

static void test_should_retry(void **state)
{
    (void)state;
    keel_backoff three = {.base_ms = 10, .cap_ms = 100, .max_attempts = 3};
    assert_true(keel_backoff_should_retry(&three, 0));
    assert_true(keel_backoff_should_retry(&three, 1));
    assert_true(keel_backoff_should_retry(&three, 2));
    assert_false(keel_backoff_should_retry(&three, 3));
    assert_false(keel_backoff_should_retry(&three, 4));
    keel_backoff unlimited = {.base_ms = 10, .cap_ms = 100, .max_attempts = 0};
    assert_true(keel_backoff_should_retry(&unlimited, 1000000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_within_full_jitter_bounds),
        cmocka_unit_test(test_ceiling_grows_then_caps),
        cmocka_unit_test(test_never_overflows),
        cmocka_unit_test(test_degenerate_settings),
        cmocka_unit_test(test_rng_state_is_deterministic_and_null_works),
        cmocka_unit_test(test_rand_next_bits_are_balanced),
        cmocka_unit_test(test_should_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
