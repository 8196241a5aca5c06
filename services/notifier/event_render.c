/* Merchant-facing webhook events built from keel's protobuf payment and refund outcomes. */
#include "event_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

const char *const notifier_event_types[] = {
    "payment.succeeded", "payment.failed", "payment.requires_review",
    "refund.succeeded",  "refund.failed",
};
const size_t notifier_event_type_count =
    sizeof(notifier_event_types) / sizeof(notifier_event_types[0]);

bool notifier_event_type_known(const char *type)
{
    if (type == NULL) {
        return false;
    }
    if (strcmp(type, "*") == 0) {
        return true;
    }
    for (size_t i = 0; i < notifier_event_type_count; i++) {
        if (strcmp(type, notifier_event_types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static const char *text_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* A JSON string, or null for an empty one (merchants test for null, not ""). */
static json_t *string_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* Checks the ids every event needs and copies them; json_string refuses invalid UTF-8, so
 * text fields are checked where the object is built. */
static bool event_ids(notifier_event *out, const char *merchant_id, const char *object_id,
                      const char *what, char *reason, size_t reason_len)
{
    size_t m = strlen(text_or_empty(merchant_id));
    size_t o = strlen(text_or_empty(object_id));
    if (m == 0 || m >= sizeof(out->merchant_id) || o == 0 || o >= sizeof(out->object_id)) {
        snprintf(reason, reason_len, "%s without a usable merchant_id or id (1..63 bytes each)",
                 what);
        return false;
    }
    memcpy(out->merchant_id, merchant_id, m + 1);
    memcpy(out->object_id, object_id, o + 1);
    return true;
}

static json_t *payment_object(const char *id, int64_t amount, const char *currency,
                              const char *status, const char *failure_code,
                              const char *failure_message)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", id, "object", "payment", "amount",
                     (json_int_t)amount, "currency", text_or_empty(currency), "status", status,
                     "failure_code", string_or_null(failure_code), "failure_message",
                     string_or_null(failure_message));
}

static json_t *refund_object(const char *id, const char *payment_id, int64_t amount,
                             const char *currency, const char *status, const char *failure_code,
                             const char *failure_message)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:o}", "id", id, "object", "refund",
                     "payment", text_or_empty(payment_id), "amount", (json_int_t)amount, "currency",
                     text_or_empty(currency), "status", status, "failure_code",
                     string_or_null(failure_code), "failure_message",
                     string_or_null(failure_message));
}

/* Per record type: the ids it carries and its data.object (NULL when a text is not UTF-8). */
typedef json_t *(*object_builder)(const ProtobufCMessage *msg, const char **merchant_id,
                                  const char **id);

static json_t *build_payment_succeeded(const ProtobufCMessage *msg, const char **merchant_id,
                                       const char **id)
{
    const Keel__V1__PaymentSucceeded *m = (const Keel__V1__PaymentSucceeded *)msg;
    *merchant_id = m->merchant_id;
    *id = m->payment_id;
    return payment_object(m->payment_id, m->amount, m->currency, "succeeded", NULL, NULL);
}

static json_t *build_payment_failed(const ProtobufCMessage *msg, const char **merchant_id,
                                    const char **id)
{
    const Keel__V1__PaymentFailed *m = (const Keel__V1__PaymentFailed *)msg;
    *merchant_id = m->merchant_id;
    *id = m->payment_id;
    return payment_object(m->payment_id, m->amount, m->currency, "failed", m->failure_code,
                          m->failure_message);
}

static json_t *build_payment_review(const ProtobufCMessage *msg, const char **merchant_id,
                                    const char **id)
{
    const Keel__V1__PaymentRequiresReview *m = (const Keel__V1__PaymentRequiresReview *)msg;
    *merchant_id = m->merchant_id;
    *id = m->payment_id;
    return payment_object(m->payment_id, m->amount, m->currency, "requires_review", NULL, NULL);
}

static json_t *build_refund_succeeded(const ProtobufCMessage *msg, const char **merchant_id,
                                      const char **id)
{
    const Keel__V1__RefundSucceeded *m = (const Keel__V1__RefundSucceeded *)msg;
    *merchant_id = m->merchant_id;
    *id = m->refund_id;
    return refund_object(m->refund_id, m->payment_id, m->amount, m->currency, "succeeded", NULL,
                         NULL);
}

