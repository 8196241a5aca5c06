/* SQL for refunds: admitting a RefundRequested under a row lock on its payment (so concurrent
 * refunds cannot over-refund), claiming due refunds under a lease, and recording each step. */
#ifndef PAYMENTS_REFUND_STORE_H
#define PAYMENTS_REFUND_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/error.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_store.h"

typedef enum payments_refund_phase {
    PAYMENTS_REFUND_RECEIVED = 0, /* nothing sent to the provider yet */
    PAYMENTS_REFUND_STARTED,      /* a refund call may have reached the provider */
    PAYMENTS_REFUND_DONE,
} payments_refund_phase;

const char *payments_refund_phase_name(payments_refund_phase phase);

/* What the payment of a refund request allows, read under FOR UPDATE. */
typedef struct payments_refundable {
    bool found;
    char status[24];
    char merchant_id[128];
    char currency[16];
    int64_t amount;
    int64_t refunded; /* succeeded, in flight or in review: everything not failed */
    char provider[PAYMENTS_PROVIDER_NAME_LEN];
    char charge_id[128];
} payments_refundable;

/* True when a refund with this id exists (*exists), in db's open transaction. */
keel_result payments_refund_store_exists(keel_db *db, const char *refund_id, bool *exists);

/* Locks the payment row (FOR UPDATE, until the transaction ends) and sums its refunds. Two
 * requests for one payment therefore check and insert one after the other. out->found is
 * false when there is no such payment. */
keel_result payments_refund_store_lock_payment(keel_db *db, const char *payment_id,
                                               payments_refundable *out);

/* A new refund row. With failure_code NULL it is admitted (processing, phase received, to the
 * provider and charge given); otherwise it is stored refused (failed, done). *inserted is
 * false when the id existed already (nothing written). */
typedef struct payments_refund_new {
    const Keel__V1__RefundRequested *req;
    const char *currency; /* canonical lowercase */
    const char *event_id;
    const char *traceparent; /* may be NULL or "" */
    const char *provider;    /* NULL when refused */
    const char *charge_id;
    const char *failure_code;
    const char *failure_message;
} payments_refund_new;

keel_result payments_refund_store_insert(keel_db *db, const payments_refund_new *r, bool *inserted);

/* One claimed refund, as the worker needs it. */
typedef struct payments_refund {
    char id[48];
    char payment_id[48];
    char merchant_id[128];
    int64_t amount;
    char currency[16];
    char provider[PAYMENTS_PROVIDER_NAME_LEN];
    char charge_id[128];
    payments_refund_phase phase;
    int attempts;
    bool ambiguous;
    int64_t unknown_age_ms; /* -1 when the outcome was never unknown */
    char traceparent[KEEL_TRACEPARENT_LEN];
} payments_refund;

/* Claims the refund due first for owner until now() + lease_ms (SKIP LOCKED).
 * KEEL_ERR_NOT_FOUND when none is due. */
keel_result payments_refund_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                        payments_refund *out);

/* The intent to refund (phase refund_started) and a renewed lease, committed before the
 * call. KEEL_ERR_CONFLICT when owner lost the refund. */
keel_result payments_refund_store_mark_started(keel_db *db, const char *id, const char *owner,
                                               int64_t lease_ms);

typedef struct payments_refund_record {
    const char *status; /* "processing", "succeeded", "failed", "requires_review" */
    payments_refund_phase phase;
    const char *provider_refund_id; /* NULL keeps what is there */
    const char *failure_code;
    const char *failure_message;
    int attempts;
    bool ambiguous;
    bool mark_unknown; /* start the unknown-outcome clock unless it runs already */
    int64_t retry_delay_ms;
    const char *last_error;
} payments_refund_record;

/* Applies rec and releases the lease in db's open transaction. KEEL_ERR_CONFLICT when owner
 * does not hold the refund or it is done. */
keel_result payments_refund_store_record(keel_db *db, const char *id, const char *owner,
                                         const payments_refund_record *rec);

#endif
