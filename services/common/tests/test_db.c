/* Tests of keel/db.h: result classification, reconnects, retried transactions and the pool,
 * against a real PostgreSQL (KEEL_TEST_DATABASE_URL). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/db.h"
#include "keel/log.h"
#include "keel/testing/db.h"

#define NEED_DB() keel_testdb_skip_without(keel_testdb_url())

static keel_result check_sql(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    keel_result rc = keel_db_check(db, res, "classification test");
    PQclear(res);
    return rc;
}

/* ---- no server needed ------------------------------------------------------------------ */

static void test_check_null_result_is_transient(void **state)
{
    (void)state;
    assert_int_equal(keel_db_check(NULL, NULL, "nothing"), KEEL_ERR_TRANSIENT);
}

static void test_new_rejects_bad_conninfo(void **state)
{
    (void)state;
    assert_null(keel_db_new("host=localhost port='unterminated", NULL, "t"));
    assert_null(keel_db_new(NULL, NULL, "t"));
}

/* Reads everything written to fd 2 while fn runs. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn(arg);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long size = ftell(tmp);
    rewind(tmp);
    char *buf = calloc(1, (size_t)size + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)size, tmp);
    buf[got] = '\0';
    fclose(tmp);
    return buf;
}

typedef struct refused_run {
    keel_result rc;
    int64_t elapsed_ms;
} refused_run;

static void connect_refused(void *arg)
{
    refused_run *run = arg;
    /* Port 1 refuses at once; both secrets must stay out of every line logged. */
    keel_db *db = keel_db_new("postgresql://keeluser:UrlSecret123@127.0.0.1:1/nodb",
                              "ParamSecret456", "keel-test");
    assert_non_null(db);
    int64_t t0 = keel_clock_monotonic_ms();
    run->rc = keel_db_connect(db, 600);
    run->elapsed_ms = keel_clock_monotonic_ms() - t0;
    assert_false(keel_db_is_connected(db));
    assert_null(keel_db_conn(db));
    assert_null(keel_db_exec(db, "SELECT 1", 0, NULL));
    keel_db_free(db);
}

static void test_connect_times_out_without_leaking_password(void **state)
{
    (void)state;
    refused_run run = {0};
    char *log = capture_stderr(connect_refused, &run);
    assert_int_equal(run.rc, KEEL_ERR_TIMEOUT);
    assert_true(run.elapsed_ms >= 500);
    assert_true(run.elapsed_ms < 3000);
    assert_non_null(strstr(log, "connection attempt"));
    assert_null(strstr(log, "UrlSecret123"));
    assert_null(strstr(log, "ParamSecret456"));
    free(log);
}

/* ---- against PostgreSQL ----------------------------------------------------------------- */

static void test_connect_sets_session(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    assert_true(keel_db_is_connected(db));
    assert_non_null(keel_db_conn(db));
    assert_int_equal(keel_db_connect(db, 1), KEEL_OK); /* healthy: at once */

    PGresult *res = keel_db_exec(db,
                                 "SELECT current_setting('application_name'), "
                                 "current_setting('statement_timeout')",
                                 0, NULL);
    assert_int_equal(keel_db_check(db, res, "settings"), KEEL_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "keel-test-db");
    assert_string_equal(PQgetvalue(res, 0, 1), "30s");
    PQclear(res);
    keel_db_free(db);
}

static void test_check_classifies_sqlstates(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    assert_int_equal(check_sql(db, "SELECT 1"), KEEL_OK);
    assert_int_equal(check_sql(db, "CREATE TEMP TABLE cls (id int PRIMARY KEY)"), KEEL_OK);
    assert_int_equal(check_sql(db, "INSERT INTO cls VALUES (1)"), KEEL_OK);
    assert_int_equal(check_sql(db, "INSERT INTO cls VALUES (1)"), KEEL_ERR_CONFLICT);
    assert_int_equal(check_sql(db, "SELECT 1/0"), KEEL_ERR);
    assert_int_equal(check_sql(db, "SELEC nonsense"), KEEL_ERR);
    static const char *transient[] = {"40001", "40P01", "57P01", "57P02", "57P03", "53300"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '%s'; END $$",
                 transient[i]);
        assert_int_equal(check_sql(db, sql), KEEL_ERR_TRANSIENT);
    }
    keel_db_free(db);
}

