/* keelctl topics: creates keel's Kafka topics (each with its .dlq twin) and lists the
 * cluster's topics. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "keel/kafka.h"
#include "keel/log.h"

#define TOPICS_TIMEOUT_MS 30000
#define TOPICS_DEFAULT_PARTITIONS 3
#define TOPICS_DEFAULT_REPLICATION 1

/* The event topics of keel; every one gets a "<name>.dlq" twin for poison records. */
static const char *const topics_keel[] = {
    "keel.payment-requests.v1",
    "keel.payment-events.v1",
    "keel.merchant-events.v1",
};
#define TOPICS_KEEL_COUNT (sizeof topics_keel / sizeof topics_keel[0])

static void topics_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl topics ensure [--brokers B] [--partitions N] "
            "[--replication-factor R] [--min-insync-replicas M]\n"
            "       keelctl topics list [--brokers B]\n"
            "\n"
            "ensure  creates each missing topic of keel and its .dlq twin; existing topics are\n"
            "        left as they are:\n");
    for (size_t i = 0; i < TOPICS_KEEL_COUNT; i++) {
        fprintf(out, "          %s, %s.dlq\n", topics_keel[i], topics_keel[i]);
    }
    fprintf(out,
            "list    prints every topic with its partition and replica counts\n"
            "\n"
            "  --brokers B               default KEEL_KAFKA_BROKERS\n"
            "  --partitions N            default KEEL_TOPIC_PARTITIONS, else %d\n"
            "  --replication-factor R    default %d\n"
            "  --min-insync-replicas M   default: the broker's setting\n",
            TOPICS_DEFAULT_PARTITIONS, TOPICS_DEFAULT_REPLICATION);
}

/* Parses a positive int; false for anything else, including trailing text. */
static bool topics_parse_positive(const char *text, int *out)
{
    if (text == NULL || text[0] == '\0') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0 || v > INT_MAX) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* Matches "--name value" and "--name=value" at argv[*i]; advances *i past the value. Sets
 * *missing when the option is last without a value. */
static bool topics_option(int argc, char **argv, int *i, const char *name, const char **value,
                          bool *missing)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) {
        return false;
    }
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0') {
        return false;
    }
    if (*i + 1 >= argc) {
        *missing = true;
        return true;
    }
    *i += 1;
    *value = argv[*i];
    return true;
}

typedef struct topics_args {
    const char *brokers;
    int partitions;
    int replication_factor;
    int min_insync_replicas;
} topics_args;

/* Reads the options after the command; returns 0 or 2 (usage error, already explained). */
static int topics_parse_args(int argc, char **argv, bool allow_layout, topics_args *a)
{
    a->brokers = getenv("KEEL_KAFKA_BROKERS");
    a->partitions = TOPICS_DEFAULT_PARTITIONS;
    a->replication_factor = TOPICS_DEFAULT_REPLICATION;
    a->min_insync_replicas = 0;
    const char *env_partitions = getenv("KEEL_TOPIC_PARTITIONS");
    if (env_partitions != NULL && env_partitions[0] != '\0' &&
        !topics_parse_positive(env_partitions, &a->partitions)) {
        fprintf(stderr, "keelctl topics: KEEL_TOPIC_PARTITIONS=%s is not a positive number\n",
                env_partitions);
        return 2;
    }

    for (int i = 2; i < argc; i++) {
        const char *value = NULL;
        bool missing = false;
        int *target = NULL;
        const char *option = argv[i];
        if (topics_option(argc, argv, &i, "--brokers", &value, &missing)) {
            if (!missing) {
                a->brokers = value;
            }
        } else if (allow_layout &&
                   topics_option(argc, argv, &i, "--partitions", &value, &missing)) {
            target = &a->partitions;
        } else if (allow_layout &&
                   topics_option(argc, argv, &i, "--replication-factor", &value, &missing)) {
            target = &a->replication_factor;
        } else if (allow_layout &&
                   topics_option(argc, argv, &i, "--min-insync-replicas", &value, &missing)) {
            target = &a->min_insync_replicas;
        } else {
            fprintf(stderr, "keelctl topics %s: unknown option '%s'\n\n", argv[1], option);
            topics_usage(stderr);
            return 2;
        }
        if (missing) {
            fprintf(stderr, "keelctl topics %s: %s needs a value\n", argv[1], option);
            return 2;
        }
        if (target != NULL && !topics_parse_positive(value, target)) {
            fprintf(stderr, "keelctl topics %s: %s=%s is not a positive number\n", argv[1], option,
                    value);
            return 2;
        }
    }
    if (a->brokers == NULL || a->brokers[0] == '\0') {
        fprintf(stderr,
                "keelctl topics %s: no brokers: set KEEL_KAFKA_BROKERS or pass "
                "--brokers host:port\n",
                argv[1]);
        return 2;
    }
    if (a->min_insync_replicas > a->replication_factor) {
        fprintf(stderr,
                "keelctl topics %s: --min-insync-replicas %d exceeds --replication-factor %d; "
                "no write could ever succeed\n",
                argv[1], a->min_insync_replicas, a->replication_factor);
        return 2;
    }
    return 0;
}

