/* Tests of the journal against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped when unset):
 * postings and their balances, duplicates posted once, 32 concurrent postings to one account
 * with exact balances (and the retries they cost, printed), the database's own guards
 * (balanced lines at COMMIT, append-only journal) and the audit catching a corrupted balance. */
#include <pthread.h>

#include "audit.h"
#include "events.h"
#include "journal.h"
#include "ledger_test.h"
#include "postings.h"

#define CONCURRENT 32

static keel_testdb *tdb; /* NULL without a database */
/* tdb's connection and URL, named short for the many statements below. */
static keel_db *db;
static const char *url;
static ledger_fee_schedule fees;

static int setup(void **state)
{
    (void)state;
    tdb = ledger_test_open("ledger_test_journal", &fees);
    db = tdb != NULL ? tdb->db : NULL;
    url = tdb != NULL ? tdb->url : NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    keel_testdb_close(&tdb);
    db = NULL;
    url = NULL;
    return 0;
}

#define SKIP_WITHOUT_DB() keel_testdb_skip_without(tdb)

static const ledger_post_options service_opts = {
    .inbox_consumer = LEDGER_PAYMENT_EVENTS_CONSUMER,
    .isolation = KEEL_DB_READ_COMMITTED,
};

static void make_payment(ledger_posting *p, const char *event_id, const char *payment_id,
                         const char *merchant, int64_t amount)
{
    ledger_money_event ev = {.event_id = event_id,
                             .source_id = payment_id,
                             .payment_id = payment_id,
                             .merchant_id = merchant,
                             .provider = "provider_a",
                             .currency = "usd",
                             .amount = amount,
                             .effective_ms = INT64_C(1710054000000)};
    char err[256];
    if (!ledger_posting_payment(&fees, &ev, p, err, sizeof(err))) {
        fail_msg("posting: %s", err);
    }
}

static int64_t balance_of(const char *kind, const char *owner)
{
    return keel_testdb_int(db,
                           "SELECT coalesce((SELECT balance FROM accounts WHERE kind = '%s' "
                           "AND owner = '%s' AND currency = 'usd'), 0)",
                           kind, owner);
}

static int64_t audit_failures(void)
{
    int64_t failures = -1;
    assert_int_equal(ledger_audit_count(db, &failures), KEEL_OK);
    return failures;
}

static void test_post_payment_and_refund(void **state)
{
    ledger_posting p;
    ledger_post_result res;
    ledger_money_event refund = {.event_id = "evt-j1-refund",
                                 .source_id = "re_j1",
                                 .payment_id = "pay_j1",
                                 .merchant_id = "mer_j1",
                                 .provider = "provider_a",
                                 .currency = "usd",
                                 .amount = 4000,
                                 .effective_ms = INT64_C(1710057600000)};
    char err[256];

    (void)state;
    SKIP_WITHOUT_DB();
    make_payment(&p, "evt-j1", "pay_j1", "mer_j1", 10000);
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    assert_int_equal(res.outcome, LEDGER_POSTED);
    assert_memory_equal(res.transaction_id, "txn_", 4);
    /* merchant_payable is a liability: a credit, so negative; it holds amount - fee. */
    assert_int_equal(balance_of("merchant_payable", "mer_j1"), -9680);
    assert_int_equal(keel_testdb_int(db,
                                     "SELECT count(*) FROM journal_lines WHERE transaction_id = "
                                     "'%s'",
                                     res.transaction_id),
                     3);
    assert_int_equal(keel_testdb_int(db,
                                     "SELECT count(*) FROM journal_transactions WHERE id = '%s' "
                                     "AND effective_at = '2024-03-10T07:00:00Z' AND fee = 320",
                                     res.transaction_id),
                     1);

    /* A refund is borne in full by the merchant; keel keeps its fee. */
    assert_true(ledger_posting_refund(&refund, &p, err, sizeof(err)));
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    assert_int_equal(res.outcome, LEDGER_POSTED);
    assert_int_equal(balance_of("merchant_payable", "mer_j1"), -5680);
    assert_int_equal(audit_failures(), 0);
}