static void terminate(keel_db *killer, int pid)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    PGresult *res = keel_db_exec(killer, sql, 0, NULL);
    assert_int_equal(keel_db_check(killer, res, "terminate"), KEEL_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    /* pg_terminate_backend only signals; wait until the session is really gone. */
    for (int i = 0; i < 100; i++) {
        int64_t sessions =
            keel_testdb_int(killer, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
        if (sessions == 0) {
            return;
        }
        keel_clock_sleep_ms(20);
    }
    fail_msg("backend %d did not end", pid);
}

static void test_reconnect_after_terminate(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    keel_db *killer = keel_testdb_connect(keel_testdb_url(), "keel-test-killer");
    const char *params[] = {"41"};
    PGresult *res = keel_db_exec_prepared(db, "add_one", "SELECT $1::int + 1", 1, params);
    assert_int_equal(keel_db_check(db, res, "prepared"), KEEL_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    PQclear(res);

    int pid = (int)keel_testdb_int(db, "SELECT pg_backend_pid()");
    terminate(killer, pid);

    res = keel_db_exec(db, "SELECT 1", 0, NULL);
    assert_int_equal(keel_db_check(db, res, "after terminate"), KEEL_ERR_TRANSIENT);
    PQclear(res);
    assert_false(keel_db_is_connected(db));

    assert_int_equal(keel_db_connect(db, 10000), KEEL_OK);
    assert_true(keel_testdb_int(db, "SELECT pg_backend_pid()") != pid);
    assert_string_equal(PQparameterStatus(keel_db_conn(db), "application_name"), "keel-test-db");
    /* The statement prepared on the old session is prepared again on the new one. */
    res = keel_db_exec_prepared(db, "add_one", "SELECT $1::int + 1", 1, params);
    assert_int_equal(keel_db_check(db, res, "prepared after reconnect"), KEEL_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    PQclear(res);
    keel_db_free(killer);
    keel_db_free(db);
}

/* ---- transactions ------------------------------------------------------------------------ */

typedef struct conflict_body {
    keel_db *other;
    int calls;
    int interfere_until; /* interfere on calls 1..interfere_until */
    char table[64];
} conflict_body;

/* Reads a row, lets another session update and commit it, then updates it too: under
 * SERIALIZABLE that is a real 40001 on every attempt the other session interferes with. */
static keel_result conflict_fn(keel_db *db, void *arg)
{
    conflict_body *b = arg;
    char sql[160];
    b->calls++;
    snprintf(sql, sizeof(sql), "SELECT v FROM %s WHERE id = 1", b->table);
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    keel_result rc = keel_db_check(db, res, "read");
    PQclear(res);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (b->calls <= b->interfere_until) {
        keel_testdb_exec(b->other, "UPDATE %s SET v = v + 100 WHERE id = 1", b->table);
    }
    snprintf(sql, sizeof(sql), "UPDATE %s SET v = v + 1 WHERE id = 1", b->table);
    res = keel_db_exec(db, sql, 0, NULL);
    rc = keel_db_check(db, res, "update");
    PQclear(res);
    return rc;
}

static void make_counter_table(keel_db *db, char *name, size_t len)
{
    snprintf(name, len, "keel_test_db_%d_%lld", (int)getpid(),
             (long long)keel_clock_now_us() % 1000000000LL);
    keel_testdb_exec(db, "CREATE TABLE %s (id int PRIMARY KEY, v int NOT NULL)", name);
    keel_testdb_exec(db, "INSERT INTO %s VALUES (1, 0)", name);
}

static void drop_table(keel_db *db, const char *name)
{
    keel_testdb_exec(db, "DROP TABLE IF EXISTS %s", name);
}

static long long table_value(keel_db *db, const char *table)
{
    return keel_testdb_int(db, "SELECT v FROM %s WHERE id = 1", table);
}

static void test_transaction_retries_serialization_failure(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    conflict_body b = {.other = keel_testdb_connect(keel_testdb_url(), "keel-test-other"),
                       .interfere_until = 1};
    make_counter_table(db, b.table, sizeof(b.table));

    keel_db_tx_options opts = {.isolation = KEEL_DB_SERIALIZABLE, .base_backoff_ms = 5};
    int retries = 0;
    assert_int_equal(keel_db_transaction(db, &opts, conflict_fn, &b, &retries), KEEL_OK);
    assert_int_equal(b.calls, 2);
    assert_int_equal(retries, 1);
    /* The other session's +100 and exactly one +1 of ours. */
    assert_int_equal(table_value(db, b.table), 101);

    drop_table(db, b.table);
    keel_db_free(b.other);
    keel_db_free(db);
}

static void test_transaction_gives_up_after_max_attempts(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    conflict_body b = {.other = keel_testdb_connect(keel_testdb_url(), "keel-test-other"),
                       .interfere_until = 1000};
    make_counter_table(db, b.table, sizeof(b.table));

    keel_db_tx_options opts = {
        .isolation = KEEL_DB_REPEATABLE_READ, .max_attempts = 3, .base_backoff_ms = 5};
    int retries = 10; /* added to, not overwritten */
    assert_int_equal(keel_db_transaction(db, &opts, conflict_fn, &b, &retries), KEEL_ERR_TRANSIENT);
    assert_int_equal(b.calls, 3);
    assert_int_equal(retries, 12);
    assert_int_equal(table_value(db, b.table), 300); /* none of ours committed */
    assert_int_equal(PQtransactionStatus(keel_db_conn(db)), PQTRANS_IDLE);

    drop_table(db, b.table);
    keel_db_free(b.other);
    keel_db_free(db);
}

typedef struct insert_body {
    const char *table;
    keel_result result;
    int calls;
    bool ignore_error;
} insert_body;

static keel_result insert_fn(keel_db *db, void *arg)
{
    insert_body *b = arg;
    char sql[160];
    b->calls++;
    snprintf(sql, sizeof(sql), "UPDATE %s SET v = v + 1 WHERE id = 1", b->table);
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    keel_result rc = keel_db_check(db, res, "update");
    PQclear(res);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (b->ignore_error) {
        res = keel_db_exec(db, "SELECT 1/0", 0, NULL); /* aborts the transaction */
        PQclear(res);
    }
    return b->result;
}

static void test_transaction_commits_and_rolls_back(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    char table[64];
    make_counter_table(db, table, sizeof(table));

    insert_body ok = {.table = table, .result = KEEL_OK};
    assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &ok, NULL), KEEL_OK);
    assert_int_equal(table_value(db, table), 1);

    /* Non-transient results roll back and are not retried. */
    insert_body conflict = {.table = table, .result = KEEL_ERR_CONFLICT};
    int retries = 0;
    assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &conflict, &retries),
                     KEEL_ERR_CONFLICT);
    assert_int_equal(conflict.calls, 1);
    assert_int_equal(retries, 0);
    insert_body perm = {.table = table, .result = KEEL_ERR};
    assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &perm, NULL), KEEL_ERR);
    assert_int_equal(table_value(db, table), 1);

    /* A body that swallowed an error and returned ok: the server rolled back, we say so. */
    insert_body sloppy = {.table = table, .result = KEEL_OK, .ignore_error = true};
    assert_int_equal(keel_db_transaction(db, NULL, insert_fn, &sloppy, NULL), KEEL_ERR);
    assert_int_equal(table_value(db, table), 1);
    assert_int_equal(PQtransactionStatus(keel_db_conn(db)), PQTRANS_IDLE);

    drop_table(db, table);
    keel_db_free(db);
}

