/* What every sandbox API (provider A, provider B, risk) shares: bearer authentication, the
 * fault prologue (latency, outage, injected error), the hold after a recorded operation,
 * request counters, and what the test payment-method tokens do. */
#ifndef SIM_API_H
#define SIM_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"
#include "keel/metrics.h"
#include "sim_state.h"

/* The largest amount keel itself accepts in any currency (keel/money.h), so the sandbox never
 * refuses a payment the gateway took. */
#define SIM_API_MAX_AMOUNT INT64_C(99999999999)

/* --- pure logic (unit tested) -------------------------------------------------------- */

/* What a test token does to a charge: declines carry a code and reason. */
typedef struct sim_token_outcome {
    sim_charge_status status;
    const char *failure_code; /* NULL, "card_declined" or "insufficient_funds" */
} sim_token_outcome;

/* pm_card_declined → card_declined, pm_card_insufficient_funds → insufficient_funds, every
 * other token succeeds. decline (the decline_rate fault fired) turns a success into
 * card_declined; a token's own decline wins. */
sim_token_outcome sim_token_outcome_for(const char *token, bool decline);

/* True when no key is configured, or the header is exactly "Bearer <key>" (scheme in any
 * case, key compared in constant time). */
bool sim_api_authorized(const char *api_key, const char *authorization);

/* --- HTTP plumbing -------------------------------------------------------------------- */

/* Writes an error in the API's own shape (provider A and risk use keel_http_respond_error;
 * provider B writes Paystack's envelope). */
typedef void (*sim_api_error_fn)(keel_http_response *resp, unsigned status, const char *type,
                                 const char *code, const char *message, const char *param);

/* One sandbox API's context: the ctx of its routes (provider_a_routes, provider_b_routes,
 * risk_routes). */
typedef struct sim_api {
    sim_provider *provider;
    char *api_key; /* "" = no authentication */
    keel_metrics *metrics;
    sim_api_error_fn respond_error;
} sim_api;

typedef struct sim_api_options {
    sim_provider *provider;         /* the state's provider this API serves */
    const char *api_key;            /* "" or NULL = no authentication; copied */
    keel_metrics *metrics;          /* where the sim_* series go */
    sim_api_error_fn respond_error; /* the API's error shape */
} sim_api_options;

/* Copies api_key and registers the provider's sim_requests_total, sim_charges_total and
 * sim_refunds_total series so dashboards see zeros, not gaps. NULL on OOM. */
sim_api *sim_api_new(const sim_api_options *opts);
void sim_api_free(sim_api *api);

/* sim_requests_total{provider,outcome} += 1. */
void sim_api_count(sim_api *api, const char *outcome);
/* sim_charges_total{provider,status} += 1. */
void sim_api_count_charge(sim_api *api, sim_charge_status status);
/* sim_refunds_total{provider} += 1. */
void sim_api_count_refund(sim_api *api);

/* Authentication, then the injected latency, outage and error. Returns false when it
 * already answered; otherwise *d holds the request's fault decision. */
bool sim_api_prologue(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                      sim_fault_decision *d);

/* When the decision says timeout-after-charge, logs and holds the answer d->hold_ms (what
 * names the recorded operation, for the log). Returns true when it held. */
bool sim_api_hold(sim_api *api, const sim_fault_decision *d, const char *what);

/* Sends a stored answer (out) of a charge or refund. A replay gets the header
 * Idempotent-Replayed and counts "replayed"; a new one (what names it, for the log) may
 * first be held by timeout_after_charge, counting "injected_timeout", else fresh_outcome. */
void sim_api_respond_stored(sim_api *api, keel_http_response *resp, const sim_fault_decision *d,
                            bool replayed, const char *what, const sim_response *out,
                            const char *fresh_outcome);

/* Answers a refund the state refused (no charge, too large, a conflict, ...) in the API's
 * words; req is what was asked, out what the state said (charge_id, refund_id, remaining). */
typedef void (*sim_api_refund_refused_fn)(sim_api *api, keel_http_response *resp,
                                          sim_refund_result r, const sim_refund_request *req,
                                          const sim_response *out);

/* Records the refund (sim_provider_refund) and answers: a new refund is counted, logged and
 * answered like sim_api_respond_stored (so it may be held), a replay gets its stored
 * answer, anything else goes to refused. */
void sim_api_refund(sim_api *api, keel_http_response *resp, const sim_fault_decision *d,
                    const sim_refund_request *req, sim_refund_render_fn render,
                    sim_api_refund_refused_fn refused);

/* Answers that the sandbox could not record a what ("charge", "refund", ...): 503
 * sandbox_full when its log is full (a reset clears it), else 500 sandbox_error; counts an
 * error. */
void sim_api_not_recorded(sim_api *api, keel_http_response *resp, bool log_full, const char *what);

/* Answers 500 "the sandbox ran out of memory" and counts an error. */
void sim_api_out_of_memory(sim_api *api, keel_http_response *resp);

/* Parses the body as JSON (any content type) into an object, or answers 400 in the API's
 * shape and returns NULL. The caller owns the result. */
json_t *sim_api_json_object(sim_api *api, const keel_http_request *req, keel_http_response *resp);

#endif
