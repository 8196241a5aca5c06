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
#include "keel/id.h"
#include "keel/testing/db.h"
#include "payment_store.h"
#include "request_intake.h"
#include "worker.h"

extern const keel_migration payments_migrations[];
extern const size_t payments_migrations_count;

/* The run's own schema (search_path in its URL), so parallel test binaries sharing one
 * scratch database never see each other's rows; NULL without a database. */
static keel_testdb *g_db;

#define NEED_DB() keel_testdb_skip_without(g_db)

/* The first column of the first row of sql with one text parameter, into out. */
static void query_text(keel_db *db, const char *sql, const char *param, char *out, size_t len)
{
    char *v = keel_testdb_text_param(db, sql, param);
    snprintf(out, len, "%s", v);
    free(v);
}

static long query_long(keel_db *db, const char *sql, const char *param)
{
    char text[64];
    query_text(db, sql, param, text, sizeof(text));
    return strtol(text, NULL, 10);
}

static keel_db *connect_test(void)
{
    return keel_testdb_connect(g_db->url, "payments-test");
}

static int group_setup(void **state)
{
    g_db = keel_testdb_open("payments_test", "payments-test", "payments", payments_migrations,
                            payments_migrations_count);
    return 0;
}

static int group_teardown(void **state)
{
    keel_testdb_close(&g_db);
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
    keel_testdb_exec(db, "DELETE FROM payments");
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
    assert_int_equal(
        payments_store_mark_charge_started(db, b.id, "owner-b", 60000, "provider_a", NULL),
        KEEL_ERR_CONFLICT);
    assert_int_equal(
        payments_store_mark_charge_started(db, b.id, "owner-a", 60000, "provider_a", NULL),
        KEEL_OK);
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
    keel_testdb_exec(db, "DELETE FROM payments");
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
    assert_int_equal(
        payments_store_mark_charge_started(db, b.id, "slow", 60000, "provider_a", NULL),
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
    keel_db *db = keel_db_new(g_db->url, NULL, owner);
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
    keel_testdb_exec(db, "DELETE FROM payments");
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
    keel_testdb_exec(db, "DELETE FROM payments");
    keel_db_pool *pool = keel_db_pool_new(g_db->url, NULL, "payments-test-intake", 2);
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

/* ---- the state machines, with scripted providers ------------------------------------------- */

typedef struct script {
    const char *name;
    pthread_mutex_t mu;
    payments_charge_status charges[8]; /* answers in order; the last repeats; none = succeed */
    int n_charges;
    payments_lookup_status lookups[8];
    int n_lookups;                       /* none = FAILED */
    payments_charge_status lookup_found; /* what a FOUND lookup reports */
    payments_charge_status refunds[8];
    int n_refunds;
    payments_lookup_status refund_lookups[8];
    int n_refund_lookups;
    int charge_calls;
    int lookup_calls;
    int refund_calls;
    int refund_lookup_calls;
    char last_key[48];
    char last_refund_key[48];
    char last_refund_charge[64];
} script;

static payments_charge_status next_status(const payments_charge_status *list, int n, int *calls,
                                          payments_charge_status otherwise)
{
    int i = *calls < n ? *calls : n - 1;
    (*calls)++;
    return n > 0 ? list[i] : otherwise;
}

static void scripted(payments_charge_outcome *out, payments_charge_status st, const char *id)
{
    memset(out, 0, sizeof(*out));
    out->status = st;
    snprintf(out->detail, sizeof(out->detail), "scripted %s", payments_charge_status_name(st));
    if (st == PAYMENTS_CHARGE_SUCCEEDED || st == PAYMENTS_CHARGE_DECLINED) {
        out->http_status = 200;
        snprintf(out->charge_id, sizeof(out->charge_id), "%s", id);
    }
    if (st == PAYMENTS_CHARGE_DECLINED) {
        snprintf(out->failure_code, sizeof(out->failure_code), "insufficient_funds");
        snprintf(out->failure_message, sizeof(out->failure_message), "no funds");
    }
}

static void fake_charge(payments_provider *p, const payments_charge_request *req,
                        payments_charge_outcome *out)
{
    script *s = p->impl;
    char id[64];
    pthread_mutex_lock(&s->mu);
    payments_charge_status st =
        next_status(s->charges, s->n_charges, &s->charge_calls, PAYMENTS_CHARGE_SUCCEEDED);
    snprintf(s->last_key, sizeof(s->last_key), "%s", req->payment_id);
    snprintf(id, sizeof(id), "ch_%s_%d", s->name, s->charge_calls);
    pthread_mutex_unlock(&s->mu);
    scripted(out, st, id);
}

static payments_lookup_status fake_lookup(payments_provider *p, const char *payment_id,
                                          const char *traceparent, payments_charge_outcome *out)
{
    script *s = p->impl;
    pthread_mutex_lock(&s->mu);
    int i = s->lookup_calls < s->n_lookups ? s->lookup_calls : s->n_lookups - 1;
    s->lookup_calls++;
    payments_lookup_status st = s->n_lookups > 0 ? s->lookups[i] : PAYMENTS_LOOKUP_FAILED;
    pthread_mutex_unlock(&s->mu);
    scripted(out, st == PAYMENTS_LOOKUP_FOUND ? s->lookup_found : PAYMENTS_CHARGE_UNKNOWN,
             "ch_found");
    return st;
}

static void fake_refund(payments_provider *p, const payments_refund_request *req,
                        payments_charge_outcome *out)
{
    script *s = p->impl;
    pthread_mutex_lock(&s->mu);
    payments_charge_status st =
        next_status(s->refunds, s->n_refunds, &s->refund_calls, PAYMENTS_CHARGE_SUCCEEDED);
    snprintf(s->last_refund_key, sizeof(s->last_refund_key), "%s", req->refund_id);
    snprintf(s->last_refund_charge, sizeof(s->last_refund_charge), "%s", req->charge_id);
    pthread_mutex_unlock(&s->mu);
    scripted(out, st, "re_done");
}

static payments_lookup_status fake_refund_lookup(payments_provider *p,
                                                 const payments_refund_request *req,
                                                 payments_charge_outcome *out)
{
    script *s = p->impl;
    pthread_mutex_lock(&s->mu);
    int i = s->refund_lookup_calls < s->n_refund_lookups ? s->refund_lookup_calls
                                                         : s->n_refund_lookups - 1;
    s->refund_lookup_calls++;
    payments_lookup_status st =
        s->n_refund_lookups > 0 ? s->refund_lookups[i] : PAYMENTS_LOOKUP_FAILED;
    pthread_mutex_unlock(&s->mu);
    scripted(out, st == PAYMENTS_LOOKUP_FOUND ? PAYMENTS_CHARGE_SUCCEEDED : PAYMENTS_CHARGE_UNKNOWN,
             "re_found");
    return st;
}

static void fake_free(payments_provider *p)
{
    free(p);
}

static payments_provider *fake_provider(script *s)
{
    payments_provider *p = calloc(1, sizeof(*p));
    p->name = s->name;
    p->impl = s;
    p->charge = fake_charge;
    p->lookup = fake_lookup;
    p->refund = fake_refund;
    p->refund_lookup = fake_refund_lookup;
    p->free = fake_free;
    return p;
}

/* Two scripted providers behind real guards, local risk rules, and running workers. */
typedef struct harness {
    script a;
    script b;
    const char *routes_text; /* NULL = "default=fake_a,fake_b" */
    const char *limits_text; /* NULL = "default=1000000" */
    int call_attempts;       /* 0 = 1 */
    double budget_ratio;
    double budget_min_per_second;
    int max_attempts;    /* 0 = 8 */
    int64_t deadline_ms; /* 0 = 60000 */
    payments_guard *guards[2];
    payments_routes routes;
    payments_risk_limits limits;
    payments_risk *risk;
    keel_db_pool *pool;
    payments_workers *w;
} harness;

static void harness_start(harness *h)
{
    char err[256];
    h->a.name = "fake_a";
    h->b.name = "fake_b";
    pthread_mutex_init(&h->a.mu, NULL);
    pthread_mutex_init(&h->b.mu, NULL);
    payments_guard_options go = {
        .call_attempts = h->call_attempts > 0 ? h->call_attempts : 1,
        .backoff_base_ms = 1,
        .backoff_cap_ms = 5,
        .budget_ratio = h->budget_ratio,
        .budget_min_per_second = h->budget_min_per_second,
        /* A window no test fills: the breaker is tested on its own. */
        .breaker = {.window_size = 1000, .min_calls = 1000},
    };
    h->guards[0] = payments_guard_new(fake_provider(&h->a), &go, err, sizeof(err));
    h->guards[1] = payments_guard_new(fake_provider(&h->b), &go, err, sizeof(err));
    assert_non_null(h->guards[0]);
    assert_non_null(h->guards[1]);
    const char *names[] = {"fake_a", "fake_b"};
    assert_int_equal(
        payments_routes_parse(h->routes_text != NULL ? h->routes_text : "default=fake_a,fake_b",
                              names, 2, &h->routes, err, sizeof(err)),
        0);
    assert_int_equal(
        payments_risk_limits_parse(h->limits_text != NULL ? h->limits_text : "default=1000000",
                                   &h->limits, err, sizeof(err)),
        0);
    payments_risk_options ro = {.limits = &h->limits};
    h->risk = payments_risk_new(&ro, err, sizeof(err));
    assert_non_null(h->risk);
    h->pool = keel_db_pool_new(g_db->url, NULL, "payments-test-workers", 4);
    payments_workers_options o = {
        .pool = h->pool,
        .guards = h->guards,
        .n_guards = 2,
        .routes = &h->routes,
        .risk = h->risk,
        .instance_id = "test",
        .events_topic = "payments-test.events",
        .workers = 2,
        .lease_ms = 5000,
        .max_attempts = h->max_attempts > 0 ? h->max_attempts : 8,
        .unknown_deadline_ms = h->deadline_ms > 0 ? h->deadline_ms : 60000,
        .poll_interval_ms = 50,
    };
    h->w = payments_workers_start(&o, err, sizeof(err));
    assert_non_null(h->w);
    payments_workers_notify(h->w);
}

static void harness_stop(harness *h)
{
    payments_workers_stop(h->w);
    h->w = NULL;
    keel_db_pool_free(h->pool);
    h->pool = NULL;
    payments_guard_free(h->guards[0]);
    payments_guard_free(h->guards[1]);
    h->guards[0] = h->guards[1] = NULL;
    payments_risk_free(h->risk);
    h->risk = NULL;
    pthread_mutex_destroy(&h->a.mu);
    pthread_mutex_destroy(&h->b.mu);
}

/* Waits (up to 15 s) until the row of table with this id is in phase done. */
static void wait_done(keel_db *db, const char *table, const char *id)
{
    char sql[128];
    char phase[32] = "";
    snprintf(sql, sizeof(sql), "SELECT phase FROM %s WHERE id = $1", table);
    int64_t deadline = keel_clock_monotonic_ms() + 15000;
    while (keel_clock_monotonic_ms() < deadline) {
        query_text(db, sql, id, phase, sizeof(phase));
        if (strcmp(phase, "done") == 0) {
            return;
        }
        keel_clock_sleep_ms(20);
    }
    fail_msg("%s %s not done after 15 s (phase %s)", table, id, phase);
}

typedef struct flow_result {
    char status[32];
    char failure_code[64];
    char provider[32];
    char charge_id[64];
    char ambiguous_provider[32];
    char attempts_log[256]; /* "provider:outcome,..." in order */
    long outbox_rows;
    char outbox_type[64];
    bool ambiguous;
    bool risk_degraded;
} flow_result;

static void flow_read(keel_db *db, const char *id, flow_result *r)
{
    memset(r, 0, sizeof(*r));
    query_text(db, "SELECT status FROM payments WHERE id = $1", id, r->status, sizeof(r->status));
    query_text(db, "SELECT failure_code FROM payments WHERE id = $1", id, r->failure_code,
               sizeof(r->failure_code));
    query_text(db, "SELECT provider FROM payments WHERE id = $1", id, r->provider,
               sizeof(r->provider));
    query_text(db, "SELECT provider_charge_id FROM payments WHERE id = $1", id, r->charge_id,
               sizeof(r->charge_id));
    query_text(db, "SELECT ambiguous_provider FROM payments WHERE id = $1", id,
               r->ambiguous_provider, sizeof(r->ambiguous_provider));
    query_text(db,
               "SELECT coalesce(string_agg(provider || ':' || coalesce(outcome, '-'), ',' "
               "ORDER BY id), '') FROM payment_attempts WHERE payment_id = $1",
               id, r->attempts_log, sizeof(r->attempts_log));
    char flag[8];
    query_text(db, "SELECT ambiguous FROM payments WHERE id = $1", id, flag, sizeof(flag));
    r->ambiguous = strcmp(flag, "t") == 0;
    query_text(db, "SELECT risk_degraded FROM payments WHERE id = $1", id, flag, sizeof(flag));
    r->risk_degraded = strcmp(flag, "t") == 0;
    r->outbox_rows = query_long(db, "SELECT count(*) FROM outbox WHERE message_key = $1", id);
    query_text(db, "SELECT ce_type FROM outbox WHERE message_key = $1 ORDER BY id DESC LIMIT 1", id,
               r->outbox_type, sizeof(r->outbox_type));
}

/* Inserts one payment (amount, currency), runs the harness until it is done, reads it. */
static void run_flow(harness *h, int64_t amount, const char *currency, flow_result *r,
                     char id_out[48])
{
    keel_db *db = connect_test();
    keel_testdb_exec(db, "DELETE FROM payment_attempts");
    keel_testdb_exec(db, "DELETE FROM refunds");
    keel_testdb_exec(db, "DELETE FROM payments");
    keel_testdb_exec(db, "DELETE FROM outbox");
    request_buf b;
    request_init(&b, amount);
    b.req.currency = (char *)currency;
    insert_request(db, &b);
    harness_start(h);
    wait_done(db, "payments", b.id);
    flow_read(db, b.id, r);
    if (id_out != NULL) {
        snprintf(id_out, 48, "%s", b.id);
    }
    /* Every call carried the payment's id as its idempotency key. */
    if (h->a.charge_calls > 0) {
        assert_string_equal(h->a.last_key, b.id);
    }
    keel_db_free(db);
}

static void test_flow_succeeds_at_primary(void **state)
{
    NEED_DB();
    harness h = {0};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.provider, "fake_a");
    assert_string_equal(r.charge_id, "ch_fake_a_1");
    assert_string_equal(r.attempts_log, "fake_a:succeeded");
    assert_int_equal(h.a.charge_calls, 1);
    assert_int_equal(h.b.charge_calls, 0);
    assert_int_equal(r.outbox_rows, 1);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentSucceeded");
    /* No risk API configured: local rules decided, and the payment says so. */
    assert_true(r.risk_degraded);
    assert_false(r.ambiguous);
}

static void test_flow_decline_is_final(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_DECLINED}, .n_charges = 1},
                 .call_attempts = 3,
                 .budget_min_per_second = 10};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.failure_code, "insufficient_funds");
    /* No retry, no fallback. */
    assert_int_equal(h.a.charge_calls, 1);
    assert_int_equal(h.b.charge_calls, 0);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentFailed");
}

