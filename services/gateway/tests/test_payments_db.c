/* Tests of the gateway's payment SQL against a real PostgreSQL (KEEL_TEST_DATABASE_URL;
 * skipped when unset): API-key lookup with expiry and limits, idempotent creation (replay,
 * reuse, expiry, in-flight claims, crash recovery, lost leases, release, pruning), merchant
 * scoping, and outcome events through the inbox. */
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
#include "db_fixture.h"
#include "digest.h"
#include "idempotency.h"
#include "keel/clock.h"
#include "keel/v1/payments.pb-c.h"
#include "payment_create.h"
#include "payment_events.h"
#include "payment_store.h"

static void test_api_key_lookup(void **state)
{
    db_fixture *f = *state;
    char secret[64];
    char hash[GATEWAY_SHA256_HEX_LEN];
    char key_id[48];
    gateway_principal who;

    keel_testdb_skip_without(f);
    keel_id_new("sk_test_", secret, sizeof(secret));
    keel_id_new("key_", key_id, sizeof(key_id));
    gateway_sha256_hex(secret, strlen(secret), hash);
    keel_testdb_exec(f->db,
                     "INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix) "
                     "VALUES ('%s', '%s', '%s', 'sk_test_xxxx')",
                     key_id, f->merchant, hash);

    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_OK);
    assert_string_equal(who.merchant_id, f->merchant);
    assert_string_equal(who.key_id, key_id);
    assert_true(who.rate_per_s == 0 && who.burst == 0); /* the gateway's default */
    assert_int_equal(gateway_auth_lookup(f->db, "sk_test_nope", 12, &who), KEEL_ERR_NOT_FOUND);
    assert_int_equal(gateway_auth_lookup_hash(f->db, hash, &who), KEEL_OK);

    /* A key's own limit comes with it. */
    keel_testdb_exec(
        f->db, "UPDATE api_keys SET rate_limit_per_s = 10, rate_limit_burst = 20 WHERE id = '%s'",
        key_id);
    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_OK);
    assert_true(who.rate_per_s == 10 && who.burst == 20);

    /* A rotated key works until its grace period ends. */
    keel_testdb_exec(f->db,
                     "UPDATE api_keys SET expires_at = now() + interval '1 hour' WHERE id = '%s'",
                     key_id);
    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_OK);
    keel_testdb_exec(f->db,
                     "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = '%s'",
                     key_id);
    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_ERR_NOT_FOUND);

    keel_testdb_exec(
        f->db, "UPDATE api_keys SET expires_at = NULL, revoked_at = now() WHERE id = '%s'", key_id);
    assert_int_equal(gateway_auth_lookup(f->db, secret, strlen(secret), &who), KEEL_ERR_NOT_FOUND);
}

static const char BODY[] = "{\"amount\":1999,\"currency\":\"usd\",\"metadata\":{\"o\":\"1\"}}";

static void make_input(const char *body, gateway_payment_input *in, json_t **doc)
{
    gateway_validation_error err;
    *doc = json_loads(body, 0, NULL);
    assert_non_null(*doc);
    assert_true(gateway_payment_validate(*doc, in, &err));
}

/* Creates through the whole idempotent path, the way the handler does. */
static keel_result create(keel_db *db, const char *merchant, const char *key, const char *body,
                          int64_t lease_ms, gateway_idem_result *out)
{
    gateway_payment_input in;
    json_t *doc;
    gateway_create_request req;
    keel_result r;

    make_input(body, &in, &doc);
    req = (gateway_create_request){.merchant_id = merchant,
                                   .idempotency_key = key,
                                   .params = doc,
                                   .input = &in,
                                   .traceparent = NULL,
                                   .lease_ms = lease_ms};
    r = gateway_payment_create(db, NULL, &req, out);
    json_decref(doc);
    return r;
}

static void count_outbox(keel_db *db, const char *payment_id, const char *want)
{
    keel_testdb_assert_text(db, want, "SELECT count(*) FROM outbox WHERE message_key = '%s'",
                            payment_id);
}

