/* Tests of keel-notifier's SQL against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped when
 * unset): endpoints and their limit, which endpoints an event reaches, leases under concurrent
 * claims, recording attempts, 410 and failure-run disabling, rotation overlap, stats, pruning. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "intake.h"
#include "keel/clock.h"
#include "keel/id.h"
#include "keel/log.h"
#include "keel/testing/db.h"
#include "store.h"

extern const keel_migration notifier_migrations[];
extern const size_t notifier_migrations_count;

/* The program's own schema (NULL without a database: every test skips). */
static keel_testdb *g_db;

typedef struct fixture {
    keel_db *db;
    char merchant[48];
} fixture;

static int group_setup(void **state)
{
    g_db = keel_testdb_open("notifier_test_store", "notifier-test", "notifier", notifier_migrations,
                            notifier_migrations_count);
    return 0;
}

static int group_teardown(void **state)
{
    keel_testdb_close(&g_db);
    return 0;
}

static int setup(void **state)
{
    if (g_db == NULL) {
        *state = NULL;
        return 0;
    }
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->db = keel_testdb_connect(g_db->url, "notifier-test");
    /* A merchant of its own per test, so tests never meet. */
    keel_id_new("mer_", f->merchant, sizeof(f->merchant));
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

typedef struct insert_tx {
    notifier_endpoint_new ep;
    int max;
} insert_tx;

static keel_result insert_body(keel_db *db, void *arg)
{
    insert_tx *tx = arg;
    return notifier_store_endpoint_insert(db, &tx->ep, tx->max);
}

/* Creates an endpoint of f's merchant for the given types; its id goes to id. */
static keel_result add_endpoint(fixture *f, const char *const *types, size_t n, int max, char *id,
                                size_t id_len)
{
    keel_id_new("we_", id, id_len);
    insert_tx tx = {.ep = {.id = id,
                           .merchant_id = f->merchant,
                           .url = "https://example.com/hook",
                           .description = "test",
                           .events = types,
                           .event_count = n,
                           .secret = "whsec_current"},
                    .max = max};
    return keel_db_transaction(f->db, NULL, insert_body, &tx, NULL);
}

typedef struct event_tx {
    notifier_event_row row;
    int deliveries;
} event_tx;

static keel_result event_body(keel_db *db, void *arg)
{
    event_tx *tx = arg;
    return notifier_store_event_insert(db, &tx->row, &tx->deliveries);
}

/* Stores an event of type for f's merchant; returns the number of deliveries. */
static int add_event(fixture *f, const char *type, int64_t occurred_ms, char *event_id,
                     size_t id_len)
{
    char source[KEEL_UUID_STR_LEN];
    keel_id_new("evt_", event_id, id_len);
    keel_uuid7_new(source);
    event_tx tx = {.row = {.event_id = event_id,
                           .merchant_id = f->merchant,
                           .type = type,
                           .source_event_id = source,
                           .body = "{\"id\":\"x\"}",
                           .occurred_ms = occurred_ms}};
    assert_int_equal(keel_db_transaction(f->db, NULL, event_body, &tx, NULL), KEEL_OK);
    return tx.deliveries;
}

/* An endpoint of f's merchant for every type and n events of type for it. */
static void endpoint_with_events(fixture *f, int n, const char *type, char *ep, char *evt)
{
    static const char *const all[] = {"*"};
    assert_int_equal(add_endpoint(f, all, 1, 16, ep, 48), KEEL_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(add_event(f, type, keel_clock_now_ms() + 1000, evt, 48), 1);
    }
}

static void test_endpoints_crud_and_limit(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    static const char *const types[] = {"payment.succeeded", "payment.failed"};
    char a[48], b[48], c[48];
    assert_int_equal(add_endpoint(f, types, 2, 2, a, sizeof(a)), KEEL_OK);
    assert_int_equal(add_endpoint(f, types, 1, 2, b, sizeof(b)), KEEL_OK);
    assert_int_equal(add_endpoint(f, types, 1, 2, c, sizeof(c)), KEEL_ERR_FULL);

    json_t *view = NULL;
    assert_int_equal(notifier_store_endpoint_get(f->db, f->merchant, a, &view), KEEL_OK);
    assert_string_equal(json_string_value(json_object_get(view, "object")), "webhook_endpoint");
    assert_string_equal(json_string_value(json_object_get(view, "status")), "enabled");
    assert_int_equal(json_array_size(json_object_get(view, "enabled_events")), 2);
    assert_null(json_object_get(view, "secret")); /* never in a read */
    json_decref(view);
    /* Another merchant sees nothing. */
    assert_int_equal(notifier_store_endpoint_get(f->db, "mer_other", a, &view), KEEL_ERR_NOT_FOUND);

    json_t *list = NULL;
    assert_int_equal(notifier_store_endpoint_list(f->db, f->merchant, &list), KEEL_OK);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), a);
    json_decref(list);

    assert_int_equal(notifier_store_endpoint_delete(f->db, f->merchant, a), KEEL_OK);
    assert_int_equal(notifier_store_endpoint_delete(f->db, f->merchant, a), KEEL_ERR_NOT_FOUND);
    assert_int_equal(notifier_store_endpoint_get(f->db, f->merchant, a, &view), KEEL_ERR_NOT_FOUND);
    keel_testdb_assert_text(f->db, "", "SELECT secret FROM webhook_endpoints WHERE id = '%s'", a);
    /* A deleted endpoint frees its place under the limit. */
    assert_int_equal(add_endpoint(f, types, 1, 2, c, sizeof(c)), KEEL_OK);
}

