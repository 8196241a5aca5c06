/* RefundRequested intake: the refundable amount is checked and the refund stored while the
 * payment's row is locked, so two concurrent refunds cannot both pass the check. */
#include "refund_intake.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/money.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_events.h"
#include "refund_store.h"
#include "request_validate.h"

#define REFUND_DEFAULT_EVENTS_TOPIC "keel.payment-events.v1"

typedef struct refund_tx {
    const keel_message *msg;
    const Keel__V1__RefundRequested *req;
    const keel_currency *cur;
    const char *events_topic;
    bool give_up; /* the payment was waited for long enough: refuse instead of waiting */
    /* results, reset on every run of the body */
    bool duplicate;
    bool inserted;
    const char *refused;
    char message[256];
} refund_tx;

/* Decides whether the payment allows the refund; NULL, or the failure code with a message.
 * Returns KEEL_ERR_NOT_FOUND when the caller should wait for the payment. */
static keel_result refund_judge(refund_tx *tx, const payments_refundable *pay)
{
    const Keel__V1__RefundRequested *req = tx->req;
    bool known = pay->found && strcmp(pay->status, "processing") != 0;
    if (!known && !tx->give_up) {
        return KEEL_ERR_NOT_FOUND;
    }
    if (!pay->found || strcmp(pay->merchant_id, req->merchant_id) != 0) {
        /* Another merchant's payment is reported as unknown: its existence is not theirs to
         * learn. */
        tx->refused = PAYMENTS_REFUND_PAYMENT_NOT_FOUND;
        snprintf(tx->message, sizeof(tx->message), "payment %s is not known to keel-payments",
                 req->payment_id);
    } else if (strcmp(pay->status, "succeeded") != 0) {
        tx->refused = PAYMENTS_REFUND_PAYMENT_NOT_SUCCEEDED;
        snprintf(tx->message, sizeof(tx->message),
                 "payment %s is %s; only a succeeded payment can be refunded", req->payment_id,
                 pay->status);
    } else if (strcmp(pay->currency, tx->cur->code) != 0) {
        tx->refused = PAYMENTS_REFUND_CURRENCY_MISMATCH;
        snprintf(tx->message, sizeof(tx->message),
                 "the refund is in %s but payment %s was charged in %s", tx->cur->code,
                 req->payment_id, pay->currency);
    } else if (req->amount > pay->amount - pay->refunded) {
        tx->refused = PAYMENTS_REFUND_AMOUNT_EXCEEDS;
        snprintf(tx->message, sizeof(tx->message),
                 "refund of %" PRId64 " exceeds what remains refundable: %" PRId64 " of %" PRId64
                 " %s (refunded or in flight: %" PRId64 ")",
                 req->amount, pay->amount - pay->refunded, pay->amount, pay->currency,
                 pay->refunded);
    }
    return KEEL_OK;
}

static keel_result refund_body(keel_db *db, void *arg)
{
    refund_tx *tx = arg;
    const Keel__V1__RefundRequested *req = tx->req;
    payments_refundable pay;
    bool exists = false;
    /* The body may run again after a transient failure: start from a clean slate. */
    tx->duplicate = false;
    tx->inserted = false;
    tx->refused = NULL;
    tx->message[0] = '\0';

    keel_result rc = keel_inbox_claim(db, PAYMENTS_INBOX_CONSUMER, tx->msg->ce.id);
    if (rc == KEEL_ERR_CONFLICT) {
        tx->duplicate = true;
        return KEEL_OK;
    }
    if (rc != KEEL_OK) {
        return rc;
    }
    /* The lock comes first: a second request with the same refund id then waits here and
     * sees the first one's row. */
    rc = payments_refund_store_lock_payment(db, req->payment_id, &pay);
    if (rc != KEEL_OK) {
        return rc;
    }
    rc = payments_refund_store_exists(db, req->refund_id, &exists);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (exists) {
        tx->duplicate = true; /* the same refund under another event: the first one wins */
        return KEEL_OK;
    }
    rc = refund_judge(tx, &pay);
    if (rc != KEEL_OK) {
        return rc;
    }
    payments_refund_new row = {
        .req = req,
        .currency = tx->cur->code,
        .event_id = tx->msg->ce.id,
        .traceparent = tx->msg->ce.traceparent,
        .provider = tx->refused == NULL ? pay.provider : NULL,
        .charge_id = tx->refused == NULL ? pay.charge_id : NULL,
        .failure_code = tx->refused,
        .failure_message = tx->refused != NULL ? tx->message : NULL,
    };
    rc = payments_refund_store_insert(db, &row, &tx->inserted);
    if (rc != KEEL_OK || !tx->inserted || tx->refused == NULL) {
        return rc;
    }
    payments_refund_event ev = {
        .refund_id = req->refund_id,
        .payment_id = req->payment_id,
        .merchant_id = req->merchant_id,
        .amount = req->amount,
        .currency = tx->cur->code,
        .provider = "",
        .failure_code = tx->refused,
        .failure_message = tx->message,
        .traceparent = tx->msg->ce.traceparent,
    };
    return payments_events_refund_failed(db, tx->events_topic, &ev);
}

