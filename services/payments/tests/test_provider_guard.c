/* Unit tests of provider_guard.c: which answers count against a provider's health, in-place
 * retries only of not-processed answers, the retry budget's bound on them, and the breaker
 * refusing calls once a provider fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_guard.h"

typedef struct fake {
    payments_charge_status answer;
    long http_status;
    int calls;
} fake;

static void fake_charge(payments_provider *p, const payments_charge_request *req,
                        payments_charge_outcome *out)
{
    (void)req;
    fake *f = p->impl;
    f->calls++;
    memset(out, 0, sizeof(*out));
    out->status = f->answer;
    out->http_status = f->http_status;
}

static payments_lookup_status fake_lookup(payments_provider *p, const char *id, const char *tp,
                                          payments_charge_outcome *out)
{
    (void)id;
    (void)tp;
    fake *f = p->impl;
    f->calls++;
    memset(out, 0, sizeof(*out));
    out->http_status = f->http_status;
    return PAYMENTS_LOOKUP_NOT_FOUND;
}

static void fake_free(payments_provider *p)
{
    free(p);
}

static payments_guard *guard_for(fake *f, const char *name, int attempts, double ratio,
                                 double min_per_second, int window)
{
    payments_provider *p = calloc(1, sizeof(*p));
    p->name = name;
    p->impl = f;
    p->charge = fake_charge;
    p->lookup = fake_lookup;
    p->free = fake_free;
    payments_guard_options o = {
        .call_attempts = attempts,
        .backoff_base_ms = 1,
        .backoff_cap_ms = 2,
        .budget_ratio = ratio,
        .budget_min_per_second = min_per_second,
        .breaker = {.window_size = window, .min_calls = window, .open_ms = 60000},
    };
    char err[256];
    payments_guard *g = payments_guard_new(p, &o, err, sizeof(err));
    assert_non_null(g);
    return g;
}

static const payments_charge_request REQ = {.payment_id = "pay_1", .amount = 1, .currency = "usd"};

static void test_health_classification(void **state)
{
    payments_charge_outcome o = {0};
    long healthy[] = {200, 201, 400, 401, 402, 404, 409};
    long unhealthy[] = {0, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof(healthy) / sizeof(healthy[0]); i++) {
        o.http_status = healthy[i];
        assert_true(payments_guard_healthy(&o));
    }
    for (size_t i = 0; i < sizeof(unhealthy) / sizeof(unhealthy[0]); i++) {
        o.http_status = unhealthy[i];
        assert_false(payments_guard_healthy(&o));
    }
}

static void test_retries_only_not_processed(void **state)
{
    payments_charge_outcome out;
    int calls = 0;
    payments_charge_status once[] = {PAYMENTS_CHARGE_SUCCEEDED, PAYMENTS_CHARGE_DECLINED,
                                     PAYMENTS_CHARGE_UNKNOWN};
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
        fake f = {.answer = once[i], .http_status = 200};
        payments_guard *g = guard_for(&f, "g_once", 5, 1.0, 100, 1000);
        assert_true(payments_guard_acquire(g));
        payments_guard_charge(g, &REQ, &out, &calls);
        assert_int_equal(calls, 1);
        assert_int_equal(f.calls, 1);
        payments_guard_free(g);
    }
    /* Not processed: up to call_attempts calls while the budget allows. */
    fake f = {.answer = PAYMENTS_CHARGE_NOT_PROCESSED, .http_status = 503};
    payments_guard *g = guard_for(&f, "g_np", 4, 0, 100, 1000);
    assert_true(payments_guard_acquire(g));
    payments_guard_charge(g, &REQ, &out, &calls);
    assert_int_equal(calls, 4);
    assert_int_equal(out.status, PAYMENTS_CHARGE_NOT_PROCESSED);
    payments_guard_free(g);
}

static void test_budget_bounds_retries_in_an_outage(void **state)
{
    /* Every call fails for 200 first calls; ratio 0.1, no floor: retries stay within 10 %
     * of first calls (plus what the bucket may hold), however many attempts each may make. */
    fake f = {.answer = PAYMENTS_CHARGE_NOT_PROCESSED, .http_status = 0};
    payments_guard *g = guard_for(&f, "g_budget", 5, 0.1, 0, 10000);
    payments_charge_outcome out;
    int calls = 0;
    for (int i = 0; i < 200; i++) {
        assert_true(payments_guard_acquire(g));
        payments_guard_charge(g, &REQ, &out, &calls);
    }
    assert_true(f.calls >= 200);
    assert_true(f.calls <= 200 + 20);
    payments_guard_free(g);
}

static void test_breaker_opens_and_refuses(void **state)
{
    fake f = {.answer = PAYMENTS_CHARGE_NOT_PROCESSED, .http_status = 0};
    payments_guard *g = guard_for(&f, "g_breaker", 1, 0, 0, 4);
    payments_charge_outcome out;
    int calls = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(payments_guard_acquire(g));
        payments_guard_charge(g, &REQ, &out, &calls);
    }
    assert_int_equal(payments_guard_state(g), KEEL_BREAKER_OPEN);
    /* Open: nothing may be sent, and nothing is. */
    assert_false(payments_guard_acquire(g));
    assert_int_equal(f.calls, 4);
    payments_guard_free(g);

    /* A healthy provider's declines and lookups never open it. */
    fake ok = {.answer = PAYMENTS_CHARGE_DECLINED, .http_status = 402};
    g = guard_for(&ok, "g_declines", 1, 0, 0, 4);
    for (int i = 0; i < 8; i++) {
        assert_true(payments_guard_acquire(g));
        payments_guard_charge(g, &REQ, &out, &calls);
        assert_true(payments_guard_acquire(g));
        assert_int_equal(payments_guard_lookup(g, "pay_1", NULL, &out), PAYMENTS_LOOKUP_NOT_FOUND);
    }
    assert_int_equal(payments_guard_state(g), KEEL_BREAKER_CLOSED);
    /* A permit given back is no verdict. */
    assert_true(payments_guard_acquire(g));
    payments_guard_release(g);
    assert_int_equal(payments_guard_state(g), KEEL_BREAKER_CLOSED);
    payments_guard_free(g);
}

static void test_bad_options(void **state)
{
    payments_provider *p = calloc(1, sizeof(*p));
    p->name = "g_bad";
    p->free = fake_free;
    payments_guard_options o = {.call_attempts = 0};
    char err[256];
    /* Refused, and the provider it was given is freed (ASan would see a leak). */
    assert_null(payments_guard_new(p, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "g_bad"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_classification),
        cmocka_unit_test(test_retries_only_not_processed),
        cmocka_unit_test(test_budget_bounds_retries_in_an_outage),
        cmocka_unit_test(test_breaker_opens_and_refuses),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
