/* Unit tests of provider_a.c: how every documented answer of provider A (and every way an answer
 * can go wrong) maps to succeeded / declined / not_processed / unknown, and the calls it makes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/http_client.h"
#include "keel/http_server.h"
#include "provider_a.h"
#include "request_validate.h"

/* ---- the pure mappings ------------------------------------------------------------------ */

static keel_http_result answer(long status, const char *body)
{
    keel_http_result r;
    memset(&r, 0, sizeof(r));
    r.failure = KEEL_HTTP_OK;
    r.status = status;
    r.body = (char *)body;
    r.body_len = body != NULL ? strlen(body) : 0;
    return r;
}

static keel_http_result failure(keel_http_failure f)
{
    keel_http_result r;
    memset(&r, 0, sizeof(r));
    r.failure = f;
    snprintf(r.error, sizeof(r.error), "simulated %d", (int)f);
    return r;
}

static payments_charge_status charge_status(const keel_http_result *r, payments_charge_outcome *o)
{
    payments_provider_a_map_charge(r, o);
    return o->status;
}

static void test_charge_200_succeeded(void **state)
{
    payments_charge_outcome o;
    keel_http_result r = answer(200, "{\"id\":\"ch_123\",\"object\":\"charge\",\"status\":"
                                     "\"succeeded\",\"amount\":1999,\"paid\":true}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "ch_123");
    assert_int_equal(o.http_status, 200);
}

static void test_charge_200_unreadable_is_unknown(void **state)
{
    const char *bodies[] = {
        NULL,                                                         /* empty */
        "",                                                           /* empty */
        "{\"id\":\"ch_1\",\"status\":\"succ",                         /* cut off */
        "<html>ok</html>",                                            /* not JSON */
        "[{\"id\":\"ch_1\",\"status\":\"succeeded\"}]",               /* not an object */
        "{\"status\":\"succeeded\"}",                                 /* no id */
        "{\"id\":\"\",\"status\":\"succeeded\"}",                     /* empty id */
        "{\"id\":\"ch_1\"}",                                          /* no status */
        "{\"id\":\"ch_1\",\"status\":\"pending\"}",                   /* not final */
        "{\"id\":\"ch_1\",\"status\":42}",                            /* wrong type */
        "{\"id\":\"ch_1\",\"status\":\"succeeded\",\"id\":\"ch_2\"}", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        payments_charge_outcome o;
        keel_http_result r = answer(200, bodies[i]);
        assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_UNKNOWN);
        assert_true(o.detail[0] != '\0');
    }
}

