/* The HTTP plumbing the sandbox APIs share: authentication, fault prologue, holds, counters. */
#include "sim_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/log.h"

/* Every value sim_requests_total's outcome label takes, so all series exist from start. */
static const char *const sim_api_outcomes[] = {
    "succeeded",        /* a new charge that succeeded */
    "declined",         /* a new charge that was declined */
    "refunded",         /* a new refund */
    "refund_rejected",  /* a refund refused (unknown charge, too large, failed charge) */
    "scored",           /* a risk score */
    "replayed",         /* an idempotent replay of a stored answer */
    "ok",               /* a retrieval or list that answered 200 */
    "not_found",        /* a retrieval of something unknown */
    "invalid",          /* a 4xx for a malformed request */
    "conflict",         /* an idempotency key reused with other parameters */
    "unauthorized",     /* a missing or wrong API key */
    "injected_error",   /* error_rate fired: 500 before any work */
    "injected_timeout", /* timeout_after_charge_rate fired: recorded, then held */
    "unavailable",      /* the outage began while the request was in progress */
    "error",            /* the sandbox itself failed (out of memory, log full) */
};

sim_token_outcome sim_token_outcome_for(const char *token, bool decline)
{
    sim_token_outcome o = {.status = SIM_CHARGE_SUCCEEDED};
    if (token != NULL && strcmp(token, "pm_card_declined") == 0) {
        o.status = SIM_CHARGE_FAILED;
        o.failure_code = "card_declined";
    } else if (token != NULL && strcmp(token, "pm_card_insufficient_funds") == 0) {
        o.status = SIM_CHARGE_FAILED;
        o.failure_code = "insufficient_funds";
    } else if (decline) {
        o.status = SIM_CHARGE_FAILED;
        o.failure_code = "card_declined";
    }
    return o;
}

bool sim_api_authorized(const char *api_key, const char *authorization)
{
    if (api_key == NULL || *api_key == '\0')
        return true;
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    size_t want_len = strlen(api_key);
    size_t given_len = strlen(given);
    /* Constant time in the key's length: no early exit on the first differing byte. */
    unsigned char diff = want_len != given_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)api_key[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

static keel_metric *sim_api_requests_metric(sim_api *api, const char *outcome)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "provider=\"%s\",outcome=\"%s\"",
             sim_provider_name(api->provider), outcome);
    return keel_metrics_counter(api->metrics, "sim_requests_total",
                                "Requests to sandbox providers, by outcome", labels);
}

static keel_metric *sim_api_charges_metric(sim_api *api, sim_charge_status status)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "provider=\"%s\",status=\"%s\"",
             sim_provider_name(api->provider), sim_charge_status_name(status));
    return keel_metrics_counter(api->metrics, "sim_charges_total",
                                "Charges recorded by sandbox providers, by status", labels);
}

static keel_metric *sim_api_refunds_metric(sim_api *api)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "provider=\"%s\"", sim_provider_name(api->provider));
    return keel_metrics_counter(api->metrics, "sim_refunds_total",
                                "Refunds recorded by sandbox providers", labels);
}

sim_api *sim_api_new(const sim_api_options *opts)
{
    sim_api *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return NULL;
    api->provider = opts->provider;
    api->metrics = opts->metrics;
    api->respond_error = opts->respond_error;
    api->api_key = strdup(opts->api_key != NULL ? opts->api_key : "");
    if (api->api_key == NULL) {
        free(api);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(sim_api_outcomes) / sizeof(sim_api_outcomes[0]); i++)
        sim_api_requests_metric(api, sim_api_outcomes[i]);
    sim_api_charges_metric(api, SIM_CHARGE_SUCCEEDED);
    sim_api_charges_metric(api, SIM_CHARGE_FAILED);
    sim_api_refunds_metric(api);
    return api;
}

void sim_api_free(sim_api *api)
{
    if (api == NULL)
        return;
    free(api->api_key);
    api->api_key = NULL;
    free(api);
}

void sim_api_count(sim_api *api, const char *outcome)
{
    keel_metric_inc(sim_api_requests_metric(api, outcome));
}

void sim_api_count_charge(sim_api *api, sim_charge_status status)
{
    keel_metric_inc(sim_api_charges_metric(api, status));
}

void sim_api_count_refund(sim_api *api)
{
    keel_metric_inc(sim_api_refunds_metric(api));
}