/* How often this event already waited for its payment. The consumer retries a record in place,
 * so a new event id means the previous one is settled and its count can go. */
static int refund_waits_so_far(payments_intake *in, const char *event_id)
{
    if (strcmp(in->waiting_event, event_id) != 0) {
        snprintf(in->waiting_event, sizeof(in->waiting_event), "%s", event_id);
        in->waiting_count = 0;
    }
    return in->waiting_count;
}

keel_handle_result payments_refund_intake_handle(const keel_message *msg, payments_intake *in,
                                                 char *reason, size_t reason_len)
{
    keel_handle_result result = KEEL_HANDLE_RETRY;
    keel_db *db = NULL;
    char why[256];
    Keel__V1__RefundRequested *req =
        keel__v1__refund_requested__unpack(NULL, msg->len, msg->payload);
    if (req == NULL) {
        snprintf(reason, reason_len,
                 "undecodable RefundRequested: protobuf-c could not unpack %zu bytes", msg->len);
        return KEEL_HANDLE_POISON;
    }
    if (!payments_refund_request_validate(req, why, sizeof(why))) {
        snprintf(reason, reason_len, "%s", why);
        result = KEEL_HANDLE_POISON;
        goto done;
    }
    int limit = in->refund_wait_retries > 0 ? in->refund_wait_retries
                                            : PAYMENTS_REFUND_WAIT_RETRIES_DEFAULT;
    refund_tx tx = {
        .msg = msg,
        .req = req,
        .cur = keel_currency_find(req->currency),
        .events_topic = in->events_topic != NULL ? in->events_topic : REFUND_DEFAULT_EVENTS_TOPIC,
    };
    /* Only rounds that found no payment count: a database outage must not use them up. */
    tx.give_up = refund_waits_so_far(in, msg->ce.id) >= limit;
    db = keel_db_pool_acquire(in->pool, in->acquire_timeout_ms > 0 ? in->acquire_timeout_ms : 2000);
    if (db == NULL) {
        keel_log_warn("no database connection for refund %s; will retry", req->refund_id);
        goto done;
    }
    keel_result rc = keel_db_transaction(db, NULL, refund_body, &tx, NULL);
    if (rc == KEEL_ERR_NOT_FOUND) {
        int round = ++in->waiting_count;
        keel_log_warn("refund %s: payment %s is not known here yet (or still processing); "
                      "waiting (%d of %d)",
                      req->refund_id, req->payment_id, round, limit);
        snprintf(reason, reason_len, "payment %s not known yet", req->payment_id);
        goto done;
    }
    if (rc != KEEL_OK) {
        keel_log_warn("storing refund %s (event %s) failed (%s); will retry", req->refund_id,
                      msg->ce.id, keel_result_name(rc));
        goto done;
    }
    if (tx.duplicate) {
        keel_log_info("refund %s (event %s) was already processed; skipped", req->refund_id,
                      msg->ce.id);
    } else if (tx.refused != NULL) {
        keel_log_info("refund %s of payment %s refused: %s (%s)", req->refund_id, req->payment_id,
                      tx.refused, tx.message);
    } else {
        keel_log_info("refund %s received: %" PRId64 " %s of payment %s", req->refund_id,
                      req->amount, tx.cur->code, req->payment_id);
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
    keel__v1__refund_requested__free_unpacked(req, NULL);
    req = NULL;
    return result;
}
