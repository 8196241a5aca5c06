/* Unit tests for provider A's pure logic: decline mapping, charge and refund validation,
 * fingerprints and the rendered answers. */
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
    provider_a_outcome o = provider_a_outcome_for_source("pm_card_visa", false);
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
    assert_null(o.failure_code);
    assert_null(o.failure_message);

    o = provider_a_outcome_for_source("pm_card_mastercard", false); /* unknown pm_ token succeeds */
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);

    o = provider_a_outcome_for_source("pm_card_declined", false);
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.decline_code, "generic_decline");
    assert_non_null(o.failure_message);

    o = provider_a_outcome_for_source("pm_card_insufficient_funds", false);
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    assert_string_equal(o.decline_code, "insufficient_funds");

    /* Exact match only: a token that merely starts like a decline token succeeds. */
    o = provider_a_outcome_for_source("pm_card_declined_not", false);
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);

    /* decline_rate fired: a good token is declined generically; a token's own reason wins. */
    o = provider_a_outcome_for_source("pm_card_visa", true);
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.decline_code, "generic_decline");
    o = provider_a_outcome_for_source("pm_card_insufficient_funds", true);
    assert_string_equal(o.failure_code, "insufficient_funds");
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

/* Asserts that the charge (or refund) parser rejects text with that code and param. */
static void expect_reject_by(bool refund, const char *text, const char *code, const char *param)
{
    json_t *body = load(text);
    provider_a_params p;
    provider_a_refund_params rp;
    provider_a_error err;
    int rc =
        refund ? provider_a_parse_refund(body, &rp, &err) : provider_a_parse_charge(body, &p, &err);
    assert_int_equal(rc, -1);
    assert_string_equal(err.code, code);
    if (param == NULL)
        assert_null(err.param);
    else
        assert_string_equal(err.param, param);
    assert_true(strlen(err.message) > 0);
    json_decref(body);
}

static void expect_reject(const char *text, const char *code, const char *param)
{
    expect_reject_by(false, text, code, param);
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

static void expect_refund_reject(const char *text, const char *code, const char *param)
{
    expect_reject_by(true, text, code, param);
}

static void test_parse_refund(void **state)
{
    (void)state;
    json_t *body = load("{\"charge\":\"ch_1\",\"amount\":300,\"reason\":\"duplicate\","
                        "\"metadata\":{\"k\":\"v\"}}");
    provider_a_refund_params p;
    provider_a_error err;
    assert_int_equal(provider_a_parse_refund(body, &p, &err), 0);
    assert_string_equal(p.charge, "ch_1");
    assert_int_equal(p.amount, 300);
    assert_string_equal(p.reason, "duplicate");
    assert_non_null(p.metadata);
    json_decref(body);

    body = load("{\"charge\":\"ch_1\",\"amount\":null,\"reason\":null}"); /* all of it */
    assert_int_equal(provider_a_parse_refund(body, &p, &err), 0);
    assert_int_equal(p.amount, 0);
    assert_null(p.reason);
    assert_null(p.metadata);
    json_decref(body);

    expect_refund_reject("{\"amount\":1}", "parameter_missing", "charge");
    expect_refund_reject("{\"charge\":7}", "parameter_invalid", "charge");
    expect_refund_reject("{\"charge\":\"\"}", "parameter_invalid", "charge");
    expect_refund_reject("{\"charge\":\"ch_1\",\"amount\":0}", "amount_too_small", "amount");
    expect_refund_reject("{\"charge\":\"ch_1\",\"amount\":-5}", "amount_too_small", "amount");
    expect_refund_reject("{\"charge\":\"ch_1\",\"amount\":1.5}", "parameter_invalid_integer",
                         "amount");
    expect_refund_reject("{\"charge\":\"ch_1\",\"amount\":100000000000}", "amount_too_large",
                         "amount");
    expect_refund_reject("{\"charge\":\"ch_1\",\"reason\":\"bored\"}", "parameter_invalid",
                         "reason");
    expect_refund_reject("{\"charge\":\"ch_1\",\"metadata\":[]}", "parameter_invalid", "metadata");
    expect_refund_reject("{\"charge\":\"ch_1\",\"payment_intent\":\"pi\"}", "parameter_unknown",
                         "payment_intent");
    expect_refund_reject("[]", "parameter_invalid", NULL);
}

static char *refund_fingerprint_of(const char *text)
{
    json_t *body = load(text);
    provider_a_refund_params p;
    provider_a_error err;
    assert_int_equal(provider_a_parse_refund(body, &p, &err), 0);
    char *fp = provider_a_refund_fingerprint(&p);
    assert_non_null(fp);
    json_decref(body);
    return fp;
}

static void test_refund_fingerprint(void **state)
{
    (void)state;
    char *a = refund_fingerprint_of("{\"charge\":\"ch_1\",\"amount\":5}");
    char *b = refund_fingerprint_of("{\"amount\":5,\"charge\":\"ch_1\",\"metadata\":{},"
                                    "\"reason\":null}");
    char *c = refund_fingerprint_of("{\"charge\":\"ch_1\",\"amount\":6}");
    char *d = refund_fingerprint_of("{\"charge\":\"ch_2\",\"amount\":5}");
    char *e = refund_fingerprint_of("{\"charge\":\"ch_1\"}");
    assert_string_equal(a, b); /* field order, empty metadata and null reason don't matter */
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_string_not_equal(a, e); /* "everything left" is not "5" */
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

static void test_refund_render(void **state)
{
    (void)state;
    sim_charge c = sample_charge(SIM_CHARGE_SUCCEEDED, "pm_card_visa", NULL, NULL);
    c.refunded = 700;
    json_t *attrs = load("{\"reason\":\"fraudulent\",\"metadata\":{\"a\":\"b\"}}");
    sim_refund r = {
        .provider = "provider_a",
        .id = "re_0123",
        .idempotency_key = "rk",
        .charge = &c,
        .amount = 700,
        .attrs = attrs,
        .created = 1760000001,
    };
    json_t *obj = NULL;
    unsigned status = 0;
    char *body = NULL;
    assert_int_equal(provider_a_refund_render(&r, &obj, &status, &body, NULL), 0);
    assert_int_equal(status, 200);
    json_t *ans = load(body);
    assert_true(json_equal(ans, obj));
    assert_string_equal(json_string_value(json_object_get(obj, "id")), "re_0123");
    assert_string_equal(json_string_value(json_object_get(obj, "object")), "refund");
    assert_int_equal(json_integer_value(json_object_get(obj, "amount")), 700);
    assert_string_equal(json_string_value(json_object_get(obj, "charge")), c.id);
    assert_string_equal(json_string_value(json_object_get(obj, "currency")), "usd");
    assert_string_equal(json_string_value(json_object_get(obj, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(obj, "reason")), "fraudulent");
    assert_string_equal(json_string_value(json_object_get(obj, "idempotency_key")), "rk");
    assert_true(json_equal(json_object_get(obj, "metadata"), json_object_get(attrs, "metadata")));
    json_decref(ans);
    json_decref(obj);
    free(body);
    json_decref(attrs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_for_source), cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_rejects),      cmocka_unit_test(test_parse_metadata_limits),
        cmocka_unit_test(test_fingerprint),        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_render_succeeded),   cmocka_unit_test(test_render_declined),
        cmocka_unit_test(test_parse_refund),       cmocka_unit_test(test_refund_fingerprint),
        cmocka_unit_test(test_refund_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
