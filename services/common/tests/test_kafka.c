/* Tests of the Kafka producer, consumer and topic creation; most need a broker in
 * KEEL_TEST_KAFKA_BROKERS and skip without one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/id.h"
#include "keel/kafka.h"

#define TEST_POLL_DEADLINE_MS 30000
#define TEST_UNREACHABLE "127.0.0.1:1"

static const char *test_brokers(void)
{
    const char *b = getenv("KEEL_TEST_KAFKA_BROKERS");
    return b != NULL && b[0] != '\0' ? b : NULL;
}

/* A fresh topic (and group) name per test, so runs never see each other's records. */
static void test_name(const char *what, char *out, size_t out_len)
{
    char uuid[KEEL_UUID_STR_LEN];
    snprintf(out, out_len, "kafka.test.%s.%s", what, keel_uuid7_new(uuid));
}

static void create_topic(const char *brokers, const char *topic, int partitions)
{
    keel_topic_spec spec = {.name = topic, .partitions = partitions, .replication_factor = 1};
    char err[512] = "";
    keel_result r = keel_kafka_ensure_topics(brokers, &spec, 1, 30000, err, sizeof err);
    if (r != KEEL_OK) {
        fail_msg("creating %s: %s", topic, err);
    }
}

/* Records what on_delivery saw. */
typedef struct delivery_log {
    int count;
    rd_kafka_resp_err_t err[16];
    int64_t offset[16];
    void *opaque[16];
} delivery_log;

static delivery_log deliveries;

static void record_delivery(void *msg_opaque, rd_kafka_resp_err_t err, int32_t partition,
                            int64_t offset)
{
    (void)partition;
    if (deliveries.count < 16) {
        deliveries.err[deliveries.count] = err;
        deliveries.offset[deliveries.count] = offset;
        deliveries.opaque[deliveries.count] = msg_opaque;
    }
    deliveries.count++;
}

