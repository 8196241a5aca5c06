/* Tests of keel-payments against a real PostgreSQL (KEEL_TEST_DATABASE_URL): the store's leases,
 * intake through the inbox, and the workers' state machine driven by a scripted provider. */
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
#include "keel/id.h"
#include "keel/migrate.h"
#include "payment_store.h"
#include "request_intake.h"
#include "worker.h"

extern const keel_migration payments_migrations[];
extern const size_t payments_migrations_count;

static char g_url[1024];
static char g_schema[64];
static bool g_ready;

#define NEED_DB()                                                                                  \
    do {                                                                                           \
        if (!g_ready) {                                                                            \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void exec_ok(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    if (keel_db_check(db, res, sql) != KEEL_OK) {
        fail_msg("%s failed: %s", sql, res != NULL ? PQresultErrorMessage(res) : "no result");
    }
    PQclear(res);
}

/* The first column of the first row of sql with one text parameter, into out. */
static void query_text(keel_db *db, const char *sql, const char *param, char *out, size_t len)
{
    const char *params[] = {param};
    PGresult *res = keel_db_exec(db, sql, param != NULL ? 1 : 0, param != NULL ? params : NULL);
    assert_int_equal(keel_db_check(db, res, sql), KEEL_OK);
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        snprintf(out, len, "<null>");
    } else {
        snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
}

static long query_long(keel_db *db, const char *sql, const char *param)
{
    char text[64];
    query_text(db, sql, param, text, sizeof(text));
    return strtol(text, NULL, 10);
}

static keel_db *connect_test(void)
{
    keel_db *db = keel_db_new(g_url, NULL, "payments-test");
    assert_non_null(db);
    assert_int_equal(keel_db_connect(db, 10000), KEEL_OK);
    return db;
}

/* Every run gets its own schema (search_path in the URL) so parallel test binaries sharing
 * one scratch database never see each other's rows. */
static int group_setup(void **state)
{
    const char *base = getenv("KEEL_TEST_DATABASE_URL");
    if (base == NULL || base[0] == '\0') {
        return 0;
    }
    snprintf(g_schema, sizeof(g_schema), "payments_test_%ld", (long)getpid());
    bool is_url = strncmp(base, "postgres", 8) == 0;
    if (is_url) {
        snprintf(g_url, sizeof(g_url), "%s%soptions=-csearch_path%%3D%s", base,
                 strchr(base, '?') != NULL ? "&" : "?", g_schema);
    } else {
        snprintf(g_url, sizeof(g_url), "%s options=-csearch_path=%s", base, g_schema);
    }
    keel_db *db = keel_db_new(base, NULL, "payments-test-setup");
    if (keel_db_connect(db, 10000) != KEEL_OK) {
        keel_db_free(db);
        return -1;
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", g_schema);
    exec_ok(db, sql);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", g_schema);
    exec_ok(db, sql);
    keel_db_free(db);

    db = keel_db_new(g_url, NULL, "payments-test-migrate");
    char err[512];
    if (keel_db_connect(db, 10000) != KEEL_OK ||
        keel_migrate_apply(db, "libkeel", keel_common_migrations, keel_common_migrations_count, err,
                           sizeof(err)) != KEEL_OK ||
        keel_migrate_apply(db, "payments", payments_migrations, payments_migrations_count, err,
                           sizeof(err)) != KEEL_OK) {
        fprintf(stderr, "migrations failed: %s\n", err);
        keel_db_free(db);
        return -1;
    }
    keel_db_free(db);
    g_ready = true;
    return 0;
}

static int group_teardown(void **state)
{
    if (!g_ready) {
        return 0;
    }
    keel_db *db = keel_db_new(getenv("KEEL_TEST_DATABASE_URL"), NULL, "payments-test-teardown");
    if (keel_db_connect(db, 10000) == KEEL_OK) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", g_schema);
        exec_ok(db, sql);
    }
    keel_db_free(db);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

static void new_payment_id(char out[48])
{
    char uuid[KEEL_UUID_STR_LEN];
    keel_uuid7_new(uuid);
    size_t n = 0;
    n += (size_t)snprintf(out, 48, "pay_");
    for (const char *p = uuid; *p != '\0'; p++) {
        if (*p != '-') {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

typedef struct request_buf {
    Keel__V1__PaymentRequested req;
    Keel__V1__PaymentRequested__MetadataEntry entry;
    Keel__V1__PaymentRequested__MetadataEntry *entries[1];
    char id[48];
} request_buf;

static void request_init(request_buf *b, int64_t amount)
{
    Keel__V1__PaymentRequested init = KEEL__V1__PAYMENT_REQUESTED__INIT;
    Keel__V1__PaymentRequested__MetadataEntry e = KEEL__V1__PAYMENT_REQUESTED__METADATA_ENTRY__INIT;
    new_payment_id(b->id);
    b->req = init;
    b->entry = e;
    b->entry.key = "order";
    b->entry.value = "42";
    b->entries[0] = &b->entry;
    b->req.payment_id = b->id;
    b->req.merchant_id = "mer_test";
    b->req.amount = amount;
    b->req.currency = "USD";
    b->req.description = "a test payment";
    b->req.payment_method = "pm_card_visa";
    b->req.n_metadata = 1;
    b->req.metadata = b->entries;
}

static void insert_request(keel_db *db, request_buf *b)
{
    bool inserted = false;
    char event_id[KEEL_UUID_STR_LEN];
    keel_uuid7_new(event_id);
    assert_int_equal(
        payments_store_insert(db, &b->req, event_id,
                              "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &inserted),
        KEEL_OK);
    assert_true(inserted);
}

/* ---- the store ----------------------------------------------------------------------- */

static void test_store_insert_and_claim(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    exec_ok(db, "DELETE FROM payments");
    request_buf b;
    request_init(&b, 1999);
    insert_request(db, &b);

    /* The same payment id again (another event) is left alone. */
    bool inserted = true;
    b.req.amount = 5;
    assert_int_equal(payments_store_insert(db, &b.req, "other-event", NULL, &inserted), KEEL_OK);
    assert_false(inserted);

    char text[256];
    query_text(db,
               "SELECT amount || ' ' || currency || ' ' || status || ' ' || phase || ' ' || "
               "(metadata->>'order') FROM payments WHERE id = $1",
               b.id, text, sizeof(text));
    assert_string_equal(text, "1999 usd processing received 42");

    payments_payment p;
    assert_int_equal(payments_store_claim(db, "owner-a", 60000, &p), KEEL_OK);
    assert_string_equal(p.id, b.id);
    assert_int_equal(p.amount, 1999);
    assert_string_equal(p.currency, "usd");
    assert_string_equal(p.merchant_id, "mer_test");
    assert_string_equal(p.payment_method, "pm_card_visa");
    assert_int_equal(p.phase, PAYMENTS_PHASE_RECEIVED);
    assert_string_equal(p.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    payments_payment_clear(&p);

    /* Leased: nobody else gets it. */
    payments_payment q;
    assert_int_equal(payments_store_claim(db, "owner-b", 60000, &q), KEEL_ERR_NOT_FOUND);

    /* Only the owner may move it on. */
    assert_int_equal(payments_store_mark_charge_started(db, b.id, "owner-b", 60000),
                     KEEL_ERR_CONFLICT);
    assert_int_equal(payments_store_mark_charge_started(db, b.id, "owner-a", 60000), KEEL_OK);
    payments_record rec = {.status = "processing",
                           .phase = PAYMENTS_PHASE_CHARGE_STARTED,
                           .attempts = 1,
                           .ambiguous = true,
                           .retry_delay_ms = 0,
                           .last_error = "timeout"};
    assert_int_equal(payments_store_record(db, b.id, "owner-b", &rec), KEEL_ERR_CONFLICT);
    assert_int_equal(payments_store_record(db, b.id, "owner-a", &rec), KEEL_OK);
    /* The lease went with the record: the owner cannot record twice. */
    assert_int_equal(payments_store_record(db, b.id, "owner-a", &rec), KEEL_ERR_CONFLICT);

    /* Due again, now in phase charge_started, for anyone. */
    assert_int_equal(payments_store_claim(db, "owner-b", 60000, &q), KEEL_OK);
    assert_int_equal(q.phase, PAYMENTS_PHASE_CHARGE_STARTED);
    assert_int_equal(q.attempts, 1);
    assert_true(q.ambiguous);
    payments_record done = {.status = "succeeded",
                            .phase = PAYMENTS_PHASE_DONE,
                            .provider = "provider_a",
                            .provider_charge_id = "ch_1",
                            .attempts = 1,
                            .ambiguous = true};
    assert_int_equal(payments_store_record(db, q.id, "owner-b", &done), KEEL_OK);
    payments_payment_clear(&q);

    /* Done payments are never claimed again. */
    assert_int_equal(payments_store_claim(db, "owner-c", 60000, &q), KEEL_ERR_NOT_FOUND);
    query_text(db,
               "SELECT status || ' ' || provider_charge_id || ' ' || coalesce(lease_owner, "
               "'-') FROM payments WHERE id = $1",
               b.id, text, sizeof(text));
    assert_string_equal(text, "succeeded ch_1 -");
    keel_db_free(db);
}

static void test_store_expired_lease_moves_on(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    exec_ok(db, "DELETE FROM payments");
    request_buf b;
    request_init(&b, 500);
    insert_request(db, &b);

    payments_payment p;
    assert_int_equal(payments_store_claim(db, "slow", 50, &p), KEEL_OK);
    payments_payment_clear(&p);
    keel_clock_sleep_ms(150);
    /* The lease ran out: another worker takes the payment, and the slow one cannot record. */
    assert_int_equal(payments_store_claim(db, "fast", 60000, &p), KEEL_OK);
    payments_payment_clear(&p);
    payments_record rec = {.status = "succeeded",
                           .phase = PAYMENTS_PHASE_DONE,
                           .provider = "provider_a",
                           .provider_charge_id = "ch_x"};
    assert_int_equal(payments_store_mark_charge_started(db, b.id, "slow", 60000),
                     KEEL_ERR_CONFLICT);
    assert_int_equal(payments_store_record(db, b.id, "slow", &rec), KEEL_ERR_CONFLICT);
    assert_int_equal(payments_store_record(db, b.id, "fast", &rec), KEEL_OK);

    /* A retry delay keeps a payment out of reach until it is due. */
    request_init(&b, 700);
    insert_request(db, &b);
    assert_int_equal(payments_store_claim(db, "w", 60000, &p), KEEL_OK);
    payments_payment_clear(&p);
    payments_record later = {.status = "processing",
                             .phase = PAYMENTS_PHASE_RECEIVED,
                             .attempts = 1,
                             .retry_delay_ms = 300};
    assert_int_equal(payments_store_record(db, b.id, "w", &later), KEEL_OK);
    assert_int_equal(payments_store_claim(db, "w", 60000, &p), KEEL_ERR_NOT_FOUND);
    keel_clock_sleep_ms(400);
    assert_int_equal(payments_store_claim(db, "w", 60000, &p), KEEL_OK);
    assert_string_equal(p.id, b.id);
    payments_payment_clear(&p);
    keel_db_free(db);
}

#define CLAIMERS 4
#define CLAIM_PAYMENTS 40

typedef struct claimer {
    int index;
    int claimed;
    char ids[CLAIM_PAYMENTS][48];
} claimer;

static void *claimer_main(void *arg)
{
    claimer *c = arg;
    char owner[32];
    snprintf(owner, sizeof(owner), "claimer-%d", c->index);
    keel_db *db = keel_db_new(g_url, NULL, owner);
    if (keel_db_connect(db, 10000) != KEEL_OK) {
        keel_db_free(db);
        return NULL;
    }
    for (;;) {
        payments_payment p;
        keel_result rc = payments_store_claim(db, owner, 60000, &p);
        if (rc != KEEL_OK) {
            break;
        }
        snprintf(c->ids[c->claimed++], 48, "%s", p.id);
        payments_payment_clear(&p);
    }
    keel_db_free(db);
    return NULL;
}

static void test_store_concurrent_claims_never_share(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    exec_ok(db, "DELETE FROM payments");
    for (int i = 0; i < CLAIM_PAYMENTS; i++) {
        request_buf b;
        request_init(&b, 100 + i);
        insert_request(db, &b);
    }
    static claimer cs[CLAIMERS];
    pthread_t th[CLAIMERS];
    memset(cs, 0, sizeof(cs));
    for (int i = 0; i < CLAIMERS; i++) {
        cs[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, claimer_main, &cs[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < CLAIMERS; i++) {
        pthread_join(th[i], NULL);
        total += cs[i].claimed;
    }
    /* Every payment was claimed exactly once across the threads. */
    assert_int_equal(total, CLAIM_PAYMENTS);
    for (int i = 0; i < CLAIMERS; i++) {
        for (int j = 0; j < cs[i].claimed; j++) {
            for (int k = i; k < CLAIMERS; k++) {
                for (int l = (k == i ? j + 1 : 0); l < cs[k].claimed; l++) {
                    assert_string_not_equal(cs[i].ids[j], cs[k].ids[l]);
                }
            }
        }
    }
    assert_int_equal(
        query_long(db, "SELECT count(*) FROM payments WHERE lease_owner IS NULL", NULL), 0);
    keel_db_free(db);
}

/* ---- intake -------------------------------------------------------------------------- */

static int g_notified;

static void count_notify(void *arg)
{
    g_notified++;
}

static keel_handle_result intake(payments_intake *in, const char *ce_id, const char *type,
                                 const void *payload, size_t len, char *reason)
{
    keel_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.topic = "keel.payment-requests.v1";
    msg.payload = payload;
    msg.len = len;
    snprintf(msg.ce.id, sizeof(msg.ce.id), "%s", ce_id);
    snprintf(msg.ce.type, sizeof(msg.ce.type), "%s", type);
    snprintf(msg.ce.source, sizeof(msg.ce.source), "/test");
    snprintf(msg.ce.traceparent, sizeof(msg.ce.traceparent),
             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    reason[0] = '\0';
    return payments_intake_handle(&msg, in, reason, 256);
}

static void test_intake(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    exec_ok(db, "DELETE FROM payments");
    keel_db_pool *pool = keel_db_pool_new(g_url, NULL, "payments-test-intake", 2);
    payments_intake in = {.pool = pool, .on_stored = count_notify};
    g_notified = 0;
    char reason[256];

    request_buf b;
    request_init(&b, 2500);
    size_t len = keel__v1__payment_requested__get_packed_size(&b.req);
    uint8_t *buf = malloc(len);
    keel__v1__payment_requested__pack(&b.req, buf);

    char ev1[KEEL_UUID_STR_LEN];
    char ev2[KEEL_UUID_STR_LEN];
    keel_uuid7_new(ev1);
    keel_uuid7_new(ev2);
    assert_int_equal(intake(&in, ev1, "keel.v1.PaymentRequested", buf, len, reason),
                     KEEL_HANDLE_OK);
    assert_int_equal(g_notified, 1);
    /* Redelivered: nothing changes. Same payment under another event: ignored. */
    assert_int_equal(intake(&in, ev1, "keel.v1.PaymentRequested", buf, len, reason),
                     KEEL_HANDLE_OK);
    assert_int_equal(intake(&in, ev2, "keel.v1.PaymentRequested", buf, len, reason),
                     KEEL_HANDLE_OK);
    assert_int_equal(g_notified, 1);
    assert_int_equal(query_long(db, "SELECT count(*) FROM payments WHERE id = $1", b.id), 1);
    assert_int_equal(query_long(db,
                                "SELECT count(*) FROM inbox WHERE consumer = 'payments' AND "
                                "event_id = $1",
                                ev2),
                     1);
    char text[128];
    query_text(db, "SELECT request_event_id || ' ' || traceparent FROM payments WHERE id = $1",
               b.id, text, sizeof(text));
    char want[128];
    snprintf(want, sizeof(want), "%s 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ev1);
    assert_string_equal(text, want);

    /* Poison: wrong type, undecodable bytes, a broken rule. */
    assert_int_equal(intake(&in, "e3", "keel.v1.PaymentSucceeded", buf, len, reason),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "unknown event type"));
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(intake(&in, "e4", "keel.v1.PaymentRequested", junk, sizeof(junk), reason),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "undecodable PaymentRequested: "));
    request_buf bad;
    request_init(&bad, 0);
    size_t bad_len = keel__v1__payment_requested__get_packed_size(&bad.req);
    uint8_t *bad_buf = malloc(bad_len);
    keel__v1__payment_requested__pack(&bad.req, bad_buf);
    assert_int_equal(intake(&in, "e5", "keel.v1.PaymentRequested", bad_buf, bad_len, reason),
                     KEEL_HANDLE_POISON);
    assert_string_equal(reason, "invalid amount: must be > 0");
    assert_int_equal(query_long(db, "SELECT count(*) FROM payments", NULL), 1);

    free(bad_buf);
    free(buf);
    keel_db_pool_free(pool);
    keel_db_free(db);
}

/* ---- the workers, with a scripted provider --------------------------------------------- */

typedef struct script {
    pthread_mutex_t mu;
    payments_charge_status charges[8]; /* answers in order; the last repeats */
    int n_charges;
    payments_lookup_status lookups[8];
    payments_charge_status lookup_found; /* what a FOUND lookup reports */
    int n_lookups;
    int charge_calls;
    int lookup_calls;
    char last_key[48];
} script;

static void fake_charge(payments_provider *p, const payments_charge_request *req,
                        payments_charge_outcome *out)
{
    script *s = p->impl;
    pthread_mutex_lock(&s->mu);
    int i = s->charge_calls < s->n_charges ? s->charge_calls : s->n_charges - 1;
    s->charge_calls++;
    snprintf(s->last_key, sizeof(s->last_key), "%s", req->payment_id);
    memset(out, 0, sizeof(*out));
    out->status = s->charges[i];
    snprintf(out->detail, sizeof(out->detail), "scripted %s",
             payments_charge_status_name(out->status));
    if (out->status == PAYMENTS_CHARGE_SUCCEEDED) {
        snprintf(out->charge_id, sizeof(out->charge_id), "ch_fake_%d", s->charge_calls);
    } else if (out->status == PAYMENTS_CHARGE_DECLINED) {
        snprintf(out->failure_code, sizeof(out->failure_code), "insufficient_funds");
        snprintf(out->failure_message, sizeof(out->failure_message), "no funds");
    }
    pthread_mutex_unlock(&s->mu);
}

static payments_lookup_status fake_lookup(payments_provider *p, const char *payment_id,
                                          const char *traceparent, payments_charge_outcome *out)
{
    script *s = p->impl;
    pthread_mutex_lock(&s->mu);
    int i = s->lookup_calls < s->n_lookups ? s->lookup_calls : s->n_lookups - 1;
    s->lookup_calls++;
    memset(out, 0, sizeof(*out));
    payments_lookup_status st = s->n_lookups > 0 ? s->lookups[i] : PAYMENTS_LOOKUP_FAILED;
    out->status = PAYMENTS_CHARGE_UNKNOWN;
    snprintf(out->detail, sizeof(out->detail), "scripted lookup %s",
             payments_lookup_status_name(st));
    if (st == PAYMENTS_LOOKUP_FOUND) {
        out->status = s->lookup_found;
        snprintf(out->charge_id, sizeof(out->charge_id), "ch_found");
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

typedef struct flow_result {
    char status[32];
    char phase[32];
    char failure_code[64];
    char charge_id[64];
    long attempts;
    long outbox_rows;
    char outbox_type[64];
    bool ambiguous;
} flow_result;

/* Inserts one payment, runs two workers with the scripted provider until the payment is done
 * (or 15 s pass), and reports what was recorded. */
static void run_flow(script *s, int max_attempts, flow_result *r)
{
    keel_db *db = connect_test();
    exec_ok(db, "DELETE FROM payments");
    exec_ok(db, "DELETE FROM outbox");
    request_buf b;
    request_init(&b, 4200);
    insert_request(db, &b);

    pthread_mutex_init(&s->mu, NULL);
    payments_provider prov = {
        .name = "provider_fake", .impl = s, .charge = fake_charge, .lookup = fake_lookup};
    keel_db_pool *pool = keel_db_pool_new(g_url, NULL, "payments-test-workers", 4);
    payments_workers_options o = {
        .pool = pool,
        .provider = &prov,
        .instance_id = "test",
        .events_topic = "payments-test.events",
        .workers = 2,
        .lease_ms = 5000,
        .max_attempts = max_attempts,
        .poll_interval_ms = 50,
    };
    char err[256];
    payments_workers *w = payments_workers_start(&o, err, sizeof(err));
    assert_non_null(w);
    payments_workers_notify(w);
    int64_t deadline = keel_clock_monotonic_ms() + 15000;
    char phase[32] = "";
    while (keel_clock_monotonic_ms() < deadline) {
        query_text(db, "SELECT phase FROM payments WHERE id = $1", b.id, phase, sizeof(phase));
        if (strcmp(phase, "done") == 0) {
            break;
        }
        keel_clock_sleep_ms(20);
    }
    payments_workers_stop(w);
    w = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    pthread_mutex_destroy(&s->mu);

    memset(r, 0, sizeof(*r));
    query_text(db, "SELECT status FROM payments WHERE id = $1", b.id, r->status, sizeof(r->status));
    query_text(db, "SELECT phase FROM payments WHERE id = $1", b.id, r->phase, sizeof(r->phase));
    query_text(db, "SELECT failure_code FROM payments WHERE id = $1", b.id, r->failure_code,
               sizeof(r->failure_code));
    query_text(db, "SELECT provider_charge_id FROM payments WHERE id = $1", b.id, r->charge_id,
               sizeof(r->charge_id));
    r->attempts = query_long(db, "SELECT attempts FROM payments WHERE id = $1", b.id);
    char amb[8];
    query_text(db, "SELECT ambiguous FROM payments WHERE id = $1", b.id, amb, sizeof(amb));
    r->ambiguous = strcmp(amb, "t") == 0;
    r->outbox_rows = query_long(db, "SELECT count(*) FROM outbox WHERE message_key = $1", b.id);
    query_text(db, "SELECT ce_type FROM outbox WHERE message_key = $1", b.id, r->outbox_type,
               sizeof(r->outbox_type));
    assert_string_equal(s->charge_calls > 0 ? s->last_key : b.id, b.id);
    keel_db_free(db);
}

static void test_flow_succeeds(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_SUCCEEDED}, .n_charges = 1};
    flow_result r;
    run_flow(&s, 8, &r);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.phase, "done");
    assert_string_equal(r.charge_id, "ch_fake_1");
    assert_int_equal(s.charge_calls, 1);
    assert_int_equal(s.lookup_calls, 0);
    assert_int_equal(r.outbox_rows, 1);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentSucceeded");
}

static void test_flow_declined(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_DECLINED}, .n_charges = 1};
    flow_result r;
    run_flow(&s, 8, &r);
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.failure_code, "insufficient_funds");
    assert_int_equal(s.charge_calls, 1);
    assert_int_equal(r.outbox_rows, 1);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentFailed");
}

static void test_flow_unknown_then_lookup_finds_charge(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_UNKNOWN},
                .n_charges = 1,
                .lookups = {PAYMENTS_LOOKUP_FOUND},
                .n_lookups = 1,
                .lookup_found = PAYMENTS_CHARGE_SUCCEEDED};
    flow_result r;
    run_flow(&s, 8, &r);
    /* Resolved by asking, never by charging again. */
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.charge_id, "ch_found");
    assert_int_equal(s.charge_calls, 1);
    assert_int_equal(s.lookup_calls, 1);
    assert_int_equal(r.attempts, 1);
    assert_true(r.ambiguous);
    assert_int_equal(r.outbox_rows, 1);
}

static void test_flow_unknown_then_not_found_charges_again(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_UNKNOWN, PAYMENTS_CHARGE_SUCCEEDED},
                .n_charges = 2,
                .lookups = {PAYMENTS_LOOKUP_NOT_FOUND},
                .n_lookups = 1};
    flow_result r;
    run_flow(&s, 8, &r);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.charge_id, "ch_fake_2");
    assert_int_equal(s.charge_calls, 2);
    assert_int_equal(s.lookup_calls, 1);
    assert_int_equal(r.outbox_rows, 1);
}