static void test_transaction_reconnects_after_terminate(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-db");
    keel_db *killer = keel_testdb_connect(keel_testdb_url(), "keel-test-killer");
    char table[64];
    make_counter_table(db, table, sizeof(table));
    terminate(killer, (int)keel_testdb_int(db, "SELECT pg_backend_pid()"));

    insert_body ok = {.table = table, .result = KEEL_OK};
    int retries = 0;
    keel_db_tx_options opts = {.base_backoff_ms = 5};
    assert_int_equal(keel_db_transaction(db, &opts, insert_fn, &ok, &retries), KEEL_OK);
    assert_int_equal(retries, 1);
    assert_int_equal(ok.calls, 1); /* the lost BEGIN never reached the body */
    assert_int_equal(table_value(killer, table), 1);

    drop_table(killer, table);
    keel_db_free(killer);
    keel_db_free(db);
}

/* ---- pool -------------------------------------------------------------------------------- */

typedef struct pool_waiter {
    keel_db_pool *pool;
    keel_db *got;
    int64_t waited_ms;
} pool_waiter;

static void *pool_wait_thread(void *arg)
{
    pool_waiter *w = arg;
    int64_t t0 = keel_clock_monotonic_ms();
    w->got = keel_db_pool_acquire(w->pool, 5000);
    w->waited_ms = keel_clock_monotonic_ms() - t0;
    return NULL;
}

