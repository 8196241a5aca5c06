/* Transactional outbox: rows written with the caller's transaction, and the leader relay that
 * publishes them to Kafka in id order and deletes them once acknowledged. */
#include "keel/outbox.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/retry.h"
#include "keel/shutdown.h"

#define OUTBOX_CHANNEL KEEL_OUTBOX_CHANNEL
/* The last pass after a stop is short: a service's stop must end within seconds. */
#define RELAY_FINAL_DRAIN_MS 3000

/* ---- insert --------------------------------------------------------------------------- */

keel_result keel_outbox_insert(keel_db *db, const keel_outbox_message *msg)
{
    if (!msg || !msg->topic || !msg->topic[0] || !msg->key || !msg->key[0] || !msg->ce ||
        !msg->ce->id[0] || !msg->ce->source[0] || !msg->ce->type[0] ||
        (!msg->payload && msg->payload_len > 0) || msg->payload_len > (size_t)INT_MAX) {
        keel_log_error("outbox: a message needs a topic, a key, a payload under 2 GiB and a "
                       "cloudevent with id, source and type");
        return KEEL_ERR;
    }
    PGconn *conn = keel_db_conn(db);
    if (!conn) {
        keel_log_warn("outbox: no database connection for event %s", msg->ce->id);
        return KEEL_ERR_TRANSIENT;
    }
    /* On its own the row would commit apart from the state change it announces: exactly the
     * dual write the outbox exists to prevent. */
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_IDLE) {
        keel_log_error("outbox: insert of event %s outside a transaction; call it after BEGIN "
                       "(inside keel_db_transaction)",
                       msg->ce->id);
        return KEEL_ERR;
    }
    if (ts == PQTRANS_INERROR) {
        keel_log_warn("outbox: insert of event %s in a transaction that already failed; roll "
                      "back",
                      msg->ce->id);
        return KEEL_ERR;
    }

    static const char empty[1] = "";
    const char *params[8] = {
        msg->topic,
        msg->key,
        msg->payload_len > 0 ? (const char *)msg->payload : empty,
        msg->ce->id,
        msg->ce->source,
        msg->ce->type,
        msg->ce->time[0] ? msg->ce->time : NULL,
        msg->ce->traceparent[0] ? msg->ce->traceparent : NULL,
    };
    int lengths[8] = {0, 0, (int)msg->payload_len, 0, 0, 0, 0, 0};
    int formats[8] = {0, 0, 1, 0, 0, 0, 0, 0};
    PGresult *res = keel_db_exec_bin(db, KEEL_OUTBOX_INSERT_SQL, 8, params, lengths, formats);
    keel_result rc = keel_db_check(db, res, "outbox insert");
    PQclear(res);
    return rc;
}

/* ---- relay ---------------------------------------------------------------------------- */

typedef enum slot_state {
    SLOT_UNSENT = 0,
    SLOT_IN_FLIGHT,
    SLOT_ACKED,
    SLOT_FAILED,
} slot_state;

typedef struct outbox_slot {
    int64_t id;
    slot_state state; /* written by the delivery callback, which runs on the relay thread */
    rd_kafka_resp_err_t err;
} outbox_slot;

typedef enum round_result {
    ROUND_IDLE,   /* the outbox is drained (as far as this round could see) */
    ROUND_MORE,   /* a full batch went out: more rows are likely waiting */
    ROUND_FAILED, /* a send, a delivery or a query failed: back off, then try again */
    ROUND_LOST,   /* the database connection is gone, and the leadership with it */
} round_result;

struct keel_outbox_relay {
    char *conninfo;
    char *password;
    char *brokers;
    char *service;
    char *client_id;
    char name[160]; /* "service" or "service/instance", for log lines */
    int batch_size;
    int poll_interval_ms;
    int leader_retry_ms;
    char lock_key[24];

    keel_db *db;
    keel_producer *producer;
    outbox_slot *slots;
    int wake[2]; /* keel_outbox_relay_stop writes here to end a wait at once */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    atomic_bool leader;
    int64_t stand_down_until; /* monotonic ms; no bid for the lock before this */

