/* Unit tests of the POST /v1/payments body rules: every field, every limit, every type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payment_validate.h"

/* Parses text (which must be valid JSON) and validates it. */
static bool run(const char *text, gateway_payment_input *in, gateway_validation_error *err,
                json_t **doc)
{
    json_error_t jerr;
    *doc = json_loads(text, 0, &jerr);
    if (*doc == NULL) {
        fail_msg("test JSON does not parse: %s: %s", text, jerr.text);
    }
    return gateway_payment_validate(*doc, in, err);
}

static void expect_error(const char *text, const char *code, const char *param)
{
    gateway_payment_input in;
    gateway_validation_error err;
    json_t *doc = NULL;

    if (run(text, &in, &err, &doc)) {
        fail_msg("accepted %s, expected %s", text, code);
    }
    assert_string_equal(err.code, code);
    assert_string_equal(err.param, param);
    assert_true(strlen(err.message) > 0);
    json_decref(doc);
}

static void expect_ok(const char *text)
{
    gateway_payment_input in;
    gateway_validation_error err;
    json_t *doc = NULL;

    if (!run(text, &in, &err, &doc)) {
        fail_msg("refused %s: %s %s %s", text, err.code, err.param, err.message);
    }
    json_decref(doc);
}

/* Validates a body built in code (for strings JSON text cannot carry, e.g. NUL or bad
 * UTF-8). code NULL means the body must be accepted. Takes the body reference. */
static void check_obj(json_t *body, const char *code, const char *param)
{
    gateway_payment_input in;
    gateway_validation_error err;
    bool ok;

    assert_non_null(body);
    ok = gateway_payment_validate(body, &in, &err);
    if (code == NULL) {
        if (!ok) {
            fail_msg("refused: %s %s %s", err.code, err.param, err.message);
        }
    } else {
        assert_false(ok);
        assert_string_equal(err.code, code);
        assert_string_equal(err.param, param);
    }
    json_decref(body);
}

/* {"amount":1,"currency":"usd", name: value}, taking value's reference. */
static json_t *with_field(const char *name, json_t *value)
{
    return json_pack("{s:i, s:s, s:o}", "amount", 1, "currency", "usd", name, value);
}

static char *repeat(const char *unit, size_t times)
{
    size_t n = strlen(unit);
    char *s = malloc(n * times + 1);
    assert_non_null(s);
    for (size_t i = 0; i < times; i++) {
        memcpy(s + i * n, unit, n);
    }
    s[n * times] = '\0';
    return s;
}

static void test_minimal_body_gets_defaults(void **state)
{
    gateway_payment_input in;
    gateway_validation_error err;
    json_t *doc = NULL;

    (void)state;
    assert_true(run("{\"amount\":1999,\"currency\":\"USD\"}", &in, &err, &doc));
    assert_int_equal(in.amount, 1999);
    assert_string_equal(in.currency->code, "usd"); /* stored lowercase */
    assert_null(in.description);
    assert_null(in.metadata);
    assert_string_equal(in.payment_method, "pm_card_visa");
    json_decref(doc);
}

static void test_full_body(void **state)
{
    gateway_payment_input in;
    gateway_validation_error err;
    json_t *doc = NULL;

    (void)state;
    assert_true(run("{\"amount\":500,\"currency\":\"eur\",\"description\":\"Order 7\","
                    "\"metadata\":{\"order\":\"7\"},\"payment_method\":\"pm_card_declined\"}",
                    &in, &err, &doc));
    assert_int_equal(in.amount, 500);
    assert_string_equal(in.currency->code, "eur");
    assert_string_equal(in.description, "Order 7");
    assert_string_equal(json_string_value(json_object_get(in.metadata, "order")), "7");
    assert_string_equal(in.payment_method, "pm_card_declined");
    json_decref(doc);
}

static void test_null_optional_fields_are_absent(void **state)
{
    gateway_payment_input in;
    gateway_validation_error err;
    json_t *doc = NULL;

    (void)state;
    assert_true(run("{\"amount\":1,\"currency\":\"usd\",\"description\":null,\"metadata\":null,"
                    "\"payment_method\":null}",
                    &in, &err, &doc));
    assert_null(in.description);
    assert_null(in.metadata);
    assert_string_equal(in.payment_method, "pm_card_visa");
    json_decref(doc);
}

