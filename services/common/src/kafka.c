/* Kafka on librdkafka: the idempotent producer, the manually committing consumer and topic
 * creation through the admin API. */
#include "keel/kafka.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"

#define KAFKA_DEFAULT_QUEUE_MESSAGES 10000
#define KAFKA_DEFAULT_QUEUE_KBYTES 16384
#define KAFKA_DEFAULT_MESSAGE_TIMEOUT_MS 30000
#define KAFKA_DEFAULT_LINGER_MS 5
#define KAFKA_DEFAULT_SESSION_TIMEOUT_MS 10000
#define KAFKA_DEFAULT_MAX_POLL_INTERVAL_MS 300000
#define KAFKA_FREE_FLUSH_MS 10000
#define KAFKA_SEEK_TIMEOUT_MS 5000
#define KAFKA_SEND_WAIT_STEP_MS 100

/* One keel_producer_send_wait caller waiting for its message's delivery report. It lives on
 * the heap because a report can arrive after the caller gave up waiting. */
typedef struct kafka_waiter {
    struct kafka_waiter *next;
    bool done;
    bool abandoned; /* the caller timed out: free it when its report finally arrives */
    rd_kafka_resp_err_t err;
} kafka_waiter;

struct keel_producer {
    rd_kafka_t *rk;
    keel_delivery_fn on_delivery;
    pthread_mutex_t lock; /* guards waiters: reports may be served by any polling thread */
    kafka_waiter *waiters;
};

struct keel_consumer {
    rd_kafka_t *rk;
};

static void kafka_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kafka_set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* librdkafka logs from its own threads; keel_log_write is one write(2) per line, so that is
 * safe. Levels are syslog's. Its error-level lines (a broker connection failing) are mostly
 * transient and repeat what kafka_error_cb reports, so they are warnings here; the error
 * callback decides what is an error for keel. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    keel_log_level lvl = KEEL_LOG_DEBUG;
    if (level <= 4) {
        lvl = KEEL_LOG_WARN;
    } else if (level <= 6) {
        lvl = KEEL_LOG_INFO;
    }
    keel_log_write(lvl, "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* Most client errors are transient (a broker restarting) and librdkafka recovers by itself.
 * A fatal error (for example the idempotent producer losing its sequence guarantees) leaves
 * the client unusable, so it is logged at error level with the underlying cause. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char cause[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, cause, sizeof cause);
        keel_log_error("kafka %s: fatal error %s: %s; this client can no longer send and the "
                       "process must restart it",
                       rd_kafka_name(rk), rd_kafka_err2name(orig), cause);
        return;
    }
    keel_log_warn("kafka %s: %s: %s", rd_kafka_name(rk),
                  rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static bool kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                           size_t err_len)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        kafka_set_err(err, err_len, "kafka setting %s=%s rejected: %s", name, value, errstr);
        return false;
    }
    return true;
}

static bool kafka_conf_set_int(rd_kafka_conf_t *conf, const char *name, long long value, char *err,
                               size_t err_len)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    return kafka_conf_set(conf, name, text, err, err_len);
}

