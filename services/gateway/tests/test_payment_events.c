/* Unit tests of decoding payment outcome events: good events, poison and its reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_events.h"

static uint8_t *pack_succeeded(const Keel__V1__PaymentSucceeded *m, size_t *len)
{
    uint8_t *buf;
    *len = keel__v1__payment_succeeded__get_packed_size(m);
    buf = malloc(*len + 1);
    assert_non_null(buf);
    keel__v1__payment_succeeded__pack(m, buf);
    return buf;
}

static uint8_t *pack_failed(const Keel__V1__PaymentFailed *m, size_t *len)
{
    uint8_t *buf;
    *len = keel__v1__payment_failed__get_packed_size(m);
    buf = malloc(*len + 1);
    assert_non_null(buf);
    keel__v1__payment_failed__pack(m, buf);
    return buf;
}

static void test_succeeded(void **state)
{
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;
    gateway_decoded_event ev;
    char reason[256] = "";
    size_t len;
    uint8_t *buf;

    (void)state;
    m.payment_id = "pay_1";
    m.merchant_id = "mer_1";
    m.amount = 1999;
    m.currency = "USD";
    m.provider = "provider_a";
    m.provider_charge_id = "ch_1";
    buf = pack_succeeded(&m, &len);
    assert_true(gateway_payment_event_decode("keel.v1.PaymentSucceeded", buf, len, &ev, reason,
                                             sizeof(reason)));
    assert_string_equal(ev.outcome.payment_id, "pay_1");
    assert_string_equal(ev.outcome.merchant_id, "mer_1");
    assert_int_equal(ev.outcome.amount, 1999);
    assert_string_equal(ev.outcome.currency, "usd"); /* normalised to lowercase */
    assert_string_equal(ev.outcome.status, "succeeded");
    assert_string_equal(ev.outcome.provider, "provider_a");
    assert_string_equal(ev.outcome.failure_code, "");
    gateway_decoded_event_free(&ev);
    assert_null(ev.msg);
    free(buf);
}

static void test_failed(void **state)
{
    Keel__V1__PaymentFailed m = KEEL__V1__PAYMENT_FAILED__INIT;
    gateway_decoded_event ev;
    char reason[256] = "";
    size_t len;
    uint8_t *buf;

    (void)state;
    m.payment_id = "pay_2";
    m.merchant_id = "mer_1";
    m.amount = 500;
    m.currency = "eur";
    m.failure_code = "card_declined";
    m.failure_message = "Your card was declined.";
    buf = pack_failed(&m, &len);
    assert_true(gateway_payment_event_decode("keel.v1.PaymentFailed", buf, len, &ev, reason,
                                             sizeof(reason)));
    assert_string_equal(ev.outcome.status, "failed");
    assert_string_equal(ev.outcome.failure_code, "card_declined");
    assert_string_equal(ev.outcome.failure_message, "Your card was declined.");
    assert_string_equal(ev.outcome.provider, ""); /* no provider was called */
    gateway_decoded_event_free(&ev);
    free(buf);
}

static void expect_poison(const char *type, const void *buf, size_t len, const char *needle)
{
    gateway_decoded_event ev;
    char reason[256] = "";

    assert_false(gateway_payment_event_decode(type, buf, len, &ev, reason, sizeof(reason)));
    assert_null(ev.msg);
    if (strstr(reason, needle) == NULL) {
        fail_msg("reason \"%s\" lacks \"%s\"", reason, needle);
    }
}

static void test_poison(void **state)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 'n', 'o', 't'};
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;
    size_t len;
    uint8_t *buf;

    (void)state;
    expect_poison("keel.v1.PaymentSucceeded", garbage, sizeof(garbage), "undecodable");
    expect_poison("keel.v1.PaymentFailed", garbage, sizeof(garbage), "undecodable");
    expect_poison("keel.v1.PaymentRefunded", garbage, sizeof(garbage), "unknown ce_type");
    expect_poison("keel.v1.PaymentRequiresReview", garbage, sizeof(garbage), "undecodable");
    expect_poison("keel.v1.RefundSucceeded", garbage, sizeof(garbage), "undecodable");
    expect_poison("keel.v1.RefundFailed", garbage, sizeof(garbage), "undecodable");

    m.payment_id = "pay_1";
    m.merchant_id = "mer_1";
    m.amount = 1;
    m.currency = "usd";
    m.provider = "provider_a";

    m.payment_id = "";
    buf = pack_succeeded(&m, &len);
    expect_poison("keel.v1.PaymentSucceeded", buf, len, "payment_id");
    free(buf);
    m.payment_id = "pay_1";

    m.merchant_id = "";
    buf = pack_succeeded(&m, &len);
    expect_poison("keel.v1.PaymentSucceeded", buf, len, "merchant_id");
    free(buf);
    m.merchant_id = "mer_1";

    m.amount = 0;
    buf = pack_succeeded(&m, &len);
    expect_poison("keel.v1.PaymentSucceeded", buf, len, "amount");
    free(buf);
    m.amount = 1;

    m.currency = "zzz";
    buf = pack_succeeded(&m, &len);
    expect_poison("keel.v1.PaymentSucceeded", buf, len, "currency");
    free(buf);
    m.currency = "usd";

    m.provider = "bad \xff";
    buf = pack_succeeded(&m, &len);
    expect_poison("keel.v1.PaymentSucceeded", buf, len, "UTF-8");
    free(buf);
}

