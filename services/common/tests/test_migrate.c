/* Tests of keel/migrate.h against a real PostgreSQL (KEEL_TEST_DATABASE_URL): apply once,
 * refuse changed files, roll back failed files, and serialize concurrent instances. */
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
#include "keel/migrate.h"
#include "keel/testing/db.h"

#define NEED_DB() keel_testdb_skip_without(keel_testdb_url())

static keel_db *connect_new(void)
{
    return keel_testdb_connect(keel_testdb_url(), "keel-test-migrate");
}

static long long recorded(keel_db *db, const char *component)
{
    return keel_testdb_int(db, "SELECT count(*) FROM keel_schema_migrations WHERE component = '%s'",
                           component);
}

static void drop(keel_db *db, const char *table)
{
    keel_testdb_exec(db, "DROP TABLE IF EXISTS %s", table);
}

static void test_common_migrations_apply(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char err[512];
    assert_true(keel_common_migrations_count >= 1);
    assert_string_equal(keel_common_migrations[0].name, "001_outbox_inbox.sql");
    assert_int_equal(keel_migrate_apply(db, "libkeel", keel_common_migrations,
                                        keel_common_migrations_count, err, sizeof(err)),
                     KEEL_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM pg_tables WHERE tablename IN "
                                         "('outbox', 'inbox') AND schemaname = current_schema()"),
                     2);
    assert_int_equal(keel_testdb_int(db,
                                     "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                     "'inbox_processed_at_idx' AND schemaname = current_schema()"),
                     1);
    assert_int_equal(recorded(db, "libkeel"), (long long)keel_common_migrations_count);
    keel_db_free(db);
}

