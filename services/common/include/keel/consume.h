/* The loop every keel consumer runs: decode CloudEvents headers, hand the record to a handler
 * that applies it through the inbox, commit the offset only after that, retry transient
 * failures in place (keeping the partition's order) and send poison to <topic>.dlq. */
#ifndef KEEL_CONSUME_H
#define KEEL_CONSUME_H

#include <stddef.h>
#include <stdint.h>

#include "keel/cloudevents.h"
#include "keel/kafka.h"
#include "keel/retry.h"

typedef struct keel_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* not NUL-terminated: key_len bytes (may be NULL) */
    size_t key_len;
    const void *payload;
    size_t len;
    keel_cloudevent ce; /* already parsed and checked */
    const rd_kafka_message_t *raw;
} keel_message;

typedef enum keel_handle_result {
    KEEL_HANDLE_OK = 0, /* effect durable (or a duplicate): commit the offset */
    KEEL_HANDLE_RETRY,  /* transient (db or broker away): retry this record, forever, with
                           backoff, never skipping it */
    KEEL_HANDLE_POISON, /* can never succeed (undecodable, invalid, unknown type or
                           version): to the DLQ with the reason, then commit */
} keel_handle_result;

/* Handles one record; on KEEL_HANDLE_POISON writes the reason into reason. The trace id of
 * the record is set for logging while it runs. */
typedef keel_handle_result (*keel_message_handler)(const keel_message *msg, void *ctx, char *reason,
                                                   size_t reason_len);

typedef struct keel_consume_options {
    keel_consumer *consumer;
    keel_producer *dlq_producer; /* used to write <topic>.dlq */
    keel_message_handler handler;
    void *ctx;
    const char *name;   /* for logs and metrics labels, e.g. "payments" */
    keel_backoff retry; /* for RETRY; zeros = 50 ms base, 5 s cap */
} keel_consume_options;

/* Runs until shutdown is requested; returns 0. A record with missing or invalid CloudEvents
 * headers is poison without calling the handler. DLQ records carry the original key,
 * payload and headers plus keel_dlq_reason, keel_dlq_topic, keel_dlq_partition,
 * keel_dlq_offset and keel_dlq_time; the offset is committed only after the DLQ write was
 * acknowledged. Exports keel_consumer_messages_total{consumer,outcome} and
 * keel_consumer_retries_total{consumer}. */
int keel_consume_run(const keel_consume_options *opts);

#endif