static void test_amount_must_be_an_integer_number(void **state)
{
    (void)state;
    expect_error("{\"currency\":\"usd\"}", "parameter_missing", "amount");
    expect_error("{\"amount\":null,\"currency\":\"usd\"}", "parameter_missing", "amount");
    expect_error("{\"amount\":19.99,\"currency\":\"usd\"}", "parameter_invalid_integer", "amount");
    expect_error("{\"amount\":100.0,\"currency\":\"usd\"}", "parameter_invalid_integer", "amount");
    expect_error("{\"amount\":1e3,\"currency\":\"usd\"}", "parameter_invalid_integer", "amount");
    expect_error("{\"amount\":\"100\",\"currency\":\"usd\"}", "parameter_invalid_integer",
                 "amount");
    expect_error("{\"amount\":true,\"currency\":\"usd\"}", "parameter_invalid_integer", "amount");
    expect_error("{\"amount\":[100],\"currency\":\"usd\"}", "parameter_invalid_integer", "amount");
}

static void test_amount_bounds(void **state)
{
    char text[160];
    const keel_currency *usd = keel_currency_find("usd");
    const keel_currency *jpy = keel_currency_find("jpy");

    (void)state;
    assert_non_null(usd);
    assert_non_null(jpy);
    expect_error("{\"amount\":0,\"currency\":\"usd\"}", "amount_too_small", "amount");
    expect_error("{\"amount\":-5,\"currency\":\"usd\"}", "amount_too_small", "amount");
    expect_ok("{\"amount\":1,\"currency\":\"usd\"}");
    snprintf(text, sizeof(text), "{\"amount\":%lld,\"currency\":\"usd\"}",
             (long long)usd->max_amount);
    expect_ok(text);
    snprintf(text, sizeof(text), "{\"amount\":%lld,\"currency\":\"usd\"}",
             (long long)usd->max_amount + 1);
    expect_error(text, "amount_too_large", "amount");
    /* The limit is the currency's own: JPY has no minor unit, so its cap differs. */
    snprintf(text, sizeof(text), "{\"amount\":%lld,\"currency\":\"jpy\"}",
             (long long)jpy->max_amount + 1);
    expect_error(text, "amount_too_large", "amount");
}

static void test_currency(void **state)
{
    (void)state;
    expect_error("{\"amount\":1}", "parameter_missing", "currency");
    expect_error("{\"amount\":1,\"currency\":840}", "parameter_invalid_string", "currency");
    expect_error("{\"amount\":1,\"currency\":\"xyz\"}", "currency_unsupported", "currency");
    expect_error("{\"amount\":1,\"currency\":\"\"}", "currency_unsupported", "currency");
    expect_error("{\"amount\":1,\"currency\":\"usdollar\"}", "currency_unsupported", "currency");
    expect_ok("{\"amount\":1,\"currency\":\"JpY\"}");
    /* A NUL inside the string must not let "usd\0junk" pass as "usd". */
    check_obj(json_pack("{s:i, s:o}", "amount", 1, "currency", json_stringn("usd\0x", 5)),
              "currency_unsupported", "currency");
}

static void test_unknown_fields_are_named(void **state)
{
    (void)state;
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"customer\":\"c_1\"}", "parameter_unknown",
                 "customer");
    /* Reported before the missing amount, so a typo is named as the typo. */
    expect_error("{\"ammount\":1,\"currency\":\"usd\"}", "parameter_unknown", "ammount");
    /* Found by fuzz/fuzz_body: an empty field name still gives a param to show. */
    expect_error("{\"\":null,\"amount\":1,\"currency\":\"usd\"}", "parameter_unknown", "body");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"status\":\"succeeded\"}",
                 "parameter_unknown", "status");
}