static int topics_ensure(int argc, char **argv)
{
    topics_args a;
    int rc = topics_parse_args(argc, argv, true, &a);
    if (rc != 0) {
        return rc;
    }

    char names[TOPICS_KEEL_COUNT * 2][256];
    keel_topic_spec specs[TOPICS_KEEL_COUNT * 2];
    memset(specs, 0, sizeof specs);
    for (size_t i = 0; i < TOPICS_KEEL_COUNT * 2; i++) {
        const char *base = topics_keel[i / 2];
        snprintf(names[i], sizeof names[i], "%s%s", base, i % 2 == 0 ? "" : ".dlq");
        specs[i].name = names[i];
        specs[i].partitions = a.partitions;
        specs[i].replication_factor = a.replication_factor;
        specs[i].min_insync_replicas = a.min_insync_replicas;
    }

    char err[512];
    keel_result r = keel_kafka_ensure_topics(a.brokers, specs, TOPICS_KEEL_COUNT * 2,
                                             TOPICS_TIMEOUT_MS, err, sizeof err);
    if (r != KEEL_OK) {
        fprintf(stderr, "keelctl topics ensure: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < TOPICS_KEEL_COUNT * 2; i++) {
        printf("ok %s\n", names[i]);
    }
    return 0;
}

static void topics_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    keel_log_write(level <= 3   ? KEEL_LOG_ERROR
                   : level == 4 ? KEEL_LOG_WARN
                                : KEEL_LOG_DEBUG,
                   "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int topics_compare(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *const *x = a;
    const rd_kafka_metadata_topic_t *const *y = b;
    return strcmp((*x)->topic, (*y)->topic);
}

static int topics_list(int argc, char **argv)
{
    int rc = 1;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t **sorted = NULL;
    char errstr[512];
    topics_args a;

    int parse_rc = topics_parse_args(argc, argv, false, &a);
    if (parse_rc != 0) {
        return parse_rc;
    }
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", a.brokers, errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", "keelctl", errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
        fprintf(stderr, "keelctl topics list: %s\n", errstr);
        goto done;
    }
    rd_kafka_conf_set_log_cb(conf, topics_log_cb);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "keelctl topics list: creating a Kafka client failed: %s\n", errstr);
        goto done;
    }
    conf = NULL; /* rd_kafka_new took it */

    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, TOPICS_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr,
                "keelctl topics list: reading metadata from %s failed: %s; is the "
                "broker up?\n",
                a.brokers, rd_kafka_err2str(e));
        md = NULL;
        goto done;
    }
    sorted = calloc((size_t)md->topic_cnt + 1, sizeof *sorted);
    if (sorted == NULL) {
        fprintf(stderr, "keelctl topics list: out of memory\n");
        goto done;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        sorted[i] = &md->topics[i];
    }
    qsort(sorted, (size_t)md->topic_cnt, sizeof *sorted, topics_compare);
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = sorted[i];
        int replicas = t->partition_cnt > 0 ? t->partitions[0].replica_cnt : 0;
        printf("%-40s partitions=%d replicas=%d%s%s\n", t->topic, t->partition_cnt, replicas,
               t->err != RD_KAFKA_RESP_ERR_NO_ERROR ? " error=" : "",
               t->err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2name(t->err) : "");
    }
    rc = 0;

done:
    free(sorted);
    sorted = NULL;
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
        md = NULL;
    }
    if (rk != NULL) {
        rd_kafka_destroy(rk);
        rk = NULL;
    }
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    return rc;
}

int keelctl_topics_main(int argc, char **argv)
{
    if (argc < 2) {
        topics_usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            (i == 1 && strcmp(argv[i], "help") == 0)) {
            topics_usage(stdout);
            return 0;
        }
    }
    if (strcmp(argv[1], "ensure") == 0) {
        return topics_ensure(argc, argv);
    }
    if (strcmp(argv[1], "list") == 0) {
        return topics_list(argc, argv);
    }
    fprintf(stderr, "keelctl topics: unknown command '%s'\n\n", argv[1]);
    topics_usage(stderr);
    return 2;
}
