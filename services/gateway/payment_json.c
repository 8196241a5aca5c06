/* Renders payments, refunds and lists as the API's JSON. */
#include "payment_json.h"

#include "keel/clock.h"

json_t *gateway_payment_to_json(const gateway_payment *p)
{
    char created[KEEL_RFC3339_LEN];
    char updated[KEEL_RFC3339_LEN];
    json_t *metadata = p->metadata != NULL ? json_incref(p->metadata) : json_object();
    json_t *refunds = p->refunds != NULL ? json_incref(p->refunds) : json_array();

    keel_clock_format_rfc3339(p->created_at_ms, created);
    keel_clock_format_rfc3339(p->updated_at_ms, updated);
    /* "s?" renders NULL as JSON null; "o" takes over the references, on error too. */
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s?, s:o, s:s?, s:s?, s:s?, s:s?, s:o, s:s, "
                     "s:s}",
                     "id", p->id, "object", "payment", "amount", (json_int_t)p->amount,
                     "amount_refunded", (json_int_t)p->amount_refunded, "currency", p->currency,
                     "status", p->status, "description", p->description, "metadata", metadata,
                     "payment_method", p->payment_method, "failure_code", p->failure_code,
                     "failure_message", p->failure_message, "provider", p->provider, "refunds",
                     refunds, "created_at", created, "updated_at", updated);
}

char *gateway_payment_render(const gateway_payment *p)
{
    json_t *j = gateway_payment_to_json(p);
    char *text;

    if (j == NULL) {
        return NULL;
    }
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

json_t *gateway_refund_to_json(const gateway_refund *r)
{
    char created[KEEL_RFC3339_LEN];
    char updated[KEEL_RFC3339_LEN];

    keel_clock_format_rfc3339(r->created_at_ms, created);
    keel_clock_format_rfc3339(r->updated_at_ms, updated);
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s}", "id", r->id,
                     "object", "refund", "payment_id", r->payment_id, "amount",
                     (json_int_t)r->amount, "currency", r->currency, "status", r->status, "reason",
                     r->reason, "failure_code", r->failure_code, "failure_message",
                     r->failure_message, "created_at", created, "updated_at", updated);
}

char *gateway_list_render(const char *url, json_t *data, int has_more)
{
    json_t *j = json_pack("{s:s, s:s, s:b, s:o}", "object", "list", "url", url, "has_more",
                          has_more, "data", data);
    char *text;

    if (j == NULL) {
        return NULL;
    }
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}
