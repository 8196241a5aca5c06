/* Unit tests for what the sandbox APIs share: bearer authentication and test-token outcomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sim_api.h"

static void test_authorized(void **state)
{
    (void)state;
    assert_true(sim_api_authorized("", NULL)); /* no key configured: open */
    assert_true(sim_api_authorized(NULL, "anything"));
    assert_true(sim_api_authorized("sk_test_1", "Bearer sk_test_1"));
    assert_true(sim_api_authorized("sk_test_1", "bearer sk_test_1")); /* scheme: any case */
    assert_false(sim_api_authorized("sk_test_1", NULL));
    assert_false(sim_api_authorized("sk_test_1", ""));
    assert_false(sim_api_authorized("sk_test_1", "Bearer "));
    assert_false(sim_api_authorized("sk_test_1", "Bearer sk_test_2"));
    assert_false(sim_api_authorized("sk_test_1", "Bearer sk_test_"));   /* prefix */
    assert_false(sim_api_authorized("sk_test_1", "Bearer sk_test_12")); /* longer */
    assert_false(sim_api_authorized("sk_test_1", "Basic sk_test_1"));
    assert_false(sim_api_authorized("sk_test_1", "sk_test_1"));
}

static void test_token_outcome(void **state)
{
    (void)state;
    sim_token_outcome o = sim_token_outcome_for("pm_card_visa", false);
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
    assert_null(o.failure_code);
    o = sim_token_outcome_for("pm_risk_high", false); /* risk tokens charge fine */
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
    o = sim_token_outcome_for("pm_card_declined", false);
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "card_declined");
    o = sim_token_outcome_for("pm_card_insufficient_funds", false);
    assert_string_equal(o.failure_code, "insufficient_funds");
    o = sim_token_outcome_for("pm_card_visa", true); /* decline_rate fired */
    assert_int_equal(o.status, SIM_CHARGE_FAILED);
    assert_string_equal(o.failure_code, "card_declined");
    o = sim_token_outcome_for("pm_card_insufficient_funds", true); /* the token's reason wins */
    assert_string_equal(o.failure_code, "insufficient_funds");
    o = sim_token_outcome_for(NULL, false);
    assert_int_equal(o.status, SIM_CHARGE_SUCCEEDED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authorized),
        cmocka_unit_test(test_token_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
