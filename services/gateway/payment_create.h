/* Creating a payment: under its claimed Idempotency-Key, one transaction writes the pending
 * payment, the PaymentRequested outbox row and the answer recorded for replays. */
#ifndef GATEWAY_PAYMENT_CREATE_H
#define GATEWAY_PAYMENT_CREATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "idempotency.h"
#include "keel/db.h"
#include "keel/error.h"
#include "payment_validate.h"

#define GATEWAY_PAYMENT_REQUESTS_TOPIC "keel.payment-requests.v1"
#define GATEWAY_EVENT_SOURCE "/keel/gateway"

typedef struct gateway_create_request {
    const char *merchant_id;
    const char *idempotency_key;
    const json_t *params; /* the parsed body: what the key's fingerprint covers */
    const gateway_payment_input *input;
    const char *traceparent; /* the request's W3C traceparent, or NULL */
    int64_t lease_ms;        /* the idempotency claim's lease; 0 = the default */
} gateway_create_request;

/* Inserts an event for GATEWAY_PAYMENT_REQUESTS_TOPIC into the outbox inside db's open
 * transaction, keyed by payment_id so every event of one payment (its request, then its
 * refunds) stays on one partition, in order. payload is copied. */
keel_result gateway_outbox_request(keel_db *db, const char *ce_type, const char *payment_id,
                                   const uint8_t *payload, size_t len, const char *traceparent);

/* Runs the creation through gateway_idempotent_execute (opts as for keel_db_transaction;
 * may be NULL). Everything is written together or not at all, so a crash or error at any
 * point leaves either nothing or a complete payment whose retry replays. Returns KEEL_OK
 * with out filled (EXECUTED: 202 and the new payment), or the database's error (the caller
 * answers 503). */
keel_result gateway_payment_create(keel_db *db, const keel_db_tx_options *opts,
                                   const gateway_create_request *req, gateway_idem_result *out);

#endif
