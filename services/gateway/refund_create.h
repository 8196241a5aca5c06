/* Creating a refund: under its claimed Idempotency-Key and a row lock on the payment, one
 * transaction checks what remains refundable, writes the pending refund and the
 * RefundRequested outbox row, and records the answer for replays. */
#ifndef GATEWAY_REFUND_CREATE_H
#define GATEWAY_REFUND_CREATE_H

#include <jansson.h>
#include <stdint.h>

#include "idempotency.h"
#include "keel/db.h"
#include "keel/error.h"
#include "payment_validate.h"

typedef struct gateway_refund_request {
    const char *merchant_id;
    const char *payment_id;
    const char *idempotency_key;
    const char *path;     /* the request path: part of the key's fingerprint */
    const json_t *params; /* the parsed body: the rest of the fingerprint */
    const gateway_refund_input *input;
    const char *traceparent; /* the request's W3C traceparent, or NULL */
    int64_t lease_ms;        /* the idempotency claim's lease; 0 = the default */
} gateway_refund_request;

/* Runs the refund through gateway_idempotent_execute. The recorded answer is one of:
 *   202 the pending refund;
 *   404 resource_missing (param id): no such payment for this merchant;
 *   400 payment_not_refundable (param id): the payment has not succeeded;
 *   400 amount_exceeds_refundable (param amount): more than amount minus its succeeded and
 *       pending refunds, or nothing remains.
 * Returns KEEL_OK with out filled, or the database's error (the caller answers 503). */
keel_result gateway_refund_create(keel_db *db, const keel_db_tx_options *opts,
                                  const gateway_refund_request *req, gateway_idem_result *out);

#endif
