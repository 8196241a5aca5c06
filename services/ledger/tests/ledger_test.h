/* Helpers shared by the ledger's database tests: their setup (fees and a fresh schema from
 * keel/testing/db.h; tests are skipped when KEEL_TEST_DATABASE_URL is unset) and payment
 * events built as the consumer receives them. Header-only (static functions). */
#ifndef LEDGER_TEST_H
#define LEDGER_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "keel/consume.h"
#include "keel/testing/db.h"
#include "keel/v1/merchants.pb-c.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

#include "fees.h"

extern const keel_migration ledger_migrations[];
extern const size_t ledger_migrations_count;

/* A test program's setup: the fee schedule "usd=290bp+30;default=0bp+0" and, when
 * KEEL_TEST_DATABASE_URL is set, a fresh schema <prefix>_<pid> with the ledger's tables
 * (NULL without a database: the tests skip). Close it with keel_testdb_close. */
static inline keel_testdb *ledger_test_open(const char *prefix, ledger_fee_schedule *fees)
{
    char err[256];
    assert_true(ledger_fees_parse("usd=290bp+30;default=0bp+0", fees, err, sizeof(err)));
    return keel_testdb_open(prefix, "ledger-test", "ledger", ledger_migrations,
                            ledger_migrations_count);
}

/* A record as keel_consume_run hands it to a handler; payload points into buf. */
typedef struct ledger_test_record {
    keel_message msg;
    uint8_t buf[1024];
} ledger_test_record;

static inline void ledger_test_record_init(ledger_test_record *r, const char *topic,
                                           const char *type, const char *event_id)
{
    memset(r, 0, sizeof(*r));
    r->msg.topic = topic;
    r->msg.payload = r->buf;
    /* A test id or type that does not fit is a broken test, not something to truncate. */
    assert_true(snprintf(r->msg.ce.id, sizeof(r->msg.ce.id), "%s", event_id) <
                (int)sizeof(r->msg.ce.id));
    assert_true(snprintf(r->msg.ce.type, sizeof(r->msg.ce.type), "%s", type) <
                (int)sizeof(r->msg.ce.type));
    snprintf(r->msg.ce.source, sizeof(r->msg.ce.source), "/tests");
    snprintf(r->msg.ce.time, sizeof(r->msg.ce.time), "2020-01-01T00:00:00.000Z");
}

static inline void ledger_test_payment_succeeded(ledger_test_record *r, const char *event_id,
                                                 const char *payment_id, const char *merchant_id,
                                                 int64_t amount, const char *currency,
                                                 const char *succeeded_at)
{
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;

    ledger_test_record_init(r, "keel.payment-events.v1", "keel.v1.PaymentSucceeded", event_id);
    m.payment_id = (char *)payment_id;
    m.merchant_id = (char *)merchant_id;
    m.amount = amount;
    m.currency = (char *)currency;
    m.provider = (char *)"provider_a";
    m.provider_charge_id = (char *)"ch_test";
    m.succeeded_at = (char *)succeeded_at;
    assert_true(keel__v1__payment_succeeded__get_packed_size(&m) <= sizeof(r->buf));
    r->msg.len = keel__v1__payment_succeeded__pack(&m, r->buf);
}

static inline void ledger_test_refund_succeeded(ledger_test_record *r, const char *event_id,
                                                const char *refund_id, const char *payment_id,
                                                const char *merchant_id, int64_t amount,
                                                const char *succeeded_at)
{
    Keel__V1__RefundSucceeded m = KEEL__V1__REFUND_SUCCEEDED__INIT;

    ledger_test_record_init(r, "keel.payment-events.v1", "keel.v1.RefundSucceeded", event_id);
    m.refund_id = (char *)refund_id;
    m.payment_id = (char *)payment_id;
    m.merchant_id = (char *)merchant_id;
    m.amount = amount;
    m.currency = (char *)"usd";
    m.provider = (char *)"provider_a";
    m.provider_refund_id = (char *)"re_test";
    m.succeeded_at = (char *)succeeded_at;
    r->msg.len = keel__v1__refund_succeeded__pack(&m, r->buf);
}

/* MerchantCreated when version is 0, else MerchantUpdated with that version. */
static inline void ledger_test_merchant_event(ledger_test_record *r, const char *event_id,
                                              const char *merchant_id, const char *time_zone,
                                              int64_t version)
{
    if (version == 0) {
        Keel__V1__MerchantCreated m = KEEL__V1__MERCHANT_CREATED__INIT;
        ledger_test_record_init(r, "keel.merchant-events.v1", "keel.v1.MerchantCreated", event_id);
        m.merchant_id = (char *)merchant_id;
        m.name = (char *)"Test Merchant";
        m.time_zone = (char *)time_zone;
        m.default_currency = (char *)"usd";
        r->msg.len = keel__v1__merchant_created__pack(&m, r->buf);
        return;
    }
    Keel__V1__MerchantUpdated m = KEEL__V1__MERCHANT_UPDATED__INIT;
    ledger_test_record_init(r, "keel.merchant-events.v1", "keel.v1.MerchantUpdated", event_id);
    m.merchant_id = (char *)merchant_id;
    m.name = (char *)"Test Merchant";
    m.time_zone = (char *)time_zone;
    m.default_currency = (char *)"usd";
    m.version = version;
    r->msg.len = keel__v1__merchant_updated__pack(&m, r->buf);
}

#endif