/* The settings every keel client shares: where the brokers are, who we are, and logging. */
static rd_kafka_conf_t *kafka_conf_base(const char *brokers, const char *client_id, char *err,
                                        size_t err_len)
{
    if (brokers == NULL || brokers[0] == '\0') {
        kafka_set_err(err, err_len,
                      "no Kafka brokers given: set KEEL_KAFKA_BROKERS, e.g. 127.0.0.1:29092");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!kafka_conf_set(conf, "bootstrap.servers", brokers, err, err_len) ||
        !kafka_conf_set(conf, "client.id", client_id != NULL ? client_id : "keel", err, err_len) ||
        !kafka_conf_set(conf, "statistics.interval.ms", "0", err, err_len)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
}

/* ---- producer ---------------------------------------------------------------------------- */

/* Removes w from p's list if it is there; the caller holds p->lock. */
static bool kafka_waiter_unlink(keel_producer *p, kafka_waiter *w)
{
    for (kafka_waiter **it = &p->waiters; *it != NULL; it = &(*it)->next) {
        if (*it == w) {
            *it = w->next;
            w->next = NULL;
            return true;
        }
    }
    return false;
}

static void kafka_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    keel_producer *p = opaque;

    /* Messages of keel_producer_send_wait carry a waiter as their opaque; the caller's
     * on_delivery never sees those. */
    pthread_mutex_lock(&p->lock);
    kafka_waiter *w = NULL;
    for (kafka_waiter *it = p->waiters; it != NULL; it = it->next) {
        if (it == msg->_private) {
            w = it;
            break;
        }
    }
    if (w != NULL) {
        if (w->abandoned) {
            kafka_waiter_unlink(p, w);
            free(w);
            w = NULL;
        } else {
            w->done = true;
            w->err = msg->err;
        }
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_unlock(&p->lock);

    if (p->on_delivery != NULL) {
        p->on_delivery(msg->_private, msg->err, msg->partition, msg->offset);
    }
}

keel_producer *keel_producer_new(const keel_producer_options *opts, char *err, size_t err_len)
{
    keel_producer *p = NULL;
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];

    conf = kafka_conf_base(opts->brokers, opts->client_id, err, err_len);
    if (conf == NULL) {
        goto fail;
    }
    int queue_messages =
        opts->queue_max_messages > 0 ? opts->queue_max_messages : KAFKA_DEFAULT_QUEUE_MESSAGES;
    int queue_kbytes =
        opts->queue_max_kbytes > 0 ? opts->queue_max_kbytes : KAFKA_DEFAULT_QUEUE_KBYTES;
    int message_timeout =
        opts->message_timeout_ms > 0 ? opts->message_timeout_ms : KAFKA_DEFAULT_MESSAGE_TIMEOUT_MS;
    int linger = opts->linger_ms > 0 ? opts->linger_ms : KAFKA_DEFAULT_LINGER_MS;
    /* Idempotence keeps per-partition order and drops broker-side duplicates across retries;
     * acks=all means an acknowledged record survives the loss of the leader. */
    if (!kafka_conf_set(conf, "enable.idempotence", "true", err, err_len) ||
        !kafka_conf_set(conf, "acks", "all", err, err_len) ||
        !kafka_conf_set_int(conf, "queue.buffering.max.messages", queue_messages, err, err_len) ||
        !kafka_conf_set_int(conf, "queue.buffering.max.kbytes", queue_kbytes, err, err_len) ||
        !kafka_conf_set_int(conf, "delivery.timeout.ms", message_timeout, err, err_len) ||
        !kafka_conf_set_int(conf, "linger.ms", linger, err, err_len)) {
        goto fail;
    }

    p = calloc(1, sizeof *p);
    if (p == NULL) {
        kafka_set_err(err, err_len, "out of memory creating a Kafka producer");
        goto fail;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->on_delivery = opts->on_delivery;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_msg_cb);

    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (p->rk == NULL) {
        kafka_set_err(err, err_len, "creating the Kafka producer for %s failed: %s", opts->brokers,
                      errstr);
        goto fail;
    }
    conf = NULL; /* rd_kafka_new took it */
    return p;

fail:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    if (p != NULL) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        p = NULL;
    }
    return NULL;
}

/* Maps a producev failure to keel's result: a full queue is back-pressure; a too large
 * message, a bad argument or a fatal client error cannot succeed by retrying the same call. */
static keel_result kafka_produce_result(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return KEEL_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return KEEL_ERR_FULL;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        return KEEL_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return KEEL_ERR;
    default:
        /* Unknown topic or partition (it may be created), broker away, and the rest. */
        return KEEL_ERR_TRANSIENT;
    }
}

