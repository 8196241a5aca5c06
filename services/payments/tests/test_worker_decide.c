/* Unit tests of the worker's pure decisions: what to record after an attempt, and how long to
 * wait before the next one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "flow.h"

static void test_definite_outcomes_are_recorded_at_once(void **state)
{
    for (int attempts = 0; attempts < 10; attempts++) {
        for (int amb = 0; amb < 2; amb++) {
            for (int past = 0; past < 2; past++) {
                assert_int_equal(
                    payments_worker_decide(PAYMENTS_CHARGE_SUCCEEDED, attempts, 8, amb, past),
                    PAYMENTS_ACTION_SUCCEED);
                assert_int_equal(
                    payments_worker_decide(PAYMENTS_CHARGE_DECLINED, attempts, 8, amb, past),
                    PAYMENTS_ACTION_FAIL);
            }
        }
    }
}

static void test_not_processed_retries_until_max(void **state)
{
    /* attempts_before counts the earlier rounds; with max 8 the 8th is the last. */
    for (int attempts = 0; attempts < 7; attempts++) {
        assert_int_equal(
            payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, attempts, 8, false, false),
            PAYMENTS_ACTION_RETRY);
    }
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 7, 8, false, false),
                     PAYMENTS_ACTION_FAIL_UNAVAILABLE);
    /* max 1: the first round is already the last. */
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 0, 1, false, false),
                     PAYMENTS_ACTION_FAIL_UNAVAILABLE);
    /* A nonsense max behaves as 1, never as "retry forever". */
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 0, 0, false, false),
                     PAYMENTS_ACTION_FAIL_UNAVAILABLE);
}

static void test_unknown_is_asked_until_the_deadline(void **state)
{
    /* However many rounds: an unknown outcome is looked up again until the deadline ... */
    for (int attempts = 0; attempts < 50; attempts++) {
        assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_UNKNOWN, attempts, 8, true, false),
                         PAYMENTS_ACTION_RETRY);
    }
    /* ... then a person decides. */
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_UNKNOWN, 0, 8, true, true),
                     PAYMENTS_ACTION_REVIEW);
    /* Unknown is never turned into a failure, even if flagged unambiguous by mistake. */
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_UNKNOWN, 7, 8, false, false),
                     PAYMENTS_ACTION_RETRY);
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_UNKNOWN, 7, 8, false, true),
                     PAYMENTS_ACTION_REVIEW);
}

static void test_never_fails_what_may_have_been_charged(void **state)
{
    /* This round was not processed, but an earlier call may have charged: never "failed",
     * however many rounds. */
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 7, 8, true, false),
                     PAYMENTS_ACTION_RETRY);
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 100, 8, true, false),
                     PAYMENTS_ACTION_RETRY);
    assert_int_equal(payments_worker_decide(PAYMENTS_CHARGE_NOT_PROCESSED, 7, 8, true, true),
                     PAYMENTS_ACTION_REVIEW);
}

static void test_retry_delay_uses_capped_full_jitter(void **state)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int attempt = 0; attempt < 40; attempt++) {
        int64_t ceiling = PAYMENTS_RETRY_BASE_MS;
        for (int i = 0; i < attempt && ceiling < PAYMENTS_RETRY_CAP_MS; i++) {
            ceiling *= 2;
        }
        if (ceiling > PAYMENTS_RETRY_CAP_MS) {
            ceiling = PAYMENTS_RETRY_CAP_MS;
        }
        int64_t max_seen = 0;
        int64_t min_seen = INT64_MAX;
        for (int n = 0; n < 300; n++) {
            int64_t d = payments_worker_retry_delay_ms(attempt, &rng);
            assert_true(d >= 0);
            assert_true(d <= ceiling);
            if (d > max_seen) {
                max_seen = d;
            }
            if (d < min_seen) {
                min_seen = d;
            }
        }
        /* Jitter: the delays spread over the range instead of repeating one value. */
        assert_true(max_seen > ceiling / 2);
        assert_true(min_seen < ceiling / 2);
    }
    /* Huge attempt counts stay at the cap and never overflow. */
    assert_true(payments_worker_retry_delay_ms(1000000, &rng) <= PAYMENTS_RETRY_CAP_MS);
    assert_true(payments_worker_retry_delay_ms(-3, &rng) <= PAYMENTS_RETRY_BASE_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definite_outcomes_are_recorded_at_once),
        cmocka_unit_test(test_not_processed_retries_until_max),
        cmocka_unit_test(test_unknown_is_asked_until_the_deadline),
        cmocka_unit_test(test_never_fails_what_may_have_been_charged),
        cmocka_unit_test(test_retry_delay_uses_capped_full_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
