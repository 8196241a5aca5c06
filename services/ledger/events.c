/* Posts PaymentSucceeded and RefundSucceeded to the journal; skips the events that move no money.
 */
#include "events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

#define TYPE_PAYMENT_SUCCEEDED "keel.v1.PaymentSucceeded"
#define TYPE_REFUND_SUCCEEDED "keel.v1.RefundSucceeded"

/* Outcomes that exist on the topic but move no money: listed, so that a new type nobody
 * thought about goes to the DLQ instead of being skipped silently. */
static const char *const events_no_money[] = {
    "keel.v1.PaymentFailed",
    "keel.v1.RefundFailed",
    "keel.v1.PaymentRequiresReview",
};

void ledger_events_init(ledger_events *ev, keel_db *db, const ledger_fee_schedule *fees)
{
    keel_metrics *m = keel_metrics_default();
    static const char postings_help[] = "Payment events handled by the ledger, by result";

    memset(ev, 0, sizeof(*ev));
    ev->db = db;
    ev->fees = fees;
    ev->post = (ledger_post_options){
        .inbox_consumer = LEDGER_PAYMENT_EVENTS_CONSUMER,
        .isolation = KEEL_DB_READ_COMMITTED,
    };
    ev->posted_payments = keel_metrics_counter(m, "keel_ledger_events_total", postings_help,
                                               "type=\"payment\",result=\"posted\"");
    ev->posted_refunds = keel_metrics_counter(m, "keel_ledger_events_total", postings_help,
                                              "type=\"refund\",result=\"posted\"");
    ev->duplicates =
        keel_metrics_counter(m, "keel_ledger_events_total", postings_help, "result=\"duplicate\"");
    ev->ignored =
        keel_metrics_counter(m, "keel_ledger_events_total", postings_help, "result=\"no_money\"");
    ev->retries = keel_metrics_counter(
        m, "keel_ledger_posting_retries_total",
        "Posting transactions run again after a serialization failure, deadlock or lost "
        "connection",
        NULL);
}

/* Fills the time of me from the event's own time (succeeded_at), else the CloudEvents time,
 * and builds the posting. An invalid succeeded_at is poison, not a reason to fall back. */
static bool events_to_posting(const ledger_events *ev, const keel_message *msg, bool refund,
                              const char *own_time, ledger_money_event *me, ledger_posting *out,
                              char *reason, size_t reason_len)
{
    const char *what = refund ? "RefundSucceeded" : "PaymentSucceeded";
    const char *t = own_time != NULL && own_time[0] != '\0' ? own_time : msg->ce.time;

    if (!keel_clock_parse_rfc3339(t, &me->effective_ms)) {
        snprintf(reason, reason_len, "%s: succeeded_at \"%.40s\" is not an RFC 3339 time", what, t);
        return false;
    }
    return refund ? ledger_posting_refund(me, out, reason, reason_len)
                  : ledger_posting_payment(ev->fees, me, out, reason, reason_len);
}

/* Decodes the record into a posting. False with the reason for poison. */
static bool events_decode(const ledger_events *ev, const keel_message *msg, ledger_posting *out,
                          char *reason, size_t reason_len)
{
    const uint8_t *data = msg->payload;
    ledger_money_event me = {.event_id = msg->ce.id};
    bool ok;

    if (strcmp(msg->ce.type, TYPE_PAYMENT_SUCCEEDED) == 0) {
        Keel__V1__PaymentSucceeded *m = keel__v1__payment_succeeded__unpack(NULL, msg->len, data);
        if (m == NULL) {
            snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", msg->ce.type,
                     msg->len);
            return false;
        }
        me.source_id = m->payment_id;
        me.payment_id = m->payment_id;
        me.merchant_id = m->merchant_id;
        me.provider = m->provider;
        me.currency = m->currency;
        me.amount = m->amount;
        ok = events_to_posting(ev, msg, false, m->succeeded_at, &me, out, reason, reason_len);
        keel__v1__payment_succeeded__free_unpacked(m, NULL);
        return ok;
    }
    Keel__V1__RefundSucceeded *m = keel__v1__refund_succeeded__unpack(NULL, msg->len, data);
    if (m == NULL) {
        snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", msg->ce.type, msg->len);
        return false;
    }
    me.source_id = m->refund_id;
    me.payment_id = m->payment_id;
    me.merchant_id = m->merchant_id;
    me.provider = m->provider;
    me.currency = m->currency;
    me.amount = m->amount;
    ok = events_to_posting(ev, msg, true, m->succeeded_at, &me, out, reason, reason_len);
    keel__v1__refund_succeeded__free_unpacked(m, NULL);
    return ok;
}

keel_handle_result ledger_payment_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                size_t reason_len)
{
    ledger_events *ev = ctx;
    ledger_posting posting;
    ledger_post_result res;
    keel_result r;

    for (size_t i = 0; i < sizeof(events_no_money) / sizeof(events_no_money[0]); i++) {
        if (strcmp(msg->ce.type, events_no_money[i]) == 0) {
            keel_metric_inc(ev->ignored);
            keel_log_debug("event %s (%s) moves no money; nothing to post", msg->ce.id,
                           msg->ce.type);
            return KEEL_HANDLE_OK;
        }
    }
    if (strcmp(msg->ce.type, TYPE_PAYMENT_SUCCEEDED) != 0 &&
        strcmp(msg->ce.type, TYPE_REFUND_SUCCEEDED) != 0) {
        snprintf(reason, reason_len,
                 "unknown ce_type \"%.100s\" on %s: the ledger posts %s and %s and skips "
                 "failures and reviews",
                 msg->ce.type, msg->topic, TYPE_PAYMENT_SUCCEEDED, TYPE_REFUND_SUCCEEDED);
        return KEEL_HANDLE_POISON;
    }
    if (!events_decode(ev, msg, &posting, reason, reason_len)) {
        keel_log_warn("payment event %s at %s/%d/%" PRId64 " is poison: %s", msg->ce.id, msg->topic,
                      (int)msg->partition, msg->offset, reason);
        return KEEL_HANDLE_POISON;
    }
    r = ledger_journal_post(ev->db, &posting, &ev->post, &res);
    keel_metric_add(ev->retries, (double)res.retries);
    if (r != KEEL_OK) {
        /* A valid event the database did not take is never poison: hold the partition and
         * retry, so it is neither lost nor overtaken by the next event of its payment. */
        keel_log_warn("posting %s %s (event %s) failed (%s); will retry", posting.source_type,
                      posting.source_id, msg->ce.id, keel_result_name(r));
        return KEEL_HANDLE_RETRY;
    }
    switch (res.outcome) {
    case LEDGER_POSTED:
        keel_metric_inc(strcmp(posting.source_type, "payment") == 0 ? ev->posted_payments
                                                                    : ev->posted_refunds);
        keel_log_info("posted %s %s as %s: %" PRId64 " %s for merchant %s, fee %" PRId64,
                      posting.source_type, posting.source_id, res.transaction_id, posting.amount,
                      posting.currency, posting.merchant_id, posting.fee);
        break;
    case LEDGER_DUPLICATE_EVENT:
        keel_metric_inc(ev->duplicates);
        keel_log_info("event %s was already handled; nothing posted", msg->ce.id);
        break;
    case LEDGER_DUPLICATE_SOURCE:
        keel_metric_inc(ev->duplicates);
        keel_log_info("%s %s was already posted under another event; event %s posted nothing",
                      posting.source_type, posting.source_id, msg->ce.id);
        break;
    }
    return KEEL_HANDLE_OK;
}
