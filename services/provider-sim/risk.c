/* The sandbox risk-scoring API: deterministic scores per payment-method token. */
#include "risk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"

/* --- pure logic ------------------------------------------------------------------- */

const char *risk_decision_name(risk_decision d)
{
    switch (d) {
    case RISK_BLOCK:
        return "block";
    case RISK_REVIEW:
        return "review";
    case RISK_ALLOW:
    default:
        return "allow";
    }
}

risk_decision risk_decision_for(int score)
{
    if (score >= RISK_BLOCK_AT)
        return RISK_BLOCK;
    if (score >= RISK_REVIEW_AT)
        return RISK_REVIEW;
    return RISK_ALLOW;
}

int risk_score_for(const char *payment_method, const char **reason)
{
    if (payment_method != NULL && strcmp(payment_method, "pm_risk_high") == 0) {
        *reason = "test token pm_risk_high";
        return 90;
    }
    if (payment_method != NULL && strcmp(payment_method, "pm_risk_review") == 0) {
        *reason = "test token pm_risk_review";
        return 60;
    }
    /* FNV-1a: a stable low score per token, so one token always scores the same. */
    uint32_t h = 2166136261u;
    for (const char *c = payment_method != NULL ? payment_method : ""; *c != '\0'; c++) {
        h ^= (unsigned char)*c;
        h *= 16777619u;
    }
    *reason = "no risk signals";
    return (int)(h % 30u);
}

/* A required string of 1..RISK_MAX_TEXT_LEN bytes; NULL (and msg filled) otherwise. */
static const char *risk_text(const json_t *body, const char *name, char *msg, size_t msg_len)
{
    const json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v)) {
        snprintf(msg, msg_len, "Missing required param: %s", name);
        return NULL;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > RISK_MAX_TEXT_LEN) {
        snprintf(msg, msg_len, "%s must be a string of 1 to %d bytes", name, RISK_MAX_TEXT_LEN);
        return NULL;
    }
    return json_string_value(v);
}

int risk_parse(const json_t *body, risk_params *out, const char **param, char *msg, size_t msg_len)
{
    memset(out, 0, sizeof(*out));
    *param = "payment_id";
    if ((out->payment_id = risk_text(body, "payment_id", msg, msg_len)) == NULL)
        return -1;
    *param = "merchant_id";
    const json_t *merchant = json_object_get(body, "merchant_id");
    if (merchant != NULL && !json_is_null(merchant) &&
        (out->merchant_id = risk_text(body, "merchant_id", msg, msg_len)) == NULL)
        return -1;
    *param = "amount";
    const json_t *amount = json_object_get(body, "amount");
    if (!json_is_integer(amount) || json_integer_value(amount) < 0) {
        snprintf(msg, msg_len, "amount is required: an integer >= 0 of minor units");
        return -1;
    }
    out->amount = (int64_t)json_integer_value(amount);
    *param = "currency";
    const char *cur = risk_text(body, "currency", msg, msg_len);
    if (cur == NULL)
        return -1;
    if (strlen(cur) != 3 || !isalpha((unsigned char)cur[0]) || !isalpha((unsigned char)cur[1]) ||
        !isalpha((unsigned char)cur[2])) {
        snprintf(msg, msg_len, "currency must be a three-letter ISO 4217 code such as usd");
        return -1;
    }
    for (int i = 0; i < 3; i++)
        out->currency[i] = (char)tolower((unsigned char)cur[i]);
    out->currency[3] = '\0';
    *param = "payment_method";
    if ((out->payment_method = risk_text(body, "payment_method", msg, msg_len)) == NULL)
        return -1;
    *param = NULL;
    return 0;
}

json_t *risk_answer(const risk_params *p, int score, const char *reason)
{
    return json_pack("{s:s, s:i, s:s, s:[s], s:s}", "payment_id", p->payment_id, "score", score,
                     "decision", risk_decision_name(risk_decision_for(score)), "reasons", reason,
                     "model", RISK_MODEL);
}

/* --- HTTP ----------------------------------------------------------------------- */

static keel_metric *risk_scores_metric(sim_api *api, risk_decision d)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "decision=\"%s\"", risk_decision_name(d));
    return keel_metrics_counter(api->metrics, "sim_scores_total",
                                "Risk scores given by the sandbox, by decision", labels);
}

static void risk_score(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    json_t *body = NULL;
    json_t *answer = NULL;
    json_t *entry = NULL;
    if (!sim_api_prologue(api, req, resp, &d))
        goto done;
    body = sim_api_json_object(api, req, resp);
    if (body == NULL)
        goto done;
    risk_params params;
    const char *param = NULL;
    char msg[256];
    if (risk_parse(body, &params, &param, msg, sizeof(msg)) != 0) {
        bool missing = strncmp(msg, "Missing", 7) == 0;
        keel_http_respond_error(resp, 400, "invalid_request_error",
                                missing ? "parameter_missing" : "parameter_invalid", msg, param);
        sim_api_count(api, "invalid");
        goto done;
    }
    const char *reason = NULL;
    int score = risk_score_for(params.payment_method, &reason);
    risk_decision decision = risk_decision_for(score);
    answer = risk_answer(&params, score, reason);
    entry = json_pack("{s:s, s:s?, s:I, s:s, s:s, s:i, s:s, s:I}", "payment_id", params.payment_id,
                      "merchant_id", params.merchant_id, "amount", (json_int_t)params.amount,
                      "currency", params.currency, "payment_method", params.payment_method, "score",
                      score, "decision", risk_decision_name(decision), "created",
                      (json_int_t)(keel_clock_now_ms() / 1000));
    if (answer == NULL || entry == NULL) {
        sim_api_out_of_memory(api, resp);
        goto done;
    }
    if (sim_provider_record_score(api->provider, entry) != 0) {
        keel_http_respond_error(resp, 503, "api_error", "sandbox_full",
                                "the sandbox's score log is full; POST /_sim/reset on the admin "
                                "port clears it",
                                NULL);
        sim_api_count(api, "error");
        goto done;
    }
    keel_metric_inc(risk_scores_metric(api, decision));
    keel_log_info("%s: payment %s scored %d (%s)", sim_provider_name(api->provider),
                  params.payment_id, score, risk_decision_name(decision));
    char what[320];
    snprintf(what, sizeof(what), "the score of payment %.255s", params.payment_id);
    const char *counted = sim_api_hold(api, &d, what) ? "injected_timeout" : "scored";
    keel_http_respond_json(resp, 200, answer);
    answer = NULL;
    sim_api_count(api, counted);
done:
    json_decref(entry);
    json_decref(answer);
    json_decref(body);
}

void risk_routes(keel_http_server *srv, void *ctx)
{
    /* Every series exists from the start (registering again on a reopen finds them). */
    for (risk_decision d = RISK_ALLOW; d <= RISK_BLOCK; d++)
        risk_scores_metric(ctx, d);
    keel_http_server_route(srv, "POST", "/v1/score", risk_score, ctx);
}