static void test_flow_not_processed_falls_back(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED}, .n_charges = 1}};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.provider, "fake_b");
    assert_string_equal(r.charge_id, "ch_fake_b_1");
    assert_string_equal(r.attempts_log, "fake_a:not_processed,fake_b:succeeded");
    assert_int_equal(h.a.charge_calls, 1);
    assert_int_equal(h.b.charge_calls, 1);
    assert_string_equal(h.b.last_key, h.a.last_key);
}

static void test_flow_retries_in_place_within_budget(void **state)
{
    NEED_DB();
    /* The budget's floor allows two retries; the third call charges. */
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED, PAYMENTS_CHARGE_NOT_PROCESSED,
                                   PAYMENTS_CHARGE_SUCCEEDED},
                       .n_charges = 3},
                 .call_attempts = 3,
                 .budget_min_per_second = 2};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.provider, "fake_a");
    assert_int_equal(h.a.charge_calls, 3);
    assert_int_equal(h.b.charge_calls, 0);
}

static void test_flow_spent_budget_falls_back_instead(void **state)
{
    NEED_DB();
    /* No budget at all: the first not-processed answer sends the payment on to B. */
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED, PAYMENTS_CHARGE_SUCCEEDED},
                       .n_charges = 2},
                 .call_attempts = 3};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.provider, "fake_b");
    assert_int_equal(h.a.charge_calls, 1);
    assert_int_equal(h.b.charge_calls, 1);
}