    keel_metric *m_leader;
    keel_metric *m_pending;
    keel_metric *m_published;
    keel_metric *m_errors;
};

static void relay_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition,
                              int64_t offset)
{
    outbox_slot *slot = opaque;
    if (!slot) {
        return;
    }
    slot->err = err;
    slot->state = err == RD_KAFKA_RESP_ERR_NO_ERROR ? SLOT_ACKED : SLOT_FAILED;
}

/* The advisory lock key of a service: the first 8 bytes of SHA-256("keel_outbox:<service>"),
 * computed here so it does not depend on PostgreSQL's internal hash functions. */
static bool relay_lock_key(const char *service, char out[24])
{
    char name[256];
    unsigned char md[32];
    unsigned int md_len = 0;
    int n = snprintf(name, sizeof(name), "keel_outbox:%s", service);
    if (n < 0 || (size_t)n >= sizeof(name) ||
        EVP_Digest(name, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1) {
        return false;
    }
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) {
        k = (k << 8) | md[i];
    }
    snprintf(out, 24, "%lld", (long long)(int64_t)k);
    return true;
}

/* Only keel_outbox_relay_stop ends the relay, not SIGTERM itself: a service stops its relay
 * last, after the consumers and workers that were finishing their work, so the events they
 * committed meanwhile are still published before the process exits. */
static bool relay_stopping(const keel_outbox_relay *r)
{
    return atomic_load(&r->stop);
}

static keel_producer *relay_new_producer(keel_outbox_relay *r, char *err, size_t err_len)
{
    keel_producer_options po = {
        .brokers = r->brokers,
        .client_id = r->client_id,
        .on_delivery = relay_on_delivery,
    };
    return keel_producer_new(&po, err, err_len);
}

static void relay_set_leader(keel_outbox_relay *r, bool leader, const char *why)
{
    if (atomic_load(&r->leader) == leader) {
        return;
    }
    atomic_store(&r->leader, leader);
    keel_metric_set(r->m_leader, leader ? 1.0 : 0.0);
    if (leader) {
        keel_log_info("outbox relay of %s: now the leader (holding advisory lock %s)", r->name,
                      r->lock_key);
    } else {
        /* The instance whose session just died is the likelier one to be in trouble, and a
         * peer bids every leader_retry_ms: stand aside for two of those so the lock passes
         * to a peer when there is one. A lone instance only publishes a little later. */
        r->stand_down_until = keel_clock_monotonic_ms() + 2 * (int64_t)r->leader_retry_ms;
        keel_log_warn("outbox relay of %s: no longer the leader: %s", r->name, why);
    }
}

/* Waits up to timeout_ms for a stop, a shutdown or (with listen) a NOTIFY or any traffic on
 * the database socket. Returns false when the database connection turned out to be lost. */
static bool relay_wait(keel_outbox_relay *r, int timeout_ms, bool listen)
{
    PGconn *conn = keel_db_conn(r->db);
    if (listen && conn) {
        /* Notifications read along with earlier query results are already buffered. */
        bool buffered = false;
        PGnotify *note;
        while ((note = PQnotifies(conn)) != NULL) {
            buffered = true;
            PQfreemem(note);
        }
        if (buffered) {
            return true;
        }
    }
    struct pollfd pfd[3];
    nfds_t n = 0;
    pfd[n++] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
    if (!keel_shutdown_requested() && keel_shutdown_fd() >= 0) {
        pfd[n++] = (struct pollfd){.fd = keel_shutdown_fd(), .events = POLLIN};
    }
    int db_index = -1;
    if (listen && conn && PQsocket(conn) >= 0) {
        db_index = (int)n;
        pfd[n++] = (struct pollfd){.fd = PQsocket(conn), .events = POLLIN};
    }
    int rc = poll(pfd, n, timeout_ms > 0 ? timeout_ms : 0);
    if (rc < 0 && errno != EINTR) {
        keel_log_warn("outbox relay of %s: poll failed: %s", r->name, strerror(errno));
        keel_clock_sleep_ms(timeout_ms > 100 ? 100 : timeout_ms);
        return true;
    }
    if (rc > 0 && (pfd[0].revents & POLLIN)) {
        char buf[64];
        while (read(r->wake[0], buf, sizeof(buf)) > 0) {
        }
    }
    if (db_index >= 0 && pfd[db_index].revents) {
        if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
            return false;
        }
        PGnotify *note;
        while ((note = PQnotifies(conn)) != NULL) {
            PQfreemem(note);
        }
    }
    return true;
}

