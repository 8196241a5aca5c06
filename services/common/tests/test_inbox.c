/* Tests of keel/inbox.h against a real PostgreSQL (KEEL_TEST_DATABASE_URL): first claim wins,
 * duplicates conflict, a rolled-back claim leaves nothing, concurrent claims serialize. */
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
#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/migrate.h"
#include "keel/testing/db.h"

#define NEED_DB() keel_testdb_skip_without(keel_testdb_url())

/* A connection to the scratch database with libkeel's tables (the inbox) in place. */
static keel_db *connect_new(void)
{
    keel_db *db = keel_testdb_connect(keel_testdb_url(), "keel-test-inbox");
    keel_testdb_migrate(db, NULL, NULL, 0);
    return db;
}

static long long rows_for(keel_db *db, const char *consumer, const char *event_id)
{
    const char *params[] = {consumer, event_id};
    PGresult *res = keel_db_exec(
        db, "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = $2", 2, params);
    assert_int_equal(keel_db_check(db, res, "count"), KEEL_OK);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

typedef struct claim_body {
    const char *consumer;
    const char *event_id;
    keel_result claim;  /* what keel_inbox_claim said */
    keel_result finish; /* what the body returns after a successful claim */
} claim_body;

static keel_result claim_fn(keel_db *db, void *arg)
{
    claim_body *b = arg;
    b->claim = keel_inbox_claim(db, b->consumer, b->event_id);
    if (b->claim == KEEL_ERR_CONFLICT) {
        /* The transaction must still be usable after a duplicate. */
        PGresult *res = keel_db_exec(db, "SELECT 1", 0, NULL);
        keel_result rc = keel_db_check(db, res, "after duplicate");
        PQclear(res);
        return rc;
    }
    return b->claim == KEEL_OK ? b->finish : b->claim;
}

static void test_duplicate_is_conflict(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char consumer[64], event[64];
    keel_testdb_unique_name(consumer, sizeof(consumer), "consumer");
    keel_testdb_unique_name(event, sizeof(event), "evt");

    claim_body first = {.consumer = consumer, .event_id = event, .finish = KEEL_OK};
    assert_int_equal(keel_db_transaction(db, NULL, claim_fn, &first, NULL), KEEL_OK);
    assert_int_equal(first.claim, KEEL_OK);
    assert_int_equal(rows_for(db, consumer, event), 1);

    claim_body again = {.consumer = consumer, .event_id = event, .finish = KEEL_OK};
    assert_int_equal(keel_db_transaction(db, NULL, claim_fn, &again, NULL), KEEL_OK);
    assert_int_equal(again.claim, KEEL_ERR_CONFLICT);
    assert_int_equal(rows_for(db, consumer, event), 1);

    /* Another consumer has its own record of the same event. */
    char other[64];
    keel_testdb_unique_name(other, sizeof(other), "consumer");
    claim_body second_consumer = {.consumer = other, .event_id = event, .finish = KEEL_OK};
    assert_int_equal(keel_db_transaction(db, NULL, claim_fn, &second_consumer, NULL), KEEL_OK);
    assert_int_equal(second_consumer.claim, KEEL_OK);
    keel_db_free(db);
}

static void test_rolled_back_claim_leaves_no_row(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char consumer[64], event[64];
    keel_testdb_unique_name(consumer, sizeof(consumer), "consumer");
    keel_testdb_unique_name(event, sizeof(event), "evt");

    /* The effect failed: the claim goes with it, so the redelivery is processed. */
    claim_body failing = {.consumer = consumer, .event_id = event, .finish = KEEL_ERR};
    assert_int_equal(keel_db_transaction(db, NULL, claim_fn, &failing, NULL), KEEL_ERR);
    assert_int_equal(failing.claim, KEEL_OK);
    assert_int_equal(rows_for(db, consumer, event), 0);

    claim_body retry = {.consumer = consumer, .event_id = event, .finish = KEEL_OK};
    assert_int_equal(keel_db_transaction(db, NULL, claim_fn, &retry, NULL), KEEL_OK);
    assert_int_equal(retry.claim, KEEL_OK);
    assert_int_equal(rows_for(db, consumer, event), 1);
    keel_db_free(db);
}

static void test_claim_outside_transaction_is_refused(void **state)
{
    (void)state;
    NEED_DB();
    keel_db *db = connect_new();
    char consumer[64], event[64];
    keel_testdb_unique_name(consumer, sizeof(consumer), "consumer");
    keel_testdb_unique_name(event, sizeof(event), "evt");
    assert_int_equal(keel_inbox_claim(db, consumer, event), KEEL_ERR);
    assert_int_equal(rows_for(db, consumer, event), 0);
    assert_int_equal(keel_inbox_claim(db, consumer, ""), KEEL_ERR);
    assert_int_equal(keel_inbox_claim(db, NULL, event), KEEL_ERR);

    /* In a transaction that already failed, the claim refuses too. */
    keel_testdb_exec(db, "BEGIN");
    PGresult *res = keel_db_exec(db, "SELECT 1/0", 0, NULL);
    PQclear(res);
    assert_int_equal(keel_inbox_claim(db, consumer, event), KEEL_ERR);
    keel_testdb_exec(db, "ROLLBACK");

    keel_db *gone = keel_db_new("postgresql://nobody@127.0.0.1:1/none", NULL, "t");
    assert_int_equal(keel_inbox_claim(gone, consumer, event), KEEL_ERR_TRANSIENT);
    keel_db_free(gone);
    keel_db_free(db);
}

typedef struct concurrent_claim {
    const char *consumer;
    const char *event_id;
    keel_result rc;
    int64_t took_ms;
} concurrent_claim;

static void *claim_thread(void *arg)
{
    concurrent_claim *c = arg;
    keel_db *db = keel_db_new(keel_testdb_url(), NULL, "keel-test-inbox-2");
    if (!db || keel_db_connect(db, 10000) != KEEL_OK) {
        c->rc = KEEL_ERR_TRANSIENT;
        keel_db_free(db);
        return NULL;
    }
    PGresult *res = keel_db_exec(db, "BEGIN", 0, NULL);
    PQclear(res);
    int64_t t0 = keel_clock_monotonic_ms();
    c->rc = keel_inbox_claim(db, c->consumer, c->event_id);
    c->took_ms = keel_clock_monotonic_ms() - t0;
    res = keel_db_exec(db, "COMMIT", 0, NULL);
    PQclear(res);
    keel_db_free(db);
    return NULL;
}

/* A second claim of an id whose first claim is not yet committed waits for it, then follows
 * its outcome: conflict if it committed, success if it rolled back. */
static void run_concurrent(bool first_commits)
{
    keel_db *db = connect_new();
    char consumer[64], event[64];
    keel_testdb_unique_name(consumer, sizeof(consumer), "consumer");
    keel_testdb_unique_name(event, sizeof(event), "evt");

    keel_testdb_exec(db, "BEGIN");
    assert_int_equal(keel_inbox_claim(db, consumer, event), KEEL_OK);
    concurrent_claim c = {.consumer = consumer, .event_id = event};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, claim_thread, &c), 0);
    keel_clock_sleep_ms(300);
    keel_testdb_exec(db, first_commits ? "COMMIT" : "ROLLBACK");
    pthread_join(th, NULL);

    assert_int_equal(c.rc, first_commits ? KEEL_ERR_CONFLICT : KEEL_OK);
    assert_true(c.took_ms >= 250); /* it really waited for the first transaction */
    assert_int_equal(rows_for(db, consumer, event), 1);
    keel_db_free(db);
}

static void test_concurrent_claim_after_commit_conflicts(void **state)
{
    (void)state;
    NEED_DB();
    run_concurrent(true);
}

static void test_concurrent_claim_after_rollback_wins(void **state)
{
    (void)state;
    NEED_DB();
    run_concurrent(false);
}

int main(void)
{
    keel_log_init("test_inbox", KEEL_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_is_conflict),
        cmocka_unit_test(test_rolled_back_claim_leaves_no_row),
        cmocka_unit_test(test_claim_outside_transaction_is_refused),
        cmocka_unit_test(test_concurrent_claim_after_commit_conflicts),
        cmocka_unit_test(test_concurrent_claim_after_rollback_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