static void test_duplicates_post_once(void **state)
{
    ledger_posting p;
    ledger_post_result res;
    int64_t provider_before;

    (void)state;
    SKIP_WITHOUT_DB();
    provider_before = balance_of("provider_clearing", "provider_a");
    make_payment(&p, "evt-j2", "pay_j2", "mer_j2", 5000);
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    assert_int_equal(res.outcome, LEDGER_POSTED);
    /* The same record delivered again. */
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    assert_int_equal(res.outcome, LEDGER_DUPLICATE_EVENT);
    assert_string_equal(res.transaction_id, "");
    /* The same payment republished under a new event id. */
    make_payment(&p, "evt-j2-again", "pay_j2", "mer_j2", 5000);
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    assert_int_equal(res.outcome, LEDGER_DUPLICATE_SOURCE);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM journal_transactions WHERE "
                                         "source_id = 'pay_j2'"),
                     1);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM skipped_events WHERE event_id = "
                                         "'evt-j2-again' AND source_id = 'pay_j2'"),
                     1);
    assert_int_equal(balance_of("provider_clearing", "provider_a"), provider_before + 5000);
    assert_int_equal(balance_of("merchant_payable", "mer_j2"), -(5000 - 175));
    assert_int_equal(audit_failures(), 0);
}

typedef struct worker {
    pthread_t thread;
    pthread_barrier_t *barrier;
    keel_db_isolation isolation;
    const char *merchant;
    int index;
    int retries;
    keel_result rc;
    ledger_post_outcome outcome;
} worker;

/* Holds every worker inside its transaction (snapshot taken, lines written) until all 32
 * are there, so the balance updates really collide. Only the first attempt waits. */