static void test_flow_route_per_currency(void **state)
{
    NEED_DB();
    harness h = {.routes_text = "default=fake_a,fake_b;ngn=fake_b,fake_a"};
    flow_result r;
    run_flow(&h, 4200, "ngn", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.provider, "fake_b");
    assert_int_equal(h.a.charge_calls, 0);
}

static void test_flow_unknown_then_lookup_finds_charge(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_UNKNOWN},
                       .n_charges = 1,
                       .lookups = {PAYMENTS_LOOKUP_FOUND},
                       .n_lookups = 1,
                       .lookup_found = PAYMENTS_CHARGE_SUCCEEDED}};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    /* Resolved by asking the same provider, never by charging elsewhere. */
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.charge_id, "ch_found");
    assert_int_equal(h.a.charge_calls, 1);
    assert_int_equal(h.a.lookup_calls, 1);
    assert_int_equal(h.b.charge_calls, 0);
    assert_true(r.ambiguous);
    assert_string_equal(r.ambiguous_provider, "fake_a");
    assert_int_equal(r.outbox_rows, 1);
}

static void test_flow_unknown_then_not_found_charges_same_provider(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_UNKNOWN, PAYMENTS_CHARGE_SUCCEEDED},
                       .n_charges = 2,
                       .lookups = {PAYMENTS_LOOKUP_NOT_FOUND},
                       .n_lookups = 1}};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "succeeded");
    assert_string_equal(r.provider, "fake_a");
    assert_string_equal(r.charge_id, "ch_fake_a_2");
    assert_string_equal(r.attempts_log, "fake_a:unknown,fake_a:succeeded");
    assert_int_equal(h.b.charge_calls, 0);
}

