/* Tests of keel/service.h's shared start-up and shutdown: migrations, the pool, the relay and
 * consumers against a real PostgreSQL and Kafka (KEEL_TEST_DATABASE_URL, KEEL_TEST_KAFKA_BROKERS;
 * those tests skip when unset), readiness, the HTTP options, the wait for a stop and the last
 * log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/id.h"
#include "keel/kafka.h"
#include "keel/log.h"
#include "keel/service.h"
#include "keel/shutdown.h"
#include "keel/testing/db.h"
#include "keel/testing/support.h"

/* Nothing listens on port 1: connecting is refused at once. */
#define UNREACHABLE_URL "postgresql://127.0.0.1:1/keel?connect_timeout=1"

static const keel_config_spec specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    KEEL_SERVICE_DB_CONFIG_SPECS,
    KEEL_SERVICE_KAFKA_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "0", "port", false},
};

static const char *test_brokers(void)
{
    const char *brokers = getenv("KEEL_TEST_KAFKA_BROKERS");
    return brokers && brokers[0] ? brokers : NULL;
}

#define NEED_DB()                                                                                  \
    do {                                                                                           \
        if (!keel_testdb_url()) {                                                                  \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#define NEED_DB_AND_KAFKA()                                                                        \
    do {                                                                                           \
        if (!keel_testdb_url() || !test_brokers()) {                                               \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* A service configuration whose database is url (any string when the test needs none). */
static keel_config *load(const char *url, const char *pool_size)
{
    char err[512];
    setenv("KEEL_DATABASE_URL", url, 1);
    setenv("KEEL_DATABASE_POOL_SIZE", pool_size, 1);
    /* The test stack's own variables must not leak into these configurations. */
    unsetenv("KEEL_DATABASE_PASSWORD");
    unsetenv("KEEL_DATABASE_PASSWORD_FILE");
    setenv("KEEL_HTTP_ADDRESS", "127.0.0.9", 1);
    setenv("KEEL_HTTP_PORT", "18999", 1);
    setenv("KEEL_HTTP_THREADS", "3", 1);
    /* The test broker when there is one; otherwise nothing listens there. */
    setenv("KEEL_KAFKA_BROKERS", test_brokers() != NULL ? test_brokers() : "127.0.0.1:1", 1);
    keel_config *cfg = keel_config_load(specs, sizeof(specs) / sizeof(specs[0]), err, sizeof err);
    if (cfg == NULL) {
        fail_msg("configuration: %s", err);
    }
    return cfg;
}

/* Runs fn with stderr (where keel logs) going to a file; returns what was written. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn(arg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    static char text[8192];
    rewind(tmp);
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    return text;
}

/* ---- migrations --------------------------------------------------------------------------- */

static void test_migrate_applies_libkeel_and_service_migrations(void **state)
{
    (void)state;
    NEED_DB();
    /* An empty schema of its own: the tables migrated here (libkeel's outbox among them) are
     * no other test's. */
    keel_testdb *s = keel_testdb_open("kt_service_migrate", "test_service", NULL, NULL, 0);
    keel_migration list[] = {{.version = 1, .name = "001_t.sql", .sql = "CREATE TABLE t (id int)"}};
    keel_config *cfg = load(s->url, "2");

    assert_true(keel_service_migrate(cfg, "kt_service", list, 1, 10000));
    /* Applied once: a second start-up finds it recorded and does not run it again (it would
     * fail: t exists). */
    assert_true(keel_service_migrate(cfg, "kt_service", list, 1, 10000));

    /* The service's table, and libkeel's before it. */
    keel_testdb_assert_text(s->db, "inbox,outbox,t",
                            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                            "WHERE schemaname = '%s' AND tablename IN ('t', 'outbox', 'inbox')",
                            s->schema);
    keel_config_free(cfg);
    keel_testdb_close(&s);
}

static void test_migrate_fails_when_database_is_unreachable(void **state)
{
    (void)state;
    keel_migration list[] = {{.version = 1, .name = "001_t.sql", .sql = "SELECT 1"}};
    keel_config *cfg = load(UNREACHABLE_URL, "2");
    int64_t start = keel_clock_monotonic_ms();
    assert_false(keel_service_migrate(cfg, "kt_service_unreachable", list, 1, 300));
    /* It gives up at the timeout it was given, not libpq's default. */
    assert_true(keel_clock_monotonic_ms() - start < 10000);
    keel_config_free(cfg);
}

/* ---- the pool ----------------------------------------------------------------------------- */

static void test_pool_has_configured_size_and_name(void **state)
{
    (void)state;
    NEED_DB();
    keel_config *cfg = load(keel_testdb_url(), "2");
    keel_db_pool *pool = keel_service_db_pool_new(cfg, "kt-service-pool");
    assert_non_null(pool);

    keel_db *a = keel_db_pool_acquire(pool, 5000);
    keel_db *b = keel_db_pool_acquire(pool, 5000);
    assert_non_null(a);
    assert_non_null(b);
    /* KEEL_DATABASE_POOL_SIZE=2: a third waits and gives up. */
    assert_null(keel_db_pool_acquire(pool, 200));
    char *name = keel_testdb_text(a, "SELECT current_setting('application_name')");
    assert_string_equal(name, "kt-service-pool");
    free(name);
    keel_db_pool_release(pool, a);
    keel_db_pool_release(pool, b);
    keel_db_pool_free(pool);
    pool = NULL;
    keel_config_free(cfg);
}

static void test_pool_refuses_a_size_below_one(void **state)
{
    (void)state;
    keel_config *cfg = load("postgresql:///keel", "0");
    assert_null(keel_service_db_pool_new(cfg, "kt-service-pool"));
    keel_config_free(cfg);
    cfg = load("postgresql:///keel", "-3");
    assert_null(keel_service_db_pool_new(cfg, "kt-service-pool"));
    keel_config_free(cfg);
}

static void test_pool_refuses_a_bad_url(void **state)
{
    (void)state;
    keel_config *cfg = load("host=localhost port='unterminated", "2");
    assert_null(keel_service_db_pool_new(cfg, "kt-service-pool"));
    keel_config_free(cfg);
}

/* ---- the outbox relay and consumers ------------------------------------------------------ */

static void test_relay_leads_on_the_configured_database(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    keel_testdb *s = keel_testdb_open("kt_service_relay", "test_service", NULL, NULL, 0);
    /* The schema's name also names the relay's lock: no other relay competes for it. */
    const char *component = s->schema;
    keel_config *cfg = load(s->url, "1");
    /* The relay reads libkeel's outbox table. */
    assert_true(keel_service_migrate(cfg, component, NULL, 0, 10000));
    keel_outbox_relay *r = keel_service_relay_start(cfg, component);
    assert_non_null(r);
    /* Leading means it holds the lock on a connection to KEEL_DATABASE_URL. */
    assert_true(keel_test_wait_leader(r, 15000));
    keel_outbox_relay_stop(r);
    r = NULL;
    keel_config_free(cfg);

    /* The same relay on a database that is down never leads. */
    cfg = load(UNREACHABLE_URL, "1");
    r = keel_service_relay_start(cfg, component);
    assert_non_null(r);
    assert_false(keel_test_wait_leader(r, 1500));
    keel_outbox_relay_stop(r);
    r = NULL;
    keel_config_free(cfg);
    keel_testdb_close(&s);
}

typedef struct relay_call {
    keel_config *cfg;
    keel_outbox_relay *relay;
} relay_call;

static void call_relay_start(void *arg)
{
    relay_call *c = arg;
    c->relay = keel_service_relay_start(c->cfg, "");
}

static void test_relay_start_logs_why_it_failed(void **state)
{
    (void)state;
    relay_call c = {.cfg = load("postgresql:///keel", "1")};
    const char *logged = capture_stderr(call_relay_start, &c);
    assert_null(c.relay);
    assert_non_null(strstr(logged, "cannot start the outbox relay: "));
    assert_non_null(strstr(logged, "service name"));
    keel_config_free(c.cfg);
}

typedef struct consume_call {
    keel_config *cfg;
    keel_consume_thread *thread;
} consume_call;

static keel_handle_result count_handler(const keel_message *msg, void *ctx, char *reason,
                                        size_t reason_len)
{
    (void)msg;
    (void)reason;
    (void)reason_len;
    atomic_fetch_add((atomic_int *)ctx, 1);
    return KEEL_HANDLE_OK;
}

static void call_consume_start(void *arg)
{
    consume_call *c = arg;
    keel_consume_thread_options opts = {
        .group_id = "",
        .topic = "kt.service.never",
        .name = "kt-service-consumer",
        .handler = count_handler,
    };
    c->thread = keel_service_consume_start(c->cfg, &opts);
}

static void test_consume_start_logs_why_it_failed(void **state)
{
    (void)state;
    consume_call c = {.cfg = load("postgresql:///keel", "1")};
    const char *logged = capture_stderr(call_consume_start, &c);
    assert_null(c.thread);
    /* keel_consume_thread_start's reason, naming the consumer and its topic. */
    assert_non_null(strstr(logged, "kt-service-consumer consumer of kt.service.never"));
    keel_config_free(c.cfg);
}

static int scenario_consume_with_service_brokers(void)
{
    char uuid[KEEL_UUID_STR_LEN];
    char topic[96], dlq[112], group[96], err[512] = "";
    snprintf(topic, sizeof topic, "service.test.%s", keel_uuid7_new(uuid));
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    snprintf(group, sizeof group, "service.group.%s", keel_uuid7_new(uuid));
    keel_topic_spec topics[] = {{.name = topic, .partitions = 1, .replication_factor = 1},
                                {.name = dlq, .partitions = 1, .replication_factor = 1}};
    if (keel_kafka_ensure_topics(test_brokers(), topics, 2, 30000, err, sizeof err) != KEEL_OK) {
        return 1;
    }
    keel_producer_options po = {.brokers = test_brokers(), .client_id = "keel-test"};
    keel_producer *p = keel_producer_new(&po, err, sizeof err);
    if (p == NULL) {
        return 2;
    }
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", NULL);
    rd_kafka_headers_t *h = keel_cloudevent_to_headers(&ce);
    keel_result sent =
        keel_producer_send_wait(p, topic, "k", 1, "hello", 5, h, 30000, err, sizeof err);
    rd_kafka_headers_destroy(h);
    keel_producer_free(p);
    if (sent != KEEL_OK) {
        return 3;
    }

    /* No brokers in the options: the thread must find them in KEEL_KAFKA_BROKERS. */
    keel_config *cfg = load(keel_testdb_url(), "1");
    atomic_int handled = 0;
    keel_consume_thread_options opts = {
        .group_id = group,
        .topic = topic,
        .name = "kt-service-consumer",
        .handler = count_handler,
        .ctx = &handled,
    };
    keel_consume_thread *t = keel_service_consume_start(cfg, &opts);
    if (t == NULL) {
        return 4;
    }
    int64_t deadline = keel_clock_monotonic_ms() + 60000;
    while (atomic_load(&handled) < 1 && keel_clock_monotonic_ms() < deadline) {
        keel_clock_sleep_ms(50);
    }
    keel_shutdown_request();
    keel_consume_thread_stop(t);
    t = NULL;
    keel_config_free(cfg);
    return atomic_load(&handled) == 1 ? 0 : 5;
}

static void test_consume_start_uses_the_service_brokers(void **state)
{
    (void)state;
    NEED_DB_AND_KAFKA();
    keel_test_run_in_child(scenario_consume_with_service_brokers);
}

/* ---- readiness and the HTTP options ------------------------------------------------------- */

/* What /readyz answers for a fresh pool on url. */
static bool ready_on(const char *url)
{
    keel_config *cfg = load(url, "1");
    keel_db_pool *pool = keel_service_db_pool_new(cfg, "kt-service-ready");
    assert_non_null(pool);
    bool ready = keel_service_pool_ready(pool);
    keel_db_pool_free(pool);
    pool = NULL;
    keel_config_free(cfg);
    return ready;
}

static void test_pool_ready_follows_the_database(void **state)
{
    (void)state;
    assert_false(ready_on(UNREACHABLE_URL));
    NEED_DB();
    assert_true(ready_on(keel_testdb_url()));
}

static int scenario_not_ready_once_stopping(void)
{
    keel_config *cfg = load(keel_testdb_url(), "1");
    keel_db_pool *pool = keel_service_db_pool_new(cfg, "kt-service-ready");
    if (pool == NULL) {
        return 1;
    }
    if (!keel_service_pool_ready(pool)) {
        return 2;
    }
    keel_shutdown_request();
    /* The database still answers, but a stopping service takes no new work. */
    if (keel_service_pool_ready(pool)) {
        return 3;
    }
    keel_db_pool_free(pool);
    keel_config_free(cfg);
    return 0;
}

static void test_pool_not_ready_once_stopping(void **state)
{
    (void)state;
    NEED_DB();
    keel_test_run_in_child(scenario_not_ready_once_stopping);
}

static void test_http_options_from_config(void **state)
{
    (void)state;
    keel_config *cfg = load("postgresql:///keel", "1");
    keel_db_pool *pool = keel_service_db_pool_new(cfg, "kt-service-http");
    assert_non_null(pool);

    keel_http_server_options o = keel_service_http_options(cfg, pool);
    assert_string_equal(o.address, "127.0.0.9");
    assert_int_equal(o.port, 18999);
    assert_int_equal(o.threads, 3);
    assert_ptr_equal(o.ready, keel_service_pool_ready);
    assert_ptr_equal(o.ready_ctx, pool);
    /* Everything else is left to the server's defaults. */
    assert_int_equal(o.max_body_bytes, 0);
    assert_int_equal(o.max_header_bytes, 0);
    assert_int_equal(o.connection_timeout_s, 0);
    assert_int_equal(o.max_connections, 0);
    assert_int_equal(o.max_connections_per_ip, 0);

    /* No pool: /readyz always answers ready. */
    o = keel_service_http_options(cfg, NULL);
    assert_null(o.ready);
    assert_null(o.ready_ctx);
    assert_int_equal(o.port, 18999);

    keel_db_pool_free(pool);
    keel_config_free(cfg);
}

/* ---- the wait for a stop and the end of main ---------------------------------------------- */

static void *request_later(void *arg)
{
    (void)arg;
    keel_clock_sleep_ms(150);
    keel_shutdown_request();
    return NULL;
}

static int64_t waited_ms;

static void wait_for_stop(void *arg)
{
    (void)arg;
    int64_t start = keel_clock_monotonic_ms();
    keel_service_wait_for_stop("the test's parts, in order");
    waited_ms = keel_clock_monotonic_ms() - start;
}

static int scenario_wait_returns_on_stop(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, request_later, NULL) != 0) {
        return 1;
    }
    const char *logged = capture_stderr(wait_for_stop, NULL);
    pthread_join(th, NULL);
    /* Not before the request, and at once after it (not at the end of a wait slice). */
    if (waited_ms < 140 || waited_ms > 5000) {
        return 2;
    }
    if (strstr(logged, "stopping: the test's parts, in order") == NULL) {
        return 3;
    }
    return 0;
}

static void test_wait_returns_on_stop(void **state)
{
    (void)state;
    keel_test_run_in_child(scenario_wait_returns_on_stop);
}

typedef struct exit_call {
    keel_config *cfg;
    int rc;
} exit_call;

static void call_exit(void *arg)
{
    exit_call *c = arg;
    c->rc = keel_service_exit(&c->cfg, 3);
}

static void test_exit_logs_and_frees(void **state)
{
    (void)state;
    exit_call c = {.cfg = load("postgresql:///keel", "1"), .rc = -1};
    const char *logged = capture_stderr(call_exit, &c);
    assert_int_equal(c.rc, 3);
    /* Freed (ASan reports a leak otherwise) and not left dangling. */
    assert_null(c.cfg);
    assert_non_null(strstr(logged, "stopped (exit 3)"));
}

int main(void)
{
    keel_log_init("test_service", KEEL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_applies_libkeel_and_service_migrations),
        cmocka_unit_test(test_migrate_fails_when_database_is_unreachable),
        cmocka_unit_test(test_pool_has_configured_size_and_name),
        cmocka_unit_test(test_pool_refuses_a_size_below_one),
        cmocka_unit_test(test_pool_refuses_a_bad_url),
        cmocka_unit_test(test_relay_leads_on_the_configured_database),
        cmocka_unit_test(test_relay_start_logs_why_it_failed),
        cmocka_unit_test(test_consume_start_logs_why_it_failed),
        cmocka_unit_test(test_consume_start_uses_the_service_brokers),
        cmocka_unit_test(test_pool_ready_follows_the_database),
        cmocka_unit_test(test_pool_not_ready_once_stopping),
        cmocka_unit_test(test_http_options_from_config),
        cmocka_unit_test(test_wait_returns_on_stop),
        cmocka_unit_test(test_exit_logs_and_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