static void test_charge_200_failed_is_declined(void **state)
{
    payments_charge_outcome o;
    keel_http_result r = answer(200, "{\"id\":\"ch_9\",\"status\":\"failed\",\"failure_code\":"
                                     "\"insufficient_funds\",\"failure_message\":\"no money\"}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    assert_string_equal(o.failure_message, "no money");
    assert_string_equal(o.charge_id, "ch_9");
}

static void test_charge_402_declines(void **state)
{
    payments_charge_outcome o;
    /* The simulator's shape: code card_declined, the reason in decline_code. */
    keel_http_result r = answer(
        402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"decline_code\":"
             "\"generic_decline\",\"message\":\"Your card was declined.\",\"charge\":\"ch_d1\"}}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.failure_message, "Your card was declined.");
    assert_string_equal(o.charge_id, "ch_d1");

    r = answer(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
                    "\"decline_code\":\"insufficient_funds\",\"charge\":\"ch_d2\"}}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    assert_true(strstr(o.failure_message, "402") != NULL);

    r = answer(402, "{\"error\":{\"type\":\"card_error\",\"code\":\"insufficient_funds\"}}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    assert_string_equal(o.charge_id, "");

    /* The status code alone is a definite decline, even when the body is unreadable. */
    r = answer(402, "garbage");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "card_declined");
    r = answer(402, NULL);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
}

static void test_charge_400_is_final_invalid_request(void **state)
{
    payments_charge_outcome o;
    keel_http_result r =
        answer(400, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                    "\"amount_too_large\",\"message\":\"Amount must be at most 99999999\"}}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "invalid_request");
    assert_string_equal(o.failure_message, "Amount must be at most 99999999");
    r = answer(400, "");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "invalid_request");
}

static void test_charge_status_codes(void **state)
{
    static const struct {
        long status;
        payments_charge_status want;
    } cases[] = {
        {401, PAYMENTS_CHARGE_NOT_PROCESSED}, /* bad key: nothing happened */
        {403, PAYMENTS_CHARGE_NOT_PROCESSED},
        {429, PAYMENTS_CHARGE_NOT_PROCESSED}, /* rate limited before processing */
        {500, PAYMENTS_CHARGE_NOT_PROCESSED}, /* documented: answered before charging */
        {502, PAYMENTS_CHARGE_NOT_PROCESSED},
        {503, PAYMENTS_CHARGE_NOT_PROCESSED},
        {504, PAYMENTS_CHARGE_UNKNOWN}, /* a proxy gave up waiting: may have charged */
        {501, PAYMENTS_CHARGE_UNKNOWN},
        {599, PAYMENTS_CHARGE_UNKNOWN},
        {409, PAYMENTS_CHARGE_UNKNOWN}, /* a concurrent request under the key */
        {404, PAYMENTS_CHARGE_UNKNOWN},
        {302, PAYMENTS_CHARGE_UNKNOWN},
        {201, PAYMENTS_CHARGE_UNKNOWN},
        {204, PAYMENTS_CHARGE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        payments_charge_outcome o;
        keel_http_result r = answer(cases[i].status, "{\"error\":{\"code\":\"x\"}}");
        if (charge_status(&r, &o) != cases[i].want) {
            fail_msg("HTTP %ld mapped to %s, want %s", cases[i].status,
                     payments_charge_status_name(o.status),
                     payments_charge_status_name(cases[i].want));
        }
        assert_int_equal(o.http_status, cases[i].status);
    }
}

static void test_charge_transport_failures(void **state)
{
    payments_charge_outcome o;
    keel_http_result r = failure(KEEL_HTTP_NOT_SENT);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_NOT_PROCESSED);
    assert_non_null(strstr(o.detail, "simulated"));
    r = failure(KEEL_HTTP_TIMEOUT_AFTER_SEND);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_UNKNOWN);
    r = failure(KEEL_HTTP_TRANSPORT_ERROR);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_UNKNOWN);
    /* An oversized answer arrived from a provider that may have charged. */
    r = failure(KEEL_HTTP_TOO_LARGE);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_UNKNOWN);
    assert_int_equal(o.http_status, 0);
}

static void test_truncation_keeps_utf8(void **state)
{
    /* A provider message longer than our buffer, of 2-byte characters at an odd offset. */
    char body[2048];
    char message[1500] = "x";
    for (int i = 0; i < 600; i++) {
        strcat(message, "\xc3\xa9");
    }
    snprintf(body, sizeof(body), "{\"error\":{\"code\":\"card_declined\",\"message\":\"%s\"}}",
             message);
    payments_charge_outcome o;
    keel_http_result r = answer(402, body);
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_DECLINED);
    assert_true(strlen(o.failure_message) > 200);
    assert_true(payments_utf8_valid(o.failure_message));
    assert_true(payments_utf8_valid(o.detail));
}

static payments_lookup_status lookup(long status, const char *body, payments_charge_outcome *o)
{
    keel_http_result r = answer(status, body);
    return payments_provider_a_map_lookup(&r, o);
}

static void test_lookup_answers(void **state)
{
    payments_charge_outcome o;
    assert_int_equal(lookup(200, "{\"object\":\"list\",\"data\":[]}", &o),
                     PAYMENTS_LOOKUP_NOT_FOUND);

    assert_int_equal(lookup(200, "{\"data\":[{\"id\":\"ch_7\",\"status\":\"succeeded\"}]}", &o),
                     PAYMENTS_LOOKUP_FOUND);
    assert_int_equal(o.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "ch_7");

    assert_int_equal(lookup(200,
                            "{\"data\":[{\"id\":\"ch_8\",\"status\":\"failed\","
                            "\"failure_code\":\"card_declined\",\"failure_message\":\"no\"}]}",
                            &o),
                     PAYMENTS_LOOKUP_FOUND);
    assert_int_equal(o.status, PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.charge_id, "ch_8");

    /* Should a key ever list two charges, the one that moved money wins. */
    assert_int_equal(lookup(200,
                            "{\"data\":[{\"id\":\"ch_a\",\"status\":\"failed\"},"
                            "{\"id\":\"ch_b\",\"status\":\"succeeded\"}]}",
                            &o),
                     PAYMENTS_LOOKUP_FOUND);
    assert_int_equal(o.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "ch_b");

    /* Anything that does not say clearly is a failed lookup: we still do not know. */
    const char *unclear[] = {
        "{\"data\":[{\"id\":\"ch_p\",\"status\":\"pending\"}]}",
        "{\"data\":[{\"status\":\"succeeded\"}]}",
        "{\"data\":[42]}",
        "{\"data\":{}}",
        "{}",
        "not json",
        "",
    };
    for (size_t i = 0; i < sizeof(unclear) / sizeof(unclear[0]); i++) {
        assert_int_equal(lookup(200, unclear[i], &o), PAYMENTS_LOOKUP_FAILED);
    }
    long statuses[] = {400, 401, 404, 429, 500, 503, 504};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        assert_int_equal(lookup(statuses[i], "{\"data\":[]}", &o), PAYMENTS_LOOKUP_FAILED);
    }
    keel_http_failure failures[] = {KEEL_HTTP_NOT_SENT, KEEL_HTTP_TIMEOUT_AFTER_SEND,
                                    KEEL_HTTP_TRANSPORT_ERROR, KEEL_HTTP_TOO_LARGE};
    for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
        keel_http_result r = failure(failures[i]);
        assert_int_equal(payments_provider_a_map_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
    }
}

