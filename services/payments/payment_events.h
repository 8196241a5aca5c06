/* The events keel-payments publishes (PaymentSucceeded, PaymentFailed), written to the outbox in
 * the same transaction as the outcome they announce. */
#ifndef PAYMENTS_PAYMENT_EVENTS_H
#define PAYMENTS_PAYMENT_EVENTS_H

#include "keel/db.h"
#include "keel/error.h"
#include "payment_store.h"

#define PAYMENTS_EVENT_SOURCE "/keel/payments"
#define PAYMENTS_EVENT_SUCCEEDED "keel.v1.PaymentSucceeded"
#define PAYMENTS_EVENT_FAILED "keel.v1.PaymentFailed"

/* Each inserts one outbox row (key = payment id) in db's open transaction, its traceparent a
 * child of the payment's stored one. */
keel_result payments_events_succeeded(keel_db *db, const char *topic, const payments_payment *p,
                                      const char *provider, const char *provider_charge_id);
/* provider may be "" when no provider was called. */
keel_result payments_events_failed(keel_db *db, const char *topic, const payments_payment *p,
                                   const char *provider, const char *failure_code,
                                   const char *failure_message);

#endif