static void test_event_reaches_matching_endpoints(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    static const char *const succeeded[] = {"payment.succeeded"};
    static const char *const all[] = {"*"};
    static const char *const refunds[] = {"refund.succeeded"};
    char a[48], b[48], c[48], evt[48];
    int64_t before = keel_clock_now_ms() - 60000;
    assert_int_equal(add_endpoint(f, succeeded, 1, 16, a, sizeof(a)), KEEL_OK);
    assert_int_equal(add_endpoint(f, all, 1, 16, b, sizeof(b)), KEEL_OK);
    assert_int_equal(add_endpoint(f, refunds, 1, 16, c, sizeof(c)), KEEL_OK);
    int64_t now = keel_clock_now_ms() + 1000;

    assert_int_equal(add_event(f, "payment.succeeded", now, evt, sizeof(evt)), 2);
    keel_testdb_assert_text(f->db, "2",
                            "SELECT count(*) FROM webhook_deliveries WHERE event_id = '%s'", evt);
    assert_int_equal(add_event(f, "payment.failed", now, evt, sizeof(evt)), 1);
    /* An outcome older than every endpoint reaches none, and is not even stored. */
    assert_int_equal(add_event(f, "payment.succeeded", before, evt, sizeof(evt)), 0);
    keel_testdb_assert_text(f->db, "0", "SELECT count(*) FROM webhook_events WHERE id = '%s'", evt);
    /* A disabled endpoint gets nothing new. */
    keel_testdb_exec(f->db, "UPDATE webhook_endpoints SET status = 'disabled' WHERE id = '%s'", b);
    assert_int_equal(add_event(f, "payment.succeeded", now, evt, sizeof(evt)), 1);
}

/* Claims until nothing is due, from several connections at once: every delivery is claimed
 * exactly once. */
typedef struct claimer {
    char owner[32];
    int claimed;
    char ids[64][48];
} claimer;

static void *claim_all(void *arg)
{
    claimer *c = arg;
    keel_db *db = keel_testdb_connect(g_db->url, "notifier-test");
    for (;;) {
        notifier_claim cl;
        keel_result rc = notifier_store_claim(db, c->owner, 60000, &cl);
        if (rc != KEEL_OK) {
            break;
        }
        if (c->claimed < 64) {
            snprintf(c->ids[c->claimed], sizeof(c->ids[0]), "%s", cl.id);
        }
        c->claimed++;
        notifier_claim_clear(&cl);
    }
    keel_db_free(db);
    return NULL;
}

