/* bench-kafka-produce: the yardstick for the outbox relay. A bare librdkafka producer with the
 * relay's own settings sends N messages of the relay's size, keys and headers to one topic. */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_msg.h"
#include "bench_util.h"
#include "keel/cloudevents.h"
#include "keel/kafka.h"
#include "keel/log.h"

#define KP_MAX_MESSAGES 5000000

static const char usage_text[] =
    "usage: bench-kafka-produce --brokers B --topic T [--messages N] [--partitions P]\n"
    "                           [--ensure-only]\n"
    "Creates topic T with P partitions when it does not exist (default 3), then sends N\n"
    "messages (default 10000) the way keel's outbox relay does: libkeel's producer settings\n"
    "(enable.idempotence=true, acks=all, linger.ms=5, bounded queue, a full queue is\n"
    "back-pressure), key = a payment id, value = a packed PaymentRequested, CloudEvents\n"
    "headers built per message. Times the first send to the last delivery report.\n"
    "--ensure-only creates the topic and sends nothing. Brokers must be on loopback.\n"
    "Prints one line of key=value results on stdout.\n";

typedef struct kp_state {
    uint64_t acked;
    uint64_t failed;
} kp_state;

static void kp_on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    kp_state *st = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->acked++;
    } else {
        st->failed++;
    }
}

/* Queues message i as the relay queues an outbox row: fresh CloudEvents headers, the
 * payment id as key, a full local queue answered by serving delivery reports. */
static bool kp_send(keel_producer *p, const char *topic, uint64_t i, const uint8_t *payload,
                    size_t payload_len, kp_state *st)
{
    char key[BENCH_MSG_KEY_LEN];
    keel_cloudevent ce;
    keel_result r = KEEL_ERR;

    bench_msg_key(i, key);
    keel_cloudevent_init(&ce, "/keel/gateway", "keel.v1.PaymentRequested", NULL);
    rd_kafka_headers_t *headers = keel_cloudevent_to_headers(&ce);
    if (headers == NULL) {
        fprintf(stderr, "bench-kafka-produce: out of memory building headers\n");
        return false;
    }
    /* Bounded: at 100 ms a try, a queue that stays full for ten minutes is a broken broker. */
    for (int tries = 0; tries < 6000; tries++) {
        r = keel_producer_send(p, topic, key, strlen(key), payload, payload_len, headers, st);
        if (r != KEEL_ERR_FULL) {
            break;
        }
        keel_producer_poll(p, 100);
    }
    if (r != KEEL_OK) {
        rd_kafka_headers_destroy(headers);
        fprintf(stderr, "bench-kafka-produce: queueing message %llu failed (%s)\n",
                (unsigned long long)i, keel_result_name(r));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"messages", required_argument, NULL, 'n'},
        {"partitions", required_argument, NULL, 'p'},
        {"ensure-only", no_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *brokers = NULL;
    const char *topic = NULL;
    int64_t messages = 10000;
    int64_t partitions = 3;
    bool ensure_only = false;
    char err[512];
    kp_state st = {0, 0};
    keel_producer *p = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    int exit_code = 1;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'b':
            brokers = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'n':
            ok = bench_parse_i64(optarg, 1, KP_MAX_MESSAGES, &messages);
            break;
        case 'p':
            ok = bench_parse_i64(optarg, 1, 999, &partitions);
            break;
        case 'E':
            ensure_only = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "bench-kafka-produce: bad value for %s\n%s", argv[optind - 1],
                    usage_text);
            return 2;
        }
    }
    if (brokers == NULL || topic == NULL || optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!bench_brokers_are_loopback(brokers, err, sizeof(err))) {
        fprintf(stderr, "bench-kafka-produce: %s\n", err);
        return 2;
    }
    keel_log_init("bench-kafka-produce", KEEL_LOG_WARN);

    keel_topic_spec spec = {.name = topic, .partitions = (int)partitions, .replication_factor = 1};
    if (keel_kafka_ensure_topics(brokers, &spec, 1, 30000, err, sizeof(err)) != KEEL_OK) {
        fprintf(stderr, "bench-kafka-produce: cannot create topic %s: %s\n", topic, err);
        goto done;
    }
    if (ensure_only) {
        exit_code = 0;
        goto done;
    }
    payload = bench_msg_payload(&payload_len);
    /* The relay's producer: libkeel's settings, only the client id differs. */
    keel_producer_options po = {
        .brokers = brokers,
        .client_id = "bench-bare-producer",
        .on_delivery = kp_on_delivery,
    };
    p = keel_producer_new(&po, err, sizeof(err));
    if (payload == NULL || p == NULL) {
        fprintf(stderr, "bench-kafka-produce: cannot create the producer: %s\n",
                p == NULL ? err : "out of memory");
        goto done;
    }
    /* One message first, outside the clock: connecting and fetching metadata is start-up,
     * which the relay (already running) does not pay during its drain either. */
    if (!kp_send(p, topic, 0, payload, payload_len, &st) ||
        keel_producer_flush(p, 30000) != KEEL_OK || st.acked != 1) {
        fprintf(stderr,
                "bench-kafka-produce: the first message was not acknowledged within 30 s "
                "(is topic %s reachable on %s?)\n",
                topic, brokers);
        goto done;
    }
    st.acked = 0;
    int64_t start = bench_now_ns();
    for (int64_t i = 1; i <= messages; i++) {
        if (!kp_send(p, topic, (uint64_t)i, payload, payload_len, &st)) {
            goto done;
        }
    }
    if (keel_producer_flush(p, 120000) != KEEL_OK) {
        fprintf(stderr, "bench-kafka-produce: delivery reports still missing after 120 s\n");
        goto done;
    }
    double secs = (double)(bench_now_ns() - start) / 1e9;
    printf("messages=%lld acked=%llu failed=%llu payload_bytes=%zu seconds=%.3f msgs_per_s=%.1f "
           "mb_per_s=%.2f\n",
           (long long)messages, (unsigned long long)st.acked, (unsigned long long)st.failed,
           payload_len, secs, secs > 0 ? (double)st.acked / secs : 0.0,
           secs > 0 ? (double)st.acked * (double)payload_len / secs / 1e6 : 0.0);
    exit_code = st.failed == 0 ? 0 : 1;
done:
    keel_producer_free(p);
    p = NULL;
    free(payload);
    payload = NULL;
    return exit_code;
}