static void test_create_replay_reuse(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result first = {0};
    gateway_idem_result again = {0};
    gateway_idem_result other = {0};
    char key[48];
    char *id;
    char *got = NULL;

    keel_testdb_skip_without(f);
    keel_id_new("idem_", key, sizeof(key));

    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &first), KEEL_OK);
    assert_int_equal(first.outcome, GATEWAY_IDEM_EXECUTED);
    assert_int_equal(first.status, 202);
    id = json_member(first.body, "id");
    assert_true(strncmp(id, "pay_", 4) == 0);
    assert_non_null(strstr(first.body, "\"status\":\"pending\""));
    assert_non_null(strstr(first.body, "\"refunds\":[]"));

    /* The same request again, even with keys reordered: the recorded answer, byte for byte,
     * and nothing new written. */
    assert_int_equal(create(f->db, f->merchant, key,
                            "{\"metadata\":{\"o\":\"1\"},\"currency\":\"usd\",\"amount\":1999}", 0,
                            &again),
                     KEEL_OK);
    assert_int_equal(again.outcome, GATEWAY_IDEM_REPLAYED);
    assert_int_equal(again.status, 202);
    assert_string_equal(again.body, first.body);

    /* The same key with another body is refused, naming what differs. */
    assert_int_equal(create(f->db, f->merchant, key,
                            "{\"amount\":2000,\"currency\":\"usd\",\"metadata\":{\"o\":\"1\"}}", 0,
                            &other),
                     KEEL_OK);
    assert_int_equal(other.outcome, GATEWAY_IDEM_MISMATCH);
    assert_null(other.body);
    assert_string_equal(other.mismatch, "with different parameters: amount");
    gateway_idem_result_clear(&other);

    count_outbox(f->db, id, "1");
    keel_testdb_assert_text(f->db,
                            "keel.payment-requests.v1 keel.v1.PaymentRequested /keel/gateway",
                            "SELECT topic || ' ' || ce_type || ' ' || ce_source FROM outbox "
                            "WHERE message_key = '%s'",
                            id);
    keel_testdb_assert_text(
        f->db, "202 true",
        "SELECT response_status || ' ' || (lock_token IS NULL) FROM idempotency_keys "
        "WHERE merchant_id = '%s' AND idem_key = '%s'",
        f->merchant, key);

    /* The outbox payload is the PaymentRequested the payments service will read. */
    {
        char *hex = keel_testdb_text(
            f->db, "SELECT encode(payload, 'hex') FROM outbox WHERE message_key = '%s'", id);
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
    assert_int_equal(create(f->db, f->other_merchant, key, BODY, 0, &other), KEEL_OK);
    assert_int_equal(other.outcome, GATEWAY_IDEM_EXECUTED);

    free(id);
    gateway_idem_result_clear(&first);
    gateway_idem_result_clear(&again);
    gateway_idem_result_clear(&other);
}

static void test_expired_key_is_taken_over(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result first = {0};
    gateway_idem_result later = {0};
    char key[48];

    keel_testdb_skip_without(f);
    keel_id_new("idem_", key, sizeof(key));
    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &first), KEEL_OK);
    keel_testdb_exec(f->db,
                     "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
                     "WHERE merchant_id = '%s' AND idem_key = '%s'",
                     f->merchant, key);
    /* Past its 24 hours a key means nothing: even another body makes a new payment. */
    assert_int_equal(
        create(f->db, f->merchant, key, "{\"amount\":5,\"currency\":\"eur\"}", 0, &later), KEEL_OK);
    assert_int_equal(later.outcome, GATEWAY_IDEM_EXECUTED);
    assert_string_not_equal(later.body, first.body);
    gateway_idem_result_clear(&first);
    gateway_idem_result_clear(&later);
}

typedef struct twin {
    const char *url;
    const char *merchant;
    const char *key;
    gateway_idem_result result;
    keel_result r;
} twin;

static void *twin_main(void *arg)
{
    twin *t = arg;
    keel_db *db = fixture_connect(t->url);
    t->r = create(db, t->merchant, t->key, BODY, 0, &t->result);
    keel_db_free(db);
    return NULL;
}