static keel_producer *new_producer(const char *brokers)
{
    keel_producer_options o = {
        .brokers = brokers, .client_id = "keel-test", .on_delivery = record_delivery};
    char err[512] = "";
    keel_producer *p = keel_producer_new(&o, err, sizeof err);
    if (p == NULL) {
        fail_msg("producer: %s", err);
    }
    return p;
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

/* The next record, waiting through the group join; fails the test on a long silence. */
static rd_kafka_message_t *poll_one(keel_consumer *c)
{
    int64_t deadline = keel_clock_monotonic_ms() + TEST_POLL_DEADLINE_MS;
    while (keel_clock_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = keel_consumer_poll(c, 200);
        if (m != NULL) {
            return m;
        }
    }
    fail_msg("no record within %d ms", TEST_POLL_DEADLINE_MS);
    return NULL;
}

static void produce_text(keel_producer *p, const char *topic, const char *key, const char *text)
{
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", NULL);
    rd_kafka_headers_t *h = keel_cloudevent_to_headers(&ce);
    keel_result r = keel_producer_send(p, topic, key, strlen(key), text, strlen(text), h, NULL);
    assert_int_equal(r, KEEL_OK);
}

static void test_produce_consume_with_headers(void **state)
{
    (void)state;
    const char *brokers = test_brokers();
    if (brokers == NULL) {
        skip();
    }
    char topic[128];
    char group[128];
    test_name("headers", topic, sizeof topic);
    test_name("headers-group", group, sizeof group);
    create_topic(brokers, topic, 1);

    memset(&deliveries, 0, sizeof deliveries);
    keel_producer *p = new_producer(brokers);
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.PaymentRequested", NULL);
    rd_kafka_headers_t *h = keel_cloudevent_to_headers(&ce);
    const char payload[] = "\x08\x01\x12\x00payload";
    int marker = 42;
    assert_int_equal(keel_producer_send(p, topic, "pay_1", 5, payload, sizeof payload, h, &marker),
                     KEEL_OK);
    assert_int_equal(keel_producer_flush(p, 30000), KEEL_OK);
    assert_int_equal(deliveries.count, 1);
    assert_int_equal(deliveries.err[0], RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(deliveries.offset[0], 0);
    assert_ptr_equal(deliveries.opaque[0], &marker);

    keel_consumer *c = new_consumer(brokers, group, topic);
    rd_kafka_message_t *m = poll_one(c);
    assert_int_equal(m->offset, 0);
    assert_int_equal(m->key_len, 5);
    assert_memory_equal(m->key, "pay_1", 5);
    assert_int_equal(m->len, sizeof payload);
    assert_memory_equal(m->payload, payload, sizeof payload);

    rd_kafka_headers_t *got = NULL;
    assert_int_equal(rd_kafka_message_headers(m, &got), RD_KAFKA_RESP_ERR_NO_ERROR);
    keel_cloudevent back;
    char err[256] = "";
    assert_int_equal(keel_cloudevent_from_headers(got, &back, err, sizeof err), KEEL_OK);
    assert_string_equal(back.id, ce.id);
    assert_string_equal(back.source, ce.source);
    assert_string_equal(back.type, ce.type);
    assert_string_equal(back.time, ce.time);
    assert_string_equal(back.traceparent, ce.traceparent);
    const void *ct = NULL;
    size_t ct_len = 0;
    assert_int_equal(rd_kafka_header_get_last(got, "content-type", &ct, &ct_len),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(ct_len, strlen("application/protobuf"));
    assert_memory_equal(ct, "application/protobuf", ct_len);
    assert_int_equal(keel_consumer_commit(c, m), KEEL_OK);
    rd_kafka_message_destroy(m);

    keel_consumer_free(c);
    keel_producer_free(p);
}

static void test_uncommitted_is_redelivered(void **state)
{
    (void)state;
    const char *brokers = test_brokers();
    if (brokers == NULL) {
        skip();
    }
    char topic[128];
    char group[128];
    test_name("commit", topic, sizeof topic);
    test_name("commit-group", group, sizeof group);
    create_topic(brokers, topic, 1);

    keel_producer *p = new_producer(brokers);
    produce_text(p, topic, "k", "zero");
    produce_text(p, topic, "k", "one");
    produce_text(p, topic, "k", "two");
    assert_int_equal(keel_producer_flush(p, 30000), KEEL_OK);

    /* The first consumer finishes record 0, reads record 1 but never commits it. */
    keel_consumer *c = new_consumer(brokers, group, topic);
    rd_kafka_message_t *m = poll_one(c);
    assert_int_equal(m->offset, 0);
    assert_int_equal(keel_consumer_commit(c, m), KEEL_OK);
    rd_kafka_message_destroy(m);
    m = poll_one(c);
    assert_int_equal(m->offset, 1);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);

    /* A new member of the group starts at the record that was not committed. */
    c = new_consumer(brokers, group, topic);
    m = poll_one(c);
    assert_int_equal(m->offset, 1);
    assert_int_equal(m->len, 3);
    assert_memory_equal(m->payload, "one", 3);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);
    keel_producer_free(p);
}

static void test_seek_back_redelivers(void **state)
{
    (void)state;
    const char *brokers = test_brokers();
    if (brokers == NULL) {
        skip();
    }
    char topic[128];
    char group[128];
    test_name("seek", topic, sizeof topic);
    test_name("seek-group", group, sizeof group);
    create_topic(brokers, topic, 1);

    keel_producer *p = new_producer(brokers);
    produce_text(p, topic, "k", "zero");
    produce_text(p, topic, "k", "one");
    assert_int_equal(keel_producer_flush(p, 30000), KEEL_OK);

    keel_consumer *c = new_consumer(brokers, group, topic);
    rd_kafka_message_t *m = poll_one(c);
    assert_int_equal(m->offset, 0);
    assert_int_equal(keel_consumer_seek_back(c, m), KEEL_OK);
    rd_kafka_message_destroy(m);
    /* Record 1 may already have been fetched; the seek discards it and starts over at 0. */
    m = poll_one(c);
    assert_int_equal(m->offset, 0);
    rd_kafka_message_destroy(m);
    m = poll_one(c);
    assert_int_equal(m->offset, 1);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);
    keel_producer_free(p);
}

static void test_send_wait_acknowledged(void **state)
{
    (void)state;
    const char *brokers = test_brokers();
    if (brokers == NULL) {
        skip();
    }
    char topic[128];
    char group[128];
    test_name("wait", topic, sizeof topic);
    test_name("wait-group", group, sizeof group);
    create_topic(brokers, topic, 1);

    memset(&deliveries, 0, sizeof deliveries);
    keel_producer *p = new_producer(brokers);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "x-test", -1, "kept", -1);
    char err[512] = "";
    assert_int_equal(
        keel_producer_send_wait(p, topic, "k", 1, "hello", 5, h, 30000, err, sizeof err), KEEL_OK);
    /* The caller's headers stay the caller's, and on_delivery does not see the message. */
    assert_int_equal(rd_kafka_header_cnt(h), 1);
    rd_kafka_headers_destroy(h);
    assert_int_equal(deliveries.count, 0);

    keel_consumer *c = new_consumer(brokers, group, topic);
    rd_kafka_message_t *m = poll_one(c);
    assert_int_equal(m->len, 5);
    assert_memory_equal(m->payload, "hello", 5);
    rd_kafka_headers_t *got = NULL;
    assert_int_equal(rd_kafka_message_headers(m, &got), RD_KAFKA_RESP_ERR_NO_ERROR);
    const void *v = NULL;
    size_t n = 0;
    assert_int_equal(rd_kafka_header_get_last(got, "x-test", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(n, 4);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);
    keel_producer_free(p);
}

