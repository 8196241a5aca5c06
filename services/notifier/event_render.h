/* Turns a payment or refund outcome from keel.payment-events.v1 into the event merchants
 * receive: {"id","object":"event","type","created","data":{"object":{...}}}, rendered once. */
#ifndef NOTIFIER_EVENT_RENDER_H
#define NOTIFIER_EVENT_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The event types an endpoint can subscribe to ("*" subscribes to all). */
extern const char *const notifier_event_types[];
extern const size_t notifier_event_type_count;
/* True for a known type or "*". */
bool notifier_event_type_known(const char *type);

typedef enum notifier_decode_result {
    NOTIFIER_DECODED = 0, /* out is filled: deliver it */
    NOTIFIER_IGNORED,     /* a record type merchants are not sent (reason says which) */
    NOTIFIER_POISON,      /* a type we deliver, but its payload cannot be used */
} notifier_decode_result;

typedef struct notifier_event {
    const char *type; /* e.g. "payment.succeeded"; static storage */
    char merchant_id[64];
    char object_id[72]; /* the payment or refund id */
    json_t *object;     /* data.object; owned, free with notifier_event_clear */
} notifier_event;

/* Decodes one record's protobuf payload by its ce_type. */
notifier_decode_result notifier_event_decode(const char *ce_type, const void *payload, size_t len,
                                             notifier_event *out, char *reason, size_t reason_len);
void notifier_event_clear(notifier_event *ev);

/* Milliseconds since the epoch of an RFC 3339 UTC time ("2026-11-30T16:36:58.123Z"; a
 * fraction is optional), or -1 when text is not one. */
int64_t notifier_rfc3339_ms(const char *text);

/* The body merchants receive, compact JSON with keys in a fixed order. malloc'd; NULL when
 * out of memory. */
char *notifier_event_render(const char *event_id, const notifier_event *ev, int64_t created_unix);

#endif
