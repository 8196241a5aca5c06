/* Unit tests of risk.c: the risk API's answers as decisions, the local rules, and the fallback
 * to them when the API is down, slow or unreadable (against a local HTTP server). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/http_server.h"
#include "risk.h"

static keel_http_result answer(long status, const char *body)
{
    keel_http_result r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.body = (char *)body;
    r.body_len = body != NULL ? strlen(body) : 0;
    return r;
}

static void test_map_verdicts(void **state)
{
    payments_risk_decision d;
    keel_http_result r = answer(200, "{\"payment_id\":\"p\",\"score\":12,\"decision\":\"allow\"}");
    assert_true(payments_risk_map(&r, &d));
    assert_false(d.blocked);
    assert_false(d.degraded);
    assert_int_equal(d.score, 12);
    r = answer(200, "{\"score\":90,\"decision\":\"block\"}");
    assert_true(payments_risk_map(&r, &d));
    assert_true(d.blocked);
    assert_int_equal(d.score, 90);
    /* Review goes ahead, with the score kept. */
    r = answer(200, "{\"score\":60,\"decision\":\"review\"}");
    assert_true(payments_risk_map(&r, &d));
    assert_false(d.blocked);
    assert_non_null(strstr(d.reason, "review"));
}

static void test_map_unusable_answers(void **state)
{
    const struct {
        long status;
        const char *body;
    } bad[] = {
        {200, "{\"score\":101,\"decision\":\"allow\"}"},
        {200, "{\"score\":-1,\"decision\":\"allow\"}"},
        {200, "{\"score\":\"12\",\"decision\":\"allow\"}"},
        {200, "{\"score\":12}"},
        {200, "{\"score\":12,\"decision\":\"maybe\"}"},
        {200, "{\"score\":12,\"decision\":\"allow\""},
        {200, ""},
        {200, NULL},
        {500, "{\"error\":{\"code\":\"simulated_error\"}}"},
        {400, "{\"error\":{\"code\":\"parameter_missing\"}}"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        payments_risk_decision d;
        keel_http_result r = answer(bad[i].status, bad[i].body);
        if (payments_risk_map(&r, &d)) {
            fail_msg("answer %zu was taken as a verdict", i);
        }
        assert_false(d.blocked);
        assert_true(d.reason[0] != '\0');
    }
    keel_http_failure fs[] = {KEEL_HTTP_NOT_SENT, KEEL_HTTP_TIMEOUT_AFTER_SEND,
                              KEEL_HTTP_TRANSPORT_ERROR, KEEL_HTTP_TOO_LARGE};
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
        payments_risk_decision d;
        keel_http_result r = answer(0, NULL);
        r.failure = fs[i];
        assert_false(payments_risk_map(&r, &d));
    }
}

static void test_local_rules(void **state)
{
    payments_risk_limits l;
    char err[128];
    assert_int_equal(payments_risk_limits_parse("usd=500000;default=1000000", &l, err, sizeof(err)),
                     0);
    payments_risk_decision d;
    payments_risk_local(&l, 500000, "usd", "risk API timed out", &d);
    assert_false(d.blocked);
    assert_true(d.degraded);
    assert_int_equal(d.score, -1);
    assert_non_null(strstr(d.reason, "risk API timed out"));
    payments_risk_local(&l, 500001, "usd", NULL, &d);
    assert_true(d.blocked);
    payments_risk_local(&l, 900000, "eur", NULL, &d);
    assert_false(d.blocked);
}

/* ---- against a server ------------------------------------------------------------------ */

static unsigned g_status;
static const char *g_reply;
static int64_t g_delay_ms;

static void on_score(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    if (g_delay_ms > 0) {
        keel_clock_sleep_ms(g_delay_ms);
    }
    keel_http_respond_raw(resp, g_status, "application/json", g_reply, strlen(g_reply));
}

static void test_check_falls_back_to_local_rules(void **state)
{
    keel_http_client_global_init();
    keel_http_server_options so = {.address = "127.0.0.1", .port = 0, .threads = 2};
    keel_http_server *srv = keel_http_server_new(&so);
    keel_http_server_route(srv, "POST", "/v1/score", on_score, NULL);
    char err[256];
    assert_int_equal(keel_http_server_start(srv, err, sizeof(err)), 0);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", keel_http_server_port(srv));
    payments_risk_limits l;
    assert_int_equal(payments_risk_limits_parse("usd=1000;default=1000000", &l, err, sizeof(err)),
                     0);
    payments_risk_options o = {.url = base,
                               .api_key = "k",
                               .timeout_ms = 200,
                               .connect_timeout_ms = 100,
                               .limits = &l,
                               .breaker = {.window_size = 100, .min_calls = 100}};
    payments_risk *risk = payments_risk_new(&o, err, sizeof(err));
    assert_non_null(risk);
    payments_risk_input in = {.payment_id = "pay_1",
                              .merchant_id = "m",
                              .amount = 5000,
                              .currency = "usd",
                              .payment_method = "pm_card_visa"};
    payments_risk_decision d;

    g_status = 200;
    g_reply = "{\"score\":7,\"decision\":\"allow\"}";
    payments_risk_check(risk, &in, &d);
    assert_false(d.degraded);
    assert_false(d.blocked);
    assert_int_equal(d.score, 7);

    /* Slow: local rules (5000 usd > 1000: blocked), flagged degraded. */
    g_delay_ms = 600;
    payments_risk_check(risk, &in, &d);
    assert_true(d.degraded);
    assert_true(d.blocked);
    g_delay_ms = 0;

    g_status = 503;
    g_reply = "{}";
    in.amount = 900;
    payments_risk_check(risk, &in, &d);
    assert_true(d.degraded);
    assert_false(d.blocked);
    assert_int_equal(d.score, -1);

    /* Down. */
    keel_http_server_free(srv);
    srv = NULL;
    payments_risk_check(risk, &in, &d);
    assert_true(d.degraded);
    payments_risk_free(risk);

    /* No API configured at all: local rules, degraded. */
    payments_risk_options none = {.limits = &l};
    risk = payments_risk_new(&none, err, sizeof(err));
    assert_non_null(risk);
    payments_risk_check(risk, &in, &d);
    assert_true(d.degraded);
    payments_risk_free(risk);
    /* A URL without a key is refused. */
    o.api_key = "";
    assert_null(payments_risk_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "KEEL_PAYMENTS_RISK_API_KEY"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_verdicts),
        cmocka_unit_test(test_map_unusable_answers),
        cmocka_unit_test(test_local_rules),
        cmocka_unit_test(test_check_falls_back_to_local_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
