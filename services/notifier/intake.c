/* Intake of payment and refund outcomes: inbox row, rendered event and deliveries commit
 * together or not at all. */
#include "intake.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_render.h"
#include "keel/clock.h"
#include "keel/id.h"
#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "store.h"

typedef struct intake_tx {
    const keel_message *msg;
    const notifier_event_row *row;
    bool duplicate;
    int deliveries;
} intake_tx;

static keel_result intake_body(keel_db *db, void *arg)
{
    intake_tx *tx = arg;
    tx->duplicate = false;
    tx->deliveries = 0;
    keel_result rc = keel_inbox_claim(db, NOTIFIER_INBOX_CONSUMER, tx->msg->ce.id);
    if (rc == KEEL_ERR_CONFLICT) {
        tx->duplicate = true;
        return KEEL_OK;
    }
    if (rc != KEEL_OK) {
        return rc;
    }
    return notifier_store_event_insert(db, tx->row, &tx->deliveries);
}

static void intake_count(const char *result)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "result=\"%s\"", result);
    keel_metric_inc(keel_metrics_counter(keel_metrics_default(), "keel_notifier_events_total",
                                         "Payment and refund events taken in, by result "
                                         "(delivering, no_endpoint, ignored, duplicate)",
                                         labels));
}

keel_handle_result notifier_intake_handle(const keel_message *msg, void *ctx, char *reason,
                                          size_t reason_len)
{
    notifier_intake *in = ctx;
    notifier_event ev;
    keel_handle_result result = KEEL_HANDLE_RETRY;
    keel_db *db = NULL;
    char *body = NULL;
    char event_id[48];

    switch (notifier_event_decode(msg->ce.type, msg->payload, msg->len, &ev, reason, reason_len)) {
    case NOTIFIER_DECODED:
        break;
    case NOTIFIER_IGNORED:
        /* Not poison: other consumers of the topic use these records. */
        keel_log_debug("event %s skipped: %s", msg->ce.id, reason);
        intake_count("ignored");
        return KEEL_HANDLE_OK;
    case NOTIFIER_POISON:
        keel_log_warn("event %s at %s/%d/%lld is poison: %s", msg->ce.id, msg->topic,
                      (int)msg->partition, (long long)msg->offset, reason);
        return KEEL_HANDLE_POISON;
    }
    /* The outcome's time decides which endpoints get it (only those that existed then) and is
     * the event's "created"; a record without a usable ce_time counts as happening now. */
    int64_t occurred_ms = notifier_rfc3339_ms(msg->ce.time);
    if (occurred_ms < 0) {
        occurred_ms = keel_clock_now_ms();
    }
    keel_id_new("evt_", event_id, sizeof(event_id));
    body = notifier_event_render(event_id, &ev, occurred_ms / 1000);
    if (body == NULL) {
        keel_log_error("out of memory rendering event %s; will retry", msg->ce.id);
        goto done;
    }
    notifier_event_row row = {
        .event_id = event_id,
        .merchant_id = ev.merchant_id,
        .type = ev.type,
        .source_event_id = msg->ce.id,
        .body = body,
        .traceparent = msg->ce.traceparent,
        .occurred_ms = occurred_ms,
    };
    intake_tx tx = {.msg = msg, .row = &row};
    db = keel_db_pool_acquire(in->pool, in->acquire_timeout_ms > 0 ? in->acquire_timeout_ms : 2000);
    if (db == NULL) {
        keel_log_warn("no database connection for event %s; will retry", msg->ce.id);
        goto done;
    }
    keel_result rc = keel_db_transaction(db, NULL, intake_body, &tx, NULL);
    if (rc != KEEL_OK) {
        keel_log_warn("storing event %s (%s %s) failed (%s); will retry", msg->ce.id, ev.type,
                      ev.object_id, keel_result_name(rc));
        goto done;
    }
    result = KEEL_HANDLE_OK;
    if (tx.duplicate) {
        intake_count("duplicate");
        keel_log_info("event %s was already taken in; skipped", msg->ce.id);
    } else if (tx.deliveries == 0) {
        intake_count("no_endpoint");
        keel_log_debug("%s %s for merchant %s: no endpoint subscribes", ev.type, ev.object_id,
                       ev.merchant_id);
    } else {
        intake_count("delivering");
        keel_log_info("%s %s for merchant %s: event %s, %d deliveries", ev.type, ev.object_id,
                      ev.merchant_id, event_id, tx.deliveries);
        if (in->on_stored != NULL) {
            in->on_stored(in->on_stored_arg);
        }
    }
done:
    if (db != NULL) {
        keel_db_pool_release(in->pool, db);
        db = NULL;
    }
    free(body);
    body = NULL;
    notifier_event_clear(&ev);
    return result;
}
