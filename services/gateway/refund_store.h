/* The gateway's refunds table: written pending by POST /v1/payments/{id}/refunds, finished
 * by refund outcome events, read embedded in payments and by GET .../refunds. */
#ifndef GATEWAY_REFUND_STORE_H
#define GATEWAY_REFUND_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/error.h"
#include "list_params.h"

/* A payment object embeds at most this many of its refunds (the newest); the list endpoint
 * pages through all of them. */
#define GATEWAY_REFUNDS_EMBEDDED_MAX 100

/* Inserts a pending refund inside db's open transaction. On KEEL_OK *refund is its API JSON
 * (a new reference). reason may be NULL. */
keel_result gateway_refund_store_insert(keel_db *db, const char *id, const char *payment_id,
                                        const char *merchant_id, int64_t amount,
                                        const char *currency, const char *reason, json_t **refund);

/* The refunds of the given payments of merchant_id as a JSON object mapping each payment id
 * to an array of its refunds, newest first, at most GATEWAY_REFUNDS_EMBEDDED_MAX each;
 * payments without refunds are absent. A new reference in *by_payment on KEEL_OK. */
keel_result gateway_refund_store_for_payments(keel_db *db, const char *merchant_id,
                                              const char *const *payment_ids, int n,
                                              json_t **by_payment);

/* A page of a payment's refunds as the API's list object (malloc'd text). KEEL_ERR_NOT_FOUND
 * when the payment is not merchant_id's (*bad_param "id") or a cursor names no refund of it
 * (*bad_param "starting_after" / "ending_before"). */
keel_result gateway_refund_store_list(keel_db *db, const char *merchant_id, const char *payment_id,
                                      const gateway_list_params *lp, char **body,
                                      const char **bad_param);

/* A refund outcome from keel.payment-events.v1; strings borrowed, empty ones stored NULL. */
typedef struct gateway_refund_outcome {
    const char *refund_id;
    const char *payment_id;
    const char *merchant_id;
    int64_t amount;
    const char *currency;
    const char *status; /* "succeeded" or "failed" */
    const char *provider;
    const char *provider_refund_id;
    const char *failure_code;
    const char *failure_message;
} gateway_refund_outcome;

/* Applies o inside db's open transaction: only a pending refund of the same payment and
 * merchant changes; a final one never does, and an unknown refund is left alone (*applied
 * false in both cases). */
keel_result gateway_refund_store_apply_outcome(keel_db *db, const gateway_refund_outcome *o,
                                               bool *applied);

#endif
