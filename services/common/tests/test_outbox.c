/* Tests of keel/outbox.h against real PostgreSQL and Kafka (KEEL_TEST_DATABASE_URL,
 * KEEL_TEST_KAFKA_BROKERS): transactional inserts, ordered publishing, one leader, fail-over. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/kafka.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/migrate.h"
#include "keel/outbox.h"
#include "keel/shutdown.h"
#include "keel/testing/db.h"
#include "keel/testing/support.h"

#define TOPIC "db.outbox.test"
#define PARTITIONS 3
#define KEYS 3

/* Each run gets its own database, so no other test's outbox rows (or relay) interfere. */
static char g_dbname[64];
static char *g_conninfo;
static bool g_have_db;
static char g_run[48]; /* marks this run's payloads in a topic that outlives it */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

#define NEED_DB()                                                                                  \
    do {                                                                                           \
        if (!g_have_db) {                                                                          \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#define NEED_DB_AND_KAFKA()                                                                        \
    do {                                                                                           \
        if (!g_have_db || !env("KEEL_TEST_KAFKA_BROKERS")) {                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The test URL rewritten as key=value pairs with another dbname. */
static char *conninfo_with_db(const char *url, const char *dbname)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        PQfreemem(perr);
        return NULL;
    }
    size_t cap = 8192, off = 0;
    char *out = calloc(1, cap);
    for (PQconninfoOption *o = opts; out && o->keyword; o++) {
        const char *val = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (!val || !val[0] || off + 2 * strlen(val) + strlen(o->keyword) + 8 >= cap) {
            continue;
        }
        off += (size_t)snprintf(out + off, cap - off, "%s='", o->keyword);
        for (const char *p = val; *p; p++) {
            if (*p == '\'' || *p == '\\') {
                out[off++] = '\\';
            }
            out[off++] = *p;
        }
        out[off++] = '\'';
        out[off++] = ' ';
        out[off] = '\0';
    }
    PQconninfoFree(opts);
    return out;
}

static bool admin_exec(const char *sql)
{
    keel_db *admin = keel_db_new(keel_testdb_url(), NULL, "keel-test-outbox-admin");
    bool ok = false;
    if (admin && keel_db_connect(admin, 10000) == KEEL_OK) {
        PGresult *res = keel_db_exec(admin, sql, 0, NULL);
        ok = keel_db_check(admin, res, sql) == KEEL_OK;
        PQclear(res);
    }
    keel_db_free(admin);
    return ok;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_run, sizeof(g_run), "run-%d-%lld", (int)getpid(), (long long)keel_clock_now_ms());
    const char *url = keel_testdb_url();
    if (!url) {
        return 0;
    }
    snprintf(g_dbname, sizeof(g_dbname), "keel_test_outbox_%d", (int)getpid());
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", g_dbname);
    admin_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", g_dbname);
    if (!admin_exec(sql)) {
        return -1;
    }
    g_conninfo = conninfo_with_db(url, g_dbname);
    if (!g_conninfo) {
        return -1;
    }
    keel_db *db = keel_db_new(g_conninfo, NULL, "keel-test-outbox");
    char err[512];
    bool ok = db && keel_db_connect(db, 10000) == KEEL_OK &&
              keel_migrate_apply(db, "libkeel", keel_common_migrations,
                                 keel_common_migrations_count, err, sizeof(err)) == KEEL_OK;
    keel_db_free(db);
    g_have_db = ok;
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_dbname[0]) {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_dbname);
        admin_exec(sql);
    }
    free(g_conninfo);
    g_conninfo = NULL;
    return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

typedef struct test_event {
    char key[32];
    int seq;
    char payload[128];
    size_t payload_len;
    keel_cloudevent ce;
} test_event;

static void event_make(test_event *e, int key, int seq, bool rolled_back)
{
    snprintf(e->key, sizeof(e->key), "acct-%d", key);
    e->seq = seq;
    snprintf(e->payload, sizeof(e->payload), "%s|%s|%d|%s", g_run, e->key, seq,
             rolled_back ? "rolled" : "kept");
    e->payload_len = strlen(e->payload);
    keel_cloudevent_init(&e->ce, "/keel/test", "keel.v1.TestEvent", NULL);
}

