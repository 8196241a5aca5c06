/* Tests of the gateway's SQL against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped when
 * unset): API-key lookup, the create transaction with replay, reuse, expiry and a concurrent
 * twin, merchant scoping of reads, and outcome events through the inbox. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "digest.h"
#include "idempotency.h"
#include "keel/clock.h"
#include "keel/id.h"
#include "keel/migrate.h"
#include "keel/v1/payments.pb-c.h"
#include "payment_create.h"
#include "payment_events.h"
#include "payment_store.h"

extern const keel_migration gateway_migrations[];
extern const size_t gateway_migrations_count;

static const char *db_url(void)
{
    const char *url = getenv("KEEL_TEST_DATABASE_URL");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

static keel_db *connect_db(void)
{
    keel_db *db = keel_db_new(db_url(), NULL, "gateway-test");
    assert_int_equal(keel_db_connect(db, 10000), KEEL_OK);
    return db;
}

/* Runs sql (no parameters) and returns the first column of the first row, malloc'd. */
static char *sql_value(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    char *v;

    if (keel_db_check(db, res, "test query") != KEEL_OK) {
        fail_msg("query failed: %s", sql);
    }
    assert_true(PQntuples(res) >= 1);
    v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static void sql_run(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    if (keel_db_check(db, res, "test statement") != KEEL_OK) {
        fail_msg("statement failed: %s", sql);
    }
    PQclear(res);
}

static void assert_sql(keel_db *db, const char *sql, const char *want)
{
    char *got = sql_value(db, sql);
    if (strcmp(got, want) != 0) {
        fail_msg("%s gave '%s', want '%s'", sql, got, want);
    }
    free(got);
}

typedef struct fixture {
    keel_db *db;
    char merchant[48];
    char other_merchant[48];
} fixture;

static int setup(void **state)
{
    fixture *f;
    char err[512];
    char sql[256];

    if (db_url() == NULL) {
        *state = NULL;
        return 0;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->db = connect_db();
    if (keel_migrate_apply(f->db, "libkeel", keel_common_migrations, keel_common_migrations_count,
                           err, sizeof(err)) != KEEL_OK ||
        keel_migrate_apply(f->db, "gateway", gateway_migrations, gateway_migrations_count, err,
                           sizeof(err)) != KEEL_OK) {
        fail_msg("migrations: %s", err);
    }
    keel_id_new("mer_", f->merchant, sizeof(f->merchant));
    keel_id_new("mer_", f->other_merchant, sizeof(f->other_merchant));
    snprintf(sql, sizeof(sql), "INSERT INTO merchants (id, name) VALUES ('%s', 'a'), ('%s', 'b')",
             f->merchant, f->other_merchant);
    sql_run(f->db, sql);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f != NULL) {
        keel_db_free(f->db);
        free(f);
    }
    return 0;
}

#define SKIP_WITHOUT_DB(f)                                                                         \
    do {                                                                                           \
        if ((f) == NULL) {                                                                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void test_api_key_lookup(void **state)
{
    fixture *f = *state;
    char secret[64];
    char hash[GATEWAY_SHA256_HEX_LEN];
    char key_id[48];
    char sql[512];
    gateway_principal who;

    SKIP_WITHOUT_DB(f);
    keel_id_new("sk_test_", secret, sizeof(secret));
    keel_id_new("key_", key_id, sizeof(key_id));
    gateway_sha256_hex(secret, strlen(secret), hash);
    snprintf(sql, sizeof(sql),
             "INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix) "
             "VALUES ('%s', '%s', '%s', 'sk_test_xxxx')",
             key_id, f->merchant, hash);
    sql_run(f->db, sql);

    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_OK);
    assert_string_equal(who.merchant_id, f->merchant);
    assert_string_equal(who.key_id, key_id);
    assert_int_equal(gateway_auth_lookup(f->db, "sk_test_nope", 12, &who), KEEL_ERR_NOT_FOUND);

    snprintf(sql, sizeof(sql), "UPDATE api_keys SET revoked_at = now() WHERE id = '%s'", key_id);
    sql_run(f->db, sql);
    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_ERR_NOT_FOUND);
}

static const char BODY[] = "{\"amount\":1999,\"currency\":\"usd\",\"metadata\":{\"o\":\"1\"}}";

static void make_input(gateway_payment_input *in, json_t **doc)
{
    gateway_validation_error err;
    *doc = json_loads(BODY, 0, NULL);
    assert_non_null(*doc);
    assert_true(gateway_payment_validate(*doc, in, &err));
}

static keel_result create(keel_db *db, const char *merchant, const char *key, const char *body,
                          const gateway_payment_input *in, gateway_create_result *out)
{
    char hash[GATEWAY_SHA256_HEX_LEN];
    gateway_create_request req;

    gateway_idempotency_request_hash("POST", "/v1/payments", body, strlen(body), hash);
    req = (gateway_create_request){.merchant_id = merchant,
                                   .idempotency_key = key,
                                   .request_hash = hash,
                                   .input = in,
                                   .traceparent = NULL};
    return gateway_payment_create(db, NULL, &req, out);
}

static char *json_id(const char *body)
{
    json_t *j = json_loads(body, 0, NULL);
    char *id;
    assert_non_null(j);
    id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

static void test_create_replay_reuse(void **state)
{
    fixture *f = *state;
    gateway_payment_input in;
    json_t *doc;
    gateway_create_result first = {0};
    gateway_create_result again = {0};
    gateway_create_result other = {0};
    char key[48];
    char sql[512];
    char *id;
    char *got = NULL;

    SKIP_WITHOUT_DB(f);
    make_input(&in, &doc);
    keel_id_new("idem_", key, sizeof(key));

    assert_int_equal(create(f->db, f->merchant, key, BODY, &in, &first), KEEL_OK);
    assert_int_equal(first.outcome, GATEWAY_CREATE_CREATED);
    assert_int_equal(first.status, 202);
    id = json_id(first.body);
    assert_true(strncmp(id, "pay_", 4) == 0);
    assert_non_null(strstr(first.body, "\"status\":\"pending\""));

    /* The same request again: the recorded answer, byte for byte, and nothing new written. */
    assert_int_equal(create(f->db, f->merchant, key, BODY, &in, &again), KEEL_OK);
    assert_int_equal(again.outcome, GATEWAY_CREATE_REPLAYED);
    assert_int_equal(again.status, 202);
    assert_string_equal(again.body, first.body);

    /* The same key with another body is refused. */
    assert_int_equal(create(f->db, f->merchant, key, "{\"amount\":2}", &in, &other), KEEL_OK);
    assert_int_equal(other.outcome, GATEWAY_CREATE_KEY_REUSED);
    assert_null(other.body);

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE message_key = '%s'", id);
    assert_sql(f->db, sql, "1");
    snprintf(sql, sizeof(sql),
             "SELECT topic || ' ' || ce_type || ' ' || ce_source FROM outbox "
             "WHERE message_key = '%s'",
             id);
    assert_sql(f->db, sql, "keel.payment-requests.v1 keel.v1.PaymentRequested /keel/gateway");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM idempotency_keys WHERE merchant_id = '%s' AND idem_key = '%s' "
             "AND response_status = 202",
             f->merchant, key);
    assert_sql(f->db, sql, "1");

    /* The outbox payload is the PaymentRequested the payments service will read. */
    snprintf(sql, sizeof(sql), "SELECT encode(payload, 'hex') FROM outbox WHERE message_key = '%s'",
             id);
    {
        char *hex = sql_value(f->db, sql);
        size_t n = strlen(hex) / 2;
        uint8_t *bytes = malloc(n + 1);
        Keel__V1__PaymentRequested *m;
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            bytes[i] = (uint8_t)v;
        }
        m = keel__v1__payment_requested__unpack(NULL, n, bytes);
        assert_non_null(m);
        assert_string_equal(m->payment_id, id);
        assert_string_equal(m->merchant_id, f->merchant);
        assert_int_equal(m->amount, 1999);
        assert_string_equal(m->currency, "usd");
        assert_string_equal(m->payment_method, "pm_card_visa");
        assert_int_equal(m->n_metadata, 1);
        assert_string_equal(m->metadata[0]->key, "o");
        assert_string_equal(m->metadata[0]->value, "1");
        assert_int_equal(strlen(m->created_at), 24);
        keel__v1__payment_requested__free_unpacked(m, NULL);
        free(bytes);
        free(hex);
    }

    /* GET is scoped to the merchant: another merchant sees nothing. */
    assert_int_equal(gateway_payment_store_get(f->db, f->merchant, id, &got), KEEL_OK);
    assert_string_equal(got, first.body);
    free(got);
    got = NULL;
    assert_int_equal(gateway_payment_store_get(f->db, f->other_merchant, id, &got),
                     KEEL_ERR_NOT_FOUND);
    assert_null(got);
    assert_int_equal(gateway_payment_store_get(f->db, f->merchant, "pay_missing", &got),
                     KEEL_ERR_NOT_FOUND);
    /* Keys are per merchant: the other merchant may use the same key for its own payment. */
    assert_int_equal(create(f->db, f->other_merchant, key, BODY, &in, &other), KEEL_OK);
    assert_int_equal(other.outcome, GATEWAY_CREATE_CREATED);

    free(id);
    gateway_create_result_clear(&first);
    gateway_create_result_clear(&again);
    gateway_create_result_clear(&other);
    json_decref(doc);
}