static void test_flow_unknown_past_deadline_goes_to_review(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_UNKNOWN},
                       .n_charges = 1,
                       .lookups = {PAYMENTS_LOOKUP_FAILED},
                       .n_lookups = 1},
                 .deadline_ms = 400};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "requires_review");
    /* One charge, then only lookups until the deadline; B never hears of it. */
    assert_int_equal(h.a.charge_calls, 1);
    assert_true(h.a.lookup_calls >= 1);
    assert_int_equal(h.b.charge_calls, 0);
    assert_int_equal(r.outbox_rows, 1);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentRequiresReview");
}

static void test_flow_ambiguity_then_outage_is_review_not_failure(void **state)
{
    NEED_DB();
    /* The first call times out; the lookup finds nothing; later calls are refused. The first
     * might still land late, so giving up must not say "failed", nor go to B. */
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_UNKNOWN, PAYMENTS_CHARGE_NOT_PROCESSED},
                       .n_charges = 2,
                       .lookups = {PAYMENTS_LOOKUP_NOT_FOUND},
                       .n_lookups = 1},
                 .max_attempts = 2,
                 .deadline_ms = 400};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "requires_review");
    assert_int_equal(h.b.charge_calls, 0);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentRequiresReview");
}

static void test_flow_nobody_processes_fails_unavailable(void **state)
{
    NEED_DB();
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED}, .n_charges = 1},
                 .b = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED}, .n_charges = 1},
                 .max_attempts = 2};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.failure_code, "provider_unavailable");
    assert_int_equal(h.a.charge_calls, 2);
    assert_int_equal(h.b.charge_calls, 2);
    assert_int_equal(h.a.lookup_calls, 0);
    assert_false(r.ambiguous);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentFailed");
}