/* Copies a text column (binary result format: the raw bytes) into a fixed buffer. */
static void relay_copy(const PGresult *res, int row, int col, char *out, size_t out_len)
{
    size_t len = PQgetisnull(res, row, col) ? 0 : (size_t)PQgetlength(res, row, col);
    if (len >= out_len) {
        len = out_len - 1;
    }
    memcpy(out, PQgetvalue(res, row, col), len);
    out[len] = '\0';
}

static int64_t relay_int8(const PGresult *res, int row, int col)
{
    uint64_t be = 0;
    if (PQgetlength(res, row, col) == (int)sizeof(be)) {
        memcpy(&be, PQgetvalue(res, row, col), sizeof(be));
    }
    return (int64_t)be64toh(be);
}

/* A query failed: ROUND_LOST when the connection went with it. */
static round_result relay_db_failure(keel_outbox_relay *r)
{
    return keel_db_is_connected(r->db) ? ROUND_FAILED : ROUND_LOST;
}

/* Deletes the acknowledged rows slots[0..count). */
static round_result relay_delete(keel_outbox_relay *r, int count)
{
    size_t cap = (size_t)count * 21 + 3;
    char *ids = malloc(cap);
    if (!ids) {
        return ROUND_FAILED;
    }
    size_t off = 0;
    ids[off++] = '{';
    for (int i = 0; i < count; i++) {
        off += (size_t)snprintf(ids + off, cap - off, "%s%lld", i ? "," : "",
                                (long long)r->slots[i].id);
    }
    snprintf(ids + off, cap - off, "}");
    const char *params[] = {ids};
    PGresult *res =
        keel_db_exec(r->db, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, params);
    keel_result rc = keel_db_check(r->db, res, "outbox relay: deleting published rows");
    PQclear(res);
    free(ids);
    ids = NULL;
    if (rc != KEEL_OK) {
        /* The rows stay and go out again next round: a duplicate, which consumers drop by
         * ce_id, never a loss. */
        return relay_db_failure(r);
    }
    return ROUND_IDLE;
}

/* Serves delivery reports until every message of the batch has one. librdkafka reports
 * each message within delivery.timeout.ms, and the callback writes into r->slots, so the
 * slots must not be reused before then. */
static void relay_await_reports(keel_outbox_relay *r, int sent)
{
    int64_t start = keel_clock_monotonic_ms();
    bool warned = false;
    for (;;) {
        bool waiting = false;
        for (int i = 0; i < sent && !waiting; i++) {
            waiting = r->slots[i].state == SLOT_IN_FLIGHT;
        }
        if (!waiting) {
            return;
        }
        keel_producer_poll(r->producer, 100);
        if (!warned && keel_clock_monotonic_ms() - start > 60000) {
            warned = true;
            keel_log_error("outbox relay of %s: delivery reports overdue by more than a "
                           "minute; still waiting (is the broker reachable?)",
                           r->name);
        }
    }
}

/* After failures an idempotent producer may be fenced for good; only a new one recovers. */
static void relay_check_producer(keel_outbox_relay *r)
{
    char reason[512];
    if (!r->producer) {
        return;
    }
    rd_kafka_resp_err_t fatal =
        rd_kafka_fatal_error(keel_producer_handle(r->producer), reason, sizeof(reason));
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return;
    }
    keel_log_error("outbox relay of %s: the producer hit a fatal error (%s: %s); creating a "
                   "new one",
                   r->name, rd_kafka_err2name(fatal), reason);
    keel_producer_free(r->producer);
    r->producer = NULL;
}