/* Waits (bounded) until n sessions of this test wait on a lock. */
static void wait_for_lock_waiters(keel_db *db, const char *n)
{
    int64_t deadline = keel_clock_monotonic_ms() + 10000;
    for (;;) {
        char *v =
            keel_testdb_text(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                 "'Lock' AND application_name = '" FIXTURE_APP "'");
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

/* While A works under the key (held up by a lock), B with the same key gets IN_FLIGHT at
 * once instead of waiting; after A commits, a third try replays A's answer. */
static void test_concurrent_twin_gets_in_flight(void **state)
{
    db_fixture *f = *state;
    keel_db *locker;
    twin a = {0};
    twin b = {0};
    pthread_t ta;
    char key[48];

    keel_testdb_skip_without(f);
    keel_id_new("idem_", key, sizeof(key));
    a = (twin){.url = f->t->url, .merchant = f->merchant, .key = key};
    b = a;

    locker = fixture_connect(f->t->url);
    keel_testdb_exec(locker, "BEGIN");
    keel_testdb_exec(locker, "LOCK TABLE payments IN SHARE MODE");
    assert_int_equal(pthread_create(&ta, NULL, twin_main, &a), 0);
    wait_for_lock_waiters(f->db, "1");
    /* A holds the claim (committed) and waits inside its work transaction. */
    twin_main(&b);
    assert_int_equal(b.r, KEEL_OK);
    assert_int_equal(b.result.outcome, GATEWAY_IDEM_IN_FLIGHT);
    keel_testdb_exec(locker, "COMMIT");
    pthread_join(ta, NULL);
    keel_db_free(locker);

    assert_int_equal(a.r, KEEL_OK);
    assert_int_equal(a.result.outcome, GATEWAY_IDEM_EXECUTED);
    gateway_idem_result_clear(&b.result);
    twin_main(&b);
    assert_int_equal(b.result.outcome, GATEWAY_IDEM_REPLAYED);
    assert_string_equal(a.result.body, b.result.body);
    {
        char *id = json_member(a.result.body, "id");
        count_outbox(f->db, id, "1");
        free(id);
    }
    gateway_idem_result_clear(&a.result);
    gateway_idem_result_clear(&b.result);
}

/* A claim left behind by a crashed process blocks retries only until its lease ends. */
static void test_stale_claim_is_recovered(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result res = {0};
    char key[48];
    char hash[GATEWAY_SHA256_HEX_LEN];
    char *canonical;
    json_t *doc;

    keel_testdb_skip_without(f);
    doc = json_loads(BODY, 0, NULL);
    keel_id_new("idem_", key, sizeof(key));
    canonical = gateway_idempotency_canonical(doc);
    gateway_idempotency_fingerprint("POST", "/v1/payments", canonical, hash);
    /* What a gateway killed right after its claim leaves: no answer, a live lease. */
    keel_testdb_exec(
        f->db,
        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, request_method, "
        "request_path, request_params, lock_token, locked_until) VALUES ('%s', '%s', '%s', "
        "'POST', '/v1/payments', '%s', 'dead-token', now() + interval '1 hour')",
        f->merchant, key, hash, canonical);
    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &res), KEEL_OK);
    assert_int_equal(res.outcome, GATEWAY_IDEM_IN_FLIGHT);

    /* The lease runs out: the retry takes the key over and does the work once. */
    keel_testdb_exec(f->db,
                     "UPDATE idempotency_keys SET locked_until = now() - interval '1 ms' "
                     "WHERE merchant_id = '%s' AND idem_key = '%s'",
                     f->merchant, key);
    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &res), KEEL_OK);
    assert_int_equal(res.outcome, GATEWAY_IDEM_EXECUTED);
    gateway_idem_result_clear(&res);

    /* A stale claim for a different request is still that request's key. */
    keel_id_new("idem_", key, sizeof(key));
    keel_testdb_exec(
        f->db,
        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, lock_token, "
        "locked_until) VALUES ('%s', '%s', 'other-hash', 'dead', now() - interval '1 s')",
        f->merchant, key);
    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &res), KEEL_OK);
    assert_int_equal(res.outcome, GATEWAY_IDEM_MISMATCH);
    gateway_idem_result_clear(&res);
    free(canonical);
    json_decref(doc);
}

