/* Unit tests of keel/ratelimit.h: burst, refill, retry hints, limit changes, LRU bound, threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "keel/ratelimit.h"

static void test_burst_then_refill(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    keel_ratelimit_limit lim = {.rate_per_s = 10, .burst = 5};
    keel_ratelimit_decision d;
    int64_t t = 1000;

    assert_non_null(rl);
    for (int i = 0; i < 5; i++) {
        assert_true(keel_ratelimit_take(rl, "k", &lim, t, &d));
        assert_int_equal(d.remaining, 4 - i);
        assert_int_equal(d.retry_after_ms, 0);
    }
    assert_false(keel_ratelimit_take(rl, "k", &lim, t, &d));
    assert_int_equal(d.remaining, 0);
    /* One token takes 100 ms at 10/s; the full bucket 500 ms. */
    assert_int_equal(d.retry_after_ms, 100);
    assert_int_equal(d.reset_ms, 500);
    /* 99 ms later there is still less than one token. */
    assert_false(keel_ratelimit_take(rl, "k", &lim, t + 99, &d));
    assert_int_equal(d.retry_after_ms, 1);
    assert_true(keel_ratelimit_take(rl, "k", &lim, t + 100, &d));
    /* A long pause refills only up to the burst. */
    for (int i = 0; i < 5; i++) {
        assert_true(keel_ratelimit_take(rl, "k", &lim, t + 100000, &d));
    }
    assert_false(keel_ratelimit_take(rl, "k", &lim, t + 100000, &d));
    keel_ratelimit_free(rl);
}

/* Over a simulated 10 s with a request every millisecond, a 10/s bucket of burst 10 admits
 * its burst plus 10 a second: 110, give or take the last partial token. */
static void test_steady_rate(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    keel_ratelimit_limit lim = {.rate_per_s = 10, .burst = 10};
    keel_ratelimit_decision d;
    int admitted = 0;

    for (int64_t t = 0; t < 10000; t++) {
        admitted += keel_ratelimit_take(rl, "steady", &lim, t, &d) ? 1 : 0;
    }
    assert_in_range(admitted, 109, 110);
    keel_ratelimit_free(rl);
}

static void test_keys_are_independent(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    keel_ratelimit_limit lim = {.rate_per_s = 1, .burst = 1};
    keel_ratelimit_decision d;

    assert_true(keel_ratelimit_take(rl, "a", &lim, 0, &d));
    assert_false(keel_ratelimit_take(rl, "a", &lim, 0, &d));
    assert_true(keel_ratelimit_take(rl, "b", &lim, 0, &d));
    assert_int_equal(keel_ratelimit_size(rl), 2);
    keel_ratelimit_free(rl);
}

static void test_limit_change_applies_at_once(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    keel_ratelimit_limit big = {.rate_per_s = 100, .burst = 100};
    keel_ratelimit_limit small = {.rate_per_s = 1, .burst = 2};
    keel_ratelimit_limit seen = {0};
    keel_ratelimit_decision d;

    assert_false(keel_ratelimit_lookup(rl, "k", &seen));
    assert_true(keel_ratelimit_take(rl, "k", &big, 0, &d));
    assert_int_equal(d.remaining, 99);
    assert_true(keel_ratelimit_lookup(rl, "k", &seen));
    assert_true(seen.burst == 100);
    /* The 99 tokens held are capped at the new burst of 2. */
    assert_true(keel_ratelimit_take(rl, "k", &small, 0, &d));
    assert_int_equal(d.remaining, 1);
    assert_true(keel_ratelimit_take(rl, "k", &small, 0, &d));
    assert_false(keel_ratelimit_take(rl, "k", &small, 0, &d));
    assert_int_equal(d.retry_after_ms, 1000);
    assert_true(keel_ratelimit_lookup(rl, "k", &seen));
    assert_true(seen.rate_per_s == 1);
    /* configure changes the limit without spending a token, and ignores unknown keys. */
    keel_ratelimit_configure(rl, "k", &big);
    assert_true(keel_ratelimit_lookup(rl, "k", &seen));
    assert_true(seen.burst == 100);
    keel_ratelimit_configure(rl, "unknown", &big);
    assert_false(keel_ratelimit_lookup(rl, "unknown", &seen));
    assert_true(keel_ratelimit_take(rl, "k", &big, 1000, &d));
    assert_int_equal(d.remaining, 99);
    keel_ratelimit_configure(rl, "k", &small); /* 99 tokens capped at 2 */
    assert_true(keel_ratelimit_take(rl, "k", &small, 1000, &d));
    assert_true(keel_ratelimit_take(rl, "k", &small, 1000, &d));
    assert_false(keel_ratelimit_take(rl, "k", &small, 1000, &d));
    keel_ratelimit_free(rl);
}

