/* The consumer handler for keel.payment-requests.v1: decode, validate, and store each request
 * (PaymentRequested, RefundRequested) with its inbox row in one transaction. */
#ifndef PAYMENTS_REQUEST_INTAKE_H
#define PAYMENTS_REQUEST_INTAKE_H

#include <stddef.h>

#include "keel/consume.h"
#include "keel/db.h"

#define PAYMENTS_REQUESTED_TYPE "keel.v1.PaymentRequested"
#define PAYMENTS_REFUND_REQUESTED_TYPE "keel.v1.RefundRequested"
/* How often a RefundRequested whose payment is not (yet) known here is retried before it is
 * refused, when the intake sets no number. */
#define PAYMENTS_REFUND_WAIT_RETRIES_DEFAULT 8
#define PAYMENTS_INBOX_CONSUMER "payments"

typedef struct payments_intake {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms; /* waiting for a connection; 0 = 2000 */
    /* Called after a new payment or refund committed (to wake the workers); may be NULL. */
    void (*on_stored)(void *arg);
    void *on_stored_arg;
    /* Where RefundFailed goes when intake refuses a refund; NULL = keel.payment-events.v1. */
    const char *events_topic;
    /* Retries of a RefundRequested whose payment is unknown (or still processing) before it
     * is refused; 0 = PAYMENTS_REFUND_WAIT_RETRIES_DEFAULT. */
    int refund_wait_retries;
    /* The consumer loop retries one record in place; this counts those retries. Owned by the
     * handler (one consumer thread). */
    char waiting_event[160];
    int waiting_count;
} payments_intake;

/* A keel_message_handler; ctx is a payments_intake. Dispatches on the CloudEvents type.
 * POISON for an unknown type, an undecodable payload or a request that breaks a rule (reason
 * says which); RETRY when the database is away (or, a bounded number of times, when a refund's
 * payment is not known yet); OK once stored, or when it is a duplicate (same event, or same
 * payment / refund id under another event). */
keel_handle_result payments_intake_handle(const keel_message *msg, void *ctx, char *reason,
                                          size_t reason_len);

#endif
