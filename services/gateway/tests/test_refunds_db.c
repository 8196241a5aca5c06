/* Tests of refunds against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped when unset):
 * the refundable amount under a row lock, recorded refusals, idempotent retries, merchant
 * scoping, the RefundRequested outbox row, outcome events, and refunds shown on payments. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_create.h"
#include "payment_events.h"
#include "payment_store.h"
#include "refund_create.h"
#include "refund_store.h"

/* A payment of amount usd for merchant, already succeeded; returns its id (malloc'd). */
static char *succeeded_payment(db_fixture *f, const char *merchant, int64_t amount)
{
    char body[128];
    char key[48];
    gateway_payment_input in;
    gateway_validation_error verr;
    gateway_idem_result res = {0};
    gateway_create_request req;
    json_t *doc;
    char *id;

    snprintf(body, sizeof(body), "{\"amount\":%lld,\"currency\":\"usd\"}", (long long)amount);
    doc = json_loads(body, 0, NULL);
    assert_true(gateway_payment_validate(doc, &in, &verr));
    keel_id_new("idem_", key, sizeof(key));
    req = (gateway_create_request){
        .merchant_id = merchant, .idempotency_key = key, .params = doc, .input = &in};
    assert_int_equal(gateway_payment_create(f->db, NULL, &req, &res), KEEL_OK);
    id = json_member(res.body, "id");
    keel_testdb_exec(
        f->db, "UPDATE payments SET status = 'succeeded', provider = 'provider_a' WHERE id = '%s'",
        id);
    gateway_idem_result_clear(&res);
    json_decref(doc);
    return id;
}

/* POSTs a refund body for payment under key; returns the status and fills out. */
static int refund(keel_db *db, const char *merchant, const char *payment_id, const char *key,
                  const char *body, gateway_idem_result *out)
{
    gateway_refund_input in;
    gateway_validation_error verr;
    gateway_refund_request req;
    char path[96];
    json_t *doc = json_loads(body, 0, NULL);

    assert_non_null(doc);
    assert_true(gateway_refund_validate(doc, &in, &verr));
    snprintf(path, sizeof(path), "/v1/payments/%s/refunds", payment_id);
    req = (gateway_refund_request){.merchant_id = merchant,
                                   .payment_id = payment_id,
                                   .idempotency_key = key,
                                   .path = path,
                                   .params = doc,
                                   .input = &in};
    gateway_idem_result_clear(out);
    assert_int_equal(gateway_refund_create(db, NULL, &req, out), KEEL_OK);
    json_decref(doc);
    return out->status;
}

static void expect_error(const gateway_idem_result *r, int status, const char *code,
                         const char *param)
{
    char needle[128];
    assert_int_equal(r->status, status);
    snprintf(needle, sizeof(needle), "\"code\":\"%s\"", code);
    assert_non_null(strstr(r->body, needle));
    snprintf(needle, sizeof(needle), "\"param\":\"%s\"", param);
    assert_non_null(strstr(r->body, needle));
}

static void test_partial_full_and_over_refund(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result r = {0};
    char *pay;
    char *re1;
    char *body = NULL;

    keel_testdb_skip_without(f);
    pay = succeeded_payment(f, f->merchant, 1000);

    assert_int_equal(refund(f->db, f->merchant, pay, "k1", "{\"amount\":300,\"reason\":\"r\"}", &r),
                     202);
    assert_int_equal(r.outcome, GATEWAY_IDEM_EXECUTED);
    re1 = json_member(r.body, "id");
    assert_true(strncmp(re1, "re_", 3) == 0);
    assert_non_null(strstr(r.body, "\"status\":\"pending\""));
    assert_non_null(strstr(r.body, "\"amount\":300"));

    /* The same key again: the recorded refund, no second one. */
    assert_int_equal(refund(f->db, f->merchant, pay, "k1", "{\"amount\":300,\"reason\":\"r\"}", &r),
                     202);
    assert_int_equal(r.outcome, GATEWAY_IDEM_REPLAYED);
    /* Pending refunds count against what remains: 700 left, 701 is too much. */
    assert_int_equal(refund(f->db, f->merchant, pay, "k2", "{\"amount\":701}", &r), 400);
    expect_error(&r, 400, "amount_exceeds_refundable", "amount");
    assert_non_null(strstr(r.body, "700 usd"));
    /* That refusal is recorded under its key, like any answer of a started request. */
    assert_int_equal(refund(f->db, f->merchant, pay, "k2", "{\"amount\":701}", &r), 400);
    assert_int_equal(r.outcome, GATEWAY_IDEM_REPLAYED);
    /* No amount: the rest. */
    assert_int_equal(refund(f->db, f->merchant, pay, "k3", "{}", &r), 202);
    assert_non_null(strstr(r.body, "\"amount\":700"));
    assert_int_equal(refund(f->db, f->merchant, pay, "k4", "{\"amount\":1}", &r), 400);
    expect_error(&r, 400, "amount_exceeds_refundable", "amount");
    assert_int_equal(refund(f->db, f->merchant, pay, "k5", "{}", &r), 400);
    expect_error(&r, 400, "amount_exceeds_refundable", "amount");

    keel_testdb_assert_text(
        f->db, "2 1000",
        "SELECT count(*) || ' ' || sum(amount) FROM refunds WHERE payment_id = '%s'", pay);
    keel_testdb_assert_text(
        f->db, "2 keel.payment-requests.v1 keel.v1.RefundRequested",
        "SELECT count(*) || ' ' || min(topic) || ' ' || min(ce_type) FROM outbox "
        "WHERE message_key = '%s' AND ce_type = 'keel.v1.RefundRequested'",
        pay);

    /* A failed refund gives its amount back. */
    keel_testdb_exec(f->db, "UPDATE refunds SET status = 'failed' WHERE id = '%s'", re1);
    assert_int_equal(refund(f->db, f->merchant, pay, "k6", "{\"amount\":300}", &r), 202);

    /* GET shows the refunds, newest first, and only succeeded ones in amount_refunded. */
    keel_testdb_exec(
        f->db, "UPDATE refunds SET status = 'succeeded' WHERE payment_id = '%s' AND amount = 700",
        pay);
    assert_int_equal(gateway_payment_store_get(f->db, f->merchant, pay, &body), KEEL_OK);
    {
        json_t *j = json_loads(body, 0, NULL);
        json_t *refunds = json_object_get(j, "refunds");
        assert_int_equal(json_integer_value(json_object_get(j, "amount_refunded")), 700);
        assert_int_equal(json_array_size(refunds), 3);
        assert_string_equal(json_string_value(json_object_get(json_array_get(refunds, 2), "id")),
                            re1);
        json_decref(j);
    }
    free(body);
    gateway_idem_result_clear(&r);
    free(re1);
    free(pay);
}