static void test_flow_risk_blocks_before_any_provider(void **state)
{
    NEED_DB();
    harness h = {.limits_text = "usd=1000;default=1000000"};
    flow_result r;
    run_flow(&h, 4200, "usd", &r, NULL);
    harness_stop(&h);
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.failure_code, "risk_blocked");
    assert_true(r.risk_degraded);
    assert_int_equal(h.a.charge_calls + h.b.charge_calls, 0);
    assert_string_equal(r.outbox_type, "keel.v1.PaymentFailed");
}

/* ---- refunds --------------------------------------------------------------------------- */

static void new_refund_id(char out[48])
{
    char pay[48];
    new_payment_id(pay);
    snprintf(out, 48, "re_%s", pay + 4);
}

/* Delivers one RefundRequested to the intake; returns the handler's answer. */
static keel_handle_result refund_request(payments_intake *in, const char *ce_id,
                                         const char *refund_id, const char *payment_id,
                                         int64_t amount, const char *currency)
{
    Keel__V1__RefundRequested req = KEEL__V1__REFUND_REQUESTED__INIT;
    req.refund_id = (char *)refund_id;
    req.payment_id = (char *)payment_id;
    req.merchant_id = "mer_test";
    req.amount = amount;
    req.currency = (char *)currency;
    req.reason = "customer asked";
    size_t len = keel__v1__refund_requested__get_packed_size(&req);
    uint8_t *buf = malloc(len + 1);
    keel__v1__refund_requested__pack(&req, buf);
    char reason[256];
    keel_handle_result hr = intake(in, ce_id, "keel.v1.RefundRequested", buf, len, reason);
    free(buf);
    return hr;
}

