/* Unit tests of the chaos driver's client rules: which answers are retried, how long the
 * client waits, and how ids are read from answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy.h"

static void test_classify_accepts_created_answers(void **state)
{
    (void)state;
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 202), CHAOS_ACCEPTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 201), CHAOS_ACCEPTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 200), CHAOS_ACCEPTED);
}

static void test_classify_retries_what_may_pass(void **state)
{
    (void)state;
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_NOT_SENT, 0), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_TIMEOUT_AFTER_SEND, 0), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_TRANSPORT_ERROR, 0), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 409), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 429), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 500), CHAOS_RETRY);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 503), CHAOS_RETRY);
}

static void test_classify_rejects_bad_requests(void **state)
{
    (void)state;
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 400), CHAOS_REJECTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 401), CHAOS_REJECTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 404), CHAOS_REJECTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_OK, 422), CHAOS_REJECTED);
    assert_int_equal(chaos_policy_classify(KEEL_HTTP_TOO_LARGE, 0), CHAOS_REJECTED);
}

static void test_delay_stays_within_the_cap(void **state)
{
    (void)state;
    uint64_t rng = 42;
    for (int attempt = 0; attempt < 40; attempt++) {
        int64_t ms = chaos_policy_retry_delay_ms(attempt, "", &rng);
        assert_true(ms >= 0);
        assert_true(ms <= CHAOS_RETRY_CAP_MS);
    }
    /* The first delay is within the base. */
    for (int i = 0; i < 100; i++) {
        assert_true(chaos_policy_retry_delay_ms(0, NULL, &rng) <= CHAOS_RETRY_BASE_MS);
    }
}

static void test_delay_honours_retry_after(void **state)
{
    (void)state;
    uint64_t rng = 7;
    assert_true(chaos_policy_retry_delay_ms(0, "2", &rng) >= 2000);
    /* Capped: a server cannot park the client for an hour. */
    int64_t ms = chaos_policy_retry_delay_ms(0, "3600", &rng);
    assert_int_equal(ms, (int64_t)CHAOS_RETRY_AFTER_CAP_S * 1000);
    /* An HTTP date or junk is ignored: the backoff alone applies. */
    assert_true(chaos_policy_retry_delay_ms(0, "Wed, 21 Oct 2015 07:28:00 GMT", &rng) <=
                CHAOS_RETRY_BASE_MS);
}

static void test_extract_id(void **state)
{
    (void)state;
    char id[64];
    assert_int_equal(chaos_policy_extract_id("{\"id\":\"pay_abc\",\"status\":\"pending\"}", "pay_",
                                             id, sizeof(id)),
                     0);
    assert_string_equal(id, "pay_abc");
    assert_int_equal(chaos_policy_extract_id("{\"id\":\"re_1\"}", "pay_", id, sizeof(id)), -1);
    assert_int_equal(chaos_policy_extract_id("{\"id\":7}", "", id, sizeof(id)), -1);
    assert_int_equal(chaos_policy_extract_id("not json", "", id, sizeof(id)), -1);
    assert_int_equal(chaos_policy_extract_id(NULL, "", id, sizeof(id)), -1);
    /* Too long for the buffer: refused rather than cut. */
    assert_int_equal(chaos_policy_extract_id("{\"id\":\"pay_0123456789\"}", "pay_", id, 8), -1);
    assert_int_equal(
        chaos_policy_extract_string("{\"status\":\"succeeded\"}", "status", id, sizeof(id)), 0);
    assert_string_equal(id, "succeeded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_accepts_created_answers),
        cmocka_unit_test(test_classify_retries_what_may_pass),
        cmocka_unit_test(test_classify_rejects_bad_requests),
        cmocka_unit_test(test_delay_stays_within_the_cap),
        cmocka_unit_test(test_delay_honours_retry_after),
        cmocka_unit_test(test_extract_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
