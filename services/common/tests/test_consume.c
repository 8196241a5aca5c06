/* End-to-end test of the consume loop against a broker in KEEL_TEST_KAFKA_BROKERS: commits,
 * in-place retries and dead letters. Shutdown is process-wide, so the loop runs once here,
 * over records that exercise every outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/consume.h"
#include "keel/id.h"
#include "keel/kafka.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"

#define TEST_DEADLINE_MS 60000
#define TEST_CONSUMER_NAME "consume-test"
#define TEST_MAX_CALLS 32

/* What the handler saw, in order. */
typedef struct handler_log {
    pthread_mutex_t lock;
    int calls;
    int64_t offsets[TEST_MAX_CALLS];
    char trace_ids[TEST_MAX_CALLS][33];
    int retry_attempts; /* calls seen for the "retry2" record */
    atomic_bool saw_last;
} handler_log;

static handler_log seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The payload says what to do: "ok", "poison", "retry2" (transient twice, then fine) or
 * "last" (poison too, and tells the test the run is complete: as the last record it shows
 * that a dead-lettered record's offset is committed, which a later commit would hide). */
static keel_handle_result test_handler(const keel_message *msg, void *ctx, char *reason,
                                       size_t reason_len)
{
    (void)ctx;
    keel_handle_result r = KEEL_HANDLE_OK;
    char body[32] = "";
    snprintf(body, sizeof body, "%.*s", (int)msg->len, (const char *)msg->payload);

    pthread_mutex_lock(&seen.lock);
    if (seen.calls < TEST_MAX_CALLS) {
        seen.offsets[seen.calls] = msg->offset;
        const char *tid = keel_log_trace_id();
        snprintf(seen.trace_ids[seen.calls], sizeof seen.trace_ids[0], "%s",
                 tid != NULL ? tid : "");
    }
    seen.calls++;
    if (strcmp(body, "poison") == 0) {
        snprintf(reason, reason_len, "amount is negative");
        r = KEEL_HANDLE_POISON;
    } else if (strcmp(body, "retry2") == 0) {
        seen.retry_attempts++;
        r = seen.retry_attempts <= 2 ? KEEL_HANDLE_RETRY : KEEL_HANDLE_OK;
    } else if (strcmp(body, "last") == 0) {
        snprintf(reason, reason_len, "the last record is poison too");
        r = KEEL_HANDLE_POISON;
        atomic_store(&seen.saw_last, true);
    }
    pthread_mutex_unlock(&seen.lock);
    return r;
}

static void *run_loop(void *arg)
{
    keel_consume_run(arg);
    return NULL;
}

static void test_name(const char *what, char *out, size_t out_len)
{
    char uuid[KEEL_UUID_STR_LEN];
    snprintf(out, out_len, "consume.test.%s.%s", what, keel_uuid7_new(uuid));
}

/* Sends body with fresh CloudEvents headers (or none) and returns its traceparent. */
static void send_record(keel_producer *p, const char *topic, const char *key, const char *body,
                        bool with_ce, keel_cloudevent *ce_out)
{
    rd_kafka_headers_t *h = NULL;
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", NULL);
    if (with_ce) {
        h = keel_cloudevent_to_headers(&ce);
    }
    char err[256] = "";
    keel_result r = keel_producer_send_wait(p, topic, key, strlen(key), body, strlen(body), h,
                                            30000, err, sizeof err);
    if (h != NULL) {
        rd_kafka_headers_destroy(h);
    }
    if (r != KEEL_OK) {
        fail_msg("producing to %s: %s", topic, err);
    }
    if (ce_out != NULL) {
        *ce_out = ce;
    }
}

static keel_consumer *new_consumer(const char *brokers, const char *group, const char *topic)
{
    const char *topics[] = {topic};
    keel_consumer_options o = {.brokers = brokers,
                               .group_id = group,
                               .client_id = "keel-test",
                               .topics = topics,
                               .topic_count = 1,
                               .session_timeout_ms = 6000};
    char err[512] = "";
    keel_consumer *c = keel_consumer_new(&o, err, sizeof err);
    if (c == NULL) {
        fail_msg("consumer: %s", err);
    }
    return c;
}

static rd_kafka_message_t *poll_one(keel_consumer *c)
{
    int64_t deadline = keel_clock_monotonic_ms() + 30000;
    while (keel_clock_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = keel_consumer_poll(c, 200);
        if (m != NULL) {
            return m;
        }
    }
    fail_msg("no record within 30 s");
    return NULL;
}

/* The last value of header name as a C string in out ("" when absent). */
static const char *header_text(const rd_kafka_message_t *m, const char *name, char *out,
                               size_t out_len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v != NULL) {
        snprintf(out, out_len, "%.*s", (int)n, (const char *)v);
    }
    return out;
}

static double counter(const char *name, const char *labels)
{
    return keel_metric_value(keel_metrics_counter(keel_metrics_default(), name, "", labels));
}

