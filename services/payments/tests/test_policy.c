/* Unit tests of policy.c: parsing routes per currency and local risk limits, and the lookups
 * with their default. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "policy.h"

static const char *const NAMES[] = {"provider_a", "provider_b"};

static void test_routes_parse_and_lookup(void **state)
{
    payments_routes r;
    char err[256];
    assert_int_equal(payments_routes_parse(" default = provider_a , provider_b ;NGN=provider_b,"
                                           "provider_a;usd=provider_a;",
                                           NAMES, 2, &r, err, sizeof(err)),
                     0);
    assert_int_equal(r.n, 3);
    const payments_route *ngn = payments_routes_for(&r, "ngn");
    assert_string_equal(ngn->currency, "ngn");
    assert_int_equal(ngn->n, 2);
    assert_int_equal(ngn->providers[0], 1);
    assert_int_equal(ngn->providers[1], 0);
    /* Case does not matter; a currency without its own route takes the default. */
    assert_ptr_equal(payments_routes_for(&r, "NGN"), ngn);
    const payments_route *usd = payments_routes_for(&r, "usd");
    assert_int_equal(usd->n, 1);
    const payments_route *eur = payments_routes_for(&r, "eur");
    assert_string_equal(eur->currency, "default");
    assert_int_equal(eur->providers[0], 0);
    assert_int_equal(eur->providers[1], 1);
}

static void test_routes_refuse_mistakes(void **state)
{
    static const struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"ngn=provider_b", "default route"},
        {"default=provider_c", "provider_c"},
        {"default=provider_a,provider_a", "twice"},
        {"default=provider_a;default=provider_b", "twice"},
        {"default=", "no provider"},
        {"default=provider_a;xyz=provider_b", "xyz"},
        {"default", "key=value"},
        {"", "default route"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        payments_routes r;
        char err[256] = "";
        if (payments_routes_parse(bad[i].text, NAMES, 2, &r, err, sizeof(err)) == 0) {
            fail_msg("\"%s\" was accepted", bad[i].text);
        }
        if (strstr(err, bad[i].says) == NULL) {
            fail_msg("\"%s\": the message \"%s\" does not say \"%s\"", bad[i].text, err,
                     bad[i].says);
        }
    }
    /* Only configured providers: without B, a route to B is an error. */
    payments_routes r;
    char err[256];
    assert_int_not_equal(
        payments_routes_parse("default=provider_a,provider_b", NAMES, 1, &r, err, sizeof(err)), 0);
}

static void test_limits(void **state)
{
    payments_risk_limits l;
    char err[256];
    assert_int_equal(payments_risk_limits_parse("usd=500000;default=1000000", &l, err, sizeof(err)),
                     0);
    assert_int_equal(payments_risk_limit_for(&l, "usd"), 500000);
    assert_int_equal(payments_risk_limit_for(&l, "USD"), 500000);
    assert_int_equal(payments_risk_limit_for(&l, "ngn"), 1000000);
    const char *bad[] = {
        "usd=500000", "default=0",           "default=-5",      "default=12x",
        "default=",   "default=1;default=2", "zzz=1;default=2", "default=99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (payments_risk_limits_parse(bad[i], &l, err, sizeof(err)) == 0) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_non_null(strstr(err, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_parse_and_lookup),
        cmocka_unit_test(test_routes_refuse_mistakes),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