typedef struct steal {
    const char *url;
    const char *merchant;
    const char *key;
    int runs;
    keel_result result;
} steal;

/* Work that finds its lease taken over mid-way (another connection swaps the token), as when
 * a request outlives its lease and a retry recovered the key. */
static keel_result stolen_work(keel_db *db, void *arg, int *status, char **body)
{
    steal *s = arg;
    keel_db *other = fixture_connect(s->url);

    s->runs++;
    keel_testdb_exec(
        db, "INSERT INTO merchants (id, name) VALUES "
            "('mer_00000000000000000000000000000001', 'rolled back') ON CONFLICT DO NOTHING");
    keel_testdb_exec(
        other,
        "UPDATE idempotency_keys SET lock_token = 'thief' WHERE merchant_id = '%s' AND "
        "idem_key = '%s'",
        s->merchant, s->key);
    keel_db_free(other);
    *status = 202;
    *body = strdup("{}");
    return s->result;
}

static void test_lost_lease_records_nothing_and_failure_releases(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result res = {0};
    char key[48];
    steal s = {0};
    gateway_idem_request req;

    keel_testdb_skip_without(f);
    keel_id_new("idem_", key, sizeof(key));
    s = (steal){.url = f->t->url, .merchant = f->merchant, .key = key, .result = KEEL_OK};
    req = (gateway_idem_request){.merchant_id = f->merchant,
                                 .key = key,
                                 .method = "POST",
                                 .path = "/v1/test",
                                 .params = NULL,
                                 .lease_ms = 60000};
    assert_int_equal(gateway_idempotent_execute(f->db, NULL, &req, stolen_work, &s, &res), KEEL_OK);
    assert_int_equal(res.outcome, GATEWAY_IDEM_IN_FLIGHT);
    assert_int_equal(s.runs, 1);
    /* The work's writes rolled back with the refused answer. */
    keel_testdb_assert_text(
        f->db, "0",
        "SELECT count(*) FROM merchants WHERE id = 'mer_00000000000000000000000000000001'");
    keel_testdb_assert_text(
        f->db, "true thief",
        "SELECT (response_status IS NULL) || ' ' || lock_token FROM idempotency_keys "
        "WHERE merchant_id = '%s' AND idem_key = '%s'",
        f->merchant, key);

    /* Work that fails hands the key back at once, so the client's retry can run. */
    keel_id_new("idem_", key, sizeof(key));
    s = (steal){.url = f->t->url, .merchant = f->merchant, .key = "unused", .result = KEEL_ERR};
    assert_int_equal(gateway_idempotent_execute(f->db, NULL, &req, stolen_work, &s, &res),
                     KEEL_ERR);
    keel_testdb_assert_text(
        f->db, "0",
        "SELECT count(*) FROM idempotency_keys WHERE merchant_id = '%s' AND idem_key = '%s'",
        f->merchant, key);
    gateway_idem_result_clear(&res);
}

static void test_prune(void **state)
{
    db_fixture *f = *state;
    int deleted = -1;

    keel_testdb_skip_without(f);
    keel_testdb_exec(
        f->db,
        "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, response_status, "
        "response_body, expires_at, locked_until) VALUES "
        "('%s', 'old-done', 'h', 202, '{}', now() - interval '1 s', NULL), "
        "('%s', 'old-abandoned', 'h', NULL, NULL, now() - interval '1 s', "
        "now() - interval '1 s'), "
        "('%s', 'old-but-held', 'h', NULL, NULL, now() - interval '1 s', "
        "now() + interval '1 h'), "
        "('%s', 'fresh', 'h', 202, '{}', now() + interval '1 h', NULL)",
        f->merchant, f->merchant, f->merchant, f->merchant);
    assert_int_equal(gateway_idempotency_prune(f->db, 1000, &deleted), KEEL_OK);
    assert_true(deleted >= 2);
    keel_testdb_assert_text(
        f->db, "fresh,old-but-held",
        "SELECT string_agg(idem_key, ',' ORDER BY idem_key) FROM idempotency_keys "
        "WHERE merchant_id = '%s' AND idem_key IN ('old-done', 'old-abandoned', "
        "'old-but-held', 'fresh')",
        f->merchant);
}