static void test_requires_review(void **state)
{
    Keel__V1__PaymentRequiresReview m = KEEL__V1__PAYMENT_REQUIRES_REVIEW__INIT;
    gateway_decoded_event ev;
    char reason[256] = "";
    size_t len;
    uint8_t *buf;

    (void)state;
    m.payment_id = "pay_3";
    m.merchant_id = "mer_1";
    m.amount = 700;
    m.currency = "gbp";
    m.provider = "provider_a";
    m.reason = "status unknown after 30 s";
    len = keel__v1__payment_requires_review__get_packed_size(&m);
    buf = malloc(len + 1);
    keel__v1__payment_requires_review__pack(&m, buf);
    assert_true(gateway_payment_event_decode("keel.v1.PaymentRequiresReview", buf, len, &ev, reason,
                                             sizeof(reason)));
    assert_int_equal(ev.kind, GATEWAY_EVENT_PAYMENT);
    assert_string_equal(ev.outcome.status, "requires_review");
    assert_string_equal(ev.outcome.failure_message, "status unknown after 30 s");
    gateway_decoded_event_free(&ev);
    free(buf);
}

static void test_refund_outcomes(void **state)
{
    Keel__V1__RefundSucceeded ok = KEEL__V1__REFUND_SUCCEEDED__INIT;
    Keel__V1__RefundFailed bad = KEEL__V1__REFUND_FAILED__INIT;
    gateway_decoded_event ev;
    char reason[256] = "";
    size_t len;
    uint8_t *buf;

    (void)state;
    ok.refund_id = "re_1";
    ok.payment_id = "pay_1";
    ok.merchant_id = "mer_1";
    ok.amount = 100;
    ok.currency = "EUR";
    ok.provider = "provider_b";
    ok.provider_refund_id = "rf_9";
    len = keel__v1__refund_succeeded__get_packed_size(&ok);
    buf = malloc(len + 1);
    keel__v1__refund_succeeded__pack(&ok, buf);
    assert_true(gateway_payment_event_decode("keel.v1.RefundSucceeded", buf, len, &ev, reason,
                                             sizeof(reason)));
    assert_int_equal(ev.kind, GATEWAY_EVENT_REFUND);
    assert_string_equal(ev.refund.refund_id, "re_1");
    assert_string_equal(ev.refund.status, "succeeded");
    assert_string_equal(ev.refund.currency, "eur");
    assert_string_equal(ev.refund.provider_refund_id, "rf_9");
    gateway_decoded_event_free(&ev);
    free(buf);

    bad.refund_id = "re_2";
    bad.payment_id = "pay_1";
    bad.merchant_id = "mer_1";
    bad.amount = 100;
    bad.currency = "eur";
    bad.failure_code = "refund_declined";
    bad.failure_message = "the provider refused";
    len = keel__v1__refund_failed__get_packed_size(&bad);
    buf = malloc(len + 1);
    keel__v1__refund_failed__pack(&bad, buf);
    assert_true(gateway_payment_event_decode("keel.v1.RefundFailed", buf, len, &ev, reason,
                                             sizeof(reason)));
    assert_string_equal(ev.refund.status, "failed");
    assert_string_equal(ev.refund.failure_code, "refund_declined");
    gateway_decoded_event_free(&ev);
    free(buf);

    /* A refund outcome without its refund id can never be applied. */
    bad.refund_id = "";
    len = keel__v1__refund_failed__get_packed_size(&bad);
    buf = malloc(len + 1);
    keel__v1__refund_failed__pack(&bad, buf);
    expect_poison("keel.v1.RefundFailed", buf, len, "refund_id");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_succeeded),       cmocka_unit_test(test_failed),
        cmocka_unit_test(test_poison),          cmocka_unit_test(test_requires_review),
        cmocka_unit_test(test_refund_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