static void test_refund_payload_and_refusals(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result r = {0};
    char *pay;
    char *pending_pay;
    char *hex;

    keel_testdb_skip_without(f);
    pay = succeeded_payment(f, f->merchant, 5000);
    /* Another merchant's payment is as missing as one that does not exist. */
    assert_int_equal(refund(f->db, f->other_merchant, pay, "x1", "{}", &r), 404);
    expect_error(&r, 404, "resource_missing", "id");
    assert_int_equal(
        refund(f->db, f->merchant, "pay_0193aaaabbbbccccddddeeeeffff0000", "x2", "{}", &r), 404);
    /* Only a succeeded payment can be refunded. */
    pending_pay = succeeded_payment(f, f->merchant, 100);
    keel_testdb_exec(f->db, "UPDATE payments SET status = 'pending' WHERE id = '%s'", pending_pay);
    assert_int_equal(refund(f->db, f->merchant, pending_pay, "x3", "{}", &r), 400);
    expect_error(&r, 400, "payment_not_refundable", "id");
    /* The key is bound to its endpoint: the same key on another payment is a reuse. */
    assert_int_equal(refund(f->db, f->merchant, pay, "x3", "{}", &r), 0);
    assert_int_equal(r.outcome, GATEWAY_IDEM_MISMATCH);
    assert_non_null(strstr(r.mismatch, "another endpoint"));

    assert_int_equal(
        refund(f->db, f->merchant, pay, "x4", "{\"amount\":1234,\"reason\":\"dup\"}", &r), 202);
    hex = keel_testdb_text(f->db,
                           "SELECT encode(payload, 'hex') FROM outbox WHERE message_key = '%s' "
                           "AND ce_type = 'keel.v1.RefundRequested'",
                           pay);
    {
        size_t n = strlen(hex) / 2;
        uint8_t *bytes = malloc(n + 1);
        Keel__V1__RefundRequested *m;
        char *rid = json_member(r.body, "id");
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            bytes[i] = (uint8_t)v;
        }
        m = keel__v1__refund_requested__unpack(NULL, n, bytes);
        assert_non_null(m);
        assert_string_equal(m->refund_id, rid);
        assert_string_equal(m->payment_id, pay);
        assert_string_equal(m->merchant_id, f->merchant);
        assert_int_equal(m->amount, 1234);
        assert_string_equal(m->currency, "usd");
        assert_string_equal(m->reason, "dup");
        assert_int_equal(strlen(m->created_at), 24);
        keel__v1__refund_requested__free_unpacked(m, NULL);
        free(bytes);
        free(rid);
    }
    free(hex);
    gateway_idem_result_clear(&r);
    free(pay);
    free(pending_pay);
}

typedef struct racer {
    const char *url;
    const char *merchant;
    const char *payment_id;
    char key[48];
    gateway_idem_result result;
} racer;

static void *racer_main(void *arg)
{
    racer *t = arg;
    keel_db *db = fixture_connect(t->url);
    refund(db, t->merchant, t->payment_id, t->key, "{\"amount\":400}", &t->result);
    keel_db_free(db);
    return NULL;
}