bool sim_api_prologue(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                      sim_fault_decision *d)
{
    if (!sim_api_authorized(api->api_key, keel_http_request_header(req, "Authorization"))) {
        keel_http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"keel-provider-sim\"");
        api->respond_error(resp, 401, "authentication_error", "api_key_invalid",
                           "Invalid API key: send 'Authorization: Bearer <key>' with the key "
                           "from KEEL_SIM_API_KEY",
                           NULL);
        sim_api_count(api, "unauthorized");
        return false;
    }
    *d = sim_provider_decide(api->provider);
    if (d->latency_ms > 0)
        sim_provider_wait(api->provider, d->latency_ms);
    if (sim_provider_faults(api->provider).outage) {
        /* The listener is closing; this request slipped in before it did. */
        api->respond_error(resp, 503, "api_error", "provider_unavailable",
                           "the sandbox provider is in a simulated outage", NULL);
        sim_api_count(api, "unavailable");
        return false;
    }
    if (d->error) {
        keel_log_info("%s: injected error (error_rate), nothing processed",
                      sim_provider_name(api->provider));
        api->respond_error(resp, 500, "api_error", "simulated_error",
                           "simulated provider error (error_rate); nothing was processed, "
                           "retrying is safe",
                           NULL);
        sim_api_count(api, "injected_error");
        return false;
    }
    return true;
}

bool sim_api_hold(sim_api *api, const sim_fault_decision *d, const char *what)
{
    if (!d->timeout_after_charge)
        return false;
    /* The operation exists; holding the answer makes the client time out not knowing it,
     * which is exactly the ambiguity a caller must resolve by asking again. */
    keel_log_info("%s: holding the answer for %s for %lld ms (timeout_after_charge_rate)",
                  sim_provider_name(api->provider), what, (long long)d->hold_ms);
    sim_provider_wait(api->provider, d->hold_ms);
    return true;
}

void sim_api_respond_stored(sim_api *api, keel_http_response *resp, const sim_fault_decision *d,
                            bool replayed, const char *what, const sim_response *out,
                            const char *fresh_outcome)
{
    const char *counted = fresh_outcome;
    if (replayed) {
        keel_http_response_header(resp, "Idempotent-Replayed", "true");
        counted = "replayed";
    } else if (sim_api_hold(api, d, what)) {
        counted = "injected_timeout";
    }
    keel_http_respond_raw(resp, out->status, "application/json", out->body, strlen(out->body));
    sim_api_count(api, counted);
}

void sim_api_refund(sim_api *api, keel_http_response *resp, const sim_fault_decision *d,
                    const sim_refund_request *req, sim_refund_render_fn render,
                    sim_api_refund_refused_fn refused)
{
    sim_response out = {0};
    sim_refund_result r = sim_provider_refund(api->provider, req, render, NULL, &out);
    if (r == SIM_REFUND_CREATED || r == SIM_REFUND_REPLAYED) {
        char what[160];
        snprintf(what, sizeof(what), "refund %s of %s", out.refund_id, out.charge_id);
        if (r == SIM_REFUND_CREATED) {
            sim_api_count_refund(api);
            keel_log_info("%s: %s created", sim_provider_name(api->provider), what);
        }
        sim_api_respond_stored(api, resp, d, r == SIM_REFUND_REPLAYED, what, &out, "refunded");
    } else {
        refused(api, resp, r, req, &out);
    }
    sim_response_clear(&out);
}

void sim_api_not_recorded(sim_api *api, keel_http_response *resp, bool log_full, const char *what)
{
    char msg[256];
    if (log_full)
        snprintf(msg, sizeof(msg),
                 "the sandbox's log is full, so the %s was not recorded; POST /_sim/reset on the "
                 "admin port clears it",
                 what);
    else
        snprintf(msg, sizeof(msg),
                 "the sandbox failed to record the %s (out of memory); nothing was done", what);
    api->respond_error(resp, log_full ? 503 : 500, "api_error",
                       log_full ? "sandbox_full" : "sandbox_error", msg, NULL);
    sim_api_count(api, "error");
}

void sim_api_out_of_memory(sim_api *api, keel_http_response *resp)
{
    api->respond_error(resp, 500, "api_error", "out_of_memory", "the sandbox ran out of memory",
                       NULL);
    sim_api_count(api, "error");
}

json_t *sim_api_json_object(sim_api *api, const keel_http_request *req, keel_http_response *resp)
{
    size_t len = 0;
    const char *text = keel_http_request_body(req, &len);
    json_error_t jerr;
    json_t *body = json_loadb(text, len, 0, &jerr);
    if (json_is_object(body))
        return body;
    char msg[256];
    if (body == NULL)
        snprintf(msg, sizeof(msg), "the request body is not valid JSON (line %d, column %d: %s)",
                 jerr.line, jerr.column, jerr.text);
    else
        snprintf(msg, sizeof(msg), "the request body must be a JSON object");
    json_decref(body);
    api->respond_error(resp, 400, "invalid_request_error", "invalid_json", msg, NULL);
    sim_api_count(api, "invalid");
    return NULL;
}
