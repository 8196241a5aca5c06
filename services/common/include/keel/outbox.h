/* Transactional outbox: events are written in the caller's database transaction and a single
 * leader relay per service publishes them to Kafka in order, deleting each row only after
 * the broker acknowledged it. */
#ifndef KEEL_OUTBOX_H
#define KEEL_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/error.h"
#include "keel/kafka.h"

typedef struct keel_outbox_message {
    const char *topic;
    const char *key; /* the partitioning key: the aggregate's id (e.g. the payment id) */
    const void *payload;
    size_t payload_len;
    const keel_cloudevent *ce; /* becomes the record's headers */
} keel_outbox_message;

/* The channel the relay LISTENs on; an insert NOTIFYs it. */
#define KEEL_OUTBOX_CHANNEL "keel_outbox"

/* The one statement keel_outbox_insert runs: the row and the relay's wake-up in one round
 * trip (the NOTIFY is delivered only if the transaction commits; PostgreSQL folds repeated
 * identical NOTIFYs into one). Public so benchmarks replay exactly this statement.
 * $1 topic, $2 message_key, $3 payload (bytea, sent binary), $4 ce_id, $5 ce_source,
 * $6 ce_type, $7 ce_time (NULL or RFC 3339), $8 traceparent (may be NULL). */
#define KEEL_OUTBOX_INSERT_SQL                                                                     \
    "WITH ins AS (INSERT INTO outbox (topic, message_key, payload, ce_id, ce_source, ce_type, "    \
    "ce_time, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8) RETURNING 1) "     \
    "SELECT pg_notify('" KEEL_OUTBOX_CHANNEL "', '') FROM ins"

/* Inserts msg into the outbox table using db's open transaction (the caller's BEGIN), and
 * NOTIFYs the relay (delivered only when that transaction commits). */
keel_result keel_outbox_insert(keel_db *db, const keel_outbox_message *msg);

typedef struct keel_outbox_relay_options {
    const char *conninfo; /* the relay keeps its own connection: it holds the lock */
    const char *password;
    const char *brokers;
    const char *service; /* names the advisory lock and the producer's client id */
    const char *instance_id;
    int batch_size;       /* rows read per round; 0 = 500 */
    int poll_interval_ms; /* safety-net poll when no NOTIFY arrives; 0 = 1000 */
    int leader_retry_ms;  /* how often a follower tries to take the lock; 0 = 1000 */
} keel_outbox_relay_options;

typedef struct keel_outbox_relay keel_outbox_relay;

/* Starts the relay thread. Only the instance holding pg_try_advisory_lock(<hash of service>)
 * publishes; others retry every leader_retry_ms, so another instance takes over within
 * seconds when the leader dies (its session ends and the lock with it). The leader reads
 * from the oldest remaining row in id order, sends a batch with one idempotent producer,
 * waits for every delivery report, deletes exactly the acknowledged rows and stops the
 * round at the first failure so later rows of the same key never overtake it. Exports
 * keel_outbox_published_total, keel_outbox_publish_errors_total, keel_outbox_pending and
 * keel_outbox_leader. NULL with err filled on failure. */
keel_outbox_relay *keel_outbox_relay_start(const keel_outbox_relay_options *opts, char *err,
                                           size_t err_len);
bool keel_outbox_relay_is_leader(const keel_outbox_relay *r);
/* Stops the thread after its round in progress (delivery reports awaited, rows deleted) and,
 * unless that round failed, one last pass of up to 3 s over rows committed meanwhile; then
 * releases the lock, flushes and frees. NULL is fine. SIGTERM alone does not stop the relay:
 * a service calls this last, after the work that still commits events has finished. */
void keel_outbox_relay_stop(keel_outbox_relay *r);

#endif