static void test_expired_key_is_taken_over(void **state)
{
    fixture *f = *state;
    gateway_payment_input in;
    json_t *doc;
    gateway_create_result first = {0};
    gateway_create_result later = {0};
    char key[48];
    char sql[512];

    SKIP_WITHOUT_DB(f);
    make_input(&in, &doc);
    keel_id_new("idem_", key, sizeof(key));
    assert_int_equal(create(f->db, f->merchant, key, BODY, &in, &first), KEEL_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
             "WHERE merchant_id = '%s' AND idem_key = '%s'",
             f->merchant, key);
    sql_run(f->db, sql);
    /* Past its 24 hours a key means nothing: even another body makes a new payment. */
    assert_int_equal(create(f->db, f->merchant, key, "{\"other\":1}", &in, &later), KEEL_OK);
    assert_int_equal(later.outcome, GATEWAY_CREATE_CREATED);
    assert_string_not_equal(later.body, first.body);
    gateway_create_result_clear(&first);
    gateway_create_result_clear(&later);
    json_decref(doc);
}

typedef struct twin {
    const char *merchant;
    const char *key;
    const gateway_payment_input *in;
    gateway_create_result result;
    keel_result r;
} twin;

static void *twin_main(void *arg)
{
    twin *t = arg;
    keel_db *db = connect_db();
    t->r = create(db, t->merchant, t->key, BODY, t->in, &t->result);
    keel_db_free(db);
    return NULL;
}