static void refund_read(keel_db *db, const char *refund_id, char *status, size_t len)
{
    query_text(db, "SELECT status || ' ' || coalesce(failure_code, '-') FROM refunds WHERE id = $1",
               refund_id, status, len);
}

static void test_refunds_go_to_the_charging_provider(void **state)
{
    NEED_DB();
    /* A fails over to B, so B charged: refunds must go to B. */
    harness h = {.a = {.charges = {PAYMENTS_CHARGE_NOT_PROCESSED}, .n_charges = 1}};
    flow_result r;
    char pay_id[48];
    run_flow(&h, 1000, "usd", &r, pay_id);
    assert_string_equal(r.provider, "fake_b");
    keel_db *db = connect_test();
    payments_intake in = {.pool = h.pool,
                          .on_stored = payments_workers_notify,
                          .on_stored_arg = h.w,
                          .events_topic = "payments-test.events"};
    char re1[48], re2[48], re3[48], ev[KEEL_UUID_STR_LEN], text[128];

    /* A partial refund. */
    new_refund_id(re1);
    keel_uuid7_new(ev);
    assert_int_equal(refund_request(&in, ev, re1, pay_id, 600, "USD"), KEEL_HANDLE_OK);
    wait_done(db, "refunds", re1);
    refund_read(db, re1, text, sizeof(text));
    assert_string_equal(text, "succeeded -");
    assert_int_equal(h.b.refund_calls, 1);
    assert_int_equal(h.a.refund_calls, 0);
    assert_string_equal(h.b.last_refund_key, re1);
    assert_string_equal(h.b.last_refund_charge, "ch_fake_b_1");
    /* The same record again, and the same refund under another event: one refund. */
    assert_int_equal(refund_request(&in, ev, re1, pay_id, 600, "usd"), KEEL_HANDLE_OK);
    char ev_other[KEEL_UUID_STR_LEN];
    keel_uuid7_new(ev_other);
    assert_int_equal(refund_request(&in, ev_other, re1, pay_id, 600, "usd"), KEEL_HANDLE_OK);
    assert_int_equal(query_long(db, "SELECT count(*) FROM refunds WHERE payment_id = $1", pay_id),
                     1);

    /* 400 remain: 500 is refused at intake, with its event; 400 goes through. */
    new_refund_id(re2);
    keel_uuid7_new(ev);
    assert_int_equal(refund_request(&in, ev, re2, pay_id, 500, "usd"), KEEL_HANDLE_OK);
    refund_read(db, re2, text, sizeof(text));
    assert_string_equal(text, "failed amount_exceeds_refundable");
    new_refund_id(re3);
    keel_uuid7_new(ev);
    assert_int_equal(refund_request(&in, ev, re3, pay_id, 400, "usd"), KEEL_HANDLE_OK);
    wait_done(db, "refunds", re3);
    refund_read(db, re3, text, sizeof(text));
    assert_string_equal(text, "succeeded -");
    assert_int_equal(h.b.refund_calls, 2);
    harness_stop(&h);

    /* Outcome events, keyed by the payment: succeeded, refused, succeeded. */
    query_text(db,
               "SELECT string_agg(ce_type, ',' ORDER BY id) FROM outbox WHERE message_key = $1 "
               "AND ce_type LIKE 'keel.v1.Refund%'",
               pay_id, text, sizeof(text));
    assert_string_equal(text, "keel.v1.RefundSucceeded,keel.v1.RefundFailed,"
                              "keel.v1.RefundSucceeded");
    keel_db_free(db);
}

