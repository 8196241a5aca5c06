/* Test of keel/consume_thread.h against a broker in KEEL_TEST_KAFKA_BROKERS (skipped when
 * unset): the thread consumes a record through the handler, a poison record reaches
 * <topic>.dlq, and stop after a shutdown request ends it. Shutdown is process-wide, so this
 * file runs one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/consume_thread.h"
#include "keel/id.h"
#include "keel/kafka.h"
#include "keel/log.h"
#include "keel/shutdown.h"

static atomic_int handled;
static atomic_int poisoned;

static keel_handle_result handler(const keel_message *msg, void *ctx, char *reason,
                                  size_t reason_len)
{
    int *marker = ctx;
    assert_int_equal(*marker, 42); /* ctx is handed through */
    if (msg->len == 6 && memcmp(msg->payload, "poison", 6) == 0) {
        snprintf(reason, reason_len, "the test says so");
        atomic_fetch_add(&poisoned, 1);
        return KEEL_HANDLE_POISON;
    }
    atomic_fetch_add(&handled, 1);
    return KEEL_HANDLE_OK;
}

static void send_one(keel_producer *p, const char *topic, const char *body)
{
    keel_cloudevent ce;
    char err[256] = "";
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", NULL);
    rd_kafka_headers_t *h = keel_cloudevent_to_headers(&ce);
    keel_result r =
        keel_producer_send_wait(p, topic, "k", 1, body, strlen(body), h, 30000, err, sizeof err);
    rd_kafka_headers_destroy(h);
    if (r != KEEL_OK) {
        fail_msg("producing to %s: %s", topic, err);
    }
}

static void wait_for(atomic_int *counter, int want)
{
    int64_t deadline = keel_clock_monotonic_ms() + 60000;
    while (atomic_load(counter) < want && keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(50);
    }
    assert_int_equal(atomic_load(counter), want);
}

static void test_consume_thread(void **state)
{
    (void)state;
    const char *brokers = getenv("KEEL_TEST_KAFKA_BROKERS");
    if (brokers == NULL || brokers[0] == '\0') {
        skip();
    }
    char uuid[KEEL_UUID_STR_LEN];
    char topic[96], dlq[112], group[96], dlq_group[112], err[512] = "";
    snprintf(topic, sizeof topic, "consume_thread.test.%s", keel_uuid7_new(uuid));
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    snprintf(group, sizeof group, "consume_thread.group.%s", keel_uuid7_new(uuid));
    snprintf(dlq_group, sizeof dlq_group, "%s.dlq", group);
    keel_topic_spec specs[] = {{.name = topic, .partitions = 1, .replication_factor = 1},
                               {.name = dlq, .partitions = 1, .replication_factor = 1}};
    if (keel_kafka_ensure_topics(brokers, specs, 2, 30000, err, sizeof err) != KEEL_OK) {
        fail_msg("creating topics: %s", err);
    }
    keel_producer_options po = {.brokers = brokers, .client_id = "keel-test"};
    keel_producer *p = keel_producer_new(&po, err, sizeof err);
    assert_non_null(p);
    send_one(p, topic, "hello");
    send_one(p, topic, "poison");

    int marker = 42;
    keel_consume_thread_options opts = {.brokers = brokers,
                                        .group_id = group,
                                        .client_id = "keel-test",
                                        .topic = topic,
                                        .name = "consume-thread-test",
                                        .handler = handler,
                                        .ctx = &marker};
    keel_consume_thread *t = keel_consume_thread_start(&opts, err, sizeof err);
    if (t == NULL) {
        fail_msg("start: %s", err);
    }
    wait_for(&handled, 1);
    wait_for(&poisoned, 1);
    keel_producer_free(p);

    /* The poison record went to the DLQ through the thread's own producer. */
    const char *topics[] = {dlq};
    keel_consumer_options co = {.brokers = brokers,
                                .group_id = dlq_group,
                                .client_id = "keel-test-dlq",
                                .topics = topics,
                                .topic_count = 1};
    keel_consumer *c = keel_consumer_new(&co, err, sizeof err);
    assert_non_null(c);
    rd_kafka_message_t *m = NULL;
    int64_t deadline = keel_clock_monotonic_ms() + 30000;
    while (m == NULL && keel_clock_monotonic_ms() < deadline) {
        m = keel_consumer_poll(c, 200);
    }
    assert_non_null(m);
    assert_int_equal(m->len, 6);
    assert_memory_equal(m->payload, "poison", 6);
    rd_kafka_message_destroy(m);
    keel_consumer_free(c);

    int64_t t0 = keel_clock_monotonic_ms();
    keel_shutdown_request();
    keel_consume_thread_stop(t);
    assert_true(keel_clock_monotonic_ms() - t0 < 15000);
    keel_consume_thread_stop(NULL);
}

int main(void)
{
    keel_log_init("test_consume_thread", KEEL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consume_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