static void test_concurrent_claims_never_share(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    char ep[48], evt[48];
    /* Nothing else may be due in this schema, or other tests' rows would be claimed. */
    keel_testdb_exec(f->db, "UPDATE webhook_deliveries SET next_attempt_at = now() + interval "
                            "'1 day' WHERE status = 'pending'");
    endpoint_with_events(f, 24, "payment.succeeded", ep, evt);
    claimer cs[4];
    pthread_t tids[4];
    memset(cs, 0, sizeof(cs));
    for (int i = 0; i < 4; i++) {
        snprintf(cs[i].owner, sizeof(cs[i].owner), "test/w%d", i);
        assert_int_equal(pthread_create(&tids[i], NULL, claim_all, &cs[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tids[i], NULL);
        total += cs[i].claimed;
    }
    assert_int_equal(total, 24);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < cs[i].claimed; k++) {
            for (int j = i; j < 4; j++) {
                for (int m = (j == i ? k + 1 : 0); m < cs[j].claimed; m++) {
                    assert_string_not_equal(cs[i].ids[k], cs[j].ids[m]);
                }
            }
        }
    }
    /* Releasing one owner's leases makes exactly its deliveries claimable again. */
    int released = 0;
    assert_int_equal(notifier_store_release_leases(f->db, "test/w0", &released), KEEL_OK);
    assert_int_equal(released, cs[0].claimed);
    keel_testdb_exec(f->db, "UPDATE webhook_deliveries SET next_attempt_at = now() + interval "
                            "'1 day' WHERE status = 'pending'");
}

static keel_result claim_one(fixture *f, const char *owner, notifier_claim *c)
{
    /* Only this test's deliveries may be due. */
    keel_testdb_exec(f->db,
                     "UPDATE webhook_deliveries d SET next_attempt_at = now() + interval '1 day' "
                     "FROM webhook_endpoints ep WHERE ep.id = d.endpoint_id "
                     "AND ep.merchant_id <> '%s' AND d.status = 'pending'",
                     f->merchant);
    return notifier_store_claim(f->db, owner, 60000, c);
}

/* An attempt at claim c by "t/w1", started now and logged; callers set the rest. */
static notifier_attempt attempt_of(const notifier_claim *c, const char *status, const char *outcome,
                                   int attempt, long http_status)
{
    return (notifier_attempt){.delivery_id = c->id,
                              .endpoint_id = c->endpoint_id,
                              .owner = "t/w1",
                              .status = status,
                              .outcome = outcome,
                              .attempt = attempt,
                              .started_ms = keel_clock_now_ms(),
                              .http_status = http_status,
                              .log_attempt = true};
}

