/* Unit tests of the public JSON of payments, refunds and lists: field order, nulls,
 * timestamps, metadata, embedding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payment_json.h"

static void test_pending_payment_renders_exactly(void **state)
{
    json_t *metadata = json_pack("{s:s}", "order", "42");
    gateway_payment p = {
        .id = "pay_0193aaaabbbbccccddddeeeeffff0000",
        .amount = 1999,
        .currency = "usd",
        .status = "pending",
        .description = "Order \"42\"",
        .metadata = metadata,
        .payment_method = "pm_card_visa",
        .created_at_ms = 1764520618123,
        .updated_at_ms = 1764520618123,
    };
    char *text;

    (void)state;
    text = gateway_payment_render(&p);
    assert_non_null(text);
    assert_string_equal(text,
                        "{\"id\":\"pay_0193aaaabbbbccccddddeeeeffff0000\",\"object\":\"payment\","
                        "\"amount\":1999,\"amount_refunded\":0,\"currency\":\"usd\","
                        "\"status\":\"pending\","
                        "\"description\":\"Order \\\"42\\\"\",\"metadata\":{\"order\":\"42\"},"
                        "\"payment_method\":\"pm_card_visa\",\"failure_code\":null,"
                        "\"failure_message\":null,\"provider\":null,\"refunds\":[],"
                        "\"created_at\":\"2025-11-30T16:36:58.123Z\","
                        "\"updated_at\":\"2025-11-30T16:36:58.123Z\"}");
    free(text);
    /* The renderer borrowed the metadata: ours is still alive and unchanged. */
    assert_int_equal(metadata->refcount, 1);
    json_decref(metadata);
}

static void test_failed_payment_and_nulls(void **state)
{
    gateway_payment p = {
        .id = "pay_1",
        .amount = 500,
        .currency = "eur",
        .status = "failed",
        .failure_code = "card_declined",
        .failure_message = "Your card was declined.",
        .provider = "provider_a",
        .created_at_ms = 0,
        .updated_at_ms = 1000,
    };
    json_t *j;

    (void)state;
    j = gateway_payment_to_json(&p);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "description")));
    assert_true(json_is_null(json_object_get(j, "payment_method")));
    /* Absent metadata is an empty object, never null, so clients can always index it. */
    assert_true(json_is_object(json_object_get(j, "metadata")));
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "failure_code")), "card_declined");
    assert_string_equal(json_string_value(json_object_get(j, "provider")), "provider_a");
    assert_string_equal(json_string_value(json_object_get(j, "created_at")),
                        "1970-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(j, "updated_at")),
                        "1970-01-01T00:00:01.000Z");
    assert_int_equal(json_integer_value(json_object_get(j, "amount")), 500);
    assert_true(json_is_array(json_object_get(j, "refunds")));
    assert_int_equal(json_object_size(j), 15);
    json_decref(j);
}

static void test_large_amount_is_exact(void **state)
{
    gateway_payment p = {
        .id = "pay_2", .amount = 9999999999999LL, .currency = "jpy", .status = "succeeded"};
    char *text;

    (void)state;
    text = gateway_payment_render(&p);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"amount\":9999999999999,"));
    free(text);
}

static void test_refund_and_embedding(void **state)
{
    gateway_refund r = {
        .id = "re_0193aaaabbbbccccddddeeeeffff0000",
        .payment_id = "pay_0193aaaabbbbccccddddeeeeffff0000",
        .amount = 250,
        .currency = "usd",
        .status = "pending",
        .reason = "requested_by_customer",
        .created_at_ms = 1000,
        .updated_at_ms = 2000,
    };
    json_t *refund = gateway_refund_to_json(&r);
    json_t *refunds = json_array();
    gateway_payment p = {.id = "pay_0193aaaabbbbccccddddeeeeffff0000",
                         .amount = 1000,
                         .amount_refunded = 250,
                         .currency = "usd",
                         .status = "succeeded",
                         .refunds = refunds};
    char *text;

    (void)state;
    assert_non_null(refund);
    text = json_dumps(refund, JSON_COMPACT);
    assert_string_equal(text,
                        "{\"id\":\"re_0193aaaabbbbccccddddeeeeffff0000\",\"object\":\"refund\","
                        "\"payment_id\":\"pay_0193aaaabbbbccccddddeeeeffff0000\",\"amount\":250,"
                        "\"currency\":\"usd\",\"status\":\"pending\","
                        "\"reason\":\"requested_by_customer\",\"failure_code\":null,"
                        "\"failure_message\":null,\"created_at\":\"1970-01-01T00:00:01.000Z\","
                        "\"updated_at\":\"1970-01-01T00:00:02.000Z\"}");
    free(text);
    json_array_append_new(refunds, refund);
    text = gateway_payment_render(&p);
    assert_non_null(strstr(text, "\"amount_refunded\":250,"));
    assert_non_null(strstr(text, "\"refunds\":[{\"id\":\"re_0193"));
    free(text);
    /* The payment borrowed the array. */
    assert_int_equal(refunds->refcount, 1);
    json_decref(refunds);

    text = gateway_list_render("/v1/payments", json_array(), 1);
    assert_string_equal(text, "{\"object\":\"list\",\"url\":\"/v1/payments\",\"has_more\":true,"
                              "\"data\":[]}");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_payment_renders_exactly),
        cmocka_unit_test(test_failed_payment_and_nulls),
        cmocka_unit_test(test_large_amount_is_exact),
        cmocka_unit_test(test_refund_and_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