static void test_flow_not_processed_gives_up_as_unavailable(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED}, .n_charges = 1};
    flow_result r;
    run_flow(&s, 3, &r);
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.failure_code, "provider_unavailable");
    assert_int_equal(r.attempts, 3);
    assert_int_equal(s.charge_calls, 3);
    /* Nothing was ever ambiguous, so no lookup was needed. */
    assert_int_equal(s.lookup_calls, 0);
    assert_false(r.ambiguous);
    assert_int_equal(r.outbox_rows, 1);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentFailed");
}

static void test_flow_unknown_forever_goes_to_review(void **state)
{
    NEED_DB();
    script s = {.charges = {PAYMENTS_CHARGE_UNKNOWN},
                .n_charges = 1,
                .lookups = {PAYMENTS_LOOKUP_FAILED},
                .n_lookups = 1};
    flow_result r;
    run_flow(&s, 3, &r);
    assert_string_equal(r.status, "requires_review");
    assert_string_equal(r.phase, "done");
    assert_int_equal(r.attempts, 3);
    /* One charge, then only lookups: an unresolved charge is never repeated blindly. */
    assert_int_equal(s.charge_calls, 1);
    assert_int_equal(s.lookup_calls, 2);
    assert_int_equal(r.outbox_rows, 0);
}