static json_t *build_refund_failed(const ProtobufCMessage *msg, const char **merchant_id,
                                   const char **id)
{
    const Keel__V1__RefundFailed *m = (const Keel__V1__RefundFailed *)msg;
    *merchant_id = m->merchant_id;
    *id = m->refund_id;
    return refund_object(m->refund_id, m->payment_id, m->amount, m->currency, "failed",
                         m->failure_code, m->failure_message);
}

/* The record types merchants are sent, and what each becomes. */
static const struct {
    const char *ce_type;
    const char *type;
    const ProtobufCMessageDescriptor *descriptor;
    object_builder build;
} event_kinds[] = {
    {"keel.v1.PaymentSucceeded", "payment.succeeded", &keel__v1__payment_succeeded__descriptor,
     build_payment_succeeded},
    {"keel.v1.PaymentFailed", "payment.failed", &keel__v1__payment_failed__descriptor,
     build_payment_failed},
    {"keel.v1.PaymentRequiresReview", "payment.requires_review",
     &keel__v1__payment_requires_review__descriptor, build_payment_review},
    {"keel.v1.RefundSucceeded", "refund.succeeded", &keel__v1__refund_succeeded__descriptor,
     build_refund_succeeded},
    {"keel.v1.RefundFailed", "refund.failed", &keel__v1__refund_failed__descriptor,
     build_refund_failed},
};

notifier_decode_result notifier_event_decode(const char *ce_type, const void *payload, size_t len,
                                             notifier_event *out, char *reason, size_t reason_len)
{
    size_t k = 0;
    size_t nkinds = sizeof(event_kinds) / sizeof(event_kinds[0]);
    memset(out, 0, sizeof(*out));
    while (k < nkinds && strcmp(ce_type, event_kinds[k].ce_type) != 0) {
        k++;
    }
    if (k == nkinds) {
        snprintf(reason, reason_len, "ce_type \"%.100s\" is not sent to merchants", ce_type);
        return NOTIFIER_IGNORED;
    }
    ProtobufCMessage *msg =
        protobuf_c_message_unpack(event_kinds[k].descriptor, NULL, len, (const uint8_t *)payload);
    if (msg == NULL) {
        snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", ce_type, len);
        return NOTIFIER_POISON;
    }
    const char *merchant_id = NULL;
    const char *id = NULL;
    notifier_decode_result result = NOTIFIER_DECODED;
    out->type = event_kinds[k].type;
    out->object = event_kinds[k].build(msg, &merchant_id, &id);
    if (!event_ids(out, merchant_id, id, ce_type, reason, reason_len)) {
        result = NOTIFIER_POISON;
    } else if (out->object == NULL) {
        /* json_pack fails on text that is not UTF-8 (or when memory runs out). */
        snprintf(reason, reason_len, "%s %s has a text field that is not valid UTF-8", ce_type,
                 out->object_id);
        result = NOTIFIER_POISON;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (result != NOTIFIER_DECODED) {
        notifier_event_clear(out);
    }
    return result;
}

void notifier_event_clear(notifier_event *ev)
{
    if (ev == NULL) {
        return;
    }
    json_decref(ev->object);
    ev->object = NULL;
}

int64_t notifier_rfc3339_ms(const char *text)
{
    struct tm tm;
    int64_t frac_ms = 0;
    if (text == NULL || text[0] == '\0') {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL) {
        return -1;
    }
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
            }
        }
        if (digits == 0) {
            return -1;
        }
        for (; digits < 3; digits++) {
            frac_ms *= 10;
        }
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0) {
        return -1;
    }
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : (int64_t)t * 1000 + frac_ms;
}

char *notifier_event_render(const char *event_id, const notifier_event *ev, int64_t created_unix)
{
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:I, s:{s:O}}", "id", event_id, "object", "event", "type",
                  ev->type, "created", (json_int_t)created_unix, "data", "object", ev->object);
    if (doc == NULL) {
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}