static void test_pool_blocks_times_out_and_hands_over(void **state)
{
    (void)state;
    NEED_DB();
    keel_db_pool *pool = keel_db_pool_new(keel_testdb_url(), NULL, "keel-test-pool", 2);
    assert_non_null(pool);
    keel_db *a = keel_db_pool_acquire(pool, 5000);
    keel_db *b = keel_db_pool_acquire(pool, 5000);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_true(keel_db_is_connected(a)); /* connected lazily by acquire */

    int64_t t0 = keel_clock_monotonic_ms();
    assert_null(keel_db_pool_acquire(pool, 200));
    int64_t waited = keel_clock_monotonic_ms() - t0;
    assert_true(waited >= 190);
    assert_true(waited < 2000);

    /* A busy pool is still ready. */
    assert_true(keel_db_pool_ping(pool));

    pool_waiter w = {.pool = pool};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pool_wait_thread, &w), 0);
    keel_clock_sleep_ms(150);
    /* Left inside a transaction: release must roll it back before handing it over. */
    keel_testdb_exec(a, "BEGIN");
    keel_testdb_exec(a, "CREATE TEMP TABLE pool_leftover (x int)");
    keel_db_pool_release(pool, a);
    pthread_join(th, NULL);
    assert_ptr_equal(w.got, a);
    assert_true(w.waited_ms >= 100);
    assert_int_equal(PQtransactionStatus(keel_db_conn(a)), PQTRANS_IDLE);
    assert_int_equal(keel_testdb_int(a, "SELECT count(*) FROM pg_class WHERE relname = "
                                        "'pool_leftover'"),
                     0);

    keel_db_pool_release(pool, a);
    keel_db_pool_release(pool, b);
    assert_true(keel_db_pool_ping(pool));
    keel_db_pool_free(pool);
}

static void test_pool_ping_false_when_unreachable(void **state)
{
    (void)state;
    keel_db_pool *pool = keel_db_pool_new("postgresql://nobody@127.0.0.1:1/none", NULL, "t", 1);
    assert_non_null(pool);
    assert_false(keel_db_pool_ping(pool));
    assert_null(keel_db_pool_acquire(pool, 300));
    keel_db_pool_free(pool);
    assert_null(keel_db_pool_new(keel_testdb_url() ? keel_testdb_url() : "dbname=x", NULL, "t", 0));
}

int main(void)
{
    keel_log_init("test_db", KEEL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_null_result_is_transient),
        cmocka_unit_test(test_new_rejects_bad_conninfo),
        cmocka_unit_test(test_connect_times_out_without_leaking_password),
        cmocka_unit_test(test_connect_sets_session),
        cmocka_unit_test(test_check_classifies_sqlstates),
        cmocka_unit_test(test_reconnect_after_terminate),
        cmocka_unit_test(test_transaction_retries_serialization_failure),
        cmocka_unit_test(test_transaction_gives_up_after_max_attempts),
        cmocka_unit_test(test_transaction_commits_and_rolls_back),
        cmocka_unit_test(test_transaction_reconnects_after_terminate),
        cmocka_unit_test(test_pool_blocks_times_out_and_hands_over),
        cmocka_unit_test(test_pool_ping_false_when_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