static void test_record_retry_success_and_lease(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    char ep[48], evt[48];
    notifier_claim c;
    notifier_attempt_effect effect;
    endpoint_with_events(f, 1, "payment.succeeded", ep, evt);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    assert_string_equal(c.event_id, evt);
    assert_string_equal(c.secret, "whsec_current");
    assert_string_equal(c.previous_secret, "");
    assert_string_equal(c.endpoint_state, "enabled");
    assert_int_equal(c.attempts, 0);
    /* Leased: nobody else gets it. */
    notifier_claim other;
    assert_int_equal(claim_one(f, "t/w2", &other), KEEL_ERR_NOT_FOUND);

    notifier_attempt a = attempt_of(&c, "pending", "retry", 1, 500);
    a.next_delay_ms = 3600000;
    a.error = "the endpoint answered HTTP 500";
    a.address = "127.0.0.1";
    a.endpoint_failed = true;
    a.disable_after_ms = 3600000;
    /* Not the lease holder: nothing changes. */
    a.owner = "t/w2";
    assert_int_equal(notifier_store_record(f->db, &a, &effect), KEEL_ERR_CONFLICT);
    a.owner = "t/w1";
    assert_int_equal(notifier_store_record(f->db, &a, &effect), KEEL_OK);
    assert_false(effect.endpoint_disabled);
    keel_testdb_assert_text(f->db, "pending|1|500|true",
                            "SELECT status || '|' || attempts || '|' || last_status "
                            "|| '|' || (next_attempt_at > now() + interval '50 "
                            "minutes') FROM webhook_deliveries WHERE id = '%s'",
                            c.id);
    keel_testdb_assert_text(
        f->db, "t", "SELECT failing_since IS NOT NULL FROM webhook_endpoints WHERE id = '%s'", ep);
    keel_testdb_assert_text(
        f->db, "1|retry|500",
        "SELECT attempt || '|' || outcome || '|' || http_status FROM webhook_attempts "
        "WHERE delivery_id = '%s'",
        c.id);
    /* Not due for an hour. */
    assert_int_equal(claim_one(f, "t/w1", &other), KEEL_ERR_NOT_FOUND);

    /* Due again: it succeeds, and the endpoint's failure run ends. */
    keel_testdb_exec(f->db, "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = '%s'",
                     c.id);
    char id[48];
    snprintf(id, sizeof(id), "%s", c.id);
    notifier_claim_clear(&c);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    assert_string_equal(c.id, id);
    assert_int_equal(c.attempts, 1);
    a = attempt_of(&c, "succeeded", "succeeded", 2, 200);
    a.endpoint_ok = true;
    assert_int_equal(notifier_store_record(f->db, &a, &effect), KEEL_OK);
    keel_testdb_assert_text(f->db, "succeeded|2|2|true",
                            "SELECT status || '|' || attempts || '|' || attempts_total || '|' || "
                            "(completed_at IS NOT NULL) FROM webhook_deliveries WHERE id = '%s'",
                            c.id);
    keel_testdb_assert_text(
        f->db, "t", "SELECT failing_since IS NULL FROM webhook_endpoints WHERE id = '%s'", ep);
    notifier_claim_clear(&c);
}

static void test_gone_disables_and_ends_the_rest(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    char ep[48], evt[48];
    notifier_claim c;
    notifier_attempt_effect effect;
    endpoint_with_events(f, 3, "payment.failed", ep, evt);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    notifier_attempt a = attempt_of(&c, "dead", "gone", 1, 410);
    a.error = "the endpoint answered HTTP 410";
    a.endpoint_gone = true;
    assert_int_equal(notifier_store_record(f->db, &a, &effect), KEEL_OK);
    assert_true(effect.endpoint_disabled);
    assert_int_equal(effect.deliveries_abandoned, 2);
    keel_testdb_assert_text(f->db, "disabled",
                            "SELECT status FROM webhook_endpoints WHERE id = '%s'", ep);
    keel_testdb_assert_text(f->db, "3",
                            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '%s' "
                            "AND status = 'dead'",
                            ep);
    notifier_claim_clear(&c);
}

static void test_failing_too_long_disables(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    char ep[48], evt[48];
    notifier_claim c;
    notifier_attempt_effect effect;
    endpoint_with_events(f, 1, "payment.failed", ep, evt);
    /* The run of failures started two hours ago; the limit is one hour. */
    keel_testdb_exec(f->db,
                     "UPDATE webhook_endpoints SET failing_since = now() - interval "
                     "'2 hours' WHERE id = '%s'",
                     ep);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    notifier_attempt a = attempt_of(&c, "pending", "retry", 1, 0);
    a.next_delay_ms = 1000;
    a.error = "connection refused";
    a.endpoint_failed = true;
    a.disable_after_ms = 3600000;
    assert_int_equal(notifier_store_record(f->db, &a, &effect), KEEL_OK);
    assert_true(effect.endpoint_disabled);
    assert_true(effect.failing_for_ms >= 7100000);
    keel_testdb_assert_text(f->db, "disabled",
                            "SELECT status FROM webhook_endpoints WHERE id = '%s'", ep);
    /* The delivery itself stays pending; its next claim sees the endpoint disabled. */
    keel_testdb_exec(f->db, "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = '%s'",
                     c.id);
    notifier_claim_clear(&c);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    assert_string_equal(c.endpoint_state, "disabled");
    notifier_claim_clear(&c);
}