static void test_charge_400_idempotency_conflict_is_unknown(void **state)
{
    /* Our key already names a charge with other parameters: money may have moved. */
    payments_charge_outcome o;
    keel_http_result r = answer(
        400, "{\"error\":{\"type\":\"idempotency_error\",\"code\":\"idempotency_key_reused\"}}");
    assert_int_equal(charge_status(&r, &o), PAYMENTS_CHARGE_UNKNOWN);
}

static payments_charge_status refund_status(long status, const char *body,
                                            payments_charge_outcome *o)
{
    keel_http_result r = answer(status, body);
    payments_provider_a_map_refund(&r, o);
    return o->status;
}

static void test_refund_answers(void **state)
{
    payments_charge_outcome o;
    assert_int_equal(refund_status(200,
                                   "{\"id\":\"re_1\",\"object\":\"refund\",\"amount\":500,"
                                   "\"charge\":\"ch_1\",\"status\":\"succeeded\"}",
                                   &o),
                     PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "re_1");
    assert_int_equal(refund_status(200, "{\"id\":\"re_2\",\"status\":\"failed\"}", &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "refund_failed");
    assert_int_equal(refund_status(200, "{\"id\":\"re_3\",\"status\":\"canceled\"}", &o),
                     PAYMENTS_CHARGE_DECLINED);
    /* Pending, unreadable, empty: the money may still move. */
    const char *unclear[] = {"{\"id\":\"re_4\",\"status\":\"pending\"}",
                             "{\"status\":\"succeeded\"}",
                             "{\"id\":\"re_5\"}",
                             "not json",
                             "",
                             NULL,
                             "[{\"id\":\"re_6\",\"status\":\"succeeded\"}]"};
    for (size_t i = 0; i < sizeof(unclear) / sizeof(unclear[0]); i++) {
        assert_int_equal(refund_status(200, unclear[i], &o), PAYMENTS_CHARGE_UNKNOWN);
    }
    /* The documented refusals are final, with the provider's code. */
    const char *codes[] = {"amount_too_large", "charge_already_refunded", "charge_not_refundable",
                           "amount_too_small", "parameter_unknown"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"%s\","
                 "\"message\":\"no\"}}",
                 codes[i]);
        assert_int_equal(refund_status(400, body, &o), PAYMENTS_CHARGE_DECLINED);
        assert_string_equal(o.failure_code, codes[i]);
    }
    assert_int_equal(refund_status(400, "garbage", &o), PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "invalid_request");
    assert_int_equal(
        refund_status(400, "{\"error\":{\"type\":\"idempotency_error\",\"code\":\"x\"}}", &o),
        PAYMENTS_CHARGE_UNKNOWN);
    assert_int_equal(refund_status(404,
                                   "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                                   "\"resource_missing\",\"param\":\"charge\"}}",
                                   &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "charge_not_found");
    /* A bare 404 (a wrong URL?) says nothing about the refund. */
    assert_int_equal(refund_status(404, "<html>", &o), PAYMENTS_CHARGE_UNKNOWN);
    long np[] = {401, 403, 429, 500, 502, 503};
    for (size_t i = 0; i < sizeof(np) / sizeof(np[0]); i++) {
        assert_int_equal(refund_status(np[i], "{}", &o), PAYMENTS_CHARGE_NOT_PROCESSED);
    }
    assert_int_equal(refund_status(504, "{}", &o), PAYMENTS_CHARGE_UNKNOWN);
    keel_http_result r = failure(KEEL_HTTP_NOT_SENT);
    payments_provider_a_map_refund(&r, &o);
    assert_int_equal(o.status, PAYMENTS_CHARGE_NOT_PROCESSED);
    r = failure(KEEL_HTTP_TIMEOUT_AFTER_SEND);
    payments_provider_a_map_refund(&r, &o);
    assert_int_equal(o.status, PAYMENTS_CHARGE_UNKNOWN);
    r = failure(KEEL_HTTP_TOO_LARGE);
    payments_provider_a_map_refund(&r, &o);
    assert_int_equal(o.status, PAYMENTS_CHARGE_UNKNOWN);
}

static void test_refund_lookup_answers(void **state)
{
    payments_charge_outcome o;
    keel_http_result r = answer(200, "{\"object\":\"list\",\"data\":[]}");
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_NOT_FOUND);
    r = answer(200, "{\"data\":[{\"id\":\"re_9\",\"status\":\"succeeded\"}]}");
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_FOUND);
    assert_string_equal(o.charge_id, "re_9");
    r = answer(200, "{\"data\":[{\"id\":\"re_9\",\"status\":\"pending\"}]}");
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
    r = answer(200, "{\"data\":");
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
    r = answer(500, "{\"data\":[]}");
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
    r = failure(KEEL_HTTP_TOO_LARGE);
    assert_int_equal(payments_provider_a_map_refund_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
}