static void test_flow_ambiguity_then_outage_is_review_not_failure(void **state)
{
    NEED_DB();
    /* First call times out; the lookup says nothing is there; later calls are refused. The
     * first call might still land late, so giving up must not say "failed". */
    script s = {.charges = {PAYMENTS_CHARGE_UNKNOWN, PAYMENTS_CHARGE_NOT_PROCESSED},
                .n_charges = 2,
                .lookups = {PAYMENTS_LOOKUP_NOT_FOUND},
                .n_lookups = 1};
    flow_result r;
    run_flow(&s, 3, &r);
    assert_string_equal(r.status, "requires_review");
    assert_int_equal(r.outbox_rows, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_insert_and_claim),
        cmocka_unit_test(test_store_expired_lease_moves_on),
        cmocka_unit_test(test_store_concurrent_claims_never_share),
        cmocka_unit_test(test_intake),
        cmocka_unit_test(test_flow_succeeds),
        cmocka_unit_test(test_flow_declined),
        cmocka_unit_test(test_flow_unknown_then_lookup_finds_charge),
        cmocka_unit_test(test_flow_unknown_then_not_found_charges_again),
        cmocka_unit_test(test_flow_not_processed_gives_up_as_unavailable),
        cmocka_unit_test(test_flow_unknown_forever_goes_to_review),
        cmocka_unit_test(test_flow_ambiguity_then_outage_is_review_not_failure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