static void test_refund_unknown_then_lookup(void **state)
{
    NEED_DB();
    harness h = {.a = {.refunds = {PAYMENTS_CHARGE_UNKNOWN},
                       .n_refunds = 1,
                       .refund_lookups = {PAYMENTS_LOOKUP_FOUND},
                       .n_refund_lookups = 1}};
    flow_result r;
    char pay_id[48];
    run_flow(&h, 1000, "usd", &r, pay_id);
    keel_db *db = connect_test();
    payments_intake in = {
        .pool = h.pool, .on_stored = payments_workers_notify, .on_stored_arg = h.w};
    char re[48], ev[KEEL_UUID_STR_LEN], text[128];
    new_refund_id(re);
    keel_uuid7_new(ev);
    assert_int_equal(refund_request(&in, ev, re, pay_id, 1000, "usd"), KEEL_HANDLE_OK);
    wait_done(db, "refunds", re);
    harness_stop(&h);
    refund_read(db, re, text, sizeof(text));
    assert_string_equal(text, "succeeded -");
    /* Asked, never refunded a second time. */
    assert_int_equal(h.a.refund_calls, 1);
    assert_int_equal(h.a.refund_lookup_calls, 1);
    keel_db_free(db);
}

static void test_refund_for_unknown_payment_waits_then_fails(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    keel_db_pool *pool = keel_db_pool_new(g_db->url, NULL, "payments-test-refund", 2);
    payments_intake in = {.pool = pool, .refund_wait_retries = 2};
    char re[48], pay[48], ev[KEEL_UUID_STR_LEN], text[128];
    new_refund_id(re);
    new_payment_id(pay);
    keel_uuid7_new(ev);
    /* Retried twice in place (the consumer loop calls again with the same event) ... */
    assert_int_equal(refund_request(&in, ev, re, pay, 100, "usd"), KEEL_HANDLE_RETRY);
    assert_int_equal(refund_request(&in, ev, re, pay, 100, "usd"), KEEL_HANDLE_RETRY);
    /* ... then refused for good. */
    assert_int_equal(refund_request(&in, ev, re, pay, 100, "usd"), KEEL_HANDLE_OK);
    refund_read(db, re, text, sizeof(text));
    assert_string_equal(text, "failed payment_not_found");
    assert_int_equal(query_long(db,
                                "SELECT count(*) FROM outbox WHERE message_key = $1 AND ce_type = "
                                "'keel.v1.RefundFailed'",
                                pay),
                     1);
    /* A malformed request is poison. */
    assert_int_equal(refund_request(&in, "bad-1", "re_nothex", pay, 100, "usd"),
                     KEEL_HANDLE_POISON);
    keel_db_pool_free(pool);
    keel_db_free(db);
}