static round_result relay_round(keel_outbox_relay *r)
{
    PGresult *res = NULL;
    round_result out = ROUND_FAILED;
    int n = 0;
    int sent = 0;
    int stop_at = 0;

    if (!r->producer) {
        char err[512];
        r->producer = relay_new_producer(r, err, sizeof(err));
        if (!r->producer) {
            keel_log_error("outbox relay of %s: cannot create the producer: %s", r->name, err);
            return ROUND_FAILED;
        }
    }

    res = keel_db_exec(r->db, "SELECT count(*) FROM outbox", 0, NULL);
    if (keel_db_check(r->db, res, "outbox relay: counting pending rows") != KEEL_OK) {
        out = relay_db_failure(r);
        goto done;
    }
    long long pending = atoll(PQgetvalue(res, 0, 0));
    keel_metric_set(r->m_pending, (double)pending);
    PQclear(res);
    res = NULL;
    if (pending == 0) {
        out = ROUND_IDLE;
        goto done;
    }

    /* Always from the oldest remaining row: a row whose transaction took a lower id but
     * committed later is never skipped. Binary results so the payload needs no decoding. */
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", r->batch_size);
    const char *params[] = {limit};
    res = PQexecParams(keel_db_conn(r->db),
                       "SELECT id, topic, message_key, payload, ce_id, ce_source, ce_type, "
                       "coalesce(to_char(ce_time AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), coalesce(traceparent, '') "
                       "FROM outbox ORDER BY id LIMIT $1::integer",
                       1, NULL, params, NULL, NULL, 1);
    if (keel_db_check(r->db, res, "outbox relay: reading a batch") != KEEL_OK) {
        out = relay_db_failure(r);
        goto done;
    }
    n = PQntuples(res);
    if (n == 0) {
        out = ROUND_IDLE;
        goto done;
    }

    KEEL_FAILPOINT("outbox.before_publish");
    stop_at = n;
    for (int i = 0; i < n; i++) {
        outbox_slot *slot = &r->slots[i];
        keel_cloudevent ce;
        slot->id = relay_int8(res, i, 0);
        slot->state = SLOT_UNSENT;
        slot->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        relay_copy(res, i, 4, ce.id, sizeof(ce.id));
        relay_copy(res, i, 5, ce.source, sizeof(ce.source));
        relay_copy(res, i, 6, ce.type, sizeof(ce.type));
        relay_copy(res, i, 7, ce.time, sizeof(ce.time));
        relay_copy(res, i, 8, ce.traceparent, sizeof(ce.traceparent));
        const char *topic = PQgetvalue(res, i, 1); /* libpq NUL-terminates every value */
        const char *key = PQgetvalue(res, i, 2);
        size_t key_len = (size_t)PQgetlength(res, i, 2);

        rd_kafka_headers_t *headers = keel_cloudevent_to_headers(&ce);
        if (!headers) {
            keel_log_error("outbox relay of %s: cannot build headers for row %lld", r->name,
                           (long long)slot->id);
            stop_at = i;
            break;
        }
        keel_result rc;
        for (;;) {
            rc = keel_producer_send(r->producer, topic, key, key_len, PQgetvalue(res, i, 3),
                                    (size_t)PQgetlength(res, i, 3), headers, slot);
            if (rc != KEEL_ERR_FULL || atomic_load(&r->stop)) {
                break;
            }
            /* Back-pressure: let deliveries drain the local queue, then try again. */
            keel_producer_poll(r->producer, 100);
        }
        if (rc != KEEL_OK) {
            rd_kafka_headers_destroy(headers);
            headers = NULL;
            char tid[33];
            keel_traceparent_trace_id(ce.traceparent, tid);
            keel_log_set_trace_id(tid[0] ? tid : NULL);
            if (rc == KEEL_ERR) {
                keel_log_error("outbox relay of %s: row %lld (event %s) for topic %s can "
                               "never be sent as it is (see the Kafka error above); it holds "
                               "back every row after it until it is removed: DELETE FROM "
                               "outbox WHERE id = %lld",
                               r->name, (long long)slot->id, ce.id, topic, (long long)slot->id);
                keel_metric_inc(r->m_errors);
            } else if (rc != KEEL_ERR_FULL) {
                keel_log_warn("outbox relay of %s: could not queue row %lld (event %s) for "
                              "topic %s: %s; the round stops here and the row is retried",
                              r->name, (long long)slot->id, ce.id, topic, keel_result_name(rc));
                keel_metric_inc(r->m_errors);
            }
            keel_log_set_trace_id(NULL);
            stop_at = i;
            break;
        }
        slot->state = SLOT_IN_FLIGHT;
        sent = i + 1;
    }
    relay_await_reports(r, sent);
    KEEL_FAILPOINT("outbox.after_publish");

    /* Delete only the acknowledged prefix: a row after a failed one may share its key, and
     * must not stay published while the earlier one is sent again later. */
    int acked = 0;
    while (acked < stop_at && r->slots[acked].state == SLOT_ACKED) {
        acked++;
    }
    for (int i = acked; i < sent; i++) {
        if (r->slots[i].state == SLOT_FAILED) {
            keel_metric_inc(r->m_errors);
            if (i == acked) {
                char tid[33];
                keel_traceparent_trace_id(PQgetvalue(res, i, 8), tid);
                keel_log_set_trace_id(tid[0] ? tid : NULL);
                keel_log_warn("outbox relay of %s: delivery of row %lld (event %s) to %s "
                              "failed: %s; it and the rows after it are sent again next round",
                              r->name, (long long)r->slots[i].id, PQgetvalue(res, i, 4),
                              PQgetvalue(res, i, 1), rd_kafka_err2str(r->slots[i].err));
                keel_log_set_trace_id(NULL);
            }
        }
    }
    out = acked == n ? (n == r->batch_size ? ROUND_MORE : ROUND_IDLE) : ROUND_FAILED;
    if (acked > 0) {
        round_result del = relay_delete(r, acked);
        if (del != ROUND_IDLE) {
            out = del;
        } else {
            keel_metric_add(r->m_published, (double)acked);
            keel_metric_set(r->m_pending, (double)(pending - acked > 0 ? pending - acked : 0));
        }
    }
    if (out == ROUND_FAILED) {
        relay_check_producer(r);
    }

done:
    PQclear(res);
    res = NULL;
    return out;
}

