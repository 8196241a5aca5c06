/* Unit tests for provider B's pure logic: charge and refund validation, references,
 * fingerprints, gateway responses and the Paystack-shaped answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "provider_b.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

#define GOOD_CHARGE                                                                                \
    "\"amount\":5000,\"currency\":\"ngn\",\"email\":\"a@example.com\",\"reference\":\"ref-1\","    \
    "\"authorization_code\":\"pm_card_visa\""

static void test_parse_charge_valid(void **state)
{
    (void)state;
    json_t *body = load("{" GOOD_CHARGE ",\"metadata\":{\"order\":7},\"channels\":[\"card\"]}");
    provider_b_charge_params p;
    provider_b_error err;
    assert_int_equal(provider_b_parse_charge(body, &p, &err), 0); /* unknown fields ignored */
    assert_int_equal(p.amount, 5000);
    assert_string_equal(p.currency, "NGN"); /* any case in, uppercase out */
    assert_string_equal(p.email, "a@example.com");
    assert_string_equal(p.reference, "ref-1");
    assert_string_equal(p.authorization_code, "pm_card_visa");
    assert_non_null(p.metadata);
    json_decref(body);

    /* Paystack also takes the amount as a string of digits. */
    body = load("{\"amount\":\"250\",\"currency\":\"Usd\",\"email\":\"b@c\",\"reference\":"
                "\"pay_1.a=b-c_d\",\"authorization_code\":\"pm_x\",\"metadata\":null}");
    assert_int_equal(provider_b_parse_charge(body, &p, &err), 0);
    assert_int_equal(p.amount, 250);
    assert_string_equal(p.currency, "USD");
    assert_null(p.metadata);
    json_decref(body);
}

static void expect_charge_reject(const char *text, const char *needle)
{
    json_t *body = load(text);
    provider_b_charge_params p;
    provider_b_error err;
    assert_int_equal(provider_b_parse_charge(body, &p, &err), -1);
    assert_string_equal(err.code, "invalid_params");
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' does not mention '%s'", err.message, needle);
    json_decref(body);
}