static void test_new_rejects_bad_options(void **state)
{
    char err[256];
    payments_provider_a_options o = {.base_url = "http://127.0.0.1:1",
                                     .api_key = "k",
                                     .timeout_ms = 1000,
                                     .connect_timeout_ms = 100};
    payments_provider *p = payments_provider_a_new(&o, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->name, "provider_a");
    payments_provider_free(p);

    o.api_key = "";
    assert_null(payments_provider_a_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "KEEL_PAYMENTS_PROVIDER_API_KEY"));
    o.api_key = "k";
    o.base_url = "";
    assert_null(payments_provider_a_new(&o, err, sizeof(err)));
    o.base_url = "http://x";
    o.connect_timeout_ms = 2000;
    assert_null(payments_provider_a_new(&o, err, sizeof(err)));
}

/* ---- the calls, against a local HTTP server ---------------------------------------------- */

typedef struct capture {
    pthread_mutex_t mu;
    char auth[128];
    char idem[128];
    char content_type[64];
    char query[128];
    json_t *body;
    unsigned reply_status;
    const char *reply;
} capture;

static void on_charge(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    capture *c = ctx;
    const char *h;
    pthread_mutex_lock(&c->mu);
    h = keel_http_request_header(req, "Authorization");
    snprintf(c->auth, sizeof(c->auth), "%s", h != NULL ? h : "");
    h = keel_http_request_header(req, "Idempotency-Key");
    snprintf(c->idem, sizeof(c->idem), "%s", h != NULL ? h : "");
    h = keel_http_request_header(req, "Content-Type");
    snprintf(c->content_type, sizeof(c->content_type), "%s", h != NULL ? h : "");
    size_t len = 0;
    const char *raw = keel_http_request_body(req, &len);
    json_decref(c->body);
    c->body = json_loadb(raw, len, 0, NULL);
    keel_http_respond_raw(resp, c->reply_status, "application/json", c->reply, strlen(c->reply));
    pthread_mutex_unlock(&c->mu);
}

static void on_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    capture *c = ctx;
    pthread_mutex_lock(&c->mu);
    const char *key = keel_http_request_query(req, "idempotency_key");
    snprintf(c->query, sizeof(c->query), "%s", key != NULL ? key : "");
    const char *h = keel_http_request_header(req, "Authorization");
    snprintf(c->auth, sizeof(c->auth), "%s", h != NULL ? h : "");
    keel_http_respond_raw(resp, 200, "application/json", c->reply, strlen(c->reply));
    pthread_mutex_unlock(&c->mu);
}

