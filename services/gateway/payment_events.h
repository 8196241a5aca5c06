/* The consumer of keel.payment-events.v1: keeps the gateway's payment and refund views in
 * step with the outcomes keel-payments publishes, exactly once through the inbox. */
#ifndef GATEWAY_PAYMENT_EVENTS_H
#define GATEWAY_PAYMENT_EVENTS_H

#include <stdbool.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "keel/consume.h"
#include "keel/db.h"
#include "keel/metrics.h"
#include "payment_store.h"
#include "refund_store.h"

#define GATEWAY_PAYMENT_EVENTS_TOPIC "keel.payment-events.v1"
#define GATEWAY_CONSUMER_GROUP "keel-gateway"
#define GATEWAY_INBOX_CONSUMER "gateway"

typedef enum gateway_event_kind {
    GATEWAY_EVENT_PAYMENT = 0, /* PaymentSucceeded, PaymentFailed, PaymentRequiresReview */
    GATEWAY_EVENT_REFUND,      /* RefundSucceeded, RefundFailed */
} gateway_event_kind;

/* A decoded, validated outcome event; the outcome's strings point into msg. */
typedef struct gateway_decoded_event {
    gateway_event_kind kind;
    gateway_payment_outcome outcome; /* kind PAYMENT */
    gateway_refund_outcome refund;   /* kind REFUND */
    ProtobufCMessage *msg;
} gateway_decoded_event;

/* Decodes a keel.v1.PaymentSucceeded, PaymentFailed, PaymentRequiresReview, RefundSucceeded
 * or RefundFailed payload and checks what the views need: ids (payment, merchant, refund) of
 * 1..63 bytes, amount > 0, a supported currency (stored lowercase), every string valid UTF-8.
 * Returns false with the reason (for the DLQ) for an unknown type, an undecodable payload or
 * an invalid event: none of them can ever succeed. On true, free out with
 * gateway_decoded_event_free. */
bool gateway_payment_event_decode(const char *ce_type, const void *payload, size_t len,
                                  gateway_decoded_event *out, char *reason, size_t reason_len);
void gateway_decoded_event_free(gateway_decoded_event *ev);

typedef struct gateway_events {
    keel_db *db; /* the consumer thread's own connection (not the HTTP pool) */
    keel_metric *applied;
    keel_metric *ignored;
} gateway_events;

/* Fills ev and registers its metrics; db stays the caller's. */
void gateway_events_init(gateway_events *ev, keel_db *db);

/* A keel_message_handler (ctx = gateway_events *): inbox claim and view update (payment or
 * refund) in one transaction. A duplicate is OK without effect; database trouble is RETRY; anything
 * gateway_payment_event_decode refuses is POISON. */
keel_handle_result gateway_payment_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                 size_t reason_len);

#endif
