/* Unit tests for provider A's pure logic: decline mapping, body validation, fingerprints,
 * authentication and the rendered answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "provider_a.h"

static void test_outcome_for_source(void **state)
{
    (void)state;
    provider_a_outcome o = provider_a_outcome_for_source("pm_card_visa");
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
    assert_null(o.failure_code);
    assert_null(o.failure_message);

    o = provider_a_outcome_for_source("pm_card_mastercard"); /* unknown pm_ token succeeds */
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);

    o = provider_a_outcome_for_source("pm_card_declined");
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.decline_code, "generic_decline");
    assert_non_null(o.failure_message);

    o = provider_a_outcome_for_source("pm_card_insufficient_funds");
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    assert_string_equal(o.decline_code, "insufficient_funds");

    /* Exact match only: a token that merely starts like a decline token succeeds. */
    o = provider_a_outcome_for_source("pm_card_declined_not");
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

static void test_parse_valid(void **state)
{
    (void)state;
    json_t *body = load("{\"amount\":1099,\"currency\":\"USD\",\"source\":\"pm_card_visa\","
                        "\"description\":\"order 7\",\"metadata\":{\"order\":\"7\"}}");
    provider_a_params p;
    provider_a_error err;
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    assert_int_equal(p.amount, 1099);
    assert_string_equal(p.currency, "usd"); /* normalised */
    assert_string_equal(p.source, "pm_card_visa");
    assert_string_equal(p.description, "order 7");
    assert_non_null(p.metadata);
    json_decref(body);

    body = load("{\"amount\":1,\"currency\":\"eur\",\"source\":\"pm_x\",\"description\":null,"
                "\"metadata\":null}");
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    assert_null(p.description);
    assert_null(p.metadata);
    json_decref(body);
}

static void expect_reject(const char *text, const char *code, const char *param)
{
    json_t *body = load(text);
    provider_a_params p;
    provider_a_error err;
    assert_int_equal(provider_a_parse_charge(body, &p, &err), -1);
    assert_string_equal(err.code, code);
    if (param == NULL)
        assert_null(err.param);
    else
        assert_string_equal(err.param, param);
    assert_true(strlen(err.message) > 0);
    json_decref(body);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    expect_reject("{\"currency\":\"usd\",\"source\":\"pm_card_visa\"}", "parameter_missing",
                  "amount");
    expect_reject("{\"amount\":10.5,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}",
                  "parameter_invalid_integer", "amount");
    expect_reject("{\"amount\":\"10\",\"currency\":\"usd\",\"source\":\"pm_card_visa\"}",
                  "parameter_invalid_integer", "amount");
    expect_reject("{\"amount\":0,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}",
                  "amount_too_small", "amount");
    expect_reject("{\"amount\":-5,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}",
                  "amount_too_small", "amount");
    expect_reject("{\"amount\":100000000000,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}",
                  "amount_too_large", "amount");
    expect_reject("{\"amount\":1,\"source\":\"pm_card_visa\"}", "parameter_missing", "currency");
    expect_reject("{\"amount\":1,\"currency\":\"usdx\",\"source\":\"pm_card_visa\"}",
                  "parameter_invalid", "currency");
    expect_reject("{\"amount\":1,\"currency\":\"u1d\",\"source\":\"pm_card_visa\"}",
                  "parameter_invalid", "currency");
    expect_reject("{\"amount\":1,\"currency\":\"usd\"}", "parameter_missing", "source");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":7}", "parameter_invalid",
                  "source");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":\"tok_visa\"}", "resource_missing",
                  "source");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                  "\"description\":5}",
                  "parameter_invalid", "description");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                  "\"metadata\":{\"n\":5}}",
                  "parameter_invalid", "metadata");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                  "\"metadata\":[]}",
                  "parameter_invalid", "metadata");
    expect_reject("{\"amount\":1,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                  "\"capture\":false}",
                  "parameter_unknown", "capture");
}