static void test_consume_loop_end_to_end(void **state)
{
    (void)state;
    const char *brokers = getenv("KEEL_TEST_KAFKA_BROKERS");
    if (brokers == NULL || brokers[0] == '\0') {
        skip();
    }
    char topic[128];
    char dlq[160];
    char group[128];
    char dlq_group[128];
    test_name("main", topic, sizeof topic);
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    test_name("group", group, sizeof group);
    test_name("dlq-group", dlq_group, sizeof dlq_group);
    keel_topic_spec specs[] = {
        {.name = topic, .partitions = 1, .replication_factor = 1},
        {.name = dlq, .partitions = 1, .replication_factor = 1},
    };
    char err[512] = "";
    if (keel_kafka_ensure_topics(brokers, specs, 2, 30000, err, sizeof err) != KEEL_OK) {
        fail_msg("creating topics: %s", err);
    }

    keel_producer_options po = {.brokers = brokers, .client_id = "keel-test"};
    keel_producer *p = keel_producer_new(&po, err, sizeof err);
    assert_non_null(p);
    keel_cloudevent ce0;
    keel_cloudevent ce1;
    send_record(p, topic, "k0", "ok", true, &ce0);     /* offset 0 */
    send_record(p, topic, "k1", "poison", true, &ce1); /* offset 1: handler rejects */
    send_record(p, topic, "k2", "retry2", true, NULL); /* offset 2: two transient failures */
    send_record(p, topic, "k3", "ok", false, NULL);    /* offset 3: no CloudEvents headers */
    send_record(p, topic, "k4", "last", true, NULL);   /* offset 4: handler rejects */

    keel_consumer *c = new_consumer(brokers, group, topic);
    keel_consume_options opts = {
        .consumer = c,
        .dlq_producer = p,
        .handler = test_handler,
        .name = TEST_CONSUMER_NAME,
        .retry = {.base_ms = 10, .cap_ms = 50},
    };
    pthread_t loop;
    assert_int_equal(pthread_create(&loop, NULL, run_loop, &opts), 0);
    int64_t deadline = keel_clock_monotonic_ms() + TEST_DEADLINE_MS;
    while (!atomic_load(&seen.saw_last) && keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(20);
    }
    keel_shutdown_request();
    assert_int_equal(pthread_join(loop, NULL), 0);
    keel_consumer_free(c);
    assert_true(atomic_load(&seen.saw_last));

    /* Every record but the one without headers reached the handler, in order; the retried
     * one three times in a row, nothing skipped or reordered. */
    const int64_t want[] = {0, 1, 2, 2, 2, 4};
    assert_int_equal(seen.calls, (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(seen.offsets[i], want[i]);
    }
    /* The record's trace id was set for logging while the handler ran. */
    char trace0[33];
    keel_traceparent_trace_id(ce0.traceparent, trace0);
    assert_string_equal(seen.trace_ids[0], trace0);

    assert_int_equal(counter("keel_consumer_messages_total",
                             "consumer=\"" TEST_CONSUMER_NAME "\",outcome=\"ok\""),
                     2);
    assert_int_equal(counter("keel_consumer_messages_total",
                             "consumer=\"" TEST_CONSUMER_NAME "\",outcome=\"retry\""),
                     2);
    assert_int_equal(counter("keel_consumer_messages_total",
                             "consumer=\"" TEST_CONSUMER_NAME "\",outcome=\"dlq\""),
                     3);
    assert_int_equal(counter("keel_consumer_retries_total", "consumer=\"" TEST_CONSUMER_NAME "\""),
                     2);

    /* The DLQ holds the poison records and the one without headers, in order, each intact
     * with its reason and origin. */
    char text[256];
    char offset_text[32];
    keel_consumer *dc = new_consumer(brokers, dlq_group, dlq);
    rd_kafka_message_t *m = poll_one(dc);
    assert_int_equal(m->key_len, 2);
    assert_memory_equal(m->key, "k1", 2);
    assert_int_equal(m->len, 6);
    assert_memory_equal(m->payload, "poison", 6);
    assert_string_equal(header_text(m, "keel_dlq_reason", text, sizeof text), "amount is negative");
    assert_string_equal(header_text(m, "keel_dlq_topic", text, sizeof text), topic);
    assert_string_equal(header_text(m, "keel_dlq_partition", text, sizeof text), "0");
    assert_string_equal(header_text(m, "keel_dlq_offset", offset_text, sizeof offset_text), "1");
    assert_int_equal(strlen(header_text(m, "keel_dlq_time", text, sizeof text)), 24);
    assert_string_equal(header_text(m, "ce_id", text, sizeof text), ce1.id);
    assert_string_equal(header_text(m, "traceparent", text, sizeof text), ce1.traceparent);
    rd_kafka_message_destroy(m);

    m = poll_one(dc);
    assert_memory_equal(m->key, "k3", 2);
    assert_string_equal(header_text(m, "keel_dlq_offset", offset_text, sizeof offset_text), "3");
    header_text(m, "keel_dlq_reason", text, sizeof text);
    assert_non_null(strstr(text, "invalid CloudEvents headers: "));
    assert_non_null(strstr(text, "ce_specversion"));
    rd_kafka_message_destroy(m);

    m = poll_one(dc);
    assert_memory_equal(m->key, "k4", 2);
    assert_string_equal(header_text(m, "keel_dlq_offset", offset_text, sizeof offset_text), "4");
    assert_string_equal(header_text(m, "keel_dlq_reason", text, sizeof text),
                        "the last record is poison too");
    rd_kafka_message_destroy(m);
    keel_consumer_free(dc);

    /* Every handled record was committed, the dead-lettered last one included: the group
     * resumes after offset 4. */
    send_record(p, topic, "k5", "after", true, NULL);
    c = new_consumer(brokers, group, topic);
    m = poll_one(c);
    assert_int_equal(m->offset, 5);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);
    keel_producer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consume_loop_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