static void test_description(void **state)
{
    char *exact = repeat("a", 1000);
    char *over = repeat("a", 1001);
    char *multi_exact = repeat("\xc3\xa9", 500); /* é is 2 bytes: 500 of them = 1000 bytes */
    char *multi_over = repeat("\xc3\xa9", 501);

    (void)state;
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"description\":5}",
                 "parameter_invalid_string", "description");
    expect_ok("{\"amount\":1,\"currency\":\"usd\",\"description\":\"\"}");
    check_obj(with_field("description", json_string(exact)), NULL, NULL);
    check_obj(with_field("description", json_string(over)), "string_too_long", "description");
    /* The description limit counts bytes, not characters. */
    check_obj(with_field("description", json_string(multi_exact)), NULL, NULL);
    check_obj(with_field("description", json_string(multi_over)), "string_too_long", "description");
    check_obj(with_field("description", json_string_nocheck("bad \xff byte")),
              "parameter_invalid_string", "description");
    check_obj(with_field("description", json_stringn("nul\0inside", 10)),
              "parameter_invalid_string", "description");
    free(exact);
    free(over);
    free(multi_exact);
    free(multi_over);
}

static void test_metadata_shape(void **state)
{
    (void)state;
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"metadata\":[\"a\"]}",
                 "parameter_invalid_object", "metadata");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"metadata\":\"a=b\"}",
                 "parameter_invalid_object", "metadata");
    expect_ok("{\"amount\":1,\"currency\":\"usd\",\"metadata\":{}}");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"metadata\":{\"n\":5}}",
                 "metadata_value_invalid", "metadata[n]");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"metadata\":{\"o\":{\"x\":\"y\"}}}",
                 "metadata_value_invalid", "metadata[o]");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"metadata\":{\"\":\"v\"}}",
                 "metadata_key_invalid", "metadata");
}

static void test_metadata_key_count(void **state)
{
    json_t *fifty = json_object();
    json_t *fifty_one;
    char key[16];

    (void)state;
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        json_object_set_new(fifty, key, json_string("v"));
    }
    fifty_one = json_deep_copy(fifty);
    json_object_set_new(fifty_one, "k50", json_string("v"));
    check_obj(with_field("metadata", fifty), NULL, NULL);
    check_obj(with_field("metadata", fifty_one), "metadata_too_many_keys", "metadata");
}

static void test_metadata_key_and_value_lengths(void **state)
{
    char *key40 = repeat("k", 40);
    char *key41 = repeat("k", 41);
    char *key40_multi = repeat("\xc3\xbc", 40); /* ü ×40: 80 bytes, 40 characters */
    char *value500 = repeat("v", 500);
    char *value501 = repeat("v", 501);
    char *value500_multi = repeat("\xe2\x82\xac", 500); /* € ×500: 1500 bytes */
    char *value501_multi = repeat("\xe2\x82\xac", 501);

    (void)state;
    check_obj(with_field("metadata", json_pack("{s:s}", key40, "v")), NULL, NULL);
    check_obj(with_field("metadata", json_pack("{s:s}", key41, "v")), "metadata_key_invalid",
              "metadata");
    check_obj(with_field("metadata", json_pack("{s:s}", key40_multi, "v")), NULL, NULL);
    check_obj(with_field("metadata", json_pack("{s:s}", "k", value500)), NULL, NULL);
    check_obj(with_field("metadata", json_pack("{s:s}", "k", value501)), "string_too_long",
              "metadata[k]");
    /* Metadata limits count characters, not bytes. */
    check_obj(with_field("metadata", json_pack("{s:s}", "k", value500_multi)), NULL, NULL);
    check_obj(with_field("metadata", json_pack("{s:s}", "k", value501_multi)), "string_too_long",
              "metadata[k]");
    check_obj(with_field("metadata", json_pack("{s:o}", "k", json_string_nocheck("\xc0\xaf"))),
              "metadata_value_invalid", "metadata[k]");
    free(key40);
    free(key41);
    free(key40_multi);
    free(value500);
    free(value501);
    free(value500_multi);
    free(value501_multi);
}

static void test_payment_method(void **state)
{
    char *pm100 = repeat("p", 100);
    char *pm101 = repeat("p", 101);

    (void)state;
    check_obj(with_field("payment_method", json_string(pm100)), NULL, NULL);
    check_obj(with_field("payment_method", json_string(pm101)), "string_too_long",
              "payment_method");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"payment_method\":\"\"}",
                 "parameter_invalid_string", "payment_method");
    expect_error("{\"amount\":1,\"currency\":\"usd\",\"payment_method\":7}",
                 "parameter_invalid_string", "payment_method");
    free(pm100);
    free(pm101);
}