static void test_parse_charge_rejects(void **state)
{
    (void)state;
    expect_charge_reject("{\"currency\":\"NGN\",\"email\":\"a@b\",\"reference\":\"r\","
                         "\"authorization_code\":\"pm_card_visa\"}",
                         "amount");
    expect_charge_reject("{\"amount\":0,\"currency\":\"NGN\",\"email\":\"a@b\",\"reference\":"
                         "\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "Amount");
    expect_charge_reject("{\"amount\":\"12a\",\"currency\":\"NGN\",\"email\":\"a@b\","
                         "\"reference\":\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "Amount");
    expect_charge_reject("{\"amount\":1.5,\"currency\":\"NGN\",\"email\":\"a@b\",\"reference\":"
                         "\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "Amount");
    expect_charge_reject("{\"amount\":100000000000,\"currency\":\"NGN\",\"email\":\"a@b\","
                         "\"reference\":\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "Amount");
    expect_charge_reject("{\"amount\":1,\"currency\":\"NAIRA\",\"email\":\"a@b\",\"reference\":"
                         "\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "currency");
    expect_charge_reject("{\"amount\":1,\"email\":\"a@b\",\"reference\":\"r\","
                         "\"authorization_code\":\"pm_card_visa\"}",
                         "currency");
    expect_charge_reject("{\"amount\":1,\"currency\":\"NGN\",\"email\":\"nobody\",\"reference\":"
                         "\"r\",\"authorization_code\":\"pm_card_visa\"}",
                         "email");
    expect_charge_reject("{\"amount\":1,\"currency\":\"NGN\",\"email\":\"a@b\",\"reference\":"
                         "\"has space\",\"authorization_code\":\"pm_card_visa\"}",
                         "reference");
    expect_charge_reject("{\"amount\":1,\"currency\":\"NGN\",\"email\":\"a@b\","
                         "\"authorization_code\":\"pm_card_visa\"}",
                         "reference");
    expect_charge_reject("{\"amount\":1,\"currency\":\"NGN\",\"email\":\"a@b\",\"reference\":"
                         "\"r\",\"authorization_code\":\"AUTH_x\"}",
                         "authorization_code");
    expect_charge_reject("{" GOOD_CHARGE ",\"metadata\":\"x\"}", "metadata");
}

static void test_reference_valid(void **state)
{
    (void)state;
    assert_true(provider_b_reference_valid("pay_0193ab"));
    assert_true(provider_b_reference_valid("a.b=c-d:e"));
    assert_false(provider_b_reference_valid(NULL));
    assert_false(provider_b_reference_valid(""));
    assert_false(provider_b_reference_valid("a b"));
    assert_false(provider_b_reference_valid("tab\there"));
    const char *url_unsafe[] = {"a/b", "a?b", "a#b", "a%2Fb", "a\\b"};
    for (size_t i = 0; i < sizeof(url_unsafe) / sizeof(url_unsafe[0]); i++)
        assert_false(provider_b_reference_valid(url_unsafe[i]));
    char longref[PROVIDER_B_MAX_REFERENCE_LEN + 2];
    memset(longref, 'r', PROVIDER_B_MAX_REFERENCE_LEN);
    longref[PROVIDER_B_MAX_REFERENCE_LEN] = '\0';
    assert_true(provider_b_reference_valid(longref));
    longref[PROVIDER_B_MAX_REFERENCE_LEN] = 'r';
    longref[PROVIDER_B_MAX_REFERENCE_LEN + 1] = '\0';
    assert_false(provider_b_reference_valid(longref));
}

static char *fingerprint_of(const char *text)
{
    json_t *body = load(text);
    provider_b_charge_params p;
    provider_b_error err;
    assert_int_equal(provider_b_parse_charge(body, &p, &err), 0);
    char *fp = provider_b_fingerprint(&p);
    assert_non_null(fp);
    json_decref(body);
    return fp;
}

static void test_fingerprint(void **state)
{
    (void)state;
    char *a = fingerprint_of("{" GOOD_CHARGE "}");
    /* The currency's case and the metadata do not make it another charge. */
    char *b = fingerprint_of("{\"amount\":5000,\"currency\":\"NGN\",\"email\":\"a@example.com\","
                             "\"reference\":\"ref-1\",\"authorization_code\":\"pm_card_visa\","
                             "\"metadata\":{\"attempt\":2}}");
    char *c = fingerprint_of("{\"amount\":5001,\"currency\":\"NGN\",\"email\":\"a@example.com\","
                             "\"reference\":\"ref-1\",\"authorization_code\":\"pm_card_visa\"}");
    char *d =
        fingerprint_of("{\"amount\":5000,\"currency\":\"NGN\",\"email\":\"a@example.com\","
                       "\"reference\":\"ref-1\",\"authorization_code\":\"pm_card_declined\"}");
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_gateway_response_and_time(void **state)
{
    (void)state;
    assert_string_equal(provider_b_gateway_response(NULL), "Approved");
    assert_string_equal(provider_b_gateway_response("card_declined"), "Declined");
    assert_string_equal(provider_b_gateway_response("insufficient_funds"), "Insufficient Funds");
    char when[32];
    provider_b_iso8601(1760000000, when, sizeof(when));
    assert_string_equal(when, "2025-10-09T08:53:20.000Z");
}

static sim_charge sample_charge(sim_charge_status status, const char *failure_code,
                                const json_t *attrs)
{
    sim_charge c = {
        .provider = "provider_b",
        .id = "4099260516",
        .idempotency_key = "ref-1",
        .amount = 5000,
        .currency = "NGN",
        .source = "pm_card_visa",
        .attrs = attrs,
        .status = status,
        .failure_code = failure_code,
        .created = 1760000000,
    };
    return c;
}

static void test_render(void **state)
{
    (void)state;
    json_t *attrs = load("{\"email\":\"a@example.com\",\"metadata\":{\"order\":7}}");
    const struct {
        sim_charge_status status;
        const char *failure_code, *tx_status, *gateway;
    } cases[] = {
        {SIM_CHARGE_SUCCEEDED, NULL, "success", "Approved"},
        {SIM_CHARGE_FAILED, "insufficient_funds", "failed", "Insufficient Funds"},
    };
    for (size_t i = 0; i < 2; i++) {
        sim_charge c = sample_charge(cases[i].status, cases[i].failure_code, attrs);
        json_t *tx = NULL;
        unsigned status = 0;
        char *body = NULL;
        assert_int_equal(provider_b_render(&c, &tx, &status, &body, NULL), 0);
        assert_int_equal(status, 200); /* a decline is still "Charge attempted" */
        json_t *env = load(body);
        assert_true(json_is_true(json_object_get(env, "status")));
        assert_string_equal(json_string_value(json_object_get(env, "message")), "Charge attempted");
        assert_true(json_equal(json_object_get(env, "data"), tx));
        assert_true(json_is_integer(json_object_get(tx, "id")));
        assert_int_equal(json_integer_value(json_object_get(tx, "id")), 4099260516);
        assert_string_equal(json_string_value(json_object_get(tx, "reference")), "ref-1");
        assert_int_equal(json_integer_value(json_object_get(tx, "amount")), 5000);
        assert_string_equal(json_string_value(json_object_get(tx, "currency")), "NGN");
        assert_string_equal(json_string_value(json_object_get(tx, "status")), cases[i].tx_status);
        assert_string_equal(json_string_value(json_object_get(tx, "gateway_response")),
                            cases[i].gateway);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(tx, "customer"), "email")),
            "a@example.com");
        assert_string_equal(json_string_value(json_object_get(json_object_get(tx, "authorization"),
                                                              "authorization_code")),
                            "pm_card_visa");
        assert_true(
            json_equal(json_object_get(tx, "metadata"), json_object_get(attrs, "metadata")));
        assert_int_equal(json_is_null(json_object_get(tx, "paid_at")),
                         cases[i].failure_code != NULL);
        json_decref(env);
        json_decref(tx);
        free(body);
    }
    json_decref(attrs);
}

static void test_parse_refund(void **state)
{
    (void)state;
    provider_b_refund_params p;
    provider_b_error err;
    json_t *body = load("{\"transaction\":\"ref-1\",\"amount\":200,\"merchant_note\":\"dup\"}");
    assert_int_equal(provider_b_parse_refund(body, &p, &err), 0);
    assert_string_equal(p.transaction, "ref-1");
    assert_int_equal(p.amount, 200);
    assert_string_equal(p.merchant_note, "dup");
    assert_null(p.customer_note);
    json_decref(body);

    body = load("{\"transaction\":4099260516,\"currency\":\"NGN\"}"); /* an integer id */
    assert_int_equal(provider_b_parse_refund(body, &p, &err), 0);
    assert_string_equal(p.transaction, "4099260516");
    assert_int_equal(p.amount, 0);
    json_decref(body);

    const char *bad[] = {
        "{}",
        "{\"transaction\":\"\"}",
        "{\"transaction\":-4}",
        "{\"transaction\":\"r\",\"amount\":0}",
        "{\"transaction\":\"r\",\"merchant_note\":5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body = load(bad[i]);
        assert_int_equal(provider_b_parse_refund(body, &p, &err), -1);
        assert_string_equal(err.code, "invalid_params");
        json_decref(body);
    }
}

static void test_refund_fingerprint_and_render(void **state)
{
    (void)state;
    provider_b_refund_params p;
    provider_b_error err;
    json_t *body = load("{\"transaction\":\"ref-1\",\"amount\":200}");
    assert_int_equal(provider_b_parse_refund(body, &p, &err), 0);
    char *a = provider_b_refund_fingerprint(&p);
    p.amount = 300;
    char *b = provider_b_refund_fingerprint(&p);
    assert_string_not_equal(a, b);
    p.amount = 200;
    char *c = provider_b_refund_fingerprint(&p);
    assert_string_equal(a, c);
    free(a);
    free(b);
    free(c);

    json_t *attrs = provider_b_refund_attrs(&p);
    sim_charge charge = sample_charge(SIM_CHARGE_SUCCEEDED, NULL, NULL);
    sim_refund r = {
        .provider = "provider_b",
        .id = "1234567890",
        .charge = &charge,
        .amount = 200,
        .attrs = attrs,
        .created = 1760000000,
    };
    json_t *obj = NULL;
    unsigned status = 0;
    char *text = NULL;
    assert_int_equal(provider_b_refund_render(&r, &obj, &status, &text, NULL), 0);
    assert_int_equal(status, 200);
    json_t *env = load(text);
    assert_true(json_is_true(json_object_get(env, "status")));
    assert_true(json_equal(json_object_get(env, "data"), obj));
    assert_int_equal(json_integer_value(json_object_get(obj, "id")), 1234567890);
    assert_int_equal(json_integer_value(json_object_get(obj, "amount")), 200);
    assert_string_equal(json_string_value(json_object_get(obj, "status")), "processed");
    json_t *tx = json_object_get(obj, "transaction");
    assert_int_equal(json_integer_value(json_object_get(tx, "id")), 4099260516);
    assert_string_equal(json_string_value(json_object_get(tx, "reference")), "ref-1");
    assert_true(json_is_null(json_object_get(obj, "idempotency_key")));
    assert_true(json_is_null(json_object_get(obj, "merchant_note")));
    json_decref(env);
    json_decref(obj);
    free(text);
    json_decref(attrs);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_charge_valid),
        cmocka_unit_test(test_parse_charge_rejects),
        cmocka_unit_test(test_reference_valid),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_gateway_response_and_time),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_parse_refund),
        cmocka_unit_test(test_refund_fingerprint_and_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
