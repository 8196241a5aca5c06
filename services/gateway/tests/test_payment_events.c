/* Unit tests of decoding payment outcome events: good events, poison and its reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/v1/payments.pb-c.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_succeeded),
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_poison),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
