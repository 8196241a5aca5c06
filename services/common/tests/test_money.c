/* Unit tests for keel/money.h: ISO 4217 exponents, lookups and amount limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "keel/money.h"

/* The ISO 4217 minor-unit column for every currency the contract promises. */
static const struct {
    const char *code;
    int exponent;
} ISO[] = {
    {"usd", 2}, {"eur", 2}, {"gbp", 2}, {"jpy", 0}, {"chf", 2}, {"cad", 2}, {"aud", 2},
    {"nzd", 2}, {"sek", 2}, {"nok", 2}, {"dkk", 2}, {"pln", 2}, {"czk", 2}, {"huf", 2},
    {"ron", 2}, {"bgn", 2}, {"inr", 2}, {"cny", 2}, {"hkd", 2}, {"sgd", 2}, {"krw", 0},
    {"idr", 2}, {"myr", 2}, {"php", 2}, {"thb", 2}, {"vnd", 0}, {"brl", 2}, {"mxn", 2},
    {"ars", 2}, {"clp", 0}, {"cop", 2}, {"pen", 2}, {"zar", 2}, {"ngn", 2}, {"kes", 2},
    {"ghs", 2}, {"egp", 2}, {"mad", 2}, {"aed", 2}, {"sar", 2}, {"ils", 2}, {"try", 2},
    {"uah", 2}, {"kwd", 3}, {"bhd", 3}, {"omr", 3}, {"jod", 3}, {"tnd", 3}, {"isk", 0},
};

static void test_every_promised_currency_has_iso_exponent(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ISO / sizeof ISO[0]; i++) {
        const keel_currency *c = keel_currency_find(ISO[i].code);
        if (c == NULL) {
            fail_msg("%s missing", ISO[i].code);
        }
        assert_string_equal(c->code, ISO[i].code);
        if (c->exponent != ISO[i].exponent) {
            fail_msg("%s has exponent %d, ISO 4217 says %d", ISO[i].code, c->exponent,
                     ISO[i].exponent);
        }
        /* 99,999,999 major units and every minor unit below the next one (usd 99,999,999.99
         * = 9999999999), or the 11-digit cap for zero-decimal currencies. */
        int64_t want = INT64_C(100000000);
        for (int e = 0; e < ISO[i].exponent; e++) {
            want *= 10;
        }
        want = ISO[i].exponent == 0 ? INT64_C(99999999999) : want - 1;
        if (c->max_amount != want) {
            fail_msg("%s max_amount %lld, want %lld", ISO[i].code, (long long)c->max_amount,
                     (long long)want);
        }
    }
}

static void test_find_is_case_insensitive_and_strict(void **state)
{
    (void)state;
    const keel_currency *usd = keel_currency_find("usd");
    assert_non_null(usd);
    assert_ptr_equal(keel_currency_find("USD"), usd);
    assert_ptr_equal(keel_currency_find("uSd"), usd);
    assert_null(keel_currency_find(NULL));
    assert_null(keel_currency_find(""));
    assert_null(keel_currency_find("us"));
    assert_null(keel_currency_find("usdd"));
    assert_null(keel_currency_find("usd "));
    assert_null(keel_currency_find("xyz"));
    assert_null(keel_currency_find("btc")); /* not ISO 4217 */
}

static void test_amount_limits(void **state)
{
    (void)state;
    char err[128];
    const keel_currency *usd = keel_currency_find("usd");
    const keel_currency *jpy = keel_currency_find("jpy");
    const keel_currency *kwd = keel_currency_find("kwd");

    assert_true(keel_money_amount_valid(usd, 1, err, sizeof err));
    assert_true(keel_money_amount_valid(usd, INT64_C(9999999999), err, sizeof err));
    assert_false(keel_money_amount_valid(usd, INT64_C(10000000000), err, sizeof err));
    assert_non_null(strstr(err, "at most 9999999999 for usd"));

    assert_true(keel_money_amount_valid(jpy, INT64_C(99999999999), err, sizeof err));
    assert_false(keel_money_amount_valid(jpy, INT64_C(100000000000), err, sizeof err));
    assert_non_null(strstr(err, "at most 99999999999 for jpy"));

    assert_true(keel_money_amount_valid(kwd, INT64_C(99999999999), err, sizeof err));
    assert_false(keel_money_amount_valid(kwd, INT64_MAX, err, sizeof err));

    assert_false(keel_money_amount_valid(usd, 0, err, sizeof err));
    assert_non_null(strstr(err, "positive"));
    assert_false(keel_money_amount_valid(usd, -100, err, sizeof err));
    assert_non_null(strstr(err, "positive"));
    assert_false(keel_money_amount_valid(usd, INT64_MIN, err, sizeof err));

    assert_false(keel_money_amount_valid(NULL, 100, err, sizeof err));
    assert_non_null(strstr(err, "currency"));

    /* A small buffer truncates the message but never overflows. */
    char tiny[8];
    assert_false(keel_money_amount_valid(usd, 0, tiny, sizeof tiny));
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_promised_currency_has_iso_exponent),
        cmocka_unit_test(test_find_is_case_insensitive_and_strict),
        cmocka_unit_test(test_amount_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