typedef struct insert_body {
    test_event **events;
    int count;
    keel_result finish;
} insert_body;

static keel_result insert_fn(keel_db *db, void *arg)
{
    insert_body *b = arg;
    for (int i = 0; i < b->count; i++) {
        keel_outbox_message msg = {
            .topic = TOPIC,
            .key = b->events[i]->key,
            .payload = b->events[i]->payload,
            .payload_len = b->events[i]->payload_len,
            .ce = &b->events[i]->ce,
        };
        keel_result rc = keel_outbox_insert(db, &msg);
        if (rc != KEEL_OK) {
            return rc;
        }
    }
    return b->finish;
}

/* Inserts events[key][from..to) for every key, a few per transaction, interleaving keys, and
 * one rolled-back transaction (whose events must never appear) per call. */
static void insert_range(keel_db *db, test_event (*events)[64], int from, int to)
{
    for (int seq = from; seq < to; seq += 2) {
        test_event *tx[2 * KEYS];
        int n = 0;
        for (int s = seq; s < seq + 2 && s < to; s++) {
            for (int k = 0; k < KEYS; k++) {
                event_make(&events[k][s], k, s, false);
                tx[n++] = &events[k][s];
            }
        }
        insert_body body = {.events = tx, .count = n, .finish = KEEL_OK};
        assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &body, NULL), KEEL_OK);
        if (seq == from) {
            test_event rolled[KEYS];
            test_event *rtx[KEYS];
            for (int k = 0; k < KEYS; k++) {
                event_make(&rolled[k], k, 1000 + seq, true);
                rtx[k] = &rolled[k];
            }
            insert_body rb = {.events = rtx, .count = KEYS, .finish = KEEL_ERR};
            assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &rb, NULL), KEEL_ERR);
        }
    }
}

static bool wait_outbox_empty(keel_db *db, int64_t timeout_ms)
{
    int64_t deadline = keel_clock_monotonic_ms() + timeout_ms;
    while (keel_clock_monotonic_ms() < deadline) {
        if (keel_testdb_int(db, "SELECT count(*) FROM outbox") == 0) {
            return true;
        }
        keel_clock_sleep_ms(50);
    }
    return false;
}

/* ---- Kafka side -------------------------------------------------------------------------- */

static void ensure_topic(void)
{
    keel_topic_spec spec = {.name = TOPIC, .partitions = PARTITIONS, .replication_factor = 1};
    char err[512];
    if (keel_kafka_ensure_topics(env("KEEL_TEST_KAFKA_BROKERS"), &spec, 1, 30000, err,
                                 sizeof(err)) != KEEL_OK) {
        fail_msg("creating %s: %s", TOPIC, err);
    }
}

typedef struct test_consumer {
    rd_kafka_t *rk;
    int64_t start[PARTITIONS];
} test_consumer;

/* Opens a consumer positioned at the current end of every partition: it sees only what is
 * published after this call. */
static void consumer_open(test_consumer *c)
{
    char errstr[512];
    char group[96];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "db-outbox-test-%s", g_run);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", env("KEEL_TEST_KAFKA_BROKERS"),
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        fail_msg("consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(c->rk);
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t lo = 0, hi = 0;
        /* Right after the topic is created the client's metadata can still name an old or no
         * leader; such errors clear within a few metadata refreshes, so retry (capped). */
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
        for (int attempt = 0, backoff_ms = 100; attempt < 8; attempt++, backoff_ms *= 2) {
            e = rd_kafka_query_watermark_offsets(c->rk, TOPIC, p, &lo, &hi, 10000);
            if (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                break;
            }
            usleep((useconds_t)(backoff_ms > 2000 ? 2000 : backoff_ms) * 1000);
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fail_msg("watermarks of %s/%d: %s", TOPIC, p, rd_kafka_err2str(e));
        }
        c->start[p] = hi;
    }
}

typedef struct received {
    char key[32];
    int seq;
    bool rolled;
    keel_cloudevent ce;
} received;

/* Reads this run's records until `want` distinct events arrived or the timeout passed;
 * returns how many records (duplicates included) went into out. */