/* Eight concurrent refunds of 400 from 1000 under different keys: the row lock lets exactly
 * two through; the rest see what the first two left. */
static void test_concurrent_refunds_never_exceed(void **state)
{
    db_fixture *f = *state;
    racer r[8];
    pthread_t th[8];
    int accepted = 0;
    char *pay;

    keel_testdb_skip_without(f);
    pay = succeeded_payment(f, f->merchant, 1000);
    for (int i = 0; i < 8; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].url = f->t->url;
        r[i].merchant = f->merchant;
        r[i].payment_id = pay;
        keel_id_new("race_", r[i].key, sizeof(r[i].key));
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        if (r[i].result.status == 202) {
            accepted++;
        } else {
            expect_error(&r[i].result, 400, "amount_exceeds_refundable", "amount");
        }
        gateway_idem_result_clear(&r[i].result);
    }
    assert_int_equal(accepted, 2);
    keel_testdb_assert_text(f->db, "800", "SELECT sum(amount) FROM refunds WHERE payment_id = '%s'",
                            pay);
    free(pay);
}

static void test_refund_events_and_list(void **state)
{
    db_fixture *f = *state;
    gateway_idem_result r = {0};
    gateway_refund_outcome o;
    gateway_list_params lp;
    gateway_error err;
    const char *bad = NULL;
    bool applied;
    char *pay;
    char *ids[3];
    char *body = NULL;

    keel_testdb_skip_without(f);
    pay = succeeded_payment(f, f->merchant, 900);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "ev%d", i);
        assert_int_equal(refund(f->db, f->merchant, pay, key, "{\"amount\":100}", &r), 202);
        ids[i] = json_member(r.body, "id");
    }
    o = (gateway_refund_outcome){.refund_id = ids[0],
                                 .payment_id = pay,
                                 .merchant_id = f->other_merchant,
                                 .amount = 100,
                                 .currency = "usd",
                                 .status = "succeeded",
                                 .provider = "provider_a",
                                 .provider_refund_id = "rf_1",
                                 .failure_code = "",
                                 .failure_message = ""};
    assert_int_equal(gateway_refund_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_false(applied); /* another merchant's event */
    o.merchant_id = f->merchant;
    assert_int_equal(gateway_refund_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_true(applied);
    o.status = "failed";
    assert_int_equal(gateway_refund_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_false(applied); /* final stays final */
    o.refund_id = ids[1];
    o.failure_code = "refund_declined";
    assert_int_equal(gateway_refund_store_apply_outcome(f->db, &o, &applied), KEEL_OK);
    assert_true(applied);
    keel_testdb_assert_text(
        f->db, "succeeded:-,failed:refund_declined,pending:-",
        "SELECT string_agg(status || ':' || coalesce(failure_code, '-'), ',' ORDER BY "
        "created_at, id) FROM refunds WHERE payment_id = '%s'",
        pay);

    /* The list pages newest first; limit 2 then starting_after the second. */
    assert_true(gateway_list_params_parse(GATEWAY_LIST_REFUNDS, (const char *[]){"limit"},
                                          (const char *[]){"2"}, 1, &lp, &err));
    assert_int_equal(gateway_refund_store_list(f->db, f->merchant, pay, &lp, &body, &bad), KEEL_OK);
    {
        json_t *j = json_loads(body, 0, NULL);
        json_t *data = json_object_get(j, "data");
        assert_true(json_is_true(json_object_get(j, "has_more")));
        assert_int_equal(json_array_size(data), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "id")),
                            ids[2]);
        assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")),
                            ids[1]);
        json_decref(j);
    }
    free(body);
    body = NULL;
    snprintf(lp.starting_after, sizeof(lp.starting_after), "%s", ids[1]);
    assert_int_equal(gateway_refund_store_list(f->db, f->merchant, pay, &lp, &body, &bad), KEEL_OK);
    assert_non_null(strstr(body, ids[0]));
    assert_non_null(strstr(body, "\"has_more\":false"));
    free(body);
    body = NULL;
    /* Another merchant cannot list them; a foreign cursor is missing too. */
    assert_int_equal(gateway_refund_store_list(f->db, f->other_merchant, pay, &lp, &body, &bad),
                     KEEL_ERR_NOT_FOUND);
    assert_string_equal(bad, "id");
    snprintf(lp.starting_after, sizeof(lp.starting_after), "re_0193aaaabbbbccccddddeeeeffff0000");
    assert_int_equal(gateway_refund_store_list(f->db, f->merchant, pay, &lp, &body, &bad),
                     KEEL_ERR_NOT_FOUND);
    assert_string_equal(bad, "starting_after");
    for (int i = 0; i < 3; i++) {
        free(ids[i]);
    }
    gateway_idem_result_clear(&r);
    free(pay);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_full_and_over_refund),
        cmocka_unit_test(test_refund_payload_and_refusals),
        cmocka_unit_test(test_concurrent_refunds_never_exceed),
        cmocka_unit_test(test_refund_events_and_list),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