static void test_ensure_topics(void **state)
{
    (void)state;
    const char *brokers = test_brokers();
    if (brokers == NULL) {
        skip();
    }
    char a[128];
    char b[128];
    test_name("ensure-a", a, sizeof a);
    test_name("ensure-b", b, sizeof b);
    keel_topic_spec specs[] = {
        {.name = a,
         .partitions = 2,
         .replication_factor = 1,
         .min_insync_replicas = 1,
         .retention_ms = 3600000},
        {.name = b, .partitions = 1, .replication_factor = 1},
    };
    char err[512] = "";
    assert_int_equal(keel_kafka_ensure_topics(brokers, specs, 2, 30000, err, sizeof err), KEEL_OK);
    /* Existing topics are fine, even when asked with another layout. */
    specs[0].partitions = 5;
    assert_int_equal(keel_kafka_ensure_topics(brokers, specs, 2, 30000, err, sizeof err), KEEL_OK);

    keel_producer *p = new_producer(brokers);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(keel_producer_handle(p), a, NULL);
    const struct rd_kafka_metadata *md = NULL;
    assert_int_equal(rd_kafka_metadata(keel_producer_handle(p), 0, rkt, &md, 10000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topics[0].partition_cnt, 2);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    keel_producer_free(p);

    /* A layout the cluster cannot hold is a permanent error with the broker's reason. */
    char c[128];
    test_name("ensure-c", c, sizeof c);
    keel_topic_spec bad = {.name = c, .partitions = 1, .replication_factor = 100};
    err[0] = '\0';
    assert_int_equal(keel_kafka_ensure_topics(brokers, &bad, 1, 30000, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, c));
}

/* The rest need no broker: they check behaviour when none answers. */

static void test_full_queue_is_back_pressure(void **state)
{
    (void)state;
    memset(&deliveries, 0, sizeof deliveries);
    keel_producer_options o = {.brokers = TEST_UNREACHABLE,
                               .client_id = "keel-test-full",
                               .queue_max_messages = 1,
                               .message_timeout_ms = 1000,
                               .on_delivery = record_delivery};
    char err[512] = "";
    keel_producer *p = keel_producer_new(&o, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(keel_producer_send(p, "kafka.test.full", "k", 1, "a", 1, NULL, NULL), KEEL_OK);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "x", -1, "y", -1);
    assert_int_equal(keel_producer_send(p, "kafka.test.full", "k", 1, "b", 1, h, NULL),
                     KEEL_ERR_FULL);
    /* Not queued: the headers are still ours to free. */
    rd_kafka_headers_destroy(h);

    /* The queued message fails by its delivery timeout and is reported, never dropped. */
    int64_t deadline = keel_clock_monotonic_ms() + 15000;
    while (deliveries.count == 0 && keel_clock_monotonic_ms() < deadline) {
        keel_producer_poll(p, 100);
    }
    assert_int_equal(deliveries.count, 1);
    assert_int_not_equal(deliveries.err[0], RD_KAFKA_RESP_ERR_NO_ERROR);
    keel_producer_free(p);
}

static void test_send_wait_without_broker(void **state)
{
    (void)state;
    keel_producer_options o = {
        .brokers = TEST_UNREACHABLE, .client_id = "keel-test-wait", .message_timeout_ms = 1000};
    char err[512] = "";
    keel_producer *p = keel_producer_new(&o, err, sizeof err);
    assert_non_null(p);
    int64_t start = keel_clock_monotonic_ms();
    err[0] = '\0';
    keel_result r =
        keel_producer_send_wait(p, "kafka.test.wait", "k", 1, "a", 1, NULL, 10000, err, sizeof err);
    assert_int_not_equal(r, KEEL_OK);
    assert_true(keel_clock_monotonic_ms() - start < 9000);
    assert_non_null(strstr(err, "kafka.test.wait"));

    /* Giving up before the report arrives is a timeout, and the late report is harmless. */
    r = keel_producer_send_wait(p, "kafka.test.wait", "k", 1, "b", 1, NULL, 100, err, sizeof err);
    assert_int_equal(r, KEEL_ERR_TIMEOUT);
    keel_producer_free(p);
}

static void test_ensure_topics_without_broker(void **state)
{
    (void)state;
    keel_topic_spec spec = {
        .name = "kafka.test.nobroker", .partitions = 1, .replication_factor = 1};
    char err[512] = "";
    int64_t start = keel_clock_monotonic_ms();
    keel_result r = keel_kafka_ensure_topics(TEST_UNREACHABLE, &spec, 1, 2000, err, sizeof err);
    assert_int_not_equal(r, KEEL_OK);
    assert_true(keel_clock_monotonic_ms() - start < 10000);
    assert_true(strlen(err) > 0);

    assert_int_equal(keel_kafka_ensure_topics(NULL, &spec, 1, 2000, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "KEEL_KAFKA_BROKERS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_consume_with_headers),
        cmocka_unit_test(test_uncommitted_is_redelivered),
        cmocka_unit_test(test_seek_back_redelivers),
        cmocka_unit_test(test_send_wait_acknowledged),
        cmocka_unit_test(test_ensure_topics),
        cmocka_unit_test(test_full_queue_is_back_pressure),
        cmocka_unit_test(test_send_wait_without_broker),
        cmocka_unit_test(test_ensure_topics_without_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
