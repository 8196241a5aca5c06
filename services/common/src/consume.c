/* The consume loop every keel consumer runs: CloudEvents checks, the handler, in-place retries,
 * dead letters, and offset commits only after the effect (or the dead letter) is durable. */
#include "keel/consume.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"

#define CONSUME_POLL_MS 200
#define CONSUME_RETRY_BASE_MS 50
#define CONSUME_RETRY_CAP_MS 5000
/* Longer than the producer's delivery timeout (30 s by default), so a DLQ write normally ends
 * with its own delivery report rather than with our give-up. */
#define CONSUME_DLQ_WAIT_MS 60000

typedef struct consume_state {
    const keel_consume_options *opts;
    const char *name;
    keel_backoff backoff;
    keel_metric *ok;
    keel_metric *retry;
    keel_metric *dlq;
    keel_metric *retries;
} consume_state;

static void consume_metrics_init(consume_state *st)
{
    static const char messages_help[] =
        "Records handled by a consumer, by outcome: ok (applied or a duplicate), retry (a "
        "transient failure, retried in place), dlq (sent to the dead-letter topic).";
    keel_metrics *m = keel_metrics_default();
    char labels[256];
    snprintf(labels, sizeof labels, "consumer=\"%s\",outcome=\"ok\"", st->name);
    st->ok = keel_metrics_counter(m, "keel_consumer_messages_total", messages_help, labels);
    snprintf(labels, sizeof labels, "consumer=\"%s\",outcome=\"retry\"", st->name);
    st->retry = keel_metrics_counter(m, "keel_consumer_messages_total", messages_help, labels);
    snprintf(labels, sizeof labels, "consumer=\"%s\",outcome=\"dlq\"", st->name);
    st->dlq = keel_metrics_counter(m, "keel_consumer_messages_total", messages_help, labels);
    snprintf(labels, sizeof labels, "consumer=\"%s\"", st->name);
    st->retries = keel_metrics_counter(
        m, "keel_consumer_retries_total",
        "Handler attempts that failed transiently and were retried after a backoff.", labels);
}

/* Replaces header name with a single value, so a record replayed from a DLQ and dead-lettered
 * again carries only the latest reason and origin. */
static void consume_header_set(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_remove(h, name);
    rd_kafka_header_add(h, name, -1, value, -1);
}

/* Writes raw to <topic>.dlq and waits for the broker's acknowledgement, retrying with backoff
 * while the broker is away, then commits raw's offset. Returns false if a shutdown came
 * first: raw is then left uncommitted and will be handled again after the restart. */
