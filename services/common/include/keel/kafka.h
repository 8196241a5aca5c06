/* Kafka on librdkafka: an idempotent producer with bounded queues, a consumer that commits only
 * what the caller says is done, and topic creation for operators and tests. */
#ifndef KEEL_KAFKA_H
#define KEEL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/error.h"

/* Called from keel_producer_poll/flush (the caller's thread) once per message sent with
 * keel_producer_send: err is RD_KAFKA_RESP_ERR_NO_ERROR when the broker acknowledged it
 * (acks=all). */
typedef void (*keel_delivery_fn)(void *msg_opaque, rd_kafka_resp_err_t err, int32_t partition,
                                 int64_t offset);

typedef struct keel_producer_options {
    const char *brokers;
    const char *client_id;
    int queue_max_messages;       /* queue.buffering.max.messages; 0 = 10000 */
    int queue_max_kbytes;         /* queue.buffering.max.kbytes; 0 = 16384 (16 MiB, not 1 GiB) */
    int message_timeout_ms;       /* delivery.timeout.ms; 0 = 30000 */
    int linger_ms;                /* 0 = 5 */
    keel_delivery_fn on_delivery; /* may be NULL */
} keel_producer_options;

typedef struct keel_producer keel_producer;

/* enable.idempotence=true, acks=all, the caps above. NULL with err filled on failure. */
keel_producer *keel_producer_new(const keel_producer_options *opts, char *err, size_t err_len);
/* Queues one message. headers (may be NULL) are taken over by the producer on KEEL_OK and
 * left to the caller otherwise. KEEL_ERR_FULL when the local queue is full: poll and try
 * again (back-pressure, never drop). key is the partitioning key. */
keel_result keel_producer_send(keel_producer *p, const char *topic, const void *key, size_t key_len,
                               const void *payload, size_t len, rd_kafka_headers_t *headers,
                               void *msg_opaque);
/* Sends one message and waits up to timeout_ms for its own delivery report, for records that
 * must be durable before the caller moves on (dead letters). KEEL_OK once the broker
 * acknowledged it; KEEL_ERR_TIMEOUT when no report came in time (it may still be delivered
 * later); KEEL_ERR_FULL, KEEL_ERR_TRANSIENT or KEEL_ERR when queueing or delivery failed, with
 * the reason in err. headers (may be NULL) stay the caller's: a copy is sent. on_delivery is
 * not called for this message; other messages' callbacks are served while it waits. */
keel_result keel_producer_send_wait(keel_producer *p, const char *topic, const void *key,
                                    size_t key_len, const void *payload, size_t len,
                                    const rd_kafka_headers_t *headers, int timeout_ms, char *err,
                                    size_t err_len);
/* Serves delivery callbacks for up to timeout_ms. */
void keel_producer_poll(keel_producer *p, int timeout_ms);
/* Waits until every queued message got its delivery callback, or timeout:
 * KEEL_OK or KEEL_ERR_TIMEOUT. */
keel_result keel_producer_flush(keel_producer *p, int timeout_ms);
rd_kafka_t *keel_producer_handle(keel_producer *p);
/* Flushes up to 10 s, then destroys. NULL is fine. */
void keel_producer_free(keel_producer *p);

typedef struct keel_consumer_options {
    const char *brokers;
    const char *group_id;
    const char *client_id;
    const char *const *topics; /* topics to subscribe to */
    size_t topic_count;
    int session_timeout_ms;   /* 0 = 10000 */
    int max_poll_interval_ms; /* 0 = 300000 */
} keel_consumer_options;

typedef struct keel_consumer keel_consumer;

/* enable.auto.commit=false, enable.auto.offset.store=false, auto.offset.reset=earliest,
 * isolation.level=read_committed; subscribed. NULL with err filled on failure. */
keel_consumer *keel_consumer_new(const keel_consumer_options *opts, char *err, size_t err_len);
/* Next message or NULL after timeout_ms. Partition EOF and transient errors are logged and
 * give NULL. The caller destroys the message with rd_kafka_message_destroy. */
rd_kafka_message_t *keel_consumer_poll(keel_consumer *c, int timeout_ms);
/* Commits msg's offset + 1 for its partition synchronously: call only after the effect of
 * msg is durable. */
keel_result keel_consumer_commit(keel_consumer *c, const rd_kafka_message_t *msg);
/* Rewinds msg's partition so msg is delivered again by the next poll (for retries). */
keel_result keel_consumer_seek_back(keel_consumer *c, const rd_kafka_message_t *msg);
rd_kafka_t *keel_consumer_handle(keel_consumer *c);
/* Leaves the group (rd_kafka_consumer_close) and destroys. NULL is fine. */
void keel_consumer_free(keel_consumer *c);

typedef struct keel_topic_spec {
    const char *name;
    int partitions;
    int replication_factor;
    int min_insync_replicas; /* 0 = broker default */
    int64_t retention_ms;    /* 0 = broker default */
} keel_topic_spec;

/* Creates each topic that does not exist yet; existing ones are left as they are (KEEL_OK).
 * Waits up to timeout_ms. */
keel_result keel_kafka_ensure_topics(const char *brokers, const keel_topic_spec *specs,
                                     size_t count, int timeout_ms, char *err, size_t err_len);

#endif