static void barrier_hook(void *arg, int attempt)
{
    worker *w = arg;
    if (attempt == 1) {
        pthread_barrier_wait(w->barrier);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    keel_db *conn = keel_testdb_connect(url, "ledger-test");
    char event_id[64];
    char payment_id[64];
    ledger_posting p;
    ledger_post_result res;
    ledger_post_options opts = {
        .inbox_consumer = LEDGER_PAYMENT_EVENTS_CONSUMER,
        .isolation = w->isolation,
        .max_attempts = 500,
        .before_balances = barrier_hook,
        .hook_arg = w,
    };

    snprintf(event_id, sizeof(event_id), "evt-%s-%d", w->merchant, w->index);
    snprintf(payment_id, sizeof(payment_id), "pay_%s_%d", w->merchant, w->index);
    make_payment(&p, event_id, payment_id, w->merchant, 1000 + w->index);
    w->rc = ledger_journal_post(conn, &p, &opts, &res);
    w->retries = res.retries;
    w->outcome = res.outcome;
    keel_db_free(conn);
    return NULL;
}

/* 32 postings to the same merchant, provider and fee accounts at once. */
static int run_concurrent(keel_db_isolation isolation, const char *merchant)
{
    pthread_barrier_t barrier;
    worker workers[CONCURRENT];
    ledger_posting p;
    ledger_post_result res;
    int64_t provider_before, fees_before, want_net = 0, want_fee = 0, want_gross = 0;
    int retries = 0;
    char first_event[64];
    char first_payment[64];

    /* The accounts exist before the race: a first-time account insert would make the other
     * workers wait on it while its owner waits at the barrier. */
    snprintf(first_event, sizeof(first_event), "evt-%s-first", merchant);
    snprintf(first_payment, sizeof(first_payment), "pay_%s_first", merchant);
    make_payment(&p, first_event, first_payment, merchant, 100);
    assert_int_equal(ledger_journal_post(db, &p, &service_opts, &res), KEEL_OK);
    provider_before = balance_of("provider_clearing", "provider_a");
    fees_before = balance_of("fee_revenue", "");

    assert_int_equal(pthread_barrier_init(&barrier, NULL, CONCURRENT), 0);
    for (int i = 0; i < CONCURRENT; i++) {
        workers[i] =
            (worker){.barrier = &barrier, .isolation = isolation, .merchant = merchant, .index = i};
        assert_int_equal(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < CONCURRENT; i++) {
        int64_t fee = 0;
        pthread_join(workers[i].thread, NULL);
        assert_int_equal(workers[i].rc, KEEL_OK);
        assert_int_equal(workers[i].outcome, LEDGER_POSTED);
        retries += workers[i].retries;
        assert_true(ledger_fees_compute(ledger_fees_rule(&fees, "usd"), 1000 + i, &fee));
        want_gross += 1000 + i;
        want_fee += fee;
        want_net += 1000 + i - fee;
    }
    pthread_barrier_destroy(&barrier);

    assert_int_equal(balance_of("merchant_payable", merchant), -(want_net + (100 - 33)));
    assert_int_equal(balance_of("provider_clearing", "provider_a"), provider_before + want_gross);
    assert_int_equal(balance_of("fee_revenue", ""), fees_before - want_fee);
    assert_int_equal(keel_testdb_int(db,
                                     "SELECT count(*) FROM journal_transactions WHERE "
                                     "merchant_id = '%s'",
                                     merchant),
                     CONCURRENT + 1);
    assert_int_equal(audit_failures(), 0);
    return retries;
}

static void test_concurrent_read_committed(void **state)
{
    (void)state;
    SKIP_WITHOUT_DB();
    /* Row locks in ascending account order: the updates queue up, none is lost, none
     * deadlocks, so nothing needs a retry. */
    int retries = run_concurrent(KEEL_DB_READ_COMMITTED, "mer_rc");
    printf("%d concurrent postings to one account (READ COMMITTED): exact balances, %d "
           "retries\n",
           CONCURRENT, retries);
    assert_int_equal(retries, 0);
}

static void test_concurrent_repeatable_read(void **state)
{
    (void)state;
    SKIP_WITHOUT_DB();
    /* Every worker's snapshot predates the first commit, so every other worker's update of
     * the shared rows fails with a serialization error; keel_db_transaction runs each again
     * until it goes through, and the balances still come out exact. */
    int retries = run_concurrent(KEEL_DB_REPEATABLE_READ, "mer_rr");
    printf("%d concurrent postings to one account (REPEATABLE READ): exact balances, %d "
           "retries\n",
           CONCURRENT, retries);
    assert_true(retries >= CONCURRENT - 1);
}

/* Runs sql and returns its SQLSTATE ("" on success). */
static void expect_sqlstate(keel_db *conn, const char *sql, const char *want)
{
    PGresult *res = keel_db_exec(conn, sql, 0, NULL);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (want == NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            fail_msg("%s failed: %s", sql, PQresultErrorMessage(res));
        }
    } else if (state == NULL || strcmp(state, want) != 0) {
        fail_msg("%s: SQLSTATE %s, want %s", sql, state != NULL ? state : "(none)", want);
    }
    PQclear(res);
}

static void test_database_guards(void **state)
{
    (void)state;
    SKIP_WITHOUT_DB();
    int64_t account = keel_testdb_int(db, "SELECT id FROM accounts WHERE kind = "
                                          "'merchant_payable' AND owner = 'mer_j1'");
    char sql[512];

    /* Unbalanced lines are refused at COMMIT by the deferred constraint trigger. */
    expect_sqlstate(db, "BEGIN", NULL);
    expect_sqlstate(db,
                    "INSERT INTO journal_transactions (id, source_type, source_id, "
                    "source_event_id, merchant_id, payment_id, currency, amount, fee, "
                    "effective_at) VALUES ('txn_00000000000000000000000000000001', 'payment', "
                    "'pay_bad', 'evt-bad', 'mer_j1', 'pay_bad', 'usd', 1, 0, now())",
                    NULL);
    snprintf(sql, sizeof(sql),
             "INSERT INTO journal_lines (transaction_id, account_id, amount, currency, "
             "effective_at) VALUES ('txn_00000000000000000000000000000001', %lld, -1, 'usd', "
             "now())",
             (long long)account);
    expect_sqlstate(db, sql, NULL);
    expect_sqlstate(db, "COMMIT", "23514");
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM journal_transactions WHERE "
                                         "source_id = 'pay_bad'"),
                     0);

    /* The journal is append-only. */
    expect_sqlstate(db, "UPDATE journal_lines SET amount = amount + 1", "23001");
    expect_sqlstate(db, "DELETE FROM journal_transactions", "23001");
    assert_int_equal(audit_failures(), 0);
}

