/* SQL for the payments table: storing a request, claiming due work under a lease, and recording
 * each step, every write conditional on the lease so a worker that lost it cannot record. */
#ifndef PAYMENTS_PAYMENT_STORE_H
#define PAYMENTS_PAYMENT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/error.h"
#include "keel/v1/payments.pb-c.h"

typedef enum payments_phase {
    PAYMENTS_PHASE_RECEIVED = 0,   /* nothing can have been charged yet; risk not checked */
    PAYMENTS_PHASE_CHARGE_STARTED, /* a charge may have reached `provider`, outcome unknown */
    PAYMENTS_PHASE_DONE,
    PAYMENTS_PHASE_RISK_CHECKED, /* risk approved; nothing charged by this round yet */
} payments_phase;

/* Longest provider name stored ("provider_a"). */
#define PAYMENTS_PROVIDER_NAME_LEN 32

/* One claimed payment, as the worker needs it. Strings are owned: payments_payment_clear. */
typedef struct payments_payment {
    char id[48];
    char *merchant_id;
    int64_t amount;
    char currency[16];
    char *description;
    char *metadata_json; /* a JSON object */
    char *payment_method;
    payments_phase phase;
    int attempts;   /* provider attempts that ended without an outcome so far */
    bool ambiguous; /* some earlier attempt may have charged without us knowing */
    char traceparent[KEEL_TRACEPARENT_LEN];    /* of the request; "" when none */
    char provider[PAYMENTS_PROVIDER_NAME_LEN]; /* the provider of the last charge; "" none */
    /* The provider at which an outcome was ever unknown (the only one it may go to); "". */
    char ambiguous_provider[PAYMENTS_PROVIDER_NAME_LEN];
    int risk_score;         /* 0..100, -1 local rules; meaningful once the risk was checked */
    bool risk_degraded;     /* local rules decided */
    int64_t unknown_age_ms; /* how long the outcome has been unknown at claim time; -1 never */
} payments_payment;

void payments_payment_clear(payments_payment *p);

const char *payments_phase_name(payments_phase phase);

/* Inserts a validated request with phase 'received' in db's open transaction. A payment id
 * that exists already is left alone (*inserted = false): the first request wins.
 * traceparent may be NULL or "". */
keel_result payments_store_insert(keel_db *db, const Keel__V1__PaymentRequested *req,
                                  const char *event_id, const char *traceparent, bool *inserted);

/* Claims the payment due first (received or charge_started, next_attempt_at passed, no live
 * lease) for owner until now() + lease_ms, in one autocommitted statement with SKIP LOCKED so
 * concurrent workers never take the same row. KEEL_ERR_NOT_FOUND when nothing is due. */
keel_result payments_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                 payments_payment *out);

/* Records the risk decision (phase 'risk_checked') and renews the lease, in db's open
 * transaction. KEEL_ERR_CONFLICT when owner no longer holds the payment. */
keel_result payments_store_set_risk(keel_db *db, const char *id, const char *owner,
                                    int64_t lease_ms, int score, bool degraded, const char *reason);

/* Records the intent to charge at provider (phase 'charge_started', provider) and renews the
 * lease to now() + lease_ms; with attempt_id not NULL also inserts a payment_attempts row and
 * returns its id. Run in a transaction committed before the provider call.
 * KEEL_ERR_CONFLICT when owner no longer holds the payment (its lease expired and another
 * worker took it, or it is done). */
keel_result payments_store_mark_charge_started(keel_db *db, const char *id, const char *owner,
                                               int64_t lease_ms, const char *provider,
                                               int64_t *attempt_id);

/* The charge just made certainly did not happen (not processed): back to phase
 * 'risk_checked', keeping the lease, so the next provider may be tried. In db's open
 * transaction; KEEL_ERR_CONFLICT when owner lost the payment. */
keel_result payments_store_mark_not_charged(keel_db *db, const char *id, const char *owner);

/* Finishes a payment_attempts row with the outcome of its calls (in db's open transaction,
 * or on its own). */
keel_result payments_store_finish_attempt(keel_db *db, int64_t attempt_id, const char *outcome,
                                          int calls, const char *detail);

/* A step's result: the new status and phase and what to keep. NULL strings store NULL, except
 * provider and provider_charge_id, which keep what is there. */
typedef struct payments_record {
    const char *status; /* "processing", "succeeded", "failed", "requires_review" */
    payments_phase phase;
    const char *provider;
    const char *provider_charge_id;
    const char *failure_code;
    const char *failure_message;
    int attempts;
    bool ambiguous;
    int64_t retry_delay_ms; /* next_attempt_at = now() + this (only matters when not done) */
    const char *last_error;
    /* Pins the payment to this provider (NULL keeps what is there) and, with mark_unknown,
     * starts the unknown-outcome clock unless it runs already. */
    const char *ambiguous_provider;
    bool mark_unknown;
} payments_record;

/* Applies rec and releases the lease, in db's open transaction (so the caller can add the
 * outbox row to the same commit). KEEL_ERR_CONFLICT when owner does not hold the payment or
 * it is already done: then nothing was written and the caller must roll back. */
keel_result payments_store_record(keel_db *db, const char *id, const char *owner,
                                  const payments_record *rec);

/* Runs one prepared UPDATE whose WHERE holds the lease condition: KEEL_ERR_CONFLICT when it
 * touched no row (the lease is gone or the row is done). Shared with the refund store. */
keel_result payments_store_exec_owned(keel_db *db, const char *name, const char *sql, int n,
                                      const char *const *params, const char *what);

#endif
