/* Renders a payment as the API's JSON object. */
#include "payment_json.h"

#include "keel/clock.h"

json_t *gateway_payment_to_json(const gateway_payment *p)
{
    char created[KEEL_RFC3339_LEN];
    char updated[KEEL_RFC3339_LEN];
    json_t *metadata = p->metadata != NULL ? json_incref(p->metadata) : json_object();

    keel_clock_format_rfc3339(p->created_at_ms, created);
    keel_clock_format_rfc3339(p->updated_at_ms, updated);
    /* "s?" renders NULL as JSON null; "o" takes over the metadata reference, on error too. */
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s?, s:o, s:s?, s:s?, s:s?, s:s?, s:s, s:s}", "id",
                     p->id, "object", "payment", "amount", (json_int_t)p->amount, "currency",
                     p->currency, "status", p->status, "description", p->description, "metadata",
                     metadata, "payment_method", p->payment_method, "failure_code", p->failure_code,
                     "failure_message", p->failure_message, "provider", p->provider, "created_at",
                     created, "updated_at", updated);
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