static void test_body_must_be_an_object(void **state)
{
    (void)state;
    check_obj(json_array(), "parameter_invalid_object", "body");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(gateway_utf8_valid("", 0));
    assert_true(gateway_utf8_valid("plain", 5));
    assert_true(gateway_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_true(gateway_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF, the last one */
    assert_false(gateway_utf8_valid("\xc0\xaf", 2));         /* overlong "/" */
    assert_false(gateway_utf8_valid("\xe0\x80\xaf", 3));     /* overlong, 3 bytes */
    assert_false(gateway_utf8_valid("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    assert_false(gateway_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(gateway_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(gateway_utf8_valid("\x80", 1));             /* lone continuation */
    assert_false(gateway_utf8_valid("\xf8\x88\x80\x80\x80", 5));
    assert_false(gateway_utf8_valid("a\0b", 3));
    assert_int_equal(gateway_utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), 4);
}

static void refund_expect(const char *text, const char *code, const char *param, int64_t amount,
                          const char *reason)
{
    gateway_refund_input in;
    gateway_validation_error err;
    json_t *doc = json_loads(text, 0, NULL);
    bool ok;

    assert_non_null(doc);
    ok = gateway_refund_validate(doc, &in, &err);
    if (code == NULL) {
        if (!ok) {
            fail_msg("refused refund %s: %s %s", text, err.code, err.message);
        }
        assert_int_equal(in.amount, amount);
        if (reason == NULL) {
            assert_null(in.reason);
        } else {
            assert_string_equal(in.reason, reason);
        }
    } else {
        if (ok) {
            fail_msg("accepted refund %s, expected %s", text, code);
        }
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, code);
        assert_string_equal(err.param, param);
    }
    json_decref(doc);
}

static void test_refund_body(void **state)
{
    char body[1200];
    char *r500 = repeat("\xc3\xa9", 500);
    char *r501 = repeat("r", 501);

    (void)state;
    refund_expect("{}", NULL, NULL, 0, NULL);
    refund_expect("{\"amount\":null,\"reason\":null}", NULL, NULL, 0, NULL);
    refund_expect("{\"amount\":250,\"reason\":\"requested_by_customer\"}", NULL, NULL, 250,
                  "requested_by_customer");
    refund_expect("{\"amount\":99999999999}", NULL, NULL, INT64_C(99999999999), NULL);
    refund_expect("{\"amount\":100000000000}", "amount_too_large", "amount", 0, NULL);
    refund_expect("{\"amount\":0}", "amount_too_small", "amount", 0, NULL);
    refund_expect("{\"amount\":-5}", "amount_too_small", "amount", 0, NULL);
    refund_expect("{\"amount\":2.5}", "parameter_invalid_integer", "amount", 0, NULL);
    refund_expect("{\"amount\":\"250\"}", "parameter_invalid_integer", "amount", 0, NULL);
    refund_expect("{\"reason\":\"\"}", "parameter_invalid_string", "reason", 0, NULL);
    refund_expect("{\"reason\":7}", "parameter_invalid_string", "reason", 0, NULL);
    /* Extra fields are refused: a refund cannot be steered at another payment or status. */
    refund_expect("{\"amount\":1,\"payment_id\":\"pay_x\"}", "parameter_unknown", "payment_id", 0,
                  NULL);
    refund_expect("{\"status\":\"succeeded\"}", "parameter_unknown", "status", 0, NULL);
    /* 500 characters (1000 bytes of two-byte characters) pass; 501 do not. */
    snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", r500);
    refund_expect(body, NULL, NULL, 0, r500);
    snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", r501);
    refund_expect(body, "string_too_long", "reason", 0, NULL);
    free(r500);
    free(r501);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_body_gets_defaults),
        cmocka_unit_test(test_full_body),
        cmocka_unit_test(test_null_optional_fields_are_absent),
        cmocka_unit_test(test_amount_must_be_an_integer_number),
        cmocka_unit_test(test_amount_bounds),
        cmocka_unit_test(test_currency),
        cmocka_unit_test(test_unknown_fields_are_named),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_metadata_shape),
        cmocka_unit_test(test_metadata_key_count),
        cmocka_unit_test(test_metadata_key_and_value_lengths),
        cmocka_unit_test(test_payment_method),
        cmocka_unit_test(test_body_must_be_an_object),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_refund_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
