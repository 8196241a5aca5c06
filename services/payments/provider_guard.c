/* Breaker, bounded retries and retry budget around one provider, with the call metrics. */
#include "provider_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/retry.h"
#include "keel/shutdown.h"

struct payments_guard {
    payments_provider *provider;
    keel_breaker *breaker;
    keel_retry_budget *budget;
    int call_attempts;
    keel_backoff backoff;
};

/* One of the four operations, so the retry loop and the metrics are written once. */
typedef enum guard_op {
    GUARD_CHARGE,
    GUARD_REFUND,
    GUARD_LOOKUP,
    GUARD_REFUND_LOOKUP,
} guard_op;

static const char *guard_op_name(guard_op op)
{
    switch (op) {
    case GUARD_CHARGE:
        return "charge";
    case GUARD_REFUND:
        return "refund";
    case GUARD_LOOKUP:
        return "lookup";
    case GUARD_REFUND_LOOKUP:
        return "refund_lookup";
    }
    return "invalid";
}

payments_guard *payments_guard_new(payments_provider *provider, const payments_guard_options *o,
                                   char *err, size_t err_len)
{
    payments_guard *g = NULL;
    if (provider == NULL) {
        snprintf(err, err_len, "a provider guard needs a provider");
        return NULL;
    }
    if (o->call_attempts < 1 || o->call_attempts > 10 || o->backoff_base_ms < 0 ||
        o->backoff_cap_ms < o->backoff_base_ms || o->budget_ratio < 0 ||
        o->budget_min_per_second < 0) {
        snprintf(err, err_len,
                 "%s: call attempts must be 1..10, 0 <= backoff base <= cap, budget >= 0",
                 provider->name);
        goto fail;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, err_len, "out of memory creating the guard of %s", provider->name);
        goto fail;
    }
    g->provider = provider;
    keel_breaker_options bo = o->breaker;
    bo.name = provider->name;
    g->breaker = keel_breaker_new(&bo);
    g->budget = keel_retry_budget_new(provider->name, o->budget_ratio, o->budget_min_per_second);
    if (g->breaker == NULL || g->budget == NULL) {
        snprintf(err, err_len, "out of memory creating the guard of %s", provider->name);
        payments_guard_free(g);
        return NULL;
    }
    g->call_attempts = o->call_attempts;
    g->backoff = (keel_backoff){
        .base_ms = o->backoff_base_ms, .cap_ms = o->backoff_cap_ms, .max_attempts = 0};
    return g;
fail:
    payments_provider_free(provider);
    return NULL;
}

void payments_guard_free(payments_guard *g)
{
    if (g == NULL) {
        return;
    }
    keel_breaker_free(g->breaker);
    g->breaker = NULL;
    keel_retry_budget_free(g->budget);
    g->budget = NULL;
    payments_provider_free(g->provider);
    g->provider = NULL;
    free(g);
}

const char *payments_guard_name(const payments_guard *g)
{
    return g->provider->name;
}

keel_breaker_state payments_guard_state(payments_guard *g)
{
    return keel_breaker_state_now(g->breaker);
}

bool payments_guard_acquire(payments_guard *g)
{
    return keel_breaker_allow(g->breaker);
}

void payments_guard_release(payments_guard *g)
{
    keel_breaker_release(g->breaker);
}

bool payments_guard_healthy(const payments_charge_outcome *out)
{
    return out->http_status > 0 && out->http_status < 500 && out->http_status != 429;
}

static void guard_metric_call(const payments_guard *g, guard_op op, const char *result, int64_t ms)
{
    char labels[200];
    snprintf(labels, sizeof(labels), "provider=\"%s\",operation=\"%s\",result=\"%s\"",
             g->provider->name, guard_op_name(op), result);
    keel_metric_inc(keel_metrics_counter(
        keel_metrics_default(), "keel_payments_provider_calls_total",
        "Calls to payment providers, by provider, operation and result", labels));
    snprintf(labels, sizeof(labels), "provider=\"%s\",operation=\"%s\"", g->provider->name,
             guard_op_name(op));
    keel_metric_observe(
        keel_metrics_histogram(keel_metrics_default(), "keel_payments_provider_call_seconds",
                               "Duration of calls to payment providers", labels, NULL, 0),
        (double)ms / 1000.0);
}

