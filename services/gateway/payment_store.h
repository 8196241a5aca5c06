/* The gateway's payments table: its own view of each payment, written on POST and updated
 * from payment events, read by GET and the list. */
#ifndef GATEWAY_PAYMENT_STORE_H
#define GATEWAY_PAYMENT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/error.h"
#include "list_params.h"
#include "payment_validate.h"

/* Inserts a pending payment inside db's open transaction. On KEEL_OK *body holds the
 * payment's API JSON (malloc'd, the caller frees) and *created_at_ms its created_at. */
keel_result gateway_payment_store_insert(keel_db *db, const char *id, const char *merchant_id,
                                         const gateway_payment_input *in, char **body,
                                         int64_t *created_at_ms);

/* The payment's API JSON with its refunds (malloc'd) when it exists and belongs to
 * merchant_id; KEEL_ERR_NOT_FOUND otherwise, so another merchant's ids are
 * indistinguishable from missing ones. */
keel_result gateway_payment_store_get(keel_db *db, const char *merchant_id, const char *id,
                                      char **body);

/* A page of merchant_id's payments as the API's list object (malloc'd text), newest first
 * with the id as tie-breaker. KEEL_ERR_NOT_FOUND when a cursor names no payment of the
 * merchant; *bad_param then names the cursor parameter. */
keel_result gateway_payment_store_list(keel_db *db, const char *merchant_id,
                                       const gateway_list_params *lp, char **body,
                                       const char **bad_param);

/* An outcome from keel.payment-events.v1. Strings are borrowed; empty ones are stored as
 * NULL. */
typedef struct gateway_payment_outcome {
    const char *payment_id;
    const char *merchant_id;
    int64_t amount;
    const char *currency;
    const char *status; /* "succeeded", "failed" or "requires_review" */
    const char *provider;
    const char *failure_code;
    const char *failure_message;
} gateway_payment_outcome;

/* Applies o inside db's open transaction: a pending payment of the same merchant takes the
 * outcome, one in requires_review takes a final one (succeeded or failed); a payment the
 * gateway never saw (published to Kafka by an external producer) is inserted from the
 * event; a final payment never changes. *applied tells whether a row was written. */
keel_result gateway_payment_store_apply_outcome(keel_db *db, const gateway_payment_outcome *o,
                                                bool *applied);

#endif