static rd_kafka_resp_err_t kafka_producev(keel_producer *p, const char *topic, const void *key,
                                          size_t key_len, const void *payload, size_t len,
                                          rd_kafka_headers_t *headers, void *msg_opaque)
{
    /* F_COPY: the caller's buffers may go away as soon as we return. */
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE((void *)payload, len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
}

keel_result keel_producer_send(keel_producer *p, const char *topic, const void *key, size_t key_len,
                               const void *payload, size_t len, rd_kafka_headers_t *headers,
                               void *msg_opaque)
{
    rd_kafka_resp_err_t e =
        kafka_producev(p, topic, key, key_len, payload, len, headers, msg_opaque);
    keel_result r = kafka_produce_result(e);
    if (r != KEEL_OK && r != KEEL_ERR_FULL) {
        keel_log_warn("kafka %s: queueing a message for %s failed: %s", rd_kafka_name(p->rk), topic,
                      rd_kafka_err2str(e));
    }
    return r;
}

keel_result keel_producer_send_wait(keel_producer *p, const char *topic, const void *key,
                                    size_t key_len, const void *payload, size_t len,
                                    const rd_kafka_headers_t *headers, int timeout_ms, char *err,
                                    size_t err_len)
{
    keel_result r = KEEL_ERR;
    rd_kafka_headers_t *copy = NULL;
    kafka_waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        kafka_set_err(err, err_len, "out of memory sending to %s", topic);
        return KEEL_ERR;
    }
    if (headers != NULL) {
        copy = rd_kafka_headers_copy(headers);
    }

    pthread_mutex_lock(&p->lock);
    w->next = p->waiters;
    p->waiters = w;
    pthread_mutex_unlock(&p->lock);

    rd_kafka_resp_err_t e = kafka_producev(p, topic, key, key_len, payload, len, copy, w);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* Not queued: no report will come, and the headers copy is still ours. */
        pthread_mutex_lock(&p->lock);
        kafka_waiter_unlink(p, w);
        pthread_mutex_unlock(&p->lock);
        free(w);
        w = NULL;
        if (copy != NULL) {
            rd_kafka_headers_destroy(copy);
            copy = NULL;
        }
        kafka_set_err(err, err_len, "queueing a message for %s failed: %s", topic,
                      rd_kafka_err2str(e));
        return kafka_produce_result(e);
    }
    copy = NULL; /* the message owns it now */

    int64_t deadline = keel_clock_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool done = w->done;
        pthread_mutex_unlock(&p->lock);
        int64_t left = deadline - keel_clock_monotonic_ms();
        if (done || left <= 0) {
            break;
        }
        rd_kafka_poll(p->rk,
                      (int)(left < KAFKA_SEND_WAIT_STEP_MS ? left : KAFKA_SEND_WAIT_STEP_MS));
    }

    pthread_mutex_lock(&p->lock);
    if (!w->done) {
        /* The report may still come; the delivery callback frees w then. */
        w->abandoned = true;
        pthread_mutex_unlock(&p->lock);
        kafka_set_err(err, err_len,
                      "no delivery report for a message to %s within %d ms: is the broker up?",
                      topic, timeout_ms);
        return KEEL_ERR_TIMEOUT;
    }
    kafka_waiter_unlink(p, w);
    rd_kafka_resp_err_t derr = w->err;
    pthread_mutex_unlock(&p->lock);
    free(w);
    w = NULL;

    if (derr == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r = KEEL_OK;
    } else {
        r = kafka_produce_result(derr);
        kafka_set_err(err, err_len, "delivering a message to %s failed: %s", topic,
                      rd_kafka_err2str(derr));
    }
    return r;
}

void keel_producer_poll(keel_producer *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

keel_result keel_producer_flush(keel_producer *p, int timeout_ms)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return KEEL_OK;
    }
    return KEEL_ERR_TIMEOUT;
}

rd_kafka_t *keel_producer_handle(keel_producer *p)
{
    return p->rk;
}