static void test_invalid_limit_admits_nothing(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    keel_ratelimit_limit zero_rate = {.rate_per_s = 0, .burst = 10};
    keel_ratelimit_limit no_burst = {.rate_per_s = 10, .burst = 0.5};
    keel_ratelimit_decision d;

    assert_false(keel_ratelimit_take(rl, "k", &zero_rate, 0, &d));
    assert_true(d.retry_after_ms > 0);
    assert_false(keel_ratelimit_take(rl, "k", &no_burst, 0, &d));
    assert_int_equal(keel_ratelimit_size(rl), 0);
    keel_ratelimit_free(rl);
}

/* The table never holds more than max_keys; the least recently used key goes first. */
static void test_lru_bound(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(3);
    keel_ratelimit_limit lim = {.rate_per_s = 1, .burst = 1};
    keel_ratelimit_limit seen;
    keel_ratelimit_decision d;

    keel_ratelimit_take(rl, "a", &lim, 0, &d);
    keel_ratelimit_take(rl, "b", &lim, 0, &d);
    keel_ratelimit_take(rl, "c", &lim, 0, &d);
    keel_ratelimit_take(rl, "a", &lim, 0, &d); /* a becomes the most recent */
    keel_ratelimit_take(rl, "d", &lim, 0, &d); /* evicts b */
    assert_int_equal(keel_ratelimit_size(rl), 3);
    assert_true(keel_ratelimit_lookup(rl, "a", &seen));
    assert_false(keel_ratelimit_lookup(rl, "b", &seen));
    assert_true(keel_ratelimit_lookup(rl, "c", &seen));
    assert_true(keel_ratelimit_lookup(rl, "d", &seen));
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        keel_ratelimit_take(rl, key, &lim, 0, &d);
    }
    assert_int_equal(keel_ratelimit_size(rl), 3);
    assert_true(keel_ratelimit_lookup(rl, "k999", &seen));
    assert_false(keel_ratelimit_lookup(rl, "k996", &seen));
    keel_ratelimit_free(rl);
}

typedef struct taker {
    keel_ratelimit *rl;
    int admitted;
} taker;

static void *taker_main(void *arg)
{
    taker *t = arg;
    keel_ratelimit_limit lim = {.rate_per_s = 0.001, .burst = 1000};
    keel_ratelimit_decision d;
    for (int i = 0; i < 2000; i++) {
        t->admitted += keel_ratelimit_take(t->rl, "shared", &lim, 0, &d) ? 1 : 0;
    }
    return NULL;
}

/* Four threads racing for one bucket of 1000 tokens get exactly 1000 between them. */
static void test_threads_share_a_bucket_exactly(void **state)
{
    keel_ratelimit *rl = keel_ratelimit_new(0);
    taker t[4];
    pthread_t th[4];
    int total = 0;

    for (int i = 0; i < 4; i++) {
        t[i] = (taker){.rl = rl};
        assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += t[i].admitted;
    }
    assert_int_equal(total, 1000);
    keel_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_limit_change_applies_at_once),
        cmocka_unit_test(test_invalid_limit_admits_nothing),
        cmocka_unit_test(test_lru_bound),
        cmocka_unit_test(test_threads_share_a_bucket_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
