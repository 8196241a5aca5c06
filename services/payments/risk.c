/* Risk API client with a breaker, and the local rules that stand in when it cannot answer. */
#include "risk.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "provider_http.h"

#define RISK_NAME "risk"

struct payments_risk {
    bool has_api;
    payments_http_peer peer;
    keel_breaker *breaker;
    payments_risk_limits limits;
};

bool payments_risk_map(const keel_http_result *r, payments_risk_decision *out)
{
    memset(out, 0, sizeof(*out));
    if (r->failure != KEEL_HTTP_OK) {
        snprintf(out->reason, sizeof(out->reason), "risk API: %.200s",
                 r->failure == KEEL_HTTP_TOO_LARGE ? "answer too large" : r->error);
        return false;
    }
    if (r->status != 200) {
        snprintf(out->reason, sizeof(out->reason), "risk API answered HTTP %ld", r->status);
        return false;
    }
    bool ok = false;
    json_t *root = payments_json_object_body(r);
    const json_t *score = root != NULL ? json_object_get(root, "score") : NULL;
    const char *decision = root != NULL ? payments_json_str(root, "decision") : NULL;
    if (!json_is_integer(score) || json_integer_value(score) < 0 ||
        json_integer_value(score) > 100 || decision == NULL) {
        snprintf(out->reason, sizeof(out->reason),
                 "risk API answered 200 without a score 0..100 and a decision");
        goto done;
    }
    out->score = (int)json_integer_value(score);
    if (strcmp(decision, "block") == 0) {
        out->blocked = true;
    } else if (strcmp(decision, "allow") != 0 && strcmp(decision, "review") != 0) {
        snprintf(out->reason, sizeof(out->reason), "risk API answered an unknown decision");
        goto done;
    }
    /* "review" goes ahead: keel has no manual review step before charging, and the score is
     * kept with the payment for whoever looks later. */
    snprintf(out->reason, sizeof(out->reason), "risk API: score %d, %s", out->score, decision);
    ok = true;
done:
    json_decref(root);
    if (!ok) {
        out->score = 0;
        out->blocked = false;
    }
    return ok;
}

void payments_risk_local(const payments_risk_limits *limits, int64_t amount, const char *currency,
                         const char *why, payments_risk_decision *out)
{
    int64_t limit = payments_risk_limit_for(limits, currency);
    memset(out, 0, sizeof(*out));
    out->degraded = true;
    out->score = -1;
    out->blocked = amount > limit;
    snprintf(out->reason, sizeof(out->reason), "local rules (%s): %lld %s %s the limit %lld",
             why != NULL ? why : "no risk API", (long long)amount, currency != NULL ? currency : "",
             out->blocked ? "exceeds" : "is within", (long long)limit);
}

payments_risk *payments_risk_new(const payments_risk_options *o, char *err, size_t err_len)
{
    payments_risk *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, err_len, "out of memory creating the risk client");
        return NULL;
    }
    if (o->limits == NULL || o->limits->n == 0) {
        snprintf(err, err_len,
                 "the risk client needs local limits (KEEL_PAYMENTS_LOCAL_RISK_LIMITS)");
        goto fail;
    }
    r->limits = *o->limits;
    if (o->url != NULL && o->url[0] != '\0') {
        if (payments_http_peer_init(&r->peer, RISK_NAME, o->url, o->api_key, o->timeout_ms,
                                    o->connect_timeout_ms, "KEEL_PAYMENTS_RISK_URL",
                                    "KEEL_PAYMENTS_RISK_API_KEY", err, err_len) != 0) {
            goto fail;
        }
        r->has_api = true;
    }
    keel_breaker_options bo = o->breaker;
    bo.name = RISK_NAME;
    r->breaker = keel_breaker_new(&bo);
    if (r->breaker == NULL) {
        snprintf(err, err_len, "out of memory creating the risk breaker");
        goto fail;
    }
    return r;
fail:
    payments_risk_free(r);
    return NULL;
}

void payments_risk_free(payments_risk *r)
{
    if (r == NULL) {
        return;
    }
    payments_http_peer_clear(&r->peer);
    keel_breaker_free(r->breaker);
    r->breaker = NULL;
    free(r);
}

static void risk_metric(const payments_risk_decision *d)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "decision=\"%s\",degraded=\"%s\"",
             d->blocked ? "block" : "allow", d->degraded ? "true" : "false");
    keel_metric_inc(keel_metrics_counter(keel_metrics_default(),
                                         "keel_payments_risk_decisions_total",
                                         "Risk decisions, by outcome and whether local rules "
                                         "made them (the risk API failed, was slow or off)",
                                         labels));
}

/* Asks the API; false (with why) when it gave no usable verdict. */
static bool risk_ask(payments_risk *r, const payments_risk_input *in, payments_risk_decision *out,
                     char *why, size_t why_len)
{
    if (!r->has_api) {
        snprintf(why, why_len, "no risk API configured");
        return false;
    }
    if (!keel_breaker_allow(r->breaker)) {
        snprintf(why, why_len, "risk API breaker open");
        return false;
    }
    json_t *obj = json_pack("{s:s, s:s, s:I, s:s, s:s}", "payment_id", in->payment_id,
                            "merchant_id", in->merchant_id != NULL ? in->merchant_id : "", "amount",
                            (json_int_t)in->amount, "currency", in->currency, "payment_method",
                            in->payment_method != NULL ? in->payment_method : "");
    char *body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (body == NULL) {
        keel_breaker_release(r->breaker);
        snprintf(why, why_len, "risk request could not be built");
        return false;
    }
    keel_http_result res;
    int64_t start = keel_clock_monotonic_ms();
    payments_http_peer_call(&r->peer, "POST", "/v1/score", body, NULL, in->traceparent, &res);
    int64_t ms = keel_clock_monotonic_ms() - start;
    bool ok = payments_risk_map(&res, out);
    /* Health for the breaker: any verdict, or an answer below 500 that is not 429. */
    bool healthy = ok || (res.failure == KEEL_HTTP_OK && res.status < 500 && res.status != 429);
    keel_breaker_record(r->breaker, healthy, ms);
    if (!ok) {
        snprintf(why, why_len, "%s", out->reason);
    }
    keel_http_result_clear(&res);
    free(body);
    body = NULL;
    return ok;
}

void payments_risk_check(payments_risk *r, const payments_risk_input *in,
                         payments_risk_decision *out)
{
    char why[256];
    if (!risk_ask(r, in, out, why, sizeof(why))) {
        payments_risk_local(&r->limits, in->amount, in->currency, why, out);
        keel_log_warn("payment %s: risk decided by local rules: %s", in->payment_id, out->reason);
    }
    risk_metric(out);
}