static int consumer_read(test_consumer *c, received *out, int max, int want, int64_t timeout_ms)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++) {
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset = c->start[p];
    }
    assert_int_equal(rd_kafka_assign(c->rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    int n = 0, distinct = 0;
    int64_t deadline = keel_clock_monotonic_ms() + timeout_ms;
    while (distinct < want && n < max && keel_clock_monotonic_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 200);
        if (!m) {
            continue;
        }
        if (m->err || !m->payload || m->len >= 128) {
            rd_kafka_message_destroy(m);
            continue;
        }
        char payload[128];
        memcpy(payload, m->payload, m->len);
        payload[m->len] = '\0';
        size_t run_len = strlen(g_run);
        if (strncmp(payload, g_run, run_len) != 0 || payload[run_len] != '|') {
            rd_kafka_message_destroy(m);
            continue;
        }
        received *r = &out[n];
        char flag[16] = "";
        if (sscanf(payload + run_len + 1, "%31[^|]|%d|%15s", r->key, &r->seq, flag) != 3) {
            fail_msg("unexpected payload %s", payload);
        }
        r->rolled = strcmp(flag, "rolled") == 0;
        /* The partitioning key travels as the record key. */
        assert_int_equal(m->key_len, strlen(r->key));
        assert_memory_equal(m->key, r->key, m->key_len);
        rd_kafka_headers_t *hdrs = NULL;
        char err[256];
        assert_int_equal(rd_kafka_message_headers(m, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
        if (keel_cloudevent_from_headers(hdrs, &r->ce, err, sizeof(err)) != KEEL_OK) {
            fail_msg("headers of %s: %s", payload, err);
        }
        bool dup = false;
        for (int i = 0; i < n; i++) {
            dup = dup || strcmp(out[i].ce.id, r->ce.id) == 0;
        }
        distinct += dup ? 0 : 1;
        n++;
        rd_kafka_message_destroy(m);
    }
    return n;
}

static void consumer_close(test_consumer *c)
{
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
}

/* Every expected event arrived, none of a rolled-back transaction, and per key the first
 * arrival of each event is in insertion order (later copies are duplicates by ce_id). */
static void verify(const received *got, int n, test_event (*events)[64], int per_key)
{
    int next[KEYS] = {0};
    for (int i = 0; i < n; i++) {
        const received *r = &got[i];
        if (r->rolled) {
            fail_msg("an event of a rolled-back transaction was published: %s/%d", r->key, r->seq);
        }
        int k = -1;
        sscanf(r->key, "acct-%d", &k);
        assert_true(k >= 0 && k < KEYS);
        assert_true(r->seq >= 0 && r->seq < per_key);
        const test_event *want = &events[k][r->seq];
        assert_string_equal(r->ce.id, want->ce.id);
        assert_string_equal(r->ce.type, "keel.v1.TestEvent");
        assert_string_equal(r->ce.source, "/keel/test");
        assert_string_equal(r->ce.time, want->ce.time);
        assert_string_equal(r->ce.traceparent, want->ce.traceparent);
        if (r->seq == next[k]) {
            next[k]++;
        } else if (r->seq > next[k]) {
            fail_msg("key %s: event %d arrived before event %d", r->key, r->seq, next[k]);
        }
    }
    for (int k = 0; k < KEYS; k++) {
        if (next[k] != per_key) {
            fail_msg("key acct-%d: only events 0..%d arrived of %d", k, next[k] - 1, per_key);
        }
    }
}

/* ---- tests ------------------------------------------------------------------------------- */

static bool wait_notify(PGconn *conn, int timeout_ms)
{
    int64_t deadline = keel_clock_monotonic_ms() + timeout_ms;
    for (;;) {
        PQconsumeInput(conn);
        PGnotify *n = PQnotifies(conn);
        if (n) {
            bool ours = strcmp(n->relname, "keel_outbox") == 0;
            PQfreemem(n);
            if (ours) {
                return true;
            }
            continue;
        }
        int64_t left = deadline - keel_clock_monotonic_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

static void test_insert_is_transactional(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(g_conninfo, "keel-test-outbox");
    keel_db *listener = keel_testdb_connect(g_conninfo, "keel-test-outbox-listen");
    keel_testdb_exec(listener, "LISTEN keel_outbox");

    /* Bytes, not a string: NUL and high bytes survive. */
    static const unsigned char bin[] = {0x00, 0xff, 0x10, 0x00, 'k', 'e', 'e', 'l'};
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.TestEvent", NULL);
    keel_outbox_message msg = {
        .topic = TOPIC, .key = "pay-1", .payload = bin, .payload_len = sizeof(bin), .ce = &ce};

    assert_int_equal(keel_outbox_insert(db, &msg), KEEL_ERR); /* no transaction */
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM outbox"), 0);

    keel_testdb_exec(db, "BEGIN");
    assert_int_equal(keel_outbox_insert(db, &msg), KEEL_OK);
    assert_false(wait_notify(keel_db_conn(listener), 200)); /* not before the commit */
    keel_testdb_exec(db, "COMMIT");
    assert_true(wait_notify(keel_db_conn(listener), 3000));

    const char *params[] = {ce.id};
    PGresult *res = keel_db_exec(db,
                                 "SELECT topic, message_key, encode(payload, 'hex'), ce_source, "
                                 "ce_type, to_char(ce_time AT TIME ZONE 'UTC', "
                                 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), traceparent "
                                 "FROM outbox WHERE ce_id = $1",
                                 1, params);
    assert_int_equal(keel_db_check(db, res, "read back"), KEEL_OK);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), TOPIC);
    assert_string_equal(PQgetvalue(res, 0, 1), "pay-1");
    assert_string_equal(PQgetvalue(res, 0, 2), "00ff10006b65656c");
    assert_string_equal(PQgetvalue(res, 0, 3), "/keel/test");
    assert_string_equal(PQgetvalue(res, 0, 4), "keel.v1.TestEvent");
    assert_string_equal(PQgetvalue(res, 0, 5), ce.time);
    assert_string_equal(PQgetvalue(res, 0, 6), ce.traceparent);
    PQclear(res);

    /* The same ce_id twice is a conflict the caller can see. */
    keel_testdb_exec(db, "BEGIN");
    assert_int_equal(keel_outbox_insert(db, &msg), KEEL_ERR_CONFLICT);
    keel_testdb_exec(db, "ROLLBACK");

    /* A rolled-back transaction leaves neither a row nor a wake-up. */
    keel_cloudevent ce2;
    keel_cloudevent_init(&ce2, "/keel/test", "keel.v1.TestEvent", NULL);
    msg.ce = &ce2;
    keel_testdb_exec(db, "BEGIN");
    assert_int_equal(keel_outbox_insert(db, &msg), KEEL_OK);
    keel_testdb_exec(db, "ROLLBACK");
    assert_false(wait_notify(keel_db_conn(listener), 300));
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM outbox"), 1);

    keel_outbox_message bad = {
        .topic = TOPIC, .key = "", .payload = bin, .payload_len = 1, .ce = &ce2};
    keel_testdb_exec(db, "BEGIN");
    assert_int_equal(keel_outbox_insert(db, &bad), KEEL_ERR);
    keel_testdb_exec(db, "ROLLBACK");

    keel_testdb_exec(db, "DELETE FROM outbox"); /* the relay tests start from an empty outbox */
    keel_db_free(listener);
    keel_db_free(db);
}

static keel_outbox_relay *relay_start(const char *service, const char *instance)
{
    keel_outbox_relay_options opts = {
        .conninfo = g_conninfo,
        .brokers = env("KEEL_TEST_KAFKA_BROKERS"),
        .service = service,
        .instance_id = instance,
        .batch_size = 7,           /* several rounds per burst, so ROUND_MORE paths run */
        .poll_interval_ms = 10000, /* so only NOTIFY explains a quick pick-up */
        .leader_retry_ms = 200,
    };
    char err[512];
    keel_outbox_relay *r = keel_outbox_relay_start(&opts, err, sizeof(err));
    if (!r) {
        fail_msg("relay start: %s", err);
    }
    return r;
}

static double metric(const char *name)
{
    return keel_metric_value(keel_metrics_counter(keel_metrics_default(), name, "", NULL));
}

static test_event g_events[KEYS][64];

static void test_relay_publishes_in_order_and_deletes(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    ensure_topic();
    keel_db *db = keel_testdb_connect(g_conninfo, "keel-test-outbox");
    test_consumer c;
    consumer_open(&c);
    double published_before = metric("keel_outbox_published_total");

    char service[64];
    snprintf(service, sizeof(service), "dbtest-order-%d", (int)getpid());
    keel_outbox_relay *r = relay_start(service, "1");
    assert_true(keel_test_wait_leader(r, 5000));

    enum { PER_KEY = 20 };
    /* The relay is idle in its 10 s wait: only the NOTIFY of the commit wakes it this soon. */
    keel_clock_sleep_ms(300);
    int64_t t0 = keel_clock_monotonic_ms();
    insert_range(db, g_events, 0, PER_KEY);
    assert_true(wait_outbox_empty(db, 30000));
    assert_true(keel_clock_monotonic_ms() - t0 < 5000);

    static received got[512];
    int n = consumer_read(&c, got, 512, KEYS * PER_KEY, 30000);
    verify(got, n, g_events, PER_KEY);
    assert_true(metric("keel_outbox_published_total") - published_before >= KEYS * PER_KEY);

    keel_outbox_relay_stop(r);
    consumer_close(&c);
    keel_db_free(db);
}

/* The backend pid holding the relay's advisory lock (the only advisory lock in this test's
 * database), or 0. */
static int lock_holder(keel_db *db)
{
    PGresult *res = keel_db_exec(db,
                                 "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND "
                                 "granted AND database = (SELECT oid FROM pg_database WHERE "
                                 "datname = current_database())",
                                 0, NULL);
    assert_int_equal(keel_db_check(db, res, "lock holder"), KEEL_OK);
    int pid = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
    assert_true(PQntuples(res) <= 1);
    PQclear(res);
    return pid;
}

static void test_two_relays_one_leader_and_failover(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    ensure_topic();
    keel_db *db = keel_testdb_connect(g_conninfo, "keel-test-outbox");
    test_consumer c;
    consumer_open(&c);

    char service[64];
    snprintf(service, sizeof(service), "dbtest-failover-%d", (int)getpid());
    keel_outbox_relay *a = relay_start(service, "a");
    keel_outbox_relay *b = relay_start(service, "b");

    int64_t deadline = keel_clock_monotonic_ms() + 5000;
    while (!keel_outbox_relay_is_leader(a) && !keel_outbox_relay_is_leader(b) &&
           keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(20);
    }
    /* Exactly one leads, and keeps leading while both keep bidding. */
    for (int i = 0; i < 50; i++) {
        bool la = keel_outbox_relay_is_leader(a), lb = keel_outbox_relay_is_leader(b);
        assert_true(la != lb);
        keel_clock_sleep_ms(20);
    }
    keel_outbox_relay *leader = keel_outbox_relay_is_leader(a) ? a : b;
    keel_outbox_relay *follower = leader == a ? b : a;

    enum { PER_KEY = 24 };
    insert_range(db, g_events, 0, PER_KEY / 2);
    assert_true(wait_outbox_empty(db, 30000));

    /* Kill the leader's session, as if its host vanished: the peer takes over. */
    int pid = lock_holder(db);
    assert_true(pid > 0);
    keel_testdb_exec(db, "SELECT pg_terminate_backend(%d)", pid);
    int64_t killed = keel_clock_monotonic_ms();
    assert_true(keel_test_wait_leader(follower, 5000));
    assert_true(keel_clock_monotonic_ms() - killed < 5000);
    assert_false(keel_outbox_relay_is_leader(leader));
    int new_pid = lock_holder(db);
    assert_true(new_pid > 0 && new_pid != pid);

    /* Publishing goes on through the new leader, nothing of before or after is lost. */
    int64_t t0 = keel_clock_monotonic_ms();
    insert_range(db, g_events, PER_KEY / 2, PER_KEY);
    assert_true(wait_outbox_empty(db, 30000));
    assert_true(keel_clock_monotonic_ms() - t0 < 5000); /* the new leader LISTENs too */
    static received got[512];
    int n = consumer_read(&c, got, 512, KEYS * PER_KEY, 30000);
    verify(got, n, g_events, PER_KEY);
    assert_false(keel_outbox_relay_is_leader(leader));

    keel_outbox_relay_stop(a);
    keel_outbox_relay_stop(b);
    assert_int_equal(lock_holder(db), 0); /* stop gave the lock back */
    consumer_close(&c);
    keel_db_free(db);
}

typedef struct mixed_body {
    keel_outbox_message *msgs;
    int count;
} mixed_body;

static keel_result mixed_fn(keel_db *db, void *arg)
{
    mixed_body *b = arg;
    for (int i = 0; i < b->count; i++) {
        keel_result rc = keel_outbox_insert(db, &b->msgs[i]);
        if (rc != KEEL_OK) {
            return rc;
        }
    }
    return KEEL_OK;
}

static long long rows_with_ce_id(keel_db *db, const char *ce_id)
{
    const char *params[] = {ce_id};
    PGresult *res = keel_db_exec(db, "SELECT count(*) FROM outbox WHERE ce_id = $1", 1, params);
    assert_int_equal(keel_db_check(db, res, "count"), KEEL_OK);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* A row that cannot be sent (larger than the broker accepts) stops the round: the rows before
 * it are published and deleted, the rows after it wait behind it, so nothing overtakes. */
static void test_failed_row_stops_the_round(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    ensure_topic();
    keel_db *db = keel_testdb_connect(g_conninfo, "keel-test-outbox");
    test_consumer c;
    consumer_open(&c);
    double errors_before = metric("keel_outbox_publish_errors_total");

    test_event first, after;
    event_make(&first, 0, 0, false);
    event_make(&after, 0, 1, false);
    keel_cloudevent big_ce;
    keel_cloudevent_init(&big_ce, "/keel/test", "keel.v1.TestEvent", NULL);
    size_t big_len = 2 * 1024 * 1024; /* above message.max.bytes (1 MB) */
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'x', big_len);
    keel_outbox_message msgs[] = {
        {.topic = TOPIC,
         .key = first.key,
         .payload = first.payload,
         .payload_len = first.payload_len,
         .ce = &first.ce},
        {.topic = TOPIC, .key = "acct-1", .payload = big, .payload_len = big_len, .ce = &big_ce},
        {.topic = TOPIC,
         .key = after.key,
         .payload = after.payload,
         .payload_len = after.payload_len,
         .ce = &after.ce},
    };
    mixed_body body = {.msgs = msgs, .count = 3};
    assert_int_equal(keel_db_transaction(db, NULL, mixed_fn, &body, NULL), KEEL_OK);
    free(big);
    big = NULL;

    char service[64];
    snprintf(service, sizeof(service), "dbtest-stall-%d", (int)getpid());
    keel_outbox_relay *r = relay_start(service, "1");
    assert_true(keel_test_wait_leader(r, 5000));
    int64_t deadline = keel_clock_monotonic_ms() + 10000;
    while (rows_with_ce_id(db, first.ce.id) != 0 && keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(50);
    }
    assert_int_equal(rows_with_ce_id(db, first.ce.id), 0);
    keel_clock_sleep_ms(1500); /* several failed rounds */
    assert_int_equal(rows_with_ce_id(db, big_ce.id), 1);
    assert_int_equal(rows_with_ce_id(db, after.ce.id), 1);
    assert_true(metric("keel_outbox_publish_errors_total") > errors_before);

    static received got[16];
    int n = consumer_read(&c, got, 16, 2, 3000);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].ce.id, first.ce.id);

    /* An operator removes the poison row: the one behind it goes out. */
    const char *params[] = {big_ce.id};
    PGresult *res = keel_db_exec(db, "DELETE FROM outbox WHERE ce_id = $1", 1, params);
    assert_int_equal(keel_db_check(db, res, "delete poison"), KEEL_OK);
    PQclear(res);
    assert_true(wait_outbox_empty(db, 15000));
    n = consumer_read(&c, got, 16, 2, 10000);
    assert_int_equal(n, 2);
    assert_string_equal(got[0].ce.id, first.ce.id);
    assert_string_equal(got[1].ce.id, after.ce.id);

    keel_outbox_relay_stop(r);
    consumer_close(&c);
    keel_db_free(db);
}