static void test_audit_catches_corruption(void **state)
{
    (void)state;
    SKIP_WITHOUT_DB();
    assert_int_equal(audit_failures(), 0);
    keel_testdb_exec(db, "UPDATE accounts SET balance = balance + 1 WHERE owner = 'mer_j2'");
    assert_int_equal(audit_failures(), 1);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM ledger_audit() WHERE check_name "
                                         "= 'balance_mismatch' AND subject = "
                                         "'merchant_payable:mer_j2:usd'"),
                     1);
    keel_testdb_exec(db, "UPDATE accounts SET balance = balance - 1 WHERE owner = 'mer_j2'");
    assert_int_equal(audit_failures(), 0);

    /* An event claimed in the inbox without a posting (the dedupe-before-success trap). */
    keel_testdb_exec(db, "INSERT INTO inbox (consumer, event_id) VALUES "
                         "('ledger.payment-events', 'evt-lost')");
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM ledger_audit() WHERE check_name "
                                         "= 'event_not_posted' AND subject = 'evt-lost'"),
                     1);
    keel_testdb_exec(db, "DELETE FROM inbox WHERE event_id = 'evt-lost'");

    /* The uniqueness that makes postings exactly-once must stay in place. */
    keel_testdb_exec(db, "BEGIN");
    keel_testdb_exec(db, "ALTER TABLE journal_transactions DROP CONSTRAINT "
                         "journal_transactions_source_key");
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM ledger_audit() WHERE check_name "
                                         "= 'constraint_missing'"),
                     1);
    keel_testdb_exec(db, "ROLLBACK");
    assert_int_equal(audit_failures(), 0);
}

static void test_handler_posts_and_sorts(void **state)
{
    ledger_events ev;
    ledger_test_record rec;
    char reason[512];

    (void)state;
    SKIP_WITHOUT_DB();
    ledger_events_init(&ev, db, &fees);
    ledger_test_payment_succeeded(&rec, "evt-h1", "pay_h1", "mer_h", 2000, "usd",
                                  "2024-03-10T07:00:00.250+01:00");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM journal_transactions WHERE "
                                         "source_id = 'pay_h1' AND effective_at = "
                                         "'2024-03-10T06:00:00.25Z'"),
                     1);
    /* Redelivery: OK, nothing new. */
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM journal_transactions WHERE "
                                         "merchant_id = 'mer_h'"),
                     1);
    /* Outcomes that move no money are skipped without touching the books. */
    ledger_test_record_init(&rec, "keel.payment-events.v1", "keel.v1.PaymentFailed", "evt-h2");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    ledger_test_record_init(&rec, "keel.payment-events.v1", "keel.v1.PaymentRequiresReview",
                            "evt-h3");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM inbox WHERE event_id IN "
                                         "('evt-h2', 'evt-h3')"),
                     0);
    /* Poison: unknown type, garbage, a broken rule, a bad time. */
    ledger_test_record_init(&rec, "keel.payment-events.v1", "keel.v1.PaymentExploded", "evt-h4");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "unknown ce_type"));
    ledger_test_record_init(&rec, "keel.payment-events.v1", "keel.v1.PaymentSucceeded", "evt-h5");
    memcpy(rec.buf, "\xff\xff\xff", 3);
    rec.msg.len = 3;
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "undecodable"));
    ledger_test_payment_succeeded(&rec, "evt-h6", "pay_h6", "mer_h", -5, "usd",
                                  "2024-03-10T07:00:00Z");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "amount"));
    ledger_test_payment_succeeded(&rec, "evt-h7", "pay_h7", "mer_h", 100, "usd",
                                  "2024-02-30T07:00:00Z");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "succeeded_at"));
    /* No succeeded_at: the CloudEvents time stands in. */
    ledger_test_payment_succeeded(&rec, "evt-h8", "pay_h8", "mer_h", 100, "usd", "");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM journal_transactions WHERE "
                                         "source_id = 'pay_h8' AND effective_at = "
                                         "'2020-01-01T00:00:00Z'"),
                     1);
    /* A refund through the handler. */
    ledger_test_refund_succeeded(&rec, "evt-h9", "re_h1", "pay_h1", "mer_h", 500,
                                 "2024-03-11T00:00:00Z");
    assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT amount FROM journal_transactions WHERE "
                                         "source_type = 'refund' AND source_id = 're_h1'"),
                     -500);
    assert_int_equal(audit_failures(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_payment_and_refund),
        cmocka_unit_test(test_duplicates_post_once),
        cmocka_unit_test(test_concurrent_read_committed),
        cmocka_unit_test(test_concurrent_repeatable_read),
        cmocka_unit_test(test_database_guards),
        cmocka_unit_test(test_audit_catches_corruption),
        cmocka_unit_test(test_handler_posts_and_sorts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