void keel_producer_free(keel_producer *p)
{
    if (p == NULL) {
        return;
    }
    if (p->rk != NULL) {
        if (rd_kafka_flush(p->rk, KAFKA_FREE_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            keel_log_warn("kafka %s: %d message(s) still undelivered after %d ms; dropping them "
                          "at shutdown",
                          rd_kafka_name(p->rk), rd_kafka_outq_len(p->rk), KAFKA_FREE_FLUSH_MS);
        }
        rd_kafka_destroy(p->rk);
        p->rk = NULL;
    }
    /* Waiters whose callers timed out and whose reports never came. */
    while (p->waiters != NULL) {
        kafka_waiter *w = p->waiters;
        p->waiters = w->next;
        free(w);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- consumer ---------------------------------------------------------------------------- */

/* Renders "topic[0],topic[2]" for rebalance logs, truncated to fit out. */
static void kafka_describe_partitions(const rd_kafka_topic_partition_list_t *parts, char *out,
                                      size_t out_len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; parts != NULL && i < parts->cnt && used < out_len; i++) {
        int n = snprintf(out + used, out_len - used, "%s%s[%" PRId32 "]", i > 0 ? "," : "",
                         parts->elems[i].topic, parts->elems[i].partition);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

/* Takes the assignment the group gives us (eager or cooperative protocol) and logs it, so a
 * stalled or duplicated partition can be traced to a rebalance. */
static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    char desc[512];
    kafka_describe_partitions(parts, desc, sizeof desc);
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        keel_log_info("kafka %s: partitions assigned: %s", rd_kafka_name(rk), desc);
        if (cooperative) {
            error = rd_kafka_incremental_assign(rk, parts);
        } else {
            ret = rd_kafka_assign(rk, parts);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (rd_kafka_assignment_lost(rk)) {
            keel_log_warn("kafka %s: partitions lost (the group moved on without us; "
                          "uncommitted records will be redelivered): %s",
                          rd_kafka_name(rk), desc);
        } else {
            keel_log_info("kafka %s: partitions revoked: %s", rd_kafka_name(rk), desc);
        }
        if (cooperative) {
            error = rd_kafka_incremental_unassign(rk, parts);
        } else {
            ret = rd_kafka_assign(rk, NULL);
        }
    } else {
        keel_log_error("kafka %s: rebalance failed: %s", rd_kafka_name(rk), rd_kafka_err2str(err));
        ret = rd_kafka_assign(rk, NULL);
    }
    if (error != NULL) {
        keel_log_error("kafka %s: applying the assignment failed: %s", rd_kafka_name(rk),
                       rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret != RD_KAFKA_RESP_ERR_NO_ERROR) {
        keel_log_error("kafka %s: applying the assignment failed: %s", rd_kafka_name(rk),
                       rd_kafka_err2str(ret));
    }
}

keel_consumer *keel_consumer_new(const keel_consumer_options *opts, char *err, size_t err_len)
{
    keel_consumer *c = NULL;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    char errstr[512];

    if (opts->group_id == NULL || opts->group_id[0] == '\0' || opts->topic_count == 0) {
        kafka_set_err(err, err_len, "a Kafka consumer needs a group id and at least one topic");
        goto fail;
    }
    conf = kafka_conf_base(opts->brokers, opts->client_id, err, err_len);
    if (conf == NULL) {
        goto fail;
    }
    int session =
        opts->session_timeout_ms > 0 ? opts->session_timeout_ms : KAFKA_DEFAULT_SESSION_TIMEOUT_MS;
    int max_poll = opts->max_poll_interval_ms > 0 ? opts->max_poll_interval_ms
                                                  : KAFKA_DEFAULT_MAX_POLL_INTERVAL_MS;
    /* Offsets move only when the caller says the effect is durable; read_committed hides
     * records of aborted transactions. */
    if (!kafka_conf_set(conf, "group.id", opts->group_id, err, err_len) ||
        !kafka_conf_set(conf, "enable.auto.commit", "false", err, err_len) ||
        !kafka_conf_set(conf, "enable.auto.offset.store", "false", err, err_len) ||
        !kafka_conf_set(conf, "auto.offset.reset", "earliest", err, err_len) ||
        !kafka_conf_set(conf, "isolation.level", "read_committed", err, err_len) ||
        !kafka_conf_set(conf, "enable.partition.eof", "false", err, err_len) ||
        !kafka_conf_set_int(conf, "session.timeout.ms", session, err, err_len) ||
        !kafka_conf_set_int(conf, "max.poll.interval.ms", max_poll, err, err_len)) {
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);

    c = calloc(1, sizeof *c);
    if (c == NULL) {
        kafka_set_err(err, err_len, "out of memory creating a Kafka consumer");
        goto fail;
    }
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (c->rk == NULL) {
        kafka_set_err(err, err_len, "creating the Kafka consumer for %s failed: %s", opts->brokers,
                      errstr);
        goto fail;
    }
    conf = NULL; /* rd_kafka_new took it */
    /* Errors, logs and rebalances are then served by keel_consumer_poll. */
    rd_kafka_poll_set_consumer(c->rk);

    topics = rd_kafka_topic_partition_list_new((int)opts->topic_count);
    for (size_t i = 0; i < opts->topic_count; i++) {
        rd_kafka_topic_partition_list_add(topics, opts->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kafka_set_err(err, err_len, "subscribing group %s to %s failed: %s", opts->group_id,
                      opts->topics[0], rd_kafka_err2str(e));
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(topics);
    topics = NULL;
    return c;

fail:
    if (topics != NULL) {
        rd_kafka_topic_partition_list_destroy(topics);
        topics = NULL;
    }
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    if (c != NULL) {
        if (c->rk != NULL) {
            rd_kafka_destroy(c->rk);
            c->rk = NULL;
        }
        free(c);
        c = NULL;
    }
    return NULL;
}

rd_kafka_message_t *keel_consumer_poll(keel_consumer *c, int timeout_ms)
{
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (msg == NULL) {
        return NULL;
    }
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            keel_log_debug("kafka %s: reached the end of %s[%" PRId32 "]", rd_kafka_name(c->rk),
                           msg->rkt != NULL ? rd_kafka_topic_name(msg->rkt) : "?", msg->partition);
        } else {
            keel_log_warn("kafka %s: consume error on %s[%" PRId32 "]: %s: %s",
                          rd_kafka_name(c->rk),
                          msg->rkt != NULL ? rd_kafka_topic_name(msg->rkt) : "-", msg->partition,
                          rd_kafka_err2name(msg->err), rd_kafka_message_errstr(msg));
        }
        rd_kafka_message_destroy(msg);
        return NULL;
    }
    return msg;
}

/* Commit failures from a rebalance or an absent coordinator are transient (the record is
 * then redelivered and the inbox absorbs the duplicate); authorization or size errors are
 * not. */
static keel_result kafka_commit_result(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return KEEL_OK;
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return KEEL_ERR;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return KEEL_ERR_TIMEOUT;
    default:
        return KEEL_ERR_TRANSIENT;
    }
}

keel_result keel_consumer_commit(keel_consumer *c, const rd_kafka_message_t *msg)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(offsets, topic, msg->partition);
    tp->offset = msg->offset + 1; /* Kafka commits the next offset to read */

    /* Synchronous: returns once the coordinator answered. librdkafka defers a commit while
     * no coordinator is known for at most the session timeout, so this is bounded. */
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, offsets, 0);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        e = tp->err;
    }
    rd_kafka_topic_partition_list_destroy(offsets);
    offsets = NULL;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        keel_log_warn("kafka %s: committing %s[%" PRId32 "] offset %" PRId64
                      " failed: %s; the record will be delivered again",
                      rd_kafka_name(c->rk), topic, msg->partition, msg->offset + 1,
                      rd_kafka_err2str(e));
    }
    return kafka_commit_result(e);
}