static void guard_metric_retry(const payments_guard *g, guard_op op)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "provider=\"%s\",operation=\"%s\"", g->provider->name,
             guard_op_name(op));
    keel_metric_inc(keel_metrics_counter(
        keel_metrics_default(), "keel_payments_provider_retries_total",
        "Calls repeated at the same provider after a not-processed answer", labels));
}

/* One call of op, recorded with the breaker (which must have given a permit). */
static payments_lookup_status guard_call_once(payments_guard *g, guard_op op, const void *req,
                                              const char *traceparent, payments_charge_outcome *out)
{
    payments_provider *p = g->provider;
    payments_lookup_status st = PAYMENTS_LOOKUP_FAILED;
    const char *result = "invalid";
    int64_t start = keel_clock_monotonic_ms();
    switch (op) {
    case GUARD_CHARGE:
        p->charge(p, req, out);
        result = payments_charge_status_name(out->status);
        break;
    case GUARD_REFUND:
        p->refund(p, req, out);
        result = payments_charge_status_name(out->status);
        break;
    case GUARD_LOOKUP:
        st = p->lookup(p, req, traceparent, out);
        result = payments_lookup_status_name(st);
        break;
    case GUARD_REFUND_LOOKUP:
        st = p->refund_lookup(p, req, out);
        result = payments_lookup_status_name(st);
        break;
    }
    int64_t ms = keel_clock_monotonic_ms() - start;
    keel_breaker_record(g->breaker, payments_guard_healthy(out), ms);
    guard_metric_call(g, op, result, ms);
    return st;
}

/* A charge or refund with in-place retries of not_processed answers. */
static void guard_send(payments_guard *g, guard_op op, const void *req, const char *key,
                       payments_charge_outcome *out, int *calls)
{
    *calls = 0;
    /* Every first call earns the budget a little, so retries stay a share of real traffic. */
    keel_retry_budget_deposit(g->budget);
    for (int attempt = 0;; attempt++) {
        guard_call_once(g, op, req, NULL, out);
        (*calls)++;
        if (out->status != PAYMENTS_CHARGE_NOT_PROCESSED || attempt + 1 >= g->call_attempts ||
            keel_shutdown_requested()) {
            return;
        }
        if (!keel_retry_budget_withdraw(g->budget)) {
            keel_log_warn("%s %s %s: not processed (%s); retry budget spent, not retrying here",
                          g->provider->name, guard_op_name(op), key, out->detail);
            return;
        }
        int64_t delay = keel_backoff_delay_ms(&g->backoff, attempt, NULL);
        keel_clock_sleep_ms(delay);
        if (!keel_breaker_allow(g->breaker)) {
            /* The breaker opened while we waited: the provider is down for everyone now. */
            return;
        }
        guard_metric_retry(g, op);
        keel_log_debug("%s %s %s: retry %d after %lld ms (%s)", g->provider->name,
                       guard_op_name(op), key, attempt + 1, (long long)delay, out->detail);
    }
}

void payments_guard_charge(payments_guard *g, const payments_charge_request *req,
                           payments_charge_outcome *out, int *calls)
{
    guard_send(g, GUARD_CHARGE, req, req->payment_id, out, calls);
}

void payments_guard_refund(payments_guard *g, const payments_refund_request *req,
                           payments_charge_outcome *out, int *calls)
{
    guard_send(g, GUARD_REFUND, req, req->refund_id, out, calls);
}

payments_lookup_status payments_guard_lookup(payments_guard *g, const char *payment_id,
                                             const char *traceparent, payments_charge_outcome *out)
{
    return guard_call_once(g, GUARD_LOOKUP, payment_id, traceparent, out);
}

payments_lookup_status payments_guard_refund_lookup(payments_guard *g,
                                                    const payments_refund_request *req,
                                                    payments_charge_outcome *out)
{
    return guard_call_once(g, GUARD_REFUND_LOOKUP, req, NULL, out);
}
