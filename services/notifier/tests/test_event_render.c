/* Unit tests for event_render.h: protobuf outcomes become merchant events with a fixed shape,
 * unknown types are skipped, broken payloads are poison, and times parse to milliseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "event_render.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

/* Packs msg into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    protobuf_c_message_pack(msg, buf);
    return buf;
}

static void test_payment_succeeded(void **state)
{
    (void)state;
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;
    m.payment_id = "pay_0193";
    m.merchant_id = "mer_1";
    m.amount = 1999;
    m.currency = "usd";
    m.provider = "provider_a";
    size_t len;
    uint8_t *buf = pack(&m.base, &len);
    notifier_event ev;
    char reason[256];
    assert_int_equal(
        notifier_event_decode("keel.v1.PaymentSucceeded", buf, len, &ev, reason, sizeof(reason)),
        NOTIFIER_DECODED);
    assert_string_equal(ev.type, "payment.succeeded");
    assert_string_equal(ev.merchant_id, "mer_1");
    assert_string_equal(ev.object_id, "pay_0193");
    char *body = notifier_event_render("evt_1", &ev, 1700000000);
    assert_non_null(body);
    /* The exact bytes: key order is fixed, so what is stored is what is signed and sent. */
    assert_string_equal(body,
                        "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"payment.succeeded\","
                        "\"created\":1700000000,\"data\":{\"object\":{\"id\":\"pay_0193\","
                        "\"object\":\"payment\",\"amount\":1999,\"currency\":\"usd\","
                        "\"status\":\"succeeded\",\"failure_code\":null,"
                        "\"failure_message\":null}}}");
    free(body);
    notifier_event_clear(&ev);
    assert_null(ev.object);
    free(buf);
}

static void test_payment_failed_and_refunds(void **state)
{
    (void)state;
    notifier_event ev;
    char reason[256];
    size_t len;

    Keel__V1__PaymentFailed f = KEEL__V1__PAYMENT_FAILED__INIT;
    f.payment_id = "pay_2";
    f.merchant_id = "mer_1";
    f.amount = 500;
    f.currency = "eur";
    f.failure_code = "card_declined";
    f.failure_message = "The card was declined.";
    uint8_t *buf = pack(&f.base, &len);
    assert_int_equal(
        notifier_event_decode("keel.v1.PaymentFailed", buf, len, &ev, reason, sizeof(reason)),
        NOTIFIER_DECODED);
    assert_string_equal(ev.type, "payment.failed");
    assert_string_equal(json_string_value(json_object_get(ev.object, "failure_code")),
                        "card_declined");
    assert_string_equal(json_string_value(json_object_get(ev.object, "status")), "failed");
    notifier_event_clear(&ev);
    free(buf);

    Keel__V1__RefundSucceeded r = KEEL__V1__REFUND_SUCCEEDED__INIT;
    r.refund_id = "re_1";
    r.payment_id = "pay_2";
    r.merchant_id = "mer_1";
    r.amount = 100;
    r.currency = "eur";
    buf = pack(&r.base, &len);
    assert_int_equal(
        notifier_event_decode("keel.v1.RefundSucceeded", buf, len, &ev, reason, sizeof(reason)),
        NOTIFIER_DECODED);
    assert_string_equal(ev.type, "refund.succeeded");
    assert_string_equal(ev.object_id, "re_1");
    assert_string_equal(json_string_value(json_object_get(ev.object, "object")), "refund");
    assert_string_equal(json_string_value(json_object_get(ev.object, "payment")), "pay_2");
    notifier_event_clear(&ev);
    free(buf);
}

static void test_ignored_and_poison(void **state)
{
    (void)state;
    notifier_event ev;
    char reason[256];
    assert_int_equal(
        notifier_event_decode("keel.v1.PaymentRequested", "", 0, &ev, reason, sizeof(reason)),
        NOTIFIER_IGNORED);
    assert_non_null(strstr(reason, "not sent to merchants"));
    /* Garbage under a type we deliver. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(notifier_event_decode("keel.v1.PaymentSucceeded", junk, sizeof(junk), &ev,
                                           reason, sizeof(reason)),
                     NOTIFIER_POISON);
    /* A message without a merchant cannot be routed to anyone. */
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;
    m.payment_id = "pay_3";
    size_t len;
    uint8_t *buf = pack(&m.base, &len);
    assert_int_equal(
        notifier_event_decode("keel.v1.PaymentSucceeded", buf, len, &ev, reason, sizeof(reason)),
        NOTIFIER_POISON);
    assert_null(ev.object);
    free(buf);
}

static void test_event_types(void **state)
{
    (void)state;
    assert_true(notifier_event_type_known("payment.succeeded"));
    assert_true(notifier_event_type_known("refund.failed"));
    assert_true(notifier_event_type_known("*"));
    assert_false(notifier_event_type_known("payment.*"));
    assert_false(notifier_event_type_known(""));
    assert_false(notifier_event_type_known(NULL));
}

static void test_rfc3339(void **state)
{
    (void)state;
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20.123Z"), 1700000000123LL);
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20Z"), 1700000000000LL);
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20.5Z"), 1700000000500LL);
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20.123456+00:00"), 1700000000123LL);
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20+02:00"), -1);
    assert_int_equal(notifier_rfc3339_ms("2023-11-14T22:13:20.Z"), -1);
    assert_int_equal(notifier_rfc3339_ms("yesterday"), -1);
    assert_int_equal(notifier_rfc3339_ms(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payment_succeeded),
        cmocka_unit_test(test_payment_failed_and_refunds),
        cmocka_unit_test(test_ignored_and_poison),
        cmocka_unit_test(test_event_types),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