keel_result keel_consumer_seek_back(keel_consumer *c, const rd_kafka_message_t *msg)
{
    keel_result r = KEEL_OK;
    const char *topic = rd_kafka_topic_name(msg->rkt);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(parts, topic, msg->partition);
    tp->offset = msg->offset;

    rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, parts, KAFKA_SEEK_TIMEOUT_MS);
    if (error != NULL) {
        keel_log_warn("kafka %s: seeking %s[%" PRId32 "] back to %" PRId64 " failed: %s",
                      rd_kafka_name(c->rk), topic, msg->partition, msg->offset,
                      rd_kafka_error_string(error));
        r = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT ? KEEL_ERR_TIMEOUT
                                                                       : KEEL_ERR_TRANSIENT;
        rd_kafka_error_destroy(error);
        error = NULL;
    } else if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* Typically the partition is no longer assigned to us: its next owner starts from
         * the committed offset, which is at or before msg. */
        keel_log_warn("kafka %s: seeking %s[%" PRId32 "] back to %" PRId64 " failed: %s",
                      rd_kafka_name(c->rk), topic, msg->partition, msg->offset,
                      rd_kafka_err2str(tp->err));
        r = KEEL_ERR_TRANSIENT;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    parts = NULL;
    return r;
}

rd_kafka_t *keel_consumer_handle(keel_consumer *c)
{
    return c->rk;
}