static bool consume_dead_letter(consume_state *st, const rd_kafka_message_t *raw,
                                const char *reason)
{
    bool finished = false;
    const char *topic = rd_kafka_topic_name(raw->rkt);
    char dlq_topic[512];
    char number[32];
    char now[KEEL_RFC3339_LEN];
    char err[512];
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *headers = NULL;

    snprintf(dlq_topic, sizeof dlq_topic, "%s.dlq", topic);
    if (rd_kafka_message_headers(raw, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig != NULL) {
        headers = rd_kafka_headers_copy(orig);
    } else {
        headers = rd_kafka_headers_new(5);
    }
    consume_header_set(headers, "keel_dlq_reason", reason);
    consume_header_set(headers, "keel_dlq_topic", topic);
    snprintf(number, sizeof number, "%" PRId32, raw->partition);
    consume_header_set(headers, "keel_dlq_partition", number);
    snprintf(number, sizeof number, "%" PRId64, raw->offset);
    consume_header_set(headers, "keel_dlq_offset", number);
    consume_header_set(headers, "keel_dlq_time",
                       keel_clock_format_rfc3339(keel_clock_now_ms(), now));

    keel_log_warn("consumer %s: %s[%" PRId32 "] offset %" PRId64 " goes to %s: %s", st->name, topic,
                  raw->partition, raw->offset, dlq_topic, reason);
    for (int attempt = 0;; attempt++) {
        keel_result r = keel_producer_send_wait(st->opts->dlq_producer, dlq_topic, raw->key,
                                                raw->key_len, raw->payload, raw->len, headers,
                                                CONSUME_DLQ_WAIT_MS, err, sizeof err);
        if (r == KEEL_OK) {
            break;
        }
        /* Never commit past a record whose dead letter is not stored: it would be lost. */
        int64_t delay = keel_backoff_delay_ms(&st->backoff, attempt, NULL);
        keel_log_error("consumer %s: writing %s[%" PRId32 "] offset %" PRId64
                       " to %s failed (attempt %d): %s; retrying in %" PRId64
                       " ms (does the topic exist? keelctl topics ensure creates it)",
                       st->name, topic, raw->partition, raw->offset, dlq_topic, attempt + 1, err,
                       delay);
        if (keel_shutdown_wait_ms(delay)) {
            goto done;
        }
    }
    keel_metric_inc(st->dlq);
    keel_consumer_commit(st->opts->consumer, raw);
    finished = true;

done:
    if (headers != NULL) {
        rd_kafka_headers_destroy(headers);
        headers = NULL;
    }
    return finished;
}

/* Handles one record to the end: committed after OK or a dead letter. Returns false when a
 * shutdown interrupted it, leaving the record uncommitted. */
static bool consume_one(consume_state *st, const rd_kafka_message_t *raw)
{
    bool finished = false;
    char reason[512];
    char ce_err[256];
    char trace_id[33];
    rd_kafka_headers_t *headers = NULL;
    keel_message msg;

    memset(&msg, 0, sizeof msg);
    msg.topic = rd_kafka_topic_name(raw->rkt);
    msg.partition = raw->partition;
    msg.offset = raw->offset;
    msg.key = raw->key;
    msg.key_len = raw->key_len;
    msg.payload = raw->payload;
    msg.len = raw->len;
    msg.raw = raw;

    if (rd_kafka_message_headers(raw, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        headers = NULL;
    }
    if (keel_cloudevent_from_headers(headers, &msg.ce, ce_err, sizeof ce_err) != KEEL_OK) {
        snprintf(reason, sizeof reason, "invalid CloudEvents headers: %s", ce_err);
        return consume_dead_letter(st, raw, reason);
    }

    keel_traceparent_trace_id(msg.ce.traceparent, trace_id);
    keel_log_set_trace_id(trace_id[0] != '\0' ? trace_id : NULL);
    for (int attempt = 0;; attempt++) {
        reason[0] = '\0';
        keel_handle_result hr = st->opts->handler(&msg, st->opts->ctx, reason, sizeof reason);
        reason[sizeof reason - 1] = '\0';
        if (hr == KEEL_HANDLE_OK) {
            keel_metric_inc(st->ok);
            keel_consumer_commit(st->opts->consumer, raw);
            finished = true;
            break;
        }
        if (hr == KEEL_HANDLE_POISON) {
            if (reason[0] == '\0') {
                snprintf(reason, sizeof reason, "rejected by the %s handler without a reason",
                         st->name);
            }
            finished = consume_dead_letter(st, raw, reason);
            break;
        }
        /* RETRY: the same record again, so the partition keeps its order. While we wait the
         * consumer is not polled; past max.poll.interval.ms the group moves the partition on
         * and our later commit fails, so the record is handled again there and the inbox
         * absorbs the duplicate. */
        keel_metric_inc(st->retry);
        keel_metric_inc(st->retries);
        int64_t delay = keel_backoff_delay_ms(&st->backoff, attempt, NULL);
        keel_log_warn("consumer %s: %s[%" PRId32 "] offset %" PRId64 " (event %s) failed "
                      "transiently (attempt %d)%s%s; retrying in %" PRId64 " ms",
                      st->name, msg.topic, msg.partition, msg.offset, msg.ce.id, attempt + 1,
                      reason[0] != '\0' ? ": " : "", reason, delay);
        if (keel_shutdown_wait_ms(delay)) {
            keel_log_info("consumer %s: stopping with %s[%" PRId32 "] offset %" PRId64
                          " uncommitted; it will be handled again after the restart",
                          st->name, msg.topic, msg.partition, msg.offset);
            break;
        }
    }
    keel_log_set_trace_id(NULL);
    return finished;
}

int keel_consume_run(const keel_consume_options *opts)
{
    consume_state st;
    memset(&st, 0, sizeof st);
    st.opts = opts;
    st.name = opts->name != NULL ? opts->name : "consumer";
    if (opts->consumer == NULL || opts->dlq_producer == NULL || opts->handler == NULL) {
        keel_log_error("consumer %s: needs a consumer, a DLQ producer and a handler", st.name);
        return -1;
    }
    /* Retries of one record never end by count (a transient fault is not poison); only the
     * delay is capped. */
    st.backoff.base_ms = opts->retry.base_ms > 0 ? opts->retry.base_ms : CONSUME_RETRY_BASE_MS;
    st.backoff.cap_ms = opts->retry.cap_ms > 0 ? opts->retry.cap_ms : CONSUME_RETRY_CAP_MS;
    st.backoff.max_attempts = 0;
    consume_metrics_init(&st);

    keel_log_info("consumer %s: started", st.name);
    while (!keel_shutdown_requested()) {
        rd_kafka_message_t *raw = keel_consumer_poll(opts->consumer, CONSUME_POLL_MS);
        /* Serves the DLQ producer's error and log events between records. */
        keel_producer_poll(opts->dlq_producer, 0);
        if (raw == NULL) {
            continue;
        }
        bool finished = consume_one(&st, raw);
        rd_kafka_message_destroy(raw);
        raw = NULL;
        if (!finished) {
            break;
        }
    }
    keel_log_info("consumer %s: stopped", st.name);
    return 0;
}