static void test_parse_metadata_limits(void **state)
{
    (void)state;
    provider_a_params p;
    provider_a_error err;
    json_t *body = load("{\"amount\":1,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}");
    json_t *md = json_object();
    json_object_set_new(body, "metadata", md);
    for (int i = 0; i < PROVIDER_A_MAX_METADATA_KEYS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(md, k, json_string("v"));
    }
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    json_object_set_new(md, "one_too_many", json_string("v"));
    assert_int_equal(provider_a_parse_charge(body, &p, &err), -1);
    json_object_clear(md);

    /* Limits count characters, not bytes: 40 two-byte characters are a valid key. */
    char key[2 * 41 + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(key, "\xc3\xa9");
    json_object_set_new(md, key, json_string("v"));
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    strcat(key, "\xc3\xa9");
    json_object_clear(md);
    json_object_set_new(md, key, json_string("v"));
    assert_int_equal(provider_a_parse_charge(body, &p, &err), -1);
    json_object_clear(md);

    char *value = malloc(PROVIDER_A_MAX_METADATA_VALUE_LEN + 2);
    memset(value, 'x', PROVIDER_A_MAX_METADATA_VALUE_LEN);
    value[PROVIDER_A_MAX_METADATA_VALUE_LEN] = '\0';
    json_object_set_new(md, "k", json_string(value));
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    strcat(value, "x");
    json_object_set_new(md, "k", json_string(value));
    assert_int_equal(provider_a_parse_charge(body, &p, &err), -1);
    free(value);
    json_decref(body);
}

static char *fingerprint_of(const char *text)
{
    json_t *body = load(text);
    provider_a_params p;
    provider_a_error err;
    assert_int_equal(provider_a_parse_charge(body, &p, &err), 0);
    char *fp = provider_a_fingerprint(&p);
    assert_non_null(fp);
    json_decref(body);
    return fp;
}

static void test_fingerprint(void **state)
{
    (void)state;
    char *a = fingerprint_of("{\"amount\":5,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                             "\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    /* Field and key order, currency case: the same request. */
    char *b = fingerprint_of("{\"metadata\":{\"b\":\"2\",\"a\":\"1\"},\"source\":\"pm_card_visa\","
                             "\"currency\":\"USD\",\"amount\":5}");
    assert_string_equal(a, b);
    char *c = fingerprint_of("{\"amount\":6,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                             "\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    assert_string_not_equal(a, c);
    char *d = fingerprint_of("{\"amount\":5,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                             "\"metadata\":{\"a\":\"1\",\"b\":\"3\"}}");
    assert_string_not_equal(a, d);
    /* Absent, null and empty metadata / absent and null description are one request. */
    char *e = fingerprint_of("{\"amount\":5,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}");
    char *f = fingerprint_of("{\"amount\":5,\"currency\":\"usd\",\"source\":\"pm_card_visa\","
                             "\"metadata\":{},\"description\":null}");
    assert_string_equal(e, f);
    char *g = fingerprint_of("{\"amount\":5,\"currency\":\"usd\",\"source\":\"pm_card_declined\"}");
    assert_string_not_equal(e, g);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    free(g);
}

static void test_key_valid(void **state)
{
    (void)state;
    assert_true(provider_a_key_valid("pay_0193abcd"));
    assert_true(provider_a_key_valid("a key with spaces ~!"));
    assert_false(provider_a_key_valid(NULL));
    assert_false(provider_a_key_valid(""));
    assert_false(provider_a_key_valid("tab\there"));
    assert_false(provider_a_key_valid("caf\xc3\xa9"));
    char longkey[PROVIDER_A_MAX_KEY_LEN + 2];
    memset(longkey, 'k', sizeof(longkey));
    longkey[PROVIDER_A_MAX_KEY_LEN] = '\0';
    assert_true(provider_a_key_valid(longkey));
    longkey[PROVIDER_A_MAX_KEY_LEN] = 'k';
    longkey[PROVIDER_A_MAX_KEY_LEN + 1] = '\0';
    assert_false(provider_a_key_valid(longkey));
}

static void test_authorized(void **state)
{
    (void)state;
    assert_true(provider_a_authorized("", NULL)); /* no key configured: open */
    assert_true(provider_a_authorized(NULL, "anything"));
    assert_true(provider_a_authorized("sk_test_1", "Bearer sk_test_1"));
    assert_true(provider_a_authorized("sk_test_1", "bearer sk_test_1")); /* scheme: any case */
    assert_false(provider_a_authorized("sk_test_1", NULL));
    assert_false(provider_a_authorized("sk_test_1", ""));
    assert_false(provider_a_authorized("sk_test_1", "Bearer "));
    assert_false(provider_a_authorized("sk_test_1", "Bearer sk_test_2"));
    assert_false(provider_a_authorized("sk_test_1", "Bearer sk_test_"));   /* prefix */
    assert_false(provider_a_authorized("sk_test_1", "Bearer sk_test_12")); /* longer */
    assert_false(provider_a_authorized("sk_test_1", "Basic sk_test_1"));
    assert_false(provider_a_authorized("sk_test_1", "sk_test_1"));
}

static sim_charge sample_charge(sim_charge_status status, const char *source,
                                const char *failure_code, const json_t *metadata)
{
    sim_charge c = {
        .provider = "provider_a",
        .id = "ch_0123456789abcdef0123456789abcdef",
        .idempotency_key = "pay_1",
        .amount = 2500,
        .currency = "usd",
        .source = source,
        .description = NULL,
        .metadata = metadata,
        .status = status,
        .failure_code = failure_code,
        .failure_message = failure_code != NULL ? "declined for test" : NULL,
        .created = 1760000000,
    };
    return c;
}

static void test_render_succeeded(void **state)
{
    (void)state;
    json_t *md = load("{\"order\":\"7\"}");
    sim_charge c = sample_charge(SIM_CHARGE_SUCCEEDED, "pm_card_visa", NULL, md);
    json_t *obj = NULL;
    unsigned status = 0;
    char *body = NULL;
    assert_int_equal(provider_a_render(&c, &obj, &status, &body, NULL), 0);
    assert_int_equal(status, 200);
    json_t *ans = load(body);
    assert_true(json_equal(ans, obj)); /* a success answers with the charge itself */
    assert_string_equal(json_string_value(json_object_get(obj, "id")), c.id);
    assert_string_equal(json_string_value(json_object_get(obj, "object")), "charge");
    assert_int_equal(json_integer_value(json_object_get(obj, "amount")), 2500);
    assert_string_equal(json_string_value(json_object_get(obj, "currency")), "usd");
    assert_string_equal(json_string_value(json_object_get(obj, "status")), "succeeded");
    assert_true(json_is_true(json_object_get(obj, "paid")));
    assert_true(json_is_null(json_object_get(obj, "failure_code")));
    assert_true(json_is_null(json_object_get(obj, "failure_message")));
    assert_string_equal(json_string_value(json_object_get(obj, "idempotency_key")), "pay_1");
    assert_int_equal(json_integer_value(json_object_get(obj, "created")), 1760000000);
    assert_string_equal(json_string_value(json_object_get(obj, "payment_method")), "pm_card_visa");
    assert_true(json_equal(json_object_get(obj, "metadata"), md));
    assert_true(json_is_null(json_object_get(obj, "description")));
    json_decref(ans);
    json_decref(obj);
    free(body);
    json_decref(md);
}

static void test_render_declined(void **state)
{
    (void)state;
    const char *cases[][3] = {
        {"pm_card_declined", "card_declined", "generic_decline"},
        {"pm_card_insufficient_funds", "insufficient_funds", "insufficient_funds"},
    };
    for (size_t i = 0; i < 2; i++) {
        sim_charge c = sample_charge(SIM_CHARGE_FAILED, cases[i][0], cases[i][1], NULL);
        json_t *obj = NULL;
        unsigned status = 0;
        char *body = NULL;
        assert_int_equal(provider_a_render(&c, &obj, &status, &body, NULL), 0);
        assert_int_equal(status, 402);
        assert_string_equal(json_string_value(json_object_get(obj, "status")), "failed");
        assert_true(json_is_false(json_object_get(obj, "paid")));
        assert_string_equal(json_string_value(json_object_get(obj, "failure_code")), cases[i][1]);
        assert_int_equal(json_object_size(json_object_get(obj, "metadata")), 0);
        json_t *ans = load(body);
        json_t *err = json_object_get(ans, "error");
        assert_string_equal(json_string_value(json_object_get(err, "type")), "card_error");
        /* The 402 and a later retrieval name the same reason. */
        assert_string_equal(json_string_value(json_object_get(err, "code")), cases[i][1]);
        assert_string_equal(json_string_value(json_object_get(err, "decline_code")), cases[i][2]);
        assert_string_equal(json_string_value(json_object_get(err, "charge")), c.id);
        assert_string_equal(json_string_value(json_object_get(err, "message")),
                            "declined for test");
        json_decref(ans);
        json_decref(obj);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_for_source), cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_rejects),      cmocka_unit_test(test_parse_metadata_limits),
        cmocka_unit_test(test_fingerprint),        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_authorized),         cmocka_unit_test(test_render_succeeded),
        cmocka_unit_test(test_render_declined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