static void test_rotation_overlap(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    static const char *const all[] = {"*"};
    char ep[48], evt[48];
    notifier_claim c;
    assert_int_equal(add_endpoint(f, all, 1, 16, ep, sizeof(ep)), KEEL_OK);
    assert_int_equal(notifier_store_endpoint_rotate(f->db, f->merchant, ep, "whsec_next", 3600),
                     KEEL_OK);
    assert_int_equal(notifier_store_endpoint_rotate(f->db, "mer_other", ep, "whsec_x", 3600),
                     KEEL_ERR_NOT_FOUND);
    json_t *view = NULL;
    assert_int_equal(notifier_store_endpoint_get(f->db, f->merchant, ep, &view), KEEL_OK);
    assert_true(json_integer_value(json_object_get(view, "previous_secret_expires")) >
                keel_clock_now_ms() / 1000 + 3500);
    json_decref(view);
    assert_int_equal(
        add_event(f, "payment.succeeded", keel_clock_now_ms() + 1000, evt, sizeof(evt)), 1);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    assert_string_equal(c.secret, "whsec_next");
    assert_string_equal(c.previous_secret, "whsec_current");
    notifier_claim_clear(&c);
    /* No overlap: the old secret stops at once. */
    assert_int_equal(notifier_store_endpoint_rotate(f->db, f->merchant, ep, "whsec_third", 0),
                     KEEL_OK);
    keel_testdb_exec(f->db,
                     "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL "
                     "WHERE event_id = '%s'",
                     evt);
    assert_int_equal(claim_one(f, "t/w1", &c), KEEL_OK);
    assert_string_equal(c.secret, "whsec_third");
    assert_string_equal(c.previous_secret, "");
    notifier_claim_clear(&c);
}

static void test_stats_and_prune(void **state)
{
    fixture *f = *state;
    keel_testdb_skip_without(f);
    char ep[48], evt[48];
    notifier_stats st;
    endpoint_with_events(f, 1, "payment.succeeded", ep, evt);
    keel_testdb_exec(f->db,
                     "UPDATE webhook_deliveries SET created_at = now() - interval "
                     "'10 minutes' WHERE event_id = '%s'",
                     evt);
    assert_int_equal(notifier_store_stats(f->db, &st), KEEL_OK);
    assert_true(st.pending >= 1);
    assert_true(st.oldest_pending_s >= 599.0);
    /* Finished long ago: pruned with its event and attempts. */
    keel_testdb_exec(f->db,
                     "UPDATE webhook_deliveries SET status = 'succeeded', completed_at = "
                     "now() - interval '40 days' WHERE event_id = '%s'",
                     evt);
    keel_testdb_exec(f->db,
                     "UPDATE webhook_events SET created_at = now() - interval '40 days' "
                     "WHERE id = '%s'",
                     evt);
    int64_t deleted = 0;
    const int64_t day = 24LL * 3600 * 1000;
    assert_int_equal(notifier_store_prune(f->db, NOTIFIER_INBOX_CONSUMER, 30 * day, 90 * day,
                                          14 * day, &deleted),
                     KEEL_OK);
    assert_true(deleted >= 1);
    keel_testdb_assert_text(f->db, "0", "SELECT count(*) FROM webhook_events WHERE id = '%s'", evt);
}

int main(void)
{
    keel_log_init("test_store_db", KEEL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoints_crud_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_reaches_matching_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims_never_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_retry_success_and_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_disables_and_ends_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_too_long_disables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_prune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
