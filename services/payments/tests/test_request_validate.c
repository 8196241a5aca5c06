/* Unit tests of request_validate.c: every rule a PaymentRequested must meet, and its message. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "request_validate.h"

#define VALID_ID "pay_0193ab45cd67ef0123456789abcdef01"

typedef struct fixture {
    Keel__V1__PaymentRequested req;
    Keel__V1__PaymentRequested__MetadataEntry entries[60];
    Keel__V1__PaymentRequested__MetadataEntry *ptrs[60];
    char keys[60][16];
    char err[256];
} fixture;

static fixture fx;

static void fixture_reset(void)
{
    memset(&fx, 0, sizeof(fx));
    Keel__V1__PaymentRequested init = KEEL__V1__PAYMENT_REQUESTED__INIT;
    fx.req = init;
    fx.req.payment_id = VALID_ID;
    fx.req.merchant_id = "mer_1";
    fx.req.amount = 1999;
    fx.req.currency = "usd";
    fx.req.description = "order 42";
    fx.req.payment_method = "pm_card_visa";
    fx.req.created_at = "2026-11-30T16:36:58.123Z";
    for (int i = 0; i < 60; i++) {
        Keel__V1__PaymentRequested__MetadataEntry e =
            KEEL__V1__PAYMENT_REQUESTED__METADATA_ENTRY__INIT;
        fx.entries[i] = e;
        snprintf(fx.keys[i], sizeof(fx.keys[i]), "k%d", i);
        fx.entries[i].key = fx.keys[i];
        fx.entries[i].value = "v";
        fx.ptrs[i] = &fx.entries[i];
    }
    fx.req.metadata = fx.ptrs;
    fx.req.n_metadata = 0;
}

static bool validate(void)
{
    fx.err[0] = '\0';
    return payments_request_validate(&fx.req, fx.err, sizeof(fx.err));
}

static void expect_invalid(const char *message)
{
    assert_false(validate());
    assert_string_equal(fx.err, message);
}

static void test_valid_request_passes(void **state)
{
    fixture_reset();
    fx.req.n_metadata = 2;
    assert_true(validate());
    /* Upper-case currency is a known currency too (stored canonical). */
    fx.req.currency = "EUR";
    assert_true(validate());
    /* An empty description is allowed. */
    fx.req.description = NULL;
    assert_true(validate());
}

static void test_payment_id_rules(void **state)
{
    const char *bad[] = {
        NULL,
        "",
        "pay_",
        "pay_0193ab45cd67ef0123456789abcdef0",   /* 31 hex */
        "pay_0193ab45cd67ef0123456789abcdef012", /* 33 hex */
        "pay_0193AB45CD67EF0123456789ABCDEF01",  /* upper case */
        "pay_0193ab45cd67ef0123456789abcdef0g",  /* not hex */
        "pa_0193ab45cd67ef0123456789abcdef012",
        "PAY_0193ab45cd67ef0123456789abcdef01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fixture_reset();
        fx.req.payment_id = (char *)bad[i];
        expect_invalid("invalid payment_id: must be \"pay_\" followed by 32 lowercase hex "
                       "digits");
    }
    assert_true(payments_payment_id_valid(VALID_ID));
}

static void test_merchant_id_rules(void **state)
{
    fixture_reset();
    fx.req.merchant_id = "";
    expect_invalid("invalid merchant_id: must not be empty");
    fx.req.merchant_id = NULL;
    expect_invalid("invalid merchant_id: must not be empty");
    fx.req.merchant_id = "mer_\xff";
    expect_invalid("invalid merchant_id: must be UTF-8");
}

static void test_amount_rules(void **state)
{
    fixture_reset();
    fx.req.amount = 0;
    expect_invalid("invalid amount: must be > 0");
    fx.req.amount = -5;
    expect_invalid("invalid amount: must be > 0");

    const keel_currency *usd = keel_currency_find("usd");
    assert_non_null(usd);
    fx.req.amount = usd->max_amount;
    assert_true(validate());
    fx.req.amount = usd->max_amount + 1;
    char want[128];
    snprintf(want, sizeof(want), "invalid amount: must be at most %lld for usd",
             (long long)usd->max_amount);
    expect_invalid(want);

    /* The maximum is per currency: jpy has no minor unit. */
    const keel_currency *jpy = keel_currency_find("jpy");
    assert_non_null(jpy);
    fx.req.currency = "jpy";
    fx.req.amount = jpy->max_amount;
    assert_true(validate());
    fx.req.amount = jpy->max_amount + 1;
    assert_false(validate());
}

