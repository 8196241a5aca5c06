/* Applies payment and refund outcome events to the gateway's views. */
#include "payment_events.h"

#include <stdio.h>
#include <string.h>

#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/money.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_validate.h"

#define TYPE_SUCCEEDED "keel.v1.PaymentSucceeded"
#define TYPE_FAILED "keel.v1.PaymentFailed"
#define TYPE_REVIEW "keel.v1.PaymentRequiresReview"
#define TYPE_REFUND_SUCCEEDED "keel.v1.RefundSucceeded"
#define TYPE_REFUND_FAILED "keel.v1.RefundFailed"
#define ID_MAX_BYTES 63

static bool text_ok(const char *s)
{
    return s != NULL && gateway_utf8_valid(s, strlen(s));
}

static bool id_ok(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    return len > 0 && len <= ID_MAX_BYTES && text_ok(s);
}

/* The checks every outcome shares; normalises *currency to the table's lowercase code. */
static bool validate_common(const char *type, const char *payment_id, const char *merchant_id,
                            int64_t amount, const char **currency, const char *const *texts,
                            size_t ntexts, char *reason, size_t reason_len)
{
    const keel_currency *cur;

    if (!id_ok(payment_id)) {
        snprintf(reason, reason_len, "invalid %s: payment_id must be 1..%d bytes of text", type,
                 ID_MAX_BYTES);
        return false;
    }
    if (!id_ok(merchant_id)) {
        snprintf(reason, reason_len, "invalid %s: merchant_id must be 1..%d bytes of text", type,
                 ID_MAX_BYTES);
        return false;
    }
    cur = keel_currency_find(*currency != NULL ? *currency : "");
    if (cur == NULL) {
        snprintf(reason, reason_len, "invalid %s: unsupported currency", type);
        return false;
    }
    *currency = cur->code;
    if (amount <= 0) {
        snprintf(reason, reason_len, "invalid %s: amount must be > 0", type);
        return false;
    }
    for (size_t i = 0; i < ntexts; i++) {
        if (!text_ok(texts[i])) {
            snprintf(reason, reason_len, "invalid %s: a text field is not valid UTF-8", type);
            return false;
        }
    }
    return true;
}

static bool validate_payment(const char *type, gateway_payment_outcome *o, char *reason,
                             size_t reason_len)
{
    const char *texts[3] = {o->provider, o->failure_code, o->failure_message};
    return validate_common(type, o->payment_id, o->merchant_id, o->amount, &o->currency, texts, 3,
                           reason, reason_len);
}

static bool validate_refund(const char *type, gateway_refund_outcome *o, char *reason,
                            size_t reason_len)
{
    const char *texts[4] = {o->provider, o->provider_refund_id, o->failure_code,
                            o->failure_message};
    if (!id_ok(o->refund_id)) {
        snprintf(reason, reason_len, "invalid %s: refund_id must be 1..%d bytes of text", type,
                 ID_MAX_BYTES);
        return false;
    }
    return validate_common(type, o->payment_id, o->merchant_id, o->amount, &o->currency, texts, 4,
                           reason, reason_len);
}

