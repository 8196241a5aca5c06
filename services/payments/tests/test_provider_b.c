/* Unit tests of provider_b.c: how every documented answer of provider B (Paystack-shaped), and
 * every way an answer can go wrong (malformed, empty, oversized), maps to succeeded / declined /
 * not_processed / unknown, for charges, verifies, refunds and refund lookups; and the calls it
 * makes, against a local HTTP server. */
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
#include "provider_b.h"

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

static payments_charge_status charge(long status, const char *body, payments_charge_outcome *o)
{
    keel_http_result r = answer(status, body);
    payments_provider_b_map_charge(&r, o);
    return o->status;
}

#define TX_OK                                                                                      \
    "{\"status\":true,\"message\":\"Charge attempted\",\"data\":{\"id\":4099260516,"               \
    "\"reference\":\"pay_1\",\"amount\":5000,\"currency\":\"NGN\",\"status\":\"success\","         \
    "\"gateway_response\":\"Approved\"}}"

static void test_charge_success_and_declines(void **state)
{
    payments_charge_outcome o;
    assert_int_equal(charge(200, TX_OK, &o), PAYMENTS_CHARGE_SUCCEEDED);
    /* Integer ids become their decimal text. */
    assert_string_equal(o.charge_id, "4099260516");
    assert_int_equal(o.http_status, 200);

    /* Paystack answers 200 for a declined card too; the transaction's status decides. */
    assert_int_equal(charge(200,
                            "{\"status\":true,\"message\":\"Charge attempted\",\"data\":{\"id\":7,"
                            "\"status\":\"failed\",\"gateway_response\":\"Declined\"}}",
                            &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "card_declined");
    assert_string_equal(o.failure_message, "Declined");
    assert_string_equal(o.charge_id, "7");
    assert_int_equal(charge(200,
                            "{\"status\":true,\"data\":{\"id\":8,\"status\":\"failed\","
                            "\"gateway_response\":\"Insufficient Funds\"}}",
                            &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "insufficient_funds");
    /* An id sent as a string is taken as it is. */
    assert_int_equal(
        charge(200, "{\"status\":true,\"data\":{\"id\":\"9\",\"status\":\"success\"}}", &o),
        PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "9");
}

static void test_charge_unclear_200_is_unknown(void **state)
{
    const char *bodies[] = {
        NULL,
        "",
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"succ",        /* cut off */
        "<html>ok</html>",                                              /* not JSON */
        "[1,2]",                                                        /* not an object */
        "{\"status\":true}",                                            /* no data */
        "{\"status\":false,\"message\":\"odd\"}",                       /* a 200 that says no */
        "{\"status\":true,\"data\":{\"status\":\"success\"}}",          /* no id */
        "{\"status\":true,\"data\":{\"id\":0,\"status\":\"success\"}}", /* not an id */
        "{\"status\":true,\"data\":{\"id\":1}}",                        /* no status */
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"pending\"}}",
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"ongoing\"}}",
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"abandoned\"}}",
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"reversed\"}}",
        "{\"status\":true,\"data\":{\"id\":1,\"status\":\"success\",\"id\":2}}", /* dup key */
        "{\"status\":\"true\",\"data\":{\"id\":1,\"status\":\"success\"}}",      /* wrong type */
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        payments_charge_outcome o;
        if (charge(200, bodies[i], &o) != PAYMENTS_CHARGE_UNKNOWN) {
            fail_msg("body %zu mapped to %s", i, payments_charge_status_name(o.status));
        }
        assert_true(o.detail[0] != '\0');
    }
}

static void test_charge_errors(void **state)
{
    payments_charge_outcome o;
    /* Validation before charging: final. */
    assert_int_equal(charge(400,
                            "{\"status\":false,\"message\":\"Invalid amount\",\"code\":"
                            "\"invalid_params\"}",
                            &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "invalid_request");
    assert_string_equal(o.failure_message, "Invalid amount");
    assert_int_equal(charge(400, "", &o), PAYMENTS_CHARGE_DECLINED);
    /* Our reference names a transaction with other parameters: only a verify can tell. */
    assert_int_equal(charge(400,
                            "{\"status\":false,\"message\":\"Duplicate Transaction Reference\","
                            "\"code\":\"duplicate_reference\"}",
                            &o),
                     PAYMENTS_CHARGE_UNKNOWN);
    static const struct {
        long status;
        payments_charge_status want;
    } cases[] = {
        {401, PAYMENTS_CHARGE_NOT_PROCESSED}, {403, PAYMENTS_CHARGE_NOT_PROCESSED},
        {429, PAYMENTS_CHARGE_NOT_PROCESSED}, {500, PAYMENTS_CHARGE_NOT_PROCESSED},
        {502, PAYMENTS_CHARGE_NOT_PROCESSED}, {503, PAYMENTS_CHARGE_NOT_PROCESSED},
        {504, PAYMENTS_CHARGE_UNKNOWN},       {404, PAYMENTS_CHARGE_UNKNOWN},
        {409, PAYMENTS_CHARGE_UNKNOWN},       {201, PAYMENTS_CHARGE_UNKNOWN},
        {302, PAYMENTS_CHARGE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (charge(cases[i].status,
                   "{\"status\":false,\"message\":\"simulated\",\"code\":\"simulated_error\"}",
                   &o) != cases[i].want) {
            fail_msg("HTTP %ld mapped to %s", cases[i].status,
                     payments_charge_status_name(o.status));
        }
    }
    keel_http_result r = failure(KEEL_HTTP_NOT_SENT);
    payments_provider_b_map_charge(&r, &o);
    assert_int_equal(o.status, PAYMENTS_CHARGE_NOT_PROCESSED);
    keel_http_failure ambiguous[] = {KEEL_HTTP_TIMEOUT_AFTER_SEND, KEEL_HTTP_TRANSPORT_ERROR,
                                     KEEL_HTTP_TOO_LARGE};
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        r = failure(ambiguous[i]);
        payments_provider_b_map_charge(&r, &o);
        assert_int_equal(o.status, PAYMENTS_CHARGE_UNKNOWN);
    }
}

static void test_verify(void **state)
{
    payments_charge_outcome o;
    keel_http_result r = answer(200, "{\"status\":true,\"message\":\"Verification successful\","
                                     "\"data\":{\"id\":55,\"status\":\"success\"}}");
    assert_int_equal(payments_provider_b_map_lookup(&r, &o), PAYMENTS_LOOKUP_FOUND);
    assert_int_equal(o.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "55");
    r = answer(200, "{\"status\":true,\"data\":{\"id\":56,\"status\":\"failed\","
                    "\"gateway_response\":\"Declined\"}}");
    assert_int_equal(payments_provider_b_map_lookup(&r, &o), PAYMENTS_LOOKUP_FOUND);
    assert_int_equal(o.status, PAYMENTS_CHARGE_DECLINED);
    r = answer(404, "{\"status\":false,\"message\":\"Transaction reference not found\","
                    "\"code\":\"transaction_not_found\"}");
    assert_int_equal(payments_provider_b_map_lookup(&r, &o), PAYMENTS_LOOKUP_NOT_FOUND);
    /* Only provider B's own "not found" counts; anything unclear is a failed lookup. */
    const struct {
        long status;
        const char *body;
    } unclear[] = {
        {404, "<html>not found</html>"},
        {404, ""},
        {200, "{\"status\":true,\"data\":{\"id\":57,\"status\":\"pending\"}}"},
        {200, "{\"status\":true,\"data\":"},
        {200, ""},
        {500, "{\"status\":false,\"code\":\"simulated_error\"}"},
        {401, "{}"},
    };
    for (size_t i = 0; i < sizeof(unclear) / sizeof(unclear[0]); i++) {
        r = answer(unclear[i].status, unclear[i].body);
        assert_int_equal(payments_provider_b_map_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
    }
    r = failure(KEEL_HTTP_TOO_LARGE);
    assert_int_equal(payments_provider_b_map_lookup(&r, &o), PAYMENTS_LOOKUP_FAILED);
}

static payments_charge_status refund(long status, const char *body, payments_charge_outcome *o)
{
    keel_http_result r = answer(status, body);
    payments_provider_b_map_refund(&r, o);
    return o->status;
}

static void test_refund_answers(void **state)
{
    payments_charge_outcome o;
    assert_int_equal(refund(200,
                            "{\"status\":true,\"message\":\"Refund processed\",\"data\":{\"id\":"
                            "301,\"status\":\"processed\",\"amount\":500}}",
                            &o),
                     PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(o.charge_id, "301");
    assert_int_equal(
        refund(200, "{\"status\":true,\"data\":{\"id\":302,\"status\":\"failed\"}}", &o),
        PAYMENTS_CHARGE_DECLINED);
    const char *unclear[] = {
        "{\"status\":true,\"data\":{\"id\":303,\"status\":\"pending\"}}",
        "{\"status\":true,\"data\":{\"id\":303,\"status\":\"needs-attention\"}}",
        "{\"status\":true}",
        "garbage",
        "",
    };
    for (size_t i = 0; i < sizeof(unclear) / sizeof(unclear[0]); i++) {
        assert_int_equal(refund(200, unclear[i], &o), PAYMENTS_CHARGE_UNKNOWN);
    }
    const char *codes[] = {"amount_too_large", "transaction_reversed", "transaction_not_refundable",
                           "invalid_params"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char body[160];
        snprintf(body, sizeof(body), "{\"status\":false,\"message\":\"no\",\"code\":\"%s\"}",
                 codes[i]);
        assert_int_equal(refund(400, body, &o), PAYMENTS_CHARGE_DECLINED);
        assert_string_equal(o.failure_code, codes[i]);
    }
    assert_int_equal(
        refund(400, "{\"status\":false,\"message\":\"x\",\"code\":\"idempotency_key_reused\"}", &o),
        PAYMENTS_CHARGE_UNKNOWN);
    assert_int_equal(refund(404,
                            "{\"status\":false,\"message\":\"Transaction not found\",\"code\":"
                            "\"transaction_not_found\"}",
                            &o),
                     PAYMENTS_CHARGE_DECLINED);
    assert_string_equal(o.failure_code, "charge_not_found");
    assert_int_equal(refund(404, "", &o), PAYMENTS_CHARGE_UNKNOWN);
    assert_int_equal(refund(503, "{}", &o), PAYMENTS_CHARGE_NOT_PROCESSED);
    assert_int_equal(refund(504, "{}", &o), PAYMENTS_CHARGE_UNKNOWN);
    keel_http_result r = failure(KEEL_HTTP_TIMEOUT_AFTER_SEND);
    payments_provider_b_map_refund(&r, &o);
    assert_int_equal(o.status, PAYMENTS_CHARGE_UNKNOWN);
}

static void test_refund_lookup(void **state)
{
    payments_charge_outcome o;
    const char *key = "re_0193ab45cd67ef0123456789abcdef01";
    /* The transaction's refunds: ours is the one under our key. */
    keel_http_result r =
        answer(200, "{\"status\":true,\"message\":\"Refunds retrieved\",\"data\":["
                    "{\"id\":1,\"status\":\"processed\",\"idempotency_key\":\"re_other\"},"
                    "{\"id\":2,\"status\":\"processed\",\"idempotency_key\":"
                    "\"re_0193ab45cd67ef0123456789abcdef01\"},"
                    "{\"id\":3,\"status\":\"processed\",\"idempotency_key\":null}]}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_FOUND);
    assert_string_equal(o.charge_id, "2");
    r = answer(200, "{\"status\":true,\"data\":[{\"id\":1,\"status\":\"processed\","
                    "\"idempotency_key\":\"re_other\"}]}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_NOT_FOUND);
    r = answer(200, "{\"status\":true,\"data\":[]}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_NOT_FOUND);
    r = answer(404, "{\"status\":false,\"code\":\"transaction_not_found\"}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_NOT_FOUND);
    r = answer(200, "{\"status\":true,\"data\":[{\"id\":2,\"status\":\"pending\","
                    "\"idempotency_key\":\"re_0193ab45cd67ef0123456789abcdef01\"}]}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_FAILED);
    const char *bad[] = {"{\"status\":true,\"data\":{}}", "nope", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = answer(200, bad[i]);
        assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o),
                         PAYMENTS_LOOKUP_FAILED);
    }
    r = answer(500, "{}");
    assert_int_equal(payments_provider_b_map_refund_lookup(&r, key, &o), PAYMENTS_LOOKUP_FAILED);
}

static void test_new_rejects_bad_options(void **state)
{
    char err[256];
    payments_provider_b_options o = {.base_url = "http://127.0.0.1:1",
                                     .api_key = "k",
                                     .timeout_ms = 1000,
                                     .connect_timeout_ms = 100};
    payments_provider *p = payments_provider_b_new(&o, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->name, "provider_b");
    payments_provider_free(p);
    o.api_key = NULL;
    assert_null(payments_provider_b_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "KEEL_PAYMENTS_PROVIDER_B_API_KEY"));
    o.api_key = "k";
    o.base_url = "ftp://x";
    assert_null(payments_provider_b_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "KEEL_PAYMENTS_PROVIDER_B_URL"));
}

/* ---- the calls, against a local HTTP server ---------------------------------------------- */

typedef struct capture {
    pthread_mutex_t mu;
    char auth[128];
    char idem[128];
    char path[256];
    json_t *body;
    unsigned reply_status;
    const char *reply;
} capture;

static void on_request(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    capture *c = ctx;
    const char *h;
    pthread_mutex_lock(&c->mu);
    h = keel_http_request_header(req, "Authorization");
    snprintf(c->auth, sizeof(c->auth), "%s", h != NULL ? h : "");
    h = keel_http_request_header(req, "Idempotency-Key");
    snprintf(c->idem, sizeof(c->idem), "%s", h != NULL ? h : "");
    const char *ref = keel_http_request_param(req, "reference");
    const char *tx = keel_http_request_query(req, "transaction");
    snprintf(c->path, sizeof(c->path), "%s", ref != NULL ? ref : tx != NULL ? tx : "");
    size_t len = 0;
    const char *raw = keel_http_request_body(req, &len);
    json_decref(c->body);
    c->body = len > 0 ? json_loadb(raw, len, 0, NULL) : NULL;
    keel_http_respond_raw(resp, c->reply_status, "application/json", c->reply, strlen(c->reply));
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
    keel_http_server_route(srv, "POST", "/transaction/charge", on_request, &c);
    keel_http_server_route(srv, "GET", "/transaction/verify/:reference", on_request, &c);
    keel_http_server_route(srv, "POST", "/refund", on_request, &c);
    keel_http_server_route(srv, "GET", "/refund", on_request, &c);
    char err[256];
    assert_int_equal(keel_http_server_start(srv, err, sizeof(err)), 0);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", keel_http_server_port(srv));
    payments_provider_b_options o = {
        .base_url = base, .api_key = "sk_b", .timeout_ms = 3000, .connect_timeout_ms = 500};
    payments_provider *p = payments_provider_b_new(&o, err, sizeof(err));
    assert_non_null(p);

    payments_charge_request req = {
        .payment_id = "pay_0193ab45cd67ef0123456789abcdef01",
        .merchant_id = "mer_1",
        .amount = 5000,
        .currency = "ngn",
        .payment_method = "pm_card_visa",
        .description = "order 7",
        .metadata_json = "{\"order\":\"7\"}",
    };
    payments_charge_outcome out;
    c.reply = TX_OK;
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(c.auth, "Bearer sk_b");
    /* The reference is the idempotency key; currency goes upper case; an e-mail is derived. */
    assert_string_equal(json_string_value(json_object_get(c.body, "reference")), req.payment_id);
    assert_string_equal(json_string_value(json_object_get(c.body, "currency")), "NGN");
    assert_int_equal(json_integer_value(json_object_get(c.body, "amount")), 5000);
    assert_string_equal(json_string_value(json_object_get(c.body, "authorization_code")),
                        "pm_card_visa");
    assert_non_null(strchr(json_string_value(json_object_get(c.body, "email")), '@'));

    assert_int_equal(p->lookup(p, req.payment_id, NULL, &out), PAYMENTS_LOOKUP_FOUND);
    assert_string_equal(c.path, req.payment_id);

    c.reply = "{\"status\":true,\"data\":{\"id\":301,\"status\":\"processed\"}}";
    payments_refund_request rr = {.refund_id = "re_0193ab45cd67ef0123456789abcdef01",
                                  .payment_id = req.payment_id,
                                  .charge_id = "4099260516",
                                  .amount = 2000,
                                  .currency = "ngn"};
    p->refund(p, &rr, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_SUCCEEDED);
    assert_string_equal(c.idem, rr.refund_id);
    assert_string_equal(json_string_value(json_object_get(c.body, "transaction")), req.payment_id);
    assert_int_equal(json_integer_value(json_object_get(c.body, "amount")), 2000);

    c.reply = "{\"status\":true,\"data\":[]}";
    assert_int_equal(p->refund_lookup(p, &rr, &out), PAYMENTS_LOOKUP_NOT_FOUND);
    assert_string_equal(c.path, req.payment_id);

    /* An answer larger than the cap is not read, and the charge stays unknown. */
    size_t big_len = PAYMENTS_MAX_RESPONSE_BYTES + 4096;
    char *big = malloc(big_len + 1);
    memset(big, ' ', big_len);
    memcpy(big, TX_OK, strlen(TX_OK));
    big[big_len] = '\0';
    c.reply = big;
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_UNKNOWN);
    assert_non_null(strstr(out.detail, "larger than"));
    c.reply = "";
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_UNKNOWN);

    keel_http_server_free(srv);
    srv = NULL;
    p->charge(p, &req, &out);
    assert_int_equal(out.status, PAYMENTS_CHARGE_NOT_PROCESSED);
    payments_provider_free(p);
    free(big);
    json_decref(c.body);
    pthread_mutex_destroy(&c.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_success_and_declines),
        cmocka_unit_test(test_charge_unclear_200_is_unknown),
        cmocka_unit_test(test_charge_errors),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_refund_answers),
        cmocka_unit_test(test_refund_lookup),
        cmocka_unit_test(test_new_rejects_bad_options),
        cmocka_unit_test(test_calls_over_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