/* Tries to take the service's lock; on success also LISTENs. */
static round_result relay_try_lead(keel_outbox_relay *r)
{
    const char *params[] = {r->lock_key};
    PGresult *res = keel_db_exec(r->db, "SELECT pg_try_advisory_lock($1::bigint)", 1, params);
    if (keel_db_check(r->db, res, "outbox relay: taking the leader lock") != KEEL_OK) {
        PQclear(res);
        return relay_db_failure(r);
    }
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!got) {
        return ROUND_IDLE;
    }
    res = keel_db_exec(r->db, "LISTEN " OUTBOX_CHANNEL, 0, NULL);
    keel_result rc = keel_db_check(r->db, res, "outbox relay: LISTEN");
    PQclear(res);
    if (rc != KEEL_OK) {
        /* Without LISTEN we would still poll, but give the lock back to keep things simple:
         * the next attempt starts clean. */
        res = keel_db_exec(r->db, "SELECT pg_advisory_unlock($1::bigint)", 1, params);
        PQclear(res);
        return relay_db_failure(r);
    }
    relay_set_leader(r, true, NULL);
    return ROUND_MORE;
}

static void *relay_main(void *arg)
{
    keel_outbox_relay *r = arg;
    const keel_backoff backoff = {.base_ms = 200, .cap_ms = 5000, .max_attempts = 0};
    const keel_backoff reconnect = {.base_ms = 100, .cap_ms = 5000, .max_attempts = 0};
    int failures = 0;
    int connect_failures = 0;
    round_result last = ROUND_IDLE;

    while (!relay_stopping(r)) {
        if (!keel_db_is_connected(r->db)) {
            relay_set_leader(r, false, "the database connection was lost");
            /* One attempt at a time, backing off here where a stop can end the wait. */
            if (keel_db_connect(r->db, 0) != KEEL_OK) {
                relay_wait(r, (int)keel_backoff_delay_ms(&reconnect, connect_failures, NULL),
                           false);
                if (connect_failures < 30) {
                    connect_failures++;
                }
                continue;
            }
            connect_failures = 0;
        }
        if (!atomic_load(&r->leader)) {
            int64_t aside = r->stand_down_until - keel_clock_monotonic_ms();
            if (aside > 0) {
                relay_wait(r, (int)aside, false);
                continue;
            }
            round_result lead = relay_try_lead(r);
            if (lead == ROUND_IDLE || lead == ROUND_FAILED) {
                relay_wait(r, r->leader_retry_ms, false);
            }
            if (lead != ROUND_MORE) {
                continue;
            }
            failures = 0;
        }
        last = relay_round(r);
        switch (last) {
        case ROUND_MORE:
            failures = 0;
            break;
        case ROUND_IDLE:
            failures = 0;
            if (!relay_wait(r, r->poll_interval_ms, true)) {
                relay_set_leader(r, false, "the database connection was lost");
            }
            break;
        case ROUND_FAILED:
            /* Do not hammer a broker or database that just failed; NOTIFYs wait meanwhile. */
            relay_wait(r, (int)keel_backoff_delay_ms(&backoff, failures, NULL), false);
            if (failures < 30) {
                failures++;
            }
            break;
        case ROUND_LOST:
            relay_set_leader(r, false, "the database connection was lost");
            break;
        }
    }

    /* Rows committed just before the stop: one last bounded pass, so a clean shutdown leaves
     * nothing for the next start. Not after a failed round: a broker that is down would hold
     * the stop for the producer's message timeout. */
    int64_t drain_until = keel_clock_monotonic_ms() + RELAY_FINAL_DRAIN_MS;
    while (last != ROUND_FAILED && atomic_load(&r->leader) && keel_db_is_connected(r->db) &&
           keel_clock_monotonic_ms() < drain_until && relay_round(r) == ROUND_MORE) {
    }
    if (atomic_load(&r->leader) && keel_db_is_connected(r->db)) {
        const char *params[] = {r->lock_key};
        PGresult *res = keel_db_exec(r->db, "SELECT pg_advisory_unlock($1::bigint)", 1, params);
        PQclear(res);
    }
    if (atomic_load(&r->leader)) {
        atomic_store(&r->leader, false);
        keel_metric_set(r->m_leader, 0.0);
        keel_log_info("outbox relay of %s: stopped and gave up the leadership", r->name);
    }
    return NULL;
}

