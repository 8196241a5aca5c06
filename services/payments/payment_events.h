/* The events keel-payments publishes (PaymentSucceeded, PaymentFailed, PaymentRequiresReview,
 * RefundSucceeded, RefundFailed), written to the outbox in the same transaction as the outcome
 * they announce. All are keyed by payment id, so a payment's events stay in order. */
#ifndef PAYMENTS_PAYMENT_EVENTS_H
#define PAYMENTS_PAYMENT_EVENTS_H

#include <stdint.h>

#include "keel/db.h"
#include "keel/error.h"
#include "payment_store.h"

#define PAYMENTS_EVENT_SOURCE "/keel/payments"
#define PAYMENTS_EVENT_SUCCEEDED "keel.v1.PaymentSucceeded"
#define PAYMENTS_EVENT_FAILED "keel.v1.PaymentFailed"
#define PAYMENTS_EVENT_REQUIRES_REVIEW "keel.v1.PaymentRequiresReview"
#define PAYMENTS_EVENT_REFUND_SUCCEEDED "keel.v1.RefundSucceeded"
#define PAYMENTS_EVENT_REFUND_FAILED "keel.v1.RefundFailed"

/* Each inserts one outbox row (key = payment id) in db's open transaction, its traceparent a
 * child of the payment's stored one. The payment events carry p's risk fields. */
keel_result payments_events_succeeded(keel_db *db, const char *topic, const payments_payment *p,
                                      const char *provider, const char *provider_charge_id);
/* provider may be "" when no provider was called. */
keel_result payments_events_failed(keel_db *db, const char *topic, const payments_payment *p,
                                   const char *provider, const char *failure_code,
                                   const char *failure_message);
keel_result payments_events_requires_review(keel_db *db, const char *topic,
                                            const payments_payment *p, const char *provider,
                                            const char *reason);

/* What a refund event says. provider_refund_id is used by succeeded, failure_* by failed. */
typedef struct payments_refund_event {
    const char *refund_id;
    const char *payment_id;
    const char *merchant_id;
    int64_t amount;
    const char *currency;
    const char *provider; /* may be "" when refused before any provider */
    const char *provider_refund_id;
    const char *failure_code;
    const char *failure_message;
    const char *traceparent; /* of the request; may be NULL or "" */
} payments_refund_event;

keel_result payments_events_refund_succeeded(keel_db *db, const char *topic,
                                             const payments_refund_event *e);
keel_result payments_events_refund_failed(keel_db *db, const char *topic,
                                          const payments_refund_event *e);

#endif
