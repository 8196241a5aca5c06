/* Applies PaymentSucceeded / PaymentFailed events to the gateway's payment view. */
#include "payment_events.h"

#include <stdio.h>
#include <string.h>

#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/money.h"
#include "keel/v1/payments.pb-c.h"
#include "payment_validate.h"

#define TYPE_SUCCEEDED "keel.v1.PaymentSucceeded"
#define TYPE_FAILED "keel.v1.PaymentFailed"
#define ID_MAX_BYTES 63

static bool text_ok(const char *s)
{
    return s != NULL && gateway_utf8_valid(s, strlen(s));
}

static bool validate(const char *type, gateway_payment_outcome *o, char *reason, size_t reason_len)
{
    const keel_currency *cur;
    size_t id_len = o->payment_id != NULL ? strlen(o->payment_id) : 0;
    size_t merchant_len = o->merchant_id != NULL ? strlen(o->merchant_id) : 0;

    if (id_len == 0 || id_len > ID_MAX_BYTES || !text_ok(o->payment_id)) {
        snprintf(reason, reason_len, "invalid %s: payment_id must be 1..%d bytes of text", type,
                 ID_MAX_BYTES);
        return false;
    }
    if (merchant_len == 0 || merchant_len > ID_MAX_BYTES || !text_ok(o->merchant_id)) {
        snprintf(reason, reason_len, "invalid %s: merchant_id must be 1..%d bytes of text", type,
                 ID_MAX_BYTES);
        return false;
    }
    cur = keel_currency_find(o->currency != NULL ? o->currency : "");
    if (cur == NULL) {
        snprintf(reason, reason_len, "invalid %s: unsupported currency", type);
        return false;
    }
    o->currency = cur->code;
    if (o->amount <= 0) {
        snprintf(reason, reason_len, "invalid %s: amount must be > 0", type);
        return false;
    }
    if (!text_ok(o->provider) || !text_ok(o->failure_code) || !text_ok(o->failure_message)) {
        snprintf(reason, reason_len, "invalid %s: a text field is not valid UTF-8", type);
        return false;
    }
    return true;
}

bool gateway_payment_event_decode(const char *ce_type, const void *payload, size_t len,
                                  gateway_decoded_event *out, char *reason, size_t reason_len)
{
    gateway_payment_outcome *o = &out->outcome;

    memset(out, 0, sizeof(*out));
    if (strcmp(ce_type, TYPE_SUCCEEDED) == 0) {
        Keel__V1__PaymentSucceeded *m =
            keel__v1__payment_succeeded__unpack(NULL, len, (const uint8_t *)payload);
        if (m == NULL) {
            snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", ce_type, len);
            return false;
        }
        out->msg = &m->base;
        o->payment_id = m->payment_id;
        o->merchant_id = m->merchant_id;
        o->amount = m->amount;
        o->currency = m->currency;
        o->status = "succeeded";
        o->provider = m->provider;
        o->failure_code = "";
        o->failure_message = "";
    } else if (strcmp(ce_type, TYPE_FAILED) == 0) {
        Keel__V1__PaymentFailed *m =
            keel__v1__payment_failed__unpack(NULL, len, (const uint8_t *)payload);
        if (m == NULL) {
            snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", ce_type, len);
            return false;
        }
        out->msg = &m->base;
        o->payment_id = m->payment_id;
        o->merchant_id = m->merchant_id;
        o->amount = m->amount;
        o->currency = m->currency;
        o->status = "failed";
        o->provider = m->provider;
        o->failure_code = m->failure_code;
        o->failure_message = m->failure_message;
    } else {
        snprintf(reason, reason_len, "unknown ce_type \"%.100s\" on %s", ce_type,
                 GATEWAY_PAYMENT_EVENTS_TOPIC);
        return false;
    }
    if (!validate(ce_type, o, reason, reason_len)) {
        gateway_decoded_event_free(out);
        return false;
    }
    return true;
}

void gateway_decoded_event_free(gateway_decoded_event *ev)
{
    if (ev->msg != NULL) {
        protobuf_c_message_free_unpacked(ev->msg, NULL);
        ev->msg = NULL;
    }
    memset(&ev->outcome, 0, sizeof(ev->outcome));
}

void gateway_events_init(gateway_events *ev, keel_db *db)
{
    keel_metrics *m = keel_metrics_default();

    memset(ev, 0, sizeof(*ev));
    ev->db = db;
    ev->applied = keel_metrics_counter(m, "keel_gateway_payment_events_total",
                                       "Payment outcome events handled by the gateway's view",
                                       "result=\"applied\"");
    ev->ignored = keel_metrics_counter(m, "keel_gateway_payment_events_total",
                                       "Payment outcome events handled by the gateway's view",
                                       "result=\"ignored\"");
}

typedef struct apply_tx {
    const char *event_id;
    const gateway_payment_outcome *outcome;
    bool duplicate;
    bool applied;
} apply_tx;

static keel_result apply_tx_body(keel_db *db, void *arg)
{
    apply_tx *tx = arg;
    keel_result r;

    tx->duplicate = false;
    tx->applied = false;
    r = keel_inbox_claim(db, GATEWAY_INBOX_CONSUMER, tx->event_id);
    if (r == KEEL_ERR_CONFLICT) {
        tx->duplicate = true;
        return KEEL_OK;
    }
    if (r != KEEL_OK) {
        return r;
    }
    return gateway_payment_store_apply_outcome(db, tx->outcome, &tx->applied);
}

keel_handle_result gateway_payment_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                 size_t reason_len)
{
    gateway_events *ev = ctx;
    gateway_decoded_event dec;
    apply_tx tx;
    keel_result r;

    if (!gateway_payment_event_decode(msg->ce.type, msg->payload, msg->len, &dec, reason,
                                      reason_len)) {
        keel_log_warn("payment event %s at %s/%d/%lld is poison: %s", msg->ce.id, msg->topic,
                      (int)msg->partition, (long long)msg->offset, reason);
        return KEEL_HANDLE_POISON;
    }
    memset(&tx, 0, sizeof(tx));
    tx.event_id = msg->ce.id;
    tx.outcome = &dec.outcome;
    r = keel_db_transaction(ev->db, NULL, apply_tx_body, &tx, NULL);
    if (r != KEEL_OK) {
        keel_log_warn("applying event %s to payment %s failed (%s); it will be retried", msg->ce.id,
                      dec.outcome.payment_id, keel_result_name(r));
        gateway_decoded_event_free(&dec);
        return KEEL_HANDLE_RETRY;
    }
    if (tx.duplicate) {
        keel_log_debug("event %s was already applied; skipping", msg->ce.id);
    } else if (tx.applied) {
        keel_metric_inc(ev->applied);
        keel_log_info("payment %s is now %s", dec.outcome.payment_id, dec.outcome.status);
    } else {
        keel_metric_inc(ev->ignored);
        keel_log_info("event %s left payment %s unchanged: it is final already or belongs to "
                      "another merchant",
                      msg->ce.id, dec.outcome.payment_id);
    }
    gateway_decoded_event_free(&dec);
    return KEEL_HANDLE_OK;
}
