/* Intake of PaymentRequested: the inbox row and the new payment commit together or not at all. */
#include "request_intake.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keel/failpoint.h"
#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/v1/payments.pb-c.h"
#include "payment_store.h"
#include "refund_intake.h"
#include "request_validate.h"

typedef struct intake_tx {
    const keel_message *msg;
    const Keel__V1__PaymentRequested *req;
    bool duplicate_event;
    bool inserted;
} intake_tx;

static keel_result intake_body(keel_db *db, void *arg)
{
    intake_tx *tx = arg;
    /* The body may run again after a transient failure: start from a clean slate. */
    tx->duplicate_event = false;
    tx->inserted = false;
    keel_result rc = keel_inbox_claim(db, PAYMENTS_INBOX_CONSUMER, tx->msg->ce.id);
    if (rc == KEEL_ERR_CONFLICT) {
        tx->duplicate_event = true;
        return KEEL_OK;
    }
    if (rc != KEEL_OK) {
        return rc;
    }
    rc = payments_store_insert(db, tx->req, tx->msg->ce.id, tx->msg->ce.traceparent, &tx->inserted);
    if (rc != KEEL_OK) {
        return rc;
    }
    KEEL_FAILPOINT("payments.after_receive");
    return KEEL_OK;
}

keel_handle_result payments_intake_handle(const keel_message *msg, void *ctx, char *reason,
                                          size_t reason_len)
{
    payments_intake *in = ctx;
    keel_handle_result result = KEEL_HANDLE_RETRY;
    Keel__V1__PaymentRequested *req = NULL;
    keel_db *db = NULL;
    char why[256];
    intake_tx tx = {.msg = msg};

    if (strcmp(msg->ce.type, PAYMENTS_REFUND_REQUESTED_TYPE) == 0) {
        return payments_refund_intake_handle(msg, in, reason, reason_len);
    }
    if (strcmp(msg->ce.type, PAYMENTS_REQUESTED_TYPE) != 0) {
        snprintf(reason, reason_len, "unknown event type \"%s\" (expected %s or %s)", msg->ce.type,
                 PAYMENTS_REQUESTED_TYPE, PAYMENTS_REFUND_REQUESTED_TYPE);
        return KEEL_HANDLE_POISON;
    }
    req = keel__v1__payment_requested__unpack(NULL, msg->len, msg->payload);
    if (req == NULL) {
        snprintf(reason, reason_len,
                 "undecodable PaymentRequested: protobuf-c could not unpack %zu bytes", msg->len);
        return KEEL_HANDLE_POISON;
    }
    if (!payments_request_validate(req, why, sizeof(why))) {
        snprintf(reason, reason_len, "%s", why);
        result = KEEL_HANDLE_POISON;
        goto done;
    }
    db = keel_db_pool_acquire(in->pool, in->acquire_timeout_ms > 0 ? in->acquire_timeout_ms : 2000);
    if (db == NULL) {
        keel_log_warn("no database connection for payment %s; will retry", req->payment_id);
        goto done;
    }
    tx.req = req;
    keel_result rc = keel_db_transaction(db, NULL, intake_body, &tx, NULL);
    if (rc != KEEL_OK) {
        /* A valid request the database did not take is never poison: hold the partition
         * and retry, so it is neither lost nor overtaken. */
        keel_log_warn("storing payment %s (event %s) failed (%s); will retry", req->payment_id,
                      msg->ce.id, keel_result_name(rc));
        goto done;
    }
    if (tx.duplicate_event) {
        keel_log_info("event %s for payment %s was already processed; skipped", msg->ce.id,
                      req->payment_id);
    } else if (!tx.inserted) {
        keel_log_info("payment %s already exists; request event %s ignored", req->payment_id,
                      msg->ce.id);
    } else {
        keel_log_info("payment %s received: %lld %s for merchant %s", req->payment_id,
                      (long long)req->amount, req->currency, req->merchant_id);
        if (in->on_stored != NULL) {
            in->on_stored(in->on_stored_arg);
        }
    }
    result = KEEL_HANDLE_OK;
done:
    if (db != NULL) {
        keel_db_pool_release(in->pool, db);
        db = NULL;
    }
    keel__v1__payment_requested__free_unpacked(req, NULL);
    req = NULL;
    return result;
}