/* Waits (bounded) until n sessions of this test wait on a lock. */
static void wait_for_lock_waiters(keel_db *db, const char *n)
{
    int64_t deadline = keel_clock_monotonic_ms() + 10000;
    for (;;) {
        char *v = sql_value(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                "'Lock' AND application_name = 'gateway-test'");
        bool done = strcmp(v, n) == 0;
        free(v);
        if (done) {
            return;
        }
        if (keel_clock_monotonic_ms() > deadline) {
            fail_msg("timed out waiting for %s lock waiters", n);
        }
        keel_clock_sleep_ms(20);
    }
}

static void test_concurrent_twin_waits_then_replays(void **state)
{
    fixture *f = *state;
    gateway_payment_input in;
    json_t *doc;
    keel_db *locker;
    twin a = {0};
    twin b = {0};
    pthread_t ta;
    pthread_t tb;
    char key[48];
    char sql[512];

    SKIP_WITHOUT_DB(f);
    make_input(&in, &doc);
    keel_id_new("idem_", key, sizeof(key));
    a = (twin){.merchant = f->merchant, .key = key, .in = &in};
    b = a;

    /* Hold inserts into payments so A stops after claiming the key, still uncommitted. */
    locker = connect_db();
    sql_run(locker, "BEGIN");
    sql_run(locker, "LOCK TABLE payments IN SHARE MODE");
    assert_int_equal(pthread_create(&ta, NULL, twin_main, &a), 0);
    wait_for_lock_waiters(f->db, "1");
    /* B's INSERT of the same key must now wait for A's transaction. */
    assert_int_equal(pthread_create(&tb, NULL, twin_main, &b), 0);
    wait_for_lock_waiters(f->db, "2");
    sql_run(locker, "COMMIT");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    keel_db_free(locker);

    assert_int_equal(a.r, KEEL_OK);
    assert_int_equal(b.r, KEEL_OK);
    assert_int_equal(a.result.outcome, GATEWAY_CREATE_CREATED);
    assert_int_equal(b.result.outcome, GATEWAY_CREATE_REPLAYED);
    assert_string_equal(a.result.body, b.result.body);
    {
        char *id = json_id(a.result.body);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE message_key = '%s'", id);
        assert_sql(f->db, sql, "1");
        free(id);
    }
    gateway_create_result_clear(&a.result);
    gateway_create_result_clear(&b.result);
    json_decref(doc);
}