static void relay_free(keel_outbox_relay *r)
{
    if (!r) {
        return;
    }
    keel_producer_free(r->producer); /* flushes: every report of the last round is in */
    r->producer = NULL;
    keel_db_free(r->db);
    r->db = NULL;
    for (int i = 0; i < 2; i++) {
        if (r->wake[i] >= 0) {
            close(r->wake[i]);
            r->wake[i] = -1;
        }
    }
    free(r->slots);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
    }
    free(r->password);
    free(r->conninfo);
    free(r->brokers);
    free(r->service);
    free(r->client_id);
    free(r);
}

keel_outbox_relay *keel_outbox_relay_start(const keel_outbox_relay_options *opts, char *err,
                                           size_t err_len)
{
    keel_outbox_relay *r = NULL;
    char scratch[8];
    char app[128];

    if (!err || err_len == 0) {
        err = scratch;
        err_len = sizeof(scratch);
    }
    err[0] = '\0';
    if (!opts || !opts->conninfo || !opts->brokers || !opts->service || !opts->service[0]) {
        snprintf(err, err_len, "the outbox relay needs conninfo, brokers and a service name");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    r->wake[0] = r->wake[1] = -1;
    r->batch_size = opts->batch_size > 0 ? opts->batch_size : 500;
    r->poll_interval_ms = opts->poll_interval_ms > 0 ? opts->poll_interval_ms : 1000;
    r->leader_retry_ms = opts->leader_retry_ms > 0 ? opts->leader_retry_ms : 1000;
    r->conninfo = strdup(opts->conninfo);
    r->password = opts->password ? strdup(opts->password) : NULL;
    r->brokers = strdup(opts->brokers);
    r->service = strdup(opts->service);
    size_t cid_len = strlen(opts->service) + sizeof("-outbox-relay");
    r->client_id = malloc(cid_len);
    r->slots = calloc((size_t)r->batch_size, sizeof(*r->slots));
    if (!r->conninfo || (opts->password && !r->password) || !r->brokers || !r->service ||
        !r->client_id || !r->slots) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    snprintf(r->client_id, cid_len, "%s-outbox-relay", opts->service);
    if (!relay_lock_key(r->service, r->lock_key)) {
        snprintf(err, err_len,
                 "cannot derive the outbox lock key (service name too long or "
                 "no SHA-256 in libcrypto)");
        goto fail;
    }
    if (opts->instance_id && opts->instance_id[0]) {
        snprintf(app, sizeof(app), "%s-%s", r->client_id, opts->instance_id);
        snprintf(r->name, sizeof(r->name), "%s/%s", r->service, opts->instance_id);
    } else {
        snprintf(app, sizeof(app), "%s", r->client_id);
        snprintf(r->name, sizeof(r->name), "%s", r->service);
    }
    r->db = keel_db_new(r->conninfo, r->password, app);
    if (!r->db) {
        snprintf(err, err_len, "the outbox relay's database connection string is not usable");
        goto fail;
    }
    r->producer = relay_new_producer(r, err, err_len);
    if (!r->producer) {
        goto fail;
    }
    if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, err_len, "pipe2: %s", strerror(errno));
        r->wake[0] = r->wake[1] = -1;
        goto fail;
    }
    keel_metrics *m = keel_metrics_default();
    r->m_leader = keel_metrics_gauge(
        m, "keel_outbox_leader",
        "1 while this instance's outbox relay holds the leader lock and publishes.", NULL);
    r->m_pending = keel_metrics_gauge(
        m, "keel_outbox_pending", "Outbox rows waiting to be published, counted each round.", NULL);
    r->m_published = keel_metrics_counter(m, "keel_outbox_published_total",
                                          "Outbox rows published, acknowledged and deleted.", NULL);
    r->m_errors = keel_metrics_counter(
        m, "keel_outbox_publish_errors_total",
        "Failed attempts to send or deliver an outbox row (the row stays and is sent again).",
        NULL);
    atomic_init(&r->stop, false);
    atomic_init(&r->leader, false);

    int prc = pthread_create(&r->thread, NULL, relay_main, r);
    if (prc != 0) {
        snprintf(err, err_len, "cannot start the outbox relay thread: %s", strerror(prc));
        goto fail;
    }
    r->thread_started = true;
    keel_log_info("outbox relay of %s started (batch %d, poll %d ms, leader retry %d ms)", r->name,
                  r->batch_size, r->poll_interval_ms, r->leader_retry_ms);
    return r;

fail:
    relay_free(r);
    return NULL;
}

bool keel_outbox_relay_is_leader(const keel_outbox_relay *r)
{
    return r && atomic_load(&r->leader);
}

void keel_outbox_relay_stop(keel_outbox_relay *r)
{
    if (!r) {
        return;
    }
    if (r->thread_started) {
        atomic_store(&r->stop, true);
        ssize_t w = write(r->wake[1], "x", 1);
        (void)w; /* a full pipe already wakes the thread */
        pthread_join(r->thread, NULL);
        r->thread_started = false;
    }
    relay_free(r);
}
