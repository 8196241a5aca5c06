/* Creating a payment: one transaction that claims the idempotency key, writes the pending
 * payment and the PaymentRequested outbox row, and records the answer for replays. */
#ifndef GATEWAY_PAYMENT_CREATE_H
#define GATEWAY_PAYMENT_CREATE_H

#include "keel/db.h"
#include "keel/error.h"
#include "payment_validate.h"

#define GATEWAY_PAYMENT_REQUESTS_TOPIC "keel.payment-requests.v1"
#define GATEWAY_EVENT_SOURCE "/keel/gateway"

typedef struct gateway_create_request {
    const char *merchant_id;
    const char *idempotency_key;
    const char *request_hash; /* gateway_idempotency_request_hash of the HTTP request */
    const gateway_payment_input *input;
    const char *traceparent; /* the request's W3C traceparent, or NULL */
} gateway_create_request;

typedef enum gateway_create_outcome {
    GATEWAY_CREATE_CREATED = 0,    /* a new payment: answer status and body */
    GATEWAY_CREATE_REPLAYED,       /* the key's first answer: repeat status and body */
    GATEWAY_CREATE_KEY_REUSED,     /* the key belongs to a different request (422) */
    GATEWAY_CREATE_KEY_INCOMPLETE, /* the key's row holds no answer (409, retry later) */
} gateway_create_outcome;

typedef struct gateway_create_result {
    gateway_create_outcome outcome;
    int status; /* CREATED / REPLAYED: the HTTP status to answer */
    char *body; /* CREATED / REPLAYED: the exact body to answer (malloc'd) */
} gateway_create_result;

/* Runs the transaction with keel_db_transaction (opts as there; may be NULL). Everything is
 * written together or not at all, so a crash or error at any point leaves either nothing
 * or a complete payment whose retry replays. Returns KEEL_OK with out filled, or the
 * database's error (the caller answers 503). */
keel_result gateway_payment_create(keel_db *db, const keel_db_tx_options *opts,
                                   const gateway_create_request *req, gateway_create_result *out);

void gateway_create_result_clear(gateway_create_result *r);

#endif