/* Unpacks one message type, or explains why not. */
#define UNPACK(var, fn, type)                                                                      \
    var = fn(NULL, len, (const uint8_t *)payload);                                                 \
    if (var == NULL) {                                                                             \
        snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", type, len);             \
        return false;                                                                              \
    }                                                                                              \
    out->msg = &var->base

static bool decode_payment(const char *ce_type, const void *payload, size_t len,
                           gateway_decoded_event *out, char *reason, size_t reason_len)
{
    gateway_payment_outcome *o = &out->outcome;

    out->kind = GATEWAY_EVENT_PAYMENT;
    if (strcmp(ce_type, TYPE_SUCCEEDED) == 0) {
        Keel__V1__PaymentSucceeded *m;
        UNPACK(m, keel__v1__payment_succeeded__unpack, ce_type);
        *o = (gateway_payment_outcome){m->payment_id, m->merchant_id, m->amount, m->currency,
                                       "succeeded",   m->provider,    "",        ""};
    } else if (strcmp(ce_type, TYPE_FAILED) == 0) {
        Keel__V1__PaymentFailed *m;
        UNPACK(m, keel__v1__payment_failed__unpack, ce_type);
        *o = (gateway_payment_outcome){m->payment_id,   m->merchant_id,    m->amount,
                                       m->currency,     "failed",          m->provider,
                                       m->failure_code, m->failure_message};
    } else {
        Keel__V1__PaymentRequiresReview *m;
        UNPACK(m, keel__v1__payment_requires_review__unpack, ce_type);
        /* Why it needs a person is kept as the failure message, for the merchant's eyes. */
        *o = (gateway_payment_outcome){m->payment_id,     m->merchant_id, m->amount, m->currency,
                                       "requires_review", m->provider,    "",        m->reason};
    }
    return validate_payment(ce_type, o, reason, reason_len);
}

static bool decode_refund(const char *ce_type, const void *payload, size_t len,
                          gateway_decoded_event *out, char *reason, size_t reason_len)
{
    gateway_refund_outcome *o = &out->refund;

    out->kind = GATEWAY_EVENT_REFUND;
    if (strcmp(ce_type, TYPE_REFUND_SUCCEEDED) == 0) {
        Keel__V1__RefundSucceeded *m;
        UNPACK(m, keel__v1__refund_succeeded__unpack, ce_type);
        *o = (gateway_refund_outcome){.refund_id = m->refund_id,
                                      .payment_id = m->payment_id,
                                      .merchant_id = m->merchant_id,
                                      .amount = m->amount,
                                      .currency = m->currency,
                                      .status = "succeeded",
                                      .provider = m->provider,
                                      .provider_refund_id = m->provider_refund_id,
                                      .failure_code = "",
                                      .failure_message = ""};
    } else {
        Keel__V1__RefundFailed *m;
        UNPACK(m, keel__v1__refund_failed__unpack, ce_type);
        *o = (gateway_refund_outcome){.refund_id = m->refund_id,
                                      .payment_id = m->payment_id,
                                      .merchant_id = m->merchant_id,
                                      .amount = m->amount,
                                      .currency = m->currency,
                                      .status = "failed",
                                      .provider = m->provider,
                                      .provider_refund_id = "",
                                      .failure_code = m->failure_code,
                                      .failure_message = m->failure_message};
    }
    return validate_refund(ce_type, o, reason, reason_len);
}

bool gateway_payment_event_decode(const char *ce_type, const void *payload, size_t len,
                                  gateway_decoded_event *out, char *reason, size_t reason_len)
{
    bool ok;

    memset(out, 0, sizeof(*out));
    if (strcmp(ce_type, TYPE_SUCCEEDED) == 0 || strcmp(ce_type, TYPE_FAILED) == 0 ||
        strcmp(ce_type, TYPE_REVIEW) == 0) {
        ok = decode_payment(ce_type, payload, len, out, reason, reason_len);
    } else if (strcmp(ce_type, TYPE_REFUND_SUCCEEDED) == 0 ||
               strcmp(ce_type, TYPE_REFUND_FAILED) == 0) {
        ok = decode_refund(ce_type, payload, len, out, reason, reason_len);
    } else {
        snprintf(reason, reason_len, "unknown ce_type \"%.100s\" on %s", ce_type,
                 GATEWAY_PAYMENT_EVENTS_TOPIC);
        return false;
    }
    if (!ok) {
        gateway_decoded_event_free(out);
    }
    return ok;
}

void gateway_decoded_event_free(gateway_decoded_event *ev)
{
    if (ev->msg != NULL) {
        protobuf_c_message_free_unpacked(ev->msg, NULL);
        ev->msg = NULL;
    }
    memset(&ev->outcome, 0, sizeof(ev->outcome));
    memset(&ev->refund, 0, sizeof(ev->refund));
}

void gateway_events_init(gateway_events *ev, keel_db *db)
{
    keel_metrics *m = keel_metrics_default();

    memset(ev, 0, sizeof(*ev));
    ev->db = db;
    ev->applied = keel_metrics_counter(m, "keel_gateway_payment_events_total",
                                       "Payment and refund outcome events handled by the "
                                       "gateway's views",
                                       "result=\"applied\"");
    ev->ignored = keel_metrics_counter(m, "keel_gateway_payment_events_total",
                                       "Payment and refund outcome events handled by the "
                                       "gateway's views",
                                       "result=\"ignored\"");
}

typedef struct apply_tx {
    const char *event_id;
    const gateway_decoded_event *ev;
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
    if (tx->ev->kind == GATEWAY_EVENT_REFUND) {
        return gateway_refund_store_apply_outcome(db, &tx->ev->refund, &tx->applied);
    }
    return gateway_payment_store_apply_outcome(db, &tx->ev->outcome, &tx->applied);
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
    const char *what =
        dec.kind == GATEWAY_EVENT_REFUND ? dec.refund.refund_id : dec.outcome.payment_id;
    const char *status = dec.kind == GATEWAY_EVENT_REFUND ? dec.refund.status : dec.outcome.status;
    memset(&tx, 0, sizeof(tx));
    tx.event_id = msg->ce.id;
    tx.ev = &dec;
    r = keel_db_transaction(ev->db, NULL, apply_tx_body, &tx, NULL);
    if (r != KEEL_OK) {
        keel_log_warn("applying event %s to %s failed (%s); it will be retried", msg->ce.id, what,
                      keel_result_name(r));
        gateway_decoded_event_free(&dec);
        return KEEL_HANDLE_RETRY;
    }
    if (tx.duplicate) {
        keel_log_debug("event %s was already applied; skipping", msg->ce.id);
    } else if (tx.applied) {
        keel_metric_inc(ev->applied);
        keel_log_info("%s is now %s", what, status);
    } else {
        keel_metric_inc(ev->ignored);
        keel_log_info("event %s left %s unchanged: it is final already, unknown, or belongs to "
                      "another merchant",
                      msg->ce.id, what);
    }
    gateway_decoded_event_free(&dec);
    return KEEL_HANDLE_OK;
}