static void test_outcomes_never_leave_a_final_status(void **state)
{
    fixture *f = *state;
    gateway_payment_input in;
    json_t *doc;
    gateway_create_result created = {0};
    gateway_payment_outcome o;
    bool applied;
    char key[48];
    char sql[512];
    char *id;

    SKIP_WITHOUT_DB(f);
    make_input(&in, &doc);
    keel_id_new("idem_", key, sizeof(key));
    assert_int_equal(create(f->db, f->merchant, key, BODY, &in, &created), KEEL_OK);
    id = json_id(created.body);

    o = (gateway_payment_outcome){.payment_id = id,
                                  .merchant_id = f->other_merchant,
                                  .amount = 1999,
                                  .currency = "usd",
                                  .status = "failed",
                                  .provider = "",
                                  .failure_code = "card_declined",
                                  .failure_message = "declined"};
    /* An event naming another merchant does not touch this merchant's payment. */
    assert_int_equal(gateway_payment_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_false(applied);

    o.merchant_id = f->merchant;
    o.status = "succeeded";
    o.provider = "provider_a";
    o.failure_code = "";
    o.failure_message = "";
    assert_int_equal(gateway_payment_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_true(applied);
    snprintf(sql, sizeof(sql),
             "SELECT status || ' ' || provider || ' ' || (failure_code IS NULL) FROM payments "
             "WHERE id = '%s'",
             id);
    assert_sql(f->db, sql, "succeeded provider_a true");

    /* A late "failed" for a succeeded payment changes nothing. */
    o.status = "failed";
    o.failure_code = "card_declined";
    assert_int_equal(gateway_payment_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_false(applied);
    assert_sql(f->db, sql, "succeeded provider_a true");
    free(id);
    gateway_create_result_clear(&created);
    json_decref(doc);
}

static void test_event_for_unknown_payment_and_duplicate(void **state)
{
    fixture *f = *state;
    Keel__V1__PaymentFailed m = KEEL__V1__PAYMENT_FAILED__INIT;
    gateway_events ev;
    keel_message msg;
    char reason[256];
    char pay_id[48];
    char sql[512];
    uint8_t *buf;
    size_t len;

    SKIP_WITHOUT_DB(f);
    keel_id_new("pay_", pay_id, sizeof(pay_id));
    m.payment_id = pay_id;
    m.merchant_id = f->merchant;
    m.amount = 700;
    m.currency = "gbp";
    m.failure_code = "card_declined";
    m.failure_message = "Your card was declined.";
    len = keel__v1__payment_failed__get_packed_size(&m);
    buf = malloc(len);
    keel__v1__payment_failed__pack(&m, buf);

    gateway_events_init(&ev, f->db);
    memset(&msg, 0, sizeof(msg));
    msg.topic = GATEWAY_PAYMENT_EVENTS_TOPIC;
    msg.payload = buf;
    msg.len = len;
    keel_uuid7_new(msg.ce.id);
    snprintf(msg.ce.type, sizeof(msg.ce.type), "keel.v1.PaymentFailed");

    /* A payment published straight to Kafka: the gateway learns of it from its outcome. */
    assert_int_equal(gateway_payment_events_handle(&msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    snprintf(sql, sizeof(sql),
             "SELECT status || ' ' || amount || ' ' || currency || ' ' || failure_code "
             "FROM payments WHERE id = '%s'",
             pay_id);
    assert_sql(f->db, sql, "failed 700 gbp card_declined");

    /* The same event again: the inbox makes it a no-op, even after the row changed. */
    snprintf(sql, sizeof(sql),
             "UPDATE payments SET status = 'pending', failure_code = NULL WHERE id = '%s'", pay_id);
    sql_run(f->db, sql);
    assert_int_equal(gateway_payment_events_handle(&msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    snprintf(sql, sizeof(sql), "SELECT status FROM payments WHERE id = '%s'", pay_id);
    assert_sql(f->db, sql, "pending");

    snprintf(msg.ce.type, sizeof(msg.ce.type), "keel.v1.Nonsense");
    assert_int_equal(gateway_payment_events_handle(&msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_POISON);
    assert_non_null(strstr(reason, "keel.v1.Nonsense"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_key_lookup),
        cmocka_unit_test(test_create_replay_reuse),
        cmocka_unit_test(test_expired_key_is_taken_over),
        cmocka_unit_test(test_concurrent_twin_waits_then_replays),
        cmocka_unit_test(test_outcomes_never_leave_a_final_status),
        cmocka_unit_test(test_event_for_unknown_payment_and_duplicate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