/* Two refunds of 60 % each for one payment, at the same moment through two intakes (two
 * connections): the row lock lets exactly one in. */
typedef struct refund_racer {
    payments_intake in;
    const char *payment_id;
    pthread_barrier_t *start;
    char refund_id[48];
    keel_handle_result hr;
} refund_racer;

static void *refund_racer_main(void *arg)
{
    refund_racer *r = arg;
    char ev[KEEL_UUID_STR_LEN];
    keel_uuid7_new(ev);
    pthread_barrier_wait(r->start);
    r->hr = refund_request(&r->in, ev, r->refund_id, r->payment_id, 600, "usd");
    return NULL;
}

static void test_concurrent_refunds_cannot_over_refund(void **state)
{
    NEED_DB();
    keel_db *db = connect_test();
    keel_testdb_exec(db, "DELETE FROM refunds");
    request_buf b;
    request_init(&b, 1000);
    insert_request(db, &b);
    const char *params[] = {b.id};
    PGresult *res = keel_db_exec(db,
                                 "UPDATE payments SET status = 'succeeded', phase = 'done', "
                                 "provider = 'fake_a', provider_charge_id = 'ch_1' WHERE id = $1",
                                 1, params);
    assert_int_equal(keel_db_check(db, res, "update"), KEEL_OK);
    PQclear(res);
    keel_db_pool *pool = keel_db_pool_new(g_db->url, NULL, "payments-test-race", 4);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    refund_racer rs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].in.pool = pool;
        rs[i].payment_id = b.id;
        rs[i].start = &start;
        new_refund_id(rs[i].refund_id);
        assert_int_equal(pthread_create(&th[i], NULL, refund_racer_main, &rs[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].hr, KEEL_HANDLE_OK);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(query_long(db,
                                "SELECT count(*) FROM refunds WHERE payment_id = $1 AND status = "
                                "'processing'",
                                b.id),
                     1);
    assert_int_equal(query_long(db,
                                "SELECT count(*) FROM refunds WHERE payment_id = $1 AND "
                                "failure_code = 'amount_exceeds_refundable'",
                                b.id),
                     1);
    keel_db_pool_free(pool);
    keel_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_insert_and_claim),
        cmocka_unit_test(test_store_expired_lease_moves_on),
        cmocka_unit_test(test_store_concurrent_claims_never_share),
        cmocka_unit_test(test_intake),
        cmocka_unit_test(test_flow_succeeds_at_primary),
        cmocka_unit_test(test_flow_decline_is_final),
        cmocka_unit_test(test_flow_not_processed_falls_back),
        cmocka_unit_test(test_flow_retries_in_place_within_budget),
        cmocka_unit_test(test_flow_spent_budget_falls_back_instead),
        cmocka_unit_test(test_flow_route_per_currency),
        cmocka_unit_test(test_flow_unknown_then_lookup_finds_charge),
        cmocka_unit_test(test_flow_unknown_then_not_found_charges_same_provider),
        cmocka_unit_test(test_flow_unknown_past_deadline_goes_to_review),
        cmocka_unit_test(test_flow_ambiguity_then_outage_is_review_not_failure),
        cmocka_unit_test(test_flow_nobody_processes_fails_unavailable),
        cmocka_unit_test(test_flow_risk_blocks_before_any_provider),
        cmocka_unit_test(test_refunds_go_to_the_charging_provider),
        cmocka_unit_test(test_refund_unknown_then_lookup),
        cmocka_unit_test(test_refund_for_unknown_payment_waits_then_fails),
        cmocka_unit_test(test_concurrent_refunds_cannot_over_refund),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