static void test_calls_over_http(void **state)
{
    capture c = {.reply_status = 200};
    pthread_mutex_init(&c.mu, NULL);
    keel_http_client_global_init();
    keel_http_server_options so = {.address = "127.0.0.1", .port = 0, .threads = 2};
    keel_http_server *srv = keel_http_server_new(&so);
    assert_non_null(srv);
    keel_http_server_route(srv, "POST", "/v1/charges", on_charge, &c);
    keel_http_server_route(srv, "GET", "/v1/charges", on_list, &c);
    keel_http_server_route(srv, "POST", "/v1/refunds", on_charge, &c);
    char err[256];
    assert_int_equal(keel_http_server_start(srv, err, sizeof(err)), 0);

    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u/", keel_http_server_port(srv));
    payments_provider_a_options o = {
        .base_url = base, .api_key = "sk_test_1", .timeout_ms = 3000, .connect_timeout_ms = 500};
    payments_provider *p = payments_provider_a_new(&o, err, sizeof(err));
    assert_non_null(p);

    c.reply = "{\"id\":\"ch_http\",\"status\":\"succeeded\"}";
    payments_charge_request req = {
        .payment_id = "pay_0193ab45cd67ef0123456789abcdef01",
        .merchant_id = "mer_1",
        .amount = 1999,
        .currency = "usd",
        .payment_method = "pm_card_visa",
        .description = "order 42",
        .metadata_json = "{\"order\":\"42\"}",
    };
    payments_charge_outcome out;
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(out.charge_id, "ch_http");
    assert_string_equal(c.auth, "Bearer sk_test_1");
    assert_string_equal(c.idem, req.payment_id);
    assert_string_equal(c.content_type, "application/json");
    assert_non_null(c.body);
    assert_int_equal(json_integer_value(json_object_get(c.body, "amount")), 1999);
    assert_string_equal(json_string_value(json_object_get(c.body, "currency")), "usd");
    assert_string_equal(json_string_value(json_object_get(c.body, "source")), "pm_card_visa");
    assert_string_equal(json_string_value(json_object_get(c.body, "description")), "order 42");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c.body, "metadata"), "order")), "42");

    /* A 503 from the provider: not processed. */
    c.reply_status = 503;
    c.reply = "{\"error\":{\"type\":\"api_error\"}}";
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_NOT_PROCESSED);

    c.reply = "{\"data\":[]}";
    assert_int_equal(p->lookup(p, req.payment_id, NULL, &out), PAYMENTS_LOOKUP_NOT_FOUND);
    assert_string_equal(c.query, req.payment_id);
    assert_string_equal(c.auth, "Bearer sk_test_1");

    /* A refund: the refund id is the key, the charge and amount go in the body. */
    c.reply_status = 200;
    c.reply = "{\"id\":\"re_http\",\"status\":\"succeeded\"}";
    payments_refund_request rr = {.refund_id = "re_0193ab45cd67ef0123456789abcdef01",
                                  .payment_id = req.payment_id,
                                  .charge_id = "ch_http",
                                  .amount = 500,
                                  .currency = "usd"};
    p->refund(p, &rr, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(out.charge_id, "re_http");
    assert_string_equal(c.idem, rr.refund_id);
    assert_string_equal(json_string_value(json_object_get(c.body, "charge")), "ch_http");
    assert_int_equal(json_integer_value(json_object_get(c.body, "amount")), 500);
    /* Without a charge id nothing is sent: a final refusal. */
    rr.charge_id = "";
    p->refund(p, &rr, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_DECLINED);

    keel_http_server_free(srv);
    srv = NULL;
    /* Nobody listens any more: the request was never sent. */
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_NOT_PROCESSED);
    assert_int_equal(p->lookup(p, req.payment_id, NULL, &out), PAYMENTS_LOOKUP_FAILED);

    payments_provider_free(p);
    json_decref(c.body);
    pthread_mutex_destroy(&c.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_200_succeeded),
        cmocka_unit_test(test_charge_200_unreadable_is_unknown),
        cmocka_unit_test(test_charge_200_failed_is_declined),
        cmocka_unit_test(test_charge_402_declines),
        cmocka_unit_test(test_charge_400_is_final_invalid_request),
        cmocka_unit_test(test_charge_status_codes),
        cmocka_unit_test(test_charge_transport_failures),
        cmocka_unit_test(test_truncation_keeps_utf8),
        cmocka_unit_test(test_lookup_answers),
        cmocka_unit_test(test_charge_400_idempotency_conflict_is_unknown),
        cmocka_unit_test(test_refund_answers),
        cmocka_unit_test(test_refund_lookup_answers),
        cmocka_unit_test(test_new_rejects_bad_options),
        cmocka_unit_test(test_calls_over_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