static void test_currency_rules(void **state)
{
    fixture_reset();
    fx.req.currency = "xyz";
    expect_invalid("invalid currency: \"xyz\" is not a supported ISO 4217 code");
    fx.req.currency = "";
    expect_invalid("invalid currency: \"\" is not a supported ISO 4217 code");
    fx.req.currency = NULL;
    expect_invalid("invalid currency: \"\" is not a supported ISO 4217 code");
}

static void test_description_rules(void **state)
{
    char text[1002];
    fixture_reset();
    memset(text, 'a', 1000);
    text[1000] = '\0';
    fx.req.description = text;
    assert_true(validate());
    text[1000] = 'a';
    text[1001] = '\0';
    fx.req.description = text;
    expect_invalid("invalid description: must be at most 1000 bytes");
    fx.req.description = "caf\xc3";
    expect_invalid("invalid description: must be UTF-8");
}

static void test_payment_method_rules(void **state)
{
    char text[102];
    fixture_reset();
    fx.req.payment_method = "";
    expect_invalid("invalid payment_method: must not be empty");
    memset(text, 'p', 101);
    text[101] = '\0';
    fx.req.payment_method = text;
    expect_invalid("invalid payment_method: must be at most 100 bytes");
    text[100] = '\0';
    assert_true(validate());
}

static void test_metadata_rules(void **state)
{
    fixture_reset();
    fx.req.n_metadata = 50;
    assert_true(validate());
    fx.req.n_metadata = 51;
    expect_invalid("invalid metadata: at most 50 keys");

    fixture_reset();
    fx.req.n_metadata = 3;
    char key[64];
    memset(key, 'k', 41);
    key[41] = '\0';
    fx.entries[1].key = key;
    expect_invalid("invalid metadata: key 2 must be 1 to 40 characters of UTF-8");
    key[40] = '\0';
    assert_true(validate());
    /* 40 characters of two bytes each is 80 bytes, still within the limit. */
    char wide[128] = "";
    for (int i = 0; i < 40; i++) {
        strcat(wide, "\xc3\xa9");
    }
    fx.entries[1].key = wide;
    assert_true(validate());
    fx.entries[1].key = "";
    expect_invalid("invalid metadata: key 2 must be 1 to 40 characters of UTF-8");

    fixture_reset();
    fx.req.n_metadata = 1;
    char value[512];
    memset(value, 'v', 501);
    value[501] = '\0';
    fx.entries[0].value = value;
    expect_invalid("invalid metadata: value of \"k0\" is longer than 500 characters");
    value[500] = '\0';
    assert_true(validate());
    fx.entries[0].value = "\xed\xa0\x80"; /* a UTF-16 surrogate, not valid UTF-8 */
    expect_invalid("invalid metadata: value of \"k0\" must be UTF-8");
}

static void test_utf8(void **state)
{
    assert_true(payments_utf8_valid(""));
    assert_true(payments_utf8_valid("plain"));
    assert_true(payments_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert_false(payments_utf8_valid("\xc0\xaf"));         /* overlong '/' */
    assert_false(payments_utf8_valid("\xe0\x80\xaf"));     /* overlong */
    assert_false(payments_utf8_valid("\xf4\x90\x80\x80")); /* above U+10FFFF */
    assert_false(payments_utf8_valid("\x80"));
    assert_false(payments_utf8_valid("\xe2\x82"));
    assert_int_equal(payments_utf8_length("\xc3\xa9t\xc3\xa9"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_request_passes),
        cmocka_unit_test(test_payment_id_rules),
        cmocka_unit_test(test_merchant_id_rules),
        cmocka_unit_test(test_amount_rules),
        cmocka_unit_test(test_currency_rules),
        cmocka_unit_test(test_description_rules),
        cmocka_unit_test(test_payment_method_rules),
        cmocka_unit_test(test_metadata_rules),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