static void apply(keel_db *db, gateway_payment_outcome *o, bool want_applied)
{
    bool applied = !want_applied;
    assert_int_equal(gateway_payment_store_apply_outcome(db, o, &applied), KEEL_OK);
    assert_true(applied == want_applied);
}

static void test_outcomes_move_forward_only(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result created = {0};
    gateway_payment_outcome o;
    char key[48];
    char sql[512];
    char *id;

    keel_testdb_skip_without(f);
    keel_id_new("idem_", key, sizeof(key));
    assert_int_equal(create(f->db, f->merchant, key, BODY, 0, &created), KEEL_OK);
    id = json_member(created.body, "id");
    snprintf(sql, sizeof(sql),
             "SELECT status || ' ' || coalesce(provider, '-') || ' ' || (failure_code IS NULL) "
             "FROM payments WHERE id = '%s'",
             id);

    o = (gateway_payment_outcome){.payment_id = id,
                                  .merchant_id = f->other_merchant,
                                  .amount = 1999,
                                  .currency = "usd",
                                  .status = "failed",
                                  .provider = "",
                                  .failure_code = "card_declined",
                                  .failure_message = "declined"};
    /* An event naming another merchant does not touch this merchant's payment. */
    apply(f->db, &o, false);

    /* pending → requires_review → succeeded; then nothing moves it again. */
    o.merchant_id = f->merchant;
    o.status = "requires_review";
    o.provider = "provider_a";
    o.failure_code = "";
    o.failure_message = "status unknown";
    apply(f->db, &o, true);
    keel_testdb_assert_text(f->db, "requires_review provider_a true", "%s", sql);
    apply(f->db, &o, false); /* a second review changes nothing */
    o.status = "succeeded";
    o.failure_message = "";
    apply(f->db, &o, true);
    keel_testdb_assert_text(f->db, "succeeded provider_a true", "%s", sql);
    o.status = "failed";
    o.failure_code = "card_declined";
    apply(f->db, &o, false);
    o.status = "requires_review";
    apply(f->db, &o, false);
    keel_testdb_assert_text(f->db, "succeeded provider_a true", "%s", sql);
    free(id);
    gateway_idem_result_clear(&created);
}

static void test_event_for_unknown_payment_and_duplicate(void **state)
{
    db_fixture *f = *state;
    Keel__V1__PaymentFailed m = KEEL__V1__PAYMENT_FAILED__INIT;
    gateway_events ev;
    keel_message msg;
    char reason[256];
    char pay_id[48];
    uint8_t *buf;
    size_t len;

    keel_testdb_skip_without(f);
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
    keel_testdb_assert_text(
        f->db, "failed 700 gbp card_declined",
        "SELECT status || ' ' || amount || ' ' || currency || ' ' || failure_code "
        "FROM payments WHERE id = '%s'",
        pay_id);

    /* The same event again: the inbox makes it a no-op, even after the row changed. */
    keel_testdb_exec(f->db,
                     "UPDATE payments SET status = 'pending', failure_code = NULL WHERE id = '%s'",
                     pay_id);
    assert_int_equal(gateway_payment_events_handle(&msg, &ev, reason, sizeof(reason)),
                     KEEL_HANDLE_OK);
    keel_testdb_assert_text(f->db, "pending", "SELECT status FROM payments WHERE id = '%s'",
                            pay_id);

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
        cmocka_unit_test(test_concurrent_twin_gets_in_flight),
        cmocka_unit_test(test_stale_claim_is_recovered),
        cmocka_unit_test(test_lost_lease_records_nothing_and_failure_releases),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_outcomes_move_forward_only),
        cmocka_unit_test(test_event_for_unknown_payment_and_duplicate),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