/* Counts the outbox rows without cmocka assertions (for a forked child): -1 on an error. */
static long long outbox_count(keel_db *db)
{
    PGresult *res = keel_db_exec(db, "SELECT count(*) FROM outbox", 0, NULL);
    long long n = keel_db_check(db, res, "count") == KEEL_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

/* The stop flag is one-way, so this runs in a child and reports the first failed check by
 * its exit code. After SIGTERM (the shutdown request) the relay must still publish what is
 * committed until its service stops it, and the stop itself publishes the rows committed
 * just before it. */
static int scenario_relay_outlives_the_shutdown_request(void)
{
    char service[64];
    snprintf(service, sizeof(service), "dbtest-shutdown-%d", (int)getpid());
    keel_outbox_relay_options opts = {
        .conninfo = g_conninfo,
        .brokers = env("KEEL_TEST_KAFKA_BROKERS"),
        .service = service,
        .instance_id = "1",
        .poll_interval_ms = 10000, /* only a NOTIFY or the stop explain a pick-up */
        .leader_retry_ms = 200,
    };
    char err[512];
    keel_outbox_relay *r = keel_outbox_relay_start(&opts, err, sizeof(err));
    keel_db *db = keel_db_new(g_conninfo, NULL, "keel-test-outbox-child");
    if (r == NULL || db == NULL || keel_db_connect(db, 10000) != KEEL_OK) {
        return 1;
    }
    if (!keel_test_wait_leader(r, 5000)) {
        return 2;
    }
    keel_shutdown_request();
    keel_clock_sleep_ms(300);

    test_event first, second;
    test_event *one[] = {&first}, *two[] = {&second};
    event_make(&first, 0, 900, false);
    event_make(&second, 0, 901, false);
    insert_body body = {.events = one, .count = 1, .finish = KEEL_OK};
    if (keel_db_transaction(db, NULL, insert_fn, &body, NULL) != KEEL_OK) {
        return 3;
    }
    int64_t deadline = keel_clock_monotonic_ms() + 15000;
    while (outbox_count(db) != 0 && keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(50);
    }
    if (outbox_count(db) != 0) {
        return 4; /* the relay ended with the shutdown request */
    }
    /* Committed and the stop requested at once: the NOTIFY or else the relay's last pass on
     * stopping takes it; either way the stop leaves nothing behind. */
    body.events = two;
    if (keel_db_transaction(db, NULL, insert_fn, &body, NULL) != KEEL_OK) {
        return 5;
    }
    keel_outbox_relay_stop(r);
    long long left = outbox_count(db);
    keel_db_free(db);
    return left == 0 ? 0 : 6;
}

static void test_relay_outlives_the_shutdown_request(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    ensure_topic();
    keel_test_run_in_child(scenario_relay_outlives_the_shutdown_request);
}

static void test_relay_start_rejects_missing_options(void **state)
{
    (void)state;
    char err[256];
    keel_outbox_relay_options opts = {.conninfo = "dbname=x", .brokers = "127.0.0.1:1"};
    assert_null(keel_outbox_relay_start(&opts, err, sizeof(err)));
    assert_non_null(strstr(err, "service"));
    assert_null(keel_outbox_relay_start(NULL, err, sizeof(err)));
    keel_outbox_relay_stop(NULL);
    assert_false(keel_outbox_relay_is_leader(NULL));
}

int main(void)
{
    keel_log_init("test_outbox", KEEL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_start_rejects_missing_options),
        cmocka_unit_test(test_insert_is_transactional),
        cmocka_unit_test(test_relay_publishes_in_order_and_deletes),
        cmocka_unit_test(test_two_relays_one_leader_and_failover),
        cmocka_unit_test(test_failed_row_stops_the_round),
        cmocka_unit_test(test_relay_outlives_the_shutdown_request),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
