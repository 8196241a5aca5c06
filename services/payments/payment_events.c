/* Packs the payment and refund outcome events and hands them to the transactional outbox. */
#include "payment_events.h"

#include <stdlib.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/log.h"
#include "keel/outbox.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

static keel_result insert_packed(keel_db *db, const char *topic, const char *key,
                                 const char *traceparent, const char *type,
                                 const ProtobufCMessage *msg)
{
    keel_result rc = KEEL_ERR;
    size_t len = protobuf_c_message_get_packed_size(msg);
    /* One spare byte so an empty message still gets a real buffer. */
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL) {
        keel_log_error("out of memory packing %s for payment %s", type, key);
        goto done;
    }
    protobuf_c_message_pack(msg, buf);
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, PAYMENTS_EVENT_SOURCE, type,
                         traceparent != NULL && traceparent[0] != '\0' ? traceparent : NULL);
    keel_outbox_message out = {
        .topic = topic,
        .key = key,
        .payload = buf,
        .payload_len = len,
        .ce = &ce,
    };
    rc = keel_outbox_insert(db, &out);
done:
    free(buf);
    buf = NULL;
    return rc;
}

static const char *str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

keel_result payments_events_succeeded(keel_db *db, const char *topic, const payments_payment *p,
                                      const char *provider, const char *provider_charge_id)
{
    char now[KEEL_RFC3339_LEN];
    Keel__V1__PaymentSucceeded ev = KEEL__V1__PAYMENT_SUCCEEDED__INIT;
    ev.payment_id = (char *)p->id;
    ev.merchant_id = p->merchant_id;
    ev.amount = p->amount;
    ev.currency = (char *)p->currency;
    ev.provider = (char *)provider;
    ev.provider_charge_id = (char *)str_or_empty(provider_charge_id);
    ev.succeeded_at = keel_clock_format_rfc3339(keel_clock_now_ms(), now);
    ev.risk_degraded = p->risk_degraded;
    ev.risk_score = p->risk_score;
    return insert_packed(db, topic, p->id, p->traceparent, PAYMENTS_EVENT_SUCCEEDED, &ev.base);
}

keel_result payments_events_failed(keel_db *db, const char *topic, const payments_payment *p,
                                   const char *provider, const char *failure_code,
                                   const char *failure_message)
{
    char now[KEEL_RFC3339_LEN];
    Keel__V1__PaymentFailed ev = KEEL__V1__PAYMENT_FAILED__INIT;
    ev.payment_id = (char *)p->id;
    ev.merchant_id = p->merchant_id;
    ev.amount = p->amount;
    ev.currency = (char *)p->currency;
    ev.failure_code = (char *)failure_code;
    ev.failure_message = (char *)str_or_empty(failure_message);
    ev.failed_at = keel_clock_format_rfc3339(keel_clock_now_ms(), now);
    ev.provider = (char *)str_or_empty(provider);
    ev.risk_degraded = p->risk_degraded;
    ev.risk_score = p->risk_score;
    return insert_packed(db, topic, p->id, p->traceparent, PAYMENTS_EVENT_FAILED, &ev.base);
}

keel_result payments_events_requires_review(keel_db *db, const char *topic,
                                            const payments_payment *p, const char *provider,
                                            const char *reason)
{
    char now[KEEL_RFC3339_LEN];
    Keel__V1__PaymentRequiresReview ev = KEEL__V1__PAYMENT_REQUIRES_REVIEW__INIT;
    ev.payment_id = (char *)p->id;
    ev.merchant_id = p->merchant_id;
    ev.amount = p->amount;
    ev.currency = (char *)p->currency;
    ev.provider = (char *)str_or_empty(provider);
    ev.reason = (char *)str_or_empty(reason);
    ev.at = keel_clock_format_rfc3339(keel_clock_now_ms(), now);
    return insert_packed(db, topic, p->id, p->traceparent, PAYMENTS_EVENT_REQUIRES_REVIEW,
                         &ev.base);
}

keel_result payments_events_refund_succeeded(keel_db *db, const char *topic,
                                             const payments_refund_event *e)
{
    char now[KEEL_RFC3339_LEN];
    Keel__V1__RefundSucceeded ev = KEEL__V1__REFUND_SUCCEEDED__INIT;
    ev.refund_id = (char *)e->refund_id;
    ev.payment_id = (char *)e->payment_id;
    ev.merchant_id = (char *)e->merchant_id;
    ev.amount = e->amount;
    ev.currency = (char *)e->currency;
    ev.provider = (char *)str_or_empty(e->provider);
    ev.provider_refund_id = (char *)str_or_empty(e->provider_refund_id);
    ev.succeeded_at = keel_clock_format_rfc3339(keel_clock_now_ms(), now);
    return insert_packed(db, topic, e->payment_id, e->traceparent, PAYMENTS_EVENT_REFUND_SUCCEEDED,
                         &ev.base);
}

keel_result payments_events_refund_failed(keel_db *db, const char *topic,
                                          const payments_refund_event *e)
{
    char now[KEEL_RFC3339_LEN];
    Keel__V1__RefundFailed ev = KEEL__V1__REFUND_FAILED__INIT;
    ev.refund_id = (char *)e->refund_id;
    ev.payment_id = (char *)e->payment_id;
    ev.merchant_id = (char *)e->merchant_id;
    ev.amount = e->amount;
    ev.currency = (char *)e->currency;
    ev.failure_code = (char *)str_or_empty(e->failure_code);
    ev.failure_message = (char *)str_or_empty(e->failure_message);
    ev.failed_at = keel_clock_format_rfc3339(keel_clock_now_ms(), now);
    ev.provider = (char *)str_or_empty(e->provider);
    return insert_packed(db, topic, e->payment_id, e->traceparent, PAYMENTS_EVENT_REFUND_FAILED,
                         &ev.base);
}