static void test_apply_once_then_noop(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char comp[64], table[64], sql1[256], sql2[256], err[512];
    keel_testdb_unique_name(comp, sizeof(comp), "comp");
    keel_testdb_unique_name(table, sizeof(table), "t");
    snprintf(sql1, sizeof(sql1), "CREATE TABLE %s (n int NOT NULL);", table);
    /* Not idempotent on purpose: applying it twice would leave two rows. */
    snprintf(sql2, sizeof(sql2), "INSERT INTO %s VALUES (1);\nINSERT INTO %s VALUES (2);", table,
             table);
    keel_migration list[] = {{1, "001_create.sql", sql1}, {2, "002_fill.sql", sql2}};

    assert_int_equal(keel_migrate_apply(db, comp, list, 2, err, sizeof(err)), KEEL_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM %s", table), 2);
    assert_int_equal(recorded(db, comp), 2);

    /* The checksum is the SHA-256 of the file, in hex. */
    assert_int_equal(
        keel_testdb_int(db,
                        "SELECT count(*) FROM keel_schema_migrations WHERE component = '%s' AND "
                        "version = 1 AND name = '001_create.sql' AND checksum = "
                        "encode(sha256(convert_to($x$%s$x$, 'UTF8')), 'hex')",
                        comp, sql1),
        1);

    assert_int_equal(keel_migrate_apply(db, comp, list, 2, err, sizeof(err)), KEEL_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM %s", table), 2);
    assert_int_equal(recorded(db, comp), 2);

    /* A later file on top of applied ones: only it runs. */
    char sql3[160];
    snprintf(sql3, sizeof(sql3), "INSERT INTO %s VALUES (3);", table);
    keel_migration more[] = {list[0], list[1], {3, "003_more.sql", sql3}};
    assert_int_equal(keel_migrate_apply(db, comp, more, 3, err, sizeof(err)), KEEL_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM %s", table), 3);
    assert_int_equal(recorded(db, comp), 3);

    /* Same versions under another component are separate. */
    char comp2[64];
    keel_testdb_unique_name(comp2, sizeof(comp2), "comp");
    char sql4[160];
    snprintf(sql4, sizeof(sql4), "INSERT INTO %s VALUES (4);", table);
    keel_migration other[] = {{1, "001_other.sql", sql4}};
    assert_int_equal(keel_migrate_apply(db, comp2, other, 1, err, sizeof(err)), KEEL_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM %s", table), 4);
    drop(db, table);
    keel_db_free(db);
}

static void test_changed_checksum_is_refused(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char comp[64], table[64], sql1[256], changed[256], err[512];
    keel_testdb_unique_name(comp, sizeof(comp), "comp");
    keel_testdb_unique_name(table, sizeof(table), "t");
    snprintf(sql1, sizeof(sql1), "CREATE TABLE %s (n int);", table);
    snprintf(changed, sizeof(changed), "CREATE TABLE %s (n bigint);", table);
    keel_migration list[] = {{1, "001_init.sql", sql1}};
    keel_migration edited[] = {{1, "001_init.sql", changed}};
    assert_int_equal(keel_migrate_apply(db, comp, list, 1, err, sizeof(err)), KEEL_OK);

    err[0] = '\0';
    assert_int_equal(keel_migrate_apply(db, comp, edited, 1, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "001_init.sql"));
    assert_non_null(strstr(err, "new migration"));

    /* The lock is released and the session's statement timeout restored, even on error. */
    assert_int_equal(keel_testdb_int(db,
                                     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND pid = pg_backend_pid()"),
                     0);
    PGresult *res = keel_db_exec(db, "SHOW statement_timeout", 0, NULL);
    assert_int_equal(keel_db_check(db, res, "show"), KEEL_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "30s");
    PQclear(res);
    drop(db, table);
    keel_db_free(db);
}

static void test_failed_migration_rolls_back(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char comp[64], table[64], good[160], bad[256], err[512];
    keel_testdb_unique_name(comp, sizeof(comp), "comp");
    keel_testdb_unique_name(table, sizeof(table), "t");
    snprintf(good, sizeof(good), "SELECT 1;");
    snprintf(bad, sizeof(bad), "CREATE TABLE %s (n int);\nINSERT INTO %s VALUES (1/0);", table,
             table);
    keel_migration list[] = {{1, "001_ok.sql", good}, {2, "002_broken.sql", bad}};
    assert_int_equal(keel_migrate_apply(db, comp, list, 2, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "002_broken.sql"));
    assert_non_null(strstr(err, "22012"));
    /* 001 stays applied; nothing of 002 (not even its CREATE TABLE) survives. */
    assert_int_equal(recorded(db, comp), 1);
    assert_int_equal(
        keel_testdb_int(db, "SELECT count(*) FROM pg_tables WHERE tablename = '%s'", table), 0);
    assert_int_equal(PQtransactionStatus(keel_db_conn(db)), PQTRANS_IDLE);
    keel_db_free(db);
}

static void test_bad_lists_are_refused(void **state)
{
    (void)state;
    char err[512];
    keel_migration unordered[] = {{2, "002_b.sql", "SELECT 1;"}, {1, "001_a.sql", "SELECT 1;"}};
    /* The list is checked before any connection is needed. */
    keel_db *db = keel_db_new("postgresql://nobody@127.0.0.1:1/none", NULL, "t");
    assert_non_null(db);
    assert_int_equal(keel_migrate_apply(db, "x", unordered, 2, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "002_b.sql"));
    keel_migration dup[] = {{1, "001_a.sql", "SELECT 1;"}, {1, "001_b.sql", "SELECT 1;"}};
    assert_int_equal(keel_migrate_apply(db, "x", dup, 2, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "001_b.sql"));
    assert_int_equal(keel_migrate_apply(NULL, "x", dup, 2, err, sizeof(err)), KEEL_ERR);
    keel_db_free(db);
}

typedef struct racer {
    const char *component;
    const keel_migration *list;
    size_t count;
    pthread_barrier_t *start;
    keel_result rc;
    char err[512];
} racer;

static void *race_thread(void *arg)
{
    racer *r = arg;
    keel_db *db = keel_db_new(keel_testdb_url(), NULL, "keel-test-migrate-race");
    if (!db || keel_db_connect(db, 10000) != KEEL_OK) {
        r->rc = KEEL_ERR_TRANSIENT;
        pthread_barrier_wait(r->start);
        keel_db_free(db);
        return NULL;
    }
    pthread_barrier_wait(r->start);
    r->rc = keel_migrate_apply(db, r->component, r->list, r->count, r->err, sizeof(r->err));
    keel_db_free(db);
    return NULL;
}

static void test_concurrent_instances_apply_each_file_once(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char comp[64], table[64], sql1[256], sql2[256];
    keel_testdb_unique_name(comp, sizeof(comp), "comp");
    keel_testdb_unique_name(table, sizeof(table), "t");
    /* The sleep keeps the first instance inside its migrations while the second arrives;
     * without the lock the second would fail on CREATE TABLE or insert a second row. */
    snprintf(sql1, sizeof(sql1), "SELECT pg_sleep(0.5);\nCREATE TABLE %s (n int NOT NULL);", table);
    snprintf(sql2, sizeof(sql2), "INSERT INTO %s VALUES (1);", table);
    keel_migration list[] = {{1, "001_slow.sql", sql1}, {2, "002_row.sql", sql2}};

    enum { RACERS = 3 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer){.component = comp, .list = list, .count = 2, .start = &start};
        assert_int_equal(pthread_create(&threads[i], NULL, race_thread, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].rc != KEEL_OK) {
            fail_msg("racer %d: %s", i, racers[i].err);
        }
    }
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM %s", table), 1);
    assert_int_equal(recorded(db, comp), 2);
    drop(db, table);
    keel_db_free(db);
}

int main(void)
{
    keel_log_init("test_migrate", KEEL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_lists_are_refused),
        cmocka_unit_test(test_common_migrations_apply),
        cmocka_unit_test(test_apply_once_then_noop),
        cmocka_unit_test(test_changed_checksum_is_refused),
        cmocka_unit_test(test_failed_migration_rolls_back),
        cmocka_unit_test(test_concurrent_instances_apply_each_file_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