void keel_consumer_free(keel_consumer *c)
{
    if (c == NULL) {
        return;
    }
    if (c->rk != NULL) {
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            keel_log_warn("kafka %s: leaving the consumer group failed: %s", rd_kafka_name(c->rk),
                          rd_kafka_err2str(e));
        }
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
    }
    free(c);
}

/* ---- topics ------------------------------------------------------------------------------ */

static keel_result kafka_admin_result(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
        return KEEL_OK;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return KEEL_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return KEEL_ERR;
    default:
        return KEEL_ERR_TRANSIENT;
    }
}

/* A topic just created answers "not leader for partition" until its partitions have
 * elected leaders; a caller that produces right after ensure_topics would see that error.
 * Waits until every partition of every topic has a leader, or the deadline passes. */
static keel_result kafka_wait_for_leaders(rd_kafka_t *rk, const keel_topic_spec *specs,
                                          size_t count, int64_t deadline_ms, char *err,
                                          size_t err_len)
{
    int delay_ms = 50;
    for (;;) {
        const char *missing = NULL;
        for (size_t i = 0; i < count && missing == NULL; i++) {
            rd_kafka_topic_t *t = rd_kafka_topic_new(rk, specs[i].name, NULL);
            const struct rd_kafka_metadata *md = NULL;
            if (t == NULL || rd_kafka_metadata(rk, 0, t, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
                md->topics[0].partition_cnt == 0) {
                missing = specs[i].name;
            } else {
                for (int p = 0; p < md->topics[0].partition_cnt; p++) {
                    if (md->topics[0].partitions[p].leader < 0 ||
                        md->topics[0].partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                        missing = specs[i].name;
                    }
                }
            }
            if (md != NULL) {
                rd_kafka_metadata_destroy(md);
            }
            if (t != NULL) {
                rd_kafka_topic_destroy(t);
            }
        }
        if (missing == NULL) {
            return KEEL_OK;
        }
        if (keel_clock_monotonic_ms() + delay_ms > deadline_ms) {
            kafka_set_err(err, err_len, "topic %s has partitions without a leader", missing);
            return KEEL_ERR_TIMEOUT;
        }
        keel_clock_sleep_ms(delay_ms);
        delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2; /* capped backoff */
    }
}

keel_result keel_kafka_ensure_topics(const char *brokers, const keel_topic_spec *specs,
                                     size_t count, int timeout_ms, char *err, size_t err_len)
{
    keel_result r = KEEL_ERR;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t **topics = NULL;
    rd_kafka_AdminOptions_t *options = NULL;
    rd_kafka_queue_t *queue = NULL;
    rd_kafka_event_t *ev = NULL;
    char errstr[512];

    if (count == 0) {
        return KEEL_OK;
    }
    if (timeout_ms <= 0) {
        timeout_ms = 30000;
    }
    const int64_t start_ms = keel_clock_monotonic_ms();
    conf = kafka_conf_base(brokers, "keel-admin", err, err_len);
    if (conf == NULL) {
        goto done;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        kafka_set_err(err, err_len, "creating a Kafka admin client for %s failed: %s", brokers,
                      errstr);
        goto done;
    }
    conf = NULL; /* rd_kafka_new took it */

    topics = calloc(count, sizeof *topics);
    if (topics == NULL) {
        kafka_set_err(err, err_len, "out of memory creating %zu topics", count);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        const keel_topic_spec *s = &specs[i];
        /* Zero or less leaves the count to the broker's defaults. */
        topics[i] = rd_kafka_NewTopic_new(s->name, s->partitions > 0 ? s->partitions : -1,
                                          s->replication_factor > 0 ? s->replication_factor : -1,
                                          errstr, sizeof errstr);
        if (topics[i] == NULL) {
            kafka_set_err(err, err_len, "topic %s: %s", s->name, errstr);
            goto done;
        }
        char value[32];
        rd_kafka_resp_err_t ce = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (s->min_insync_replicas > 0) {
            snprintf(value, sizeof value, "%d", s->min_insync_replicas);
            ce = rd_kafka_NewTopic_set_config(topics[i], "min.insync.replicas", value);
        }
        if (ce == RD_KAFKA_RESP_ERR_NO_ERROR && s->retention_ms > 0) {
            snprintf(value, sizeof value, "%" PRId64, s->retention_ms);
            ce = rd_kafka_NewTopic_set_config(topics[i], "retention.ms", value);
        }
        if (ce != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kafka_set_err(err, err_len, "topic %s: setting its configuration failed: %s", s->name,
                          rd_kafka_err2str(ce));
            goto done;
        }
    }

    options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* The request as a whole may take timeout_ms; the broker waits at most half of it for
     * the creation to complete, so its answer arrives before we give up. */
    if (rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, errstr, sizeof errstr) ||
        rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms / 2, errstr,
                                                    sizeof errstr)) {
        kafka_set_err(err, err_len, "topic creation timeout %d ms rejected: %s", timeout_ms,
                      errstr);
        goto done;
    }
    queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, count, options, queue);

    /* librdkafka answers by itself once request_timeout passed; the margin covers that. */
    ev = rd_kafka_queue_poll(queue, timeout_ms + 5000);
    if (ev == NULL) {
        kafka_set_err(err, err_len, "no answer from Kafka at %s within %d ms creating topics",
                      brokers, timeout_ms);
        r = KEEL_ERR_TIMEOUT;
        goto done;
    }
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        kafka_set_err(err, err_len, "creating topics at %s failed: %s; is the broker up?", brokers,
                      rd_kafka_event_error_string(ev));
        r = kafka_admin_result(rd_kafka_event_error(ev));
        if (r == KEEL_OK) {
            r = KEEL_ERR;
        }
        goto done;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **results = rd_kafka_CreateTopics_result_topics(res, &n);
    r = KEEL_OK;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
        const char *name = rd_kafka_topic_result_name(results[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            keel_log_info("kafka: created topic %s", name);
        } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            keel_log_debug("kafka: topic %s already exists; left as it is", name);
        } else if (r == KEEL_OK) {
            /* Report the first failure; the others are logged. */
            const char *why = rd_kafka_topic_result_error_string(results[i]);
            kafka_set_err(err, err_len, "creating topic %s failed: %s: %s", name,
                          rd_kafka_err2name(e), why != NULL ? why : rd_kafka_err2str(e));
            r = kafka_admin_result(e);
        } else {
            const char *why = rd_kafka_topic_result_error_string(results[i]);
            keel_log_error("kafka: creating topic %s failed: %s: %s", name, rd_kafka_err2name(e),
                           why != NULL ? why : rd_kafka_err2str(e));
        }
    }
    if (r == KEEL_OK) {
        r = kafka_wait_for_leaders(rk, specs, count, start_ms + timeout_ms, err, err_len);
    }

done:
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
        ev = NULL;
    }
    if (queue != NULL) {
        rd_kafka_queue_destroy(queue);
        queue = NULL;
    }
    if (options != NULL) {
        rd_kafka_AdminOptions_destroy(options);
        options = NULL;
    }
    if (topics != NULL) {
        for (size_t i = 0; i < count; i++) {
            if (topics[i] != NULL) {
                rd_kafka_NewTopic_destroy(topics[i]);
                topics[i] = NULL;
            }
        }
        free(topics);
        topics = NULL;
    }
    if (rk != NULL) {
        rd_kafka_destroy(rk);
        rk = NULL;
    }
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    return r;
}
