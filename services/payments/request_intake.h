/* The consumer handler for keel.payment-requests.v1: decode, validate, and store each request
 * with its inbox row in one transaction. */
#ifndef PAYMENTS_REQUEST_INTAKE_H
#define PAYMENTS_REQUEST_INTAKE_H

#include <stddef.h>

#include "keel/consume.h"
#include "keel/db.h"

#define PAYMENTS_REQUESTED_TYPE "keel.v1.PaymentRequested"
#define PAYMENTS_INBOX_CONSUMER "payments"

typedef struct payments_intake {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms; /* waiting for a connection; 0 = 2000 */
    /* Called after a new payment committed (to wake the workers); may be NULL. */
    void (*on_stored)(void *arg);
    void *on_stored_arg;
} payments_intake;

/* A keel_message_handler; ctx is a payments_intake. POISON for an unknown type, an
 * undecodable payload or a request that breaks a rule (reason says which); RETRY when the
 * database is away; OK once stored, or when it is a duplicate (same event, or same payment
 * id under another event). */
keel_handle_result payments_intake_handle(const keel_message *msg, void *ctx, char *reason,
                                          size_t reason_len);

#endif
