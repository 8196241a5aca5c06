/* Unit tests for the sandbox risk API's pure logic: scores per token, decisions, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "risk.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

static void test_decision_thresholds(void **state)
{
    (void)state;
    assert_int_equal(risk_decision_for(0), RISK_ALLOW);
    assert_int_equal(risk_decision_for(RISK_REVIEW_AT - 1), RISK_ALLOW);
    assert_int_equal(risk_decision_for(RISK_REVIEW_AT), RISK_REVIEW);
    assert_int_equal(risk_decision_for(RISK_BLOCK_AT - 1), RISK_REVIEW);
    assert_int_equal(risk_decision_for(RISK_BLOCK_AT), RISK_BLOCK);
    assert_int_equal(risk_decision_for(100), RISK_BLOCK);
    assert_string_equal(risk_decision_name(RISK_ALLOW), "allow");
    assert_string_equal(risk_decision_name(RISK_REVIEW), "review");
    assert_string_equal(risk_decision_name(RISK_BLOCK), "block");
}

static void test_score_steered_by_token(void **state)
{
    (void)state;
    const char *reason = NULL;
    assert_int_equal(risk_score_for("pm_risk_high", &reason), 90);
    assert_int_equal(risk_decision_for(90), RISK_BLOCK);
    assert_non_null(strstr(reason, "pm_risk_high"));
    assert_int_equal(risk_score_for("pm_risk_review", &reason), 60);
    assert_int_equal(risk_decision_for(60), RISK_REVIEW);

    /* Every other token: a low score, always the same for one token, and not one constant. */
    const char *tokens[] = {"pm_card_visa", "pm_card_declined", "pm_card_mastercard",
                            "pm_x",         "pm_risk_highest",  ""};
    int first = -1;
    bool varied = false;
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        int s = risk_score_for(tokens[i], &reason);
        assert_in_range(s, 0, 29);
        assert_int_equal(risk_decision_for(s), RISK_ALLOW);
        assert_int_equal(risk_score_for(tokens[i], &reason), s);
        if (first < 0)
            first = s;
        else if (s != first)
            varied = true;
    }
    assert_true(varied);
    /* FNV-1a of "" is the offset basis 2166136261, and 2166136261 % 30 = 1. */
    assert_int_equal(risk_score_for("", &reason), 1);
}

static void test_parse(void **state)
{
    (void)state;
    risk_params p;
    const char *param = NULL;
    char msg[256];
    json_t *body = load("{\"payment_id\":\"pay_1\",\"merchant_id\":\"m_1\",\"amount\":1999,"
                        "\"currency\":\"USD\",\"payment_method\":\"pm_card_visa\",\"extra\":1}");
    assert_int_equal(risk_parse(body, &p, &param, msg, sizeof(msg)), 0);
    assert_string_equal(p.payment_id, "pay_1");
    assert_string_equal(p.merchant_id, "m_1");
    assert_int_equal(p.amount, 1999);
    assert_string_equal(p.currency, "usd");
    assert_string_equal(p.payment_method, "pm_card_visa");
    json_t *answer = risk_answer(&p, 60, "why");
    assert_string_equal(json_string_value(json_object_get(answer, "payment_id")), "pay_1");
    assert_int_equal(json_integer_value(json_object_get(answer, "score")), 60);
    assert_string_equal(json_string_value(json_object_get(answer, "decision")), "review");
    assert_string_equal(json_string_value(json_array_get(json_object_get(answer, "reasons"), 0)),
                        "why");
    json_decref(answer);
    json_decref(body);

    body = load("{\"payment_id\":\"p\",\"amount\":0,\"currency\":\"usd\",\"payment_method\":"
                "\"pm\"}"); /* merchant_id is optional, amount 0 is fine */
    assert_int_equal(risk_parse(body, &p, &param, msg, sizeof(msg)), 0);
    assert_null(p.merchant_id);
    json_decref(body);

    const struct {
        const char *text, *param;
    } bad[] = {
        {"{\"amount\":1,\"currency\":\"usd\",\"payment_method\":\"pm\"}", "payment_id"},
        {"{\"payment_id\":\"\",\"amount\":1,\"currency\":\"usd\",\"payment_method\":\"pm\"}",
         "payment_id"},
        {"{\"payment_id\":\"p\",\"merchant_id\":3,\"amount\":1,\"currency\":\"usd\","
         "\"payment_method\":\"pm\"}",
         "merchant_id"},
        {"{\"payment_id\":\"p\",\"amount\":-1,\"currency\":\"usd\",\"payment_method\":\"pm\"}",
         "amount"},
        {"{\"payment_id\":\"p\",\"amount\":\"1\",\"currency\":\"usd\",\"payment_method\":\"pm\"}",
         "amount"},
        {"{\"payment_id\":\"p\",\"amount\":1,\"currency\":\"us\",\"payment_method\":\"pm\"}",
         "currency"},
        {"{\"payment_id\":\"p\",\"amount\":1,\"currency\":\"usd\"}", "payment_method"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body = load(bad[i].text);
        assert_int_equal(risk_parse(body, &p, &param, msg, sizeof(msg)), -1);
        assert_string_equal(param, bad[i].param);
        assert_non_null(strstr(msg, bad[i].param));
        json_decref(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_thresholds),
        cmocka_unit_test(test_score_steered_by_token),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
