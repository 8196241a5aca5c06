/* The /_sim admin endpoints: charge, refund and score logs, counts, fault settings, reset. */
#include "admin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"

#define SIM_ADMIN_MAX_LISTENERS 8

typedef struct sim_admin_binding {
    sim_provider *provider;
    sim_listener *listener;
} sim_admin_binding;

struct sim_admin {
    sim_state *st;
    /* Held while reading a provider's outage flag and applying it to the listener, so
     * concurrent admin calls always leave the listener matching the latest setting. */
    pthread_mutex_t sync_mu;
    sim_admin_binding bindings[SIM_ADMIN_MAX_LISTENERS];
    size_t nbindings;
};

sim_admin *sim_admin_new(sim_state *st)
{
    sim_admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    if (pthread_mutex_init(&a->sync_mu, NULL) != 0) {
        free(a);
        return NULL;
    }
    a->st = st;
    return a;
}

void sim_admin_free(sim_admin *a)
{
    if (a == NULL)
        return;
    pthread_mutex_destroy(&a->sync_mu);
    free(a);
}

int sim_admin_add_listener(sim_admin *a, sim_provider *p, sim_listener *l)
{
    if (a->nbindings == SIM_ADMIN_MAX_LISTENERS)
        return -1;
    a->bindings[a->nbindings++] = (sim_admin_binding){.provider = p, .listener = l};
    return 0;
}

static sim_listener *sim_admin_listener_of(sim_admin *a, const sim_provider *p)
{
    for (size_t i = 0; i < a->nbindings; i++) {
        if (a->bindings[i].provider == p)
            return a->bindings[i].listener;
    }
    return NULL;
}

int sim_admin_sync(sim_admin *a, char *err, size_t err_len)
{
    int rc = 0;
    char one[256];
    pthread_mutex_lock(&a->sync_mu);
    for (size_t i = 0; i < a->nbindings; i++) {
        bool outage = sim_provider_faults(a->bindings[i].provider).outage;
        if (sim_listener_set_open(a->bindings[i].listener, !outage, one, sizeof(one)) != 0) {
            keel_log_error("%s: %s", sim_provider_name(a->bindings[i].provider), one);
            if (rc == 0)
                snprintf(err, err_len, "%s: %s", sim_provider_name(a->bindings[i].provider), one);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&a->sync_mu);
    return rc;
}

/* The settings of p plus whether its listener is open and on which port. */
static json_t *sim_admin_faults_json(sim_admin *a, sim_provider *p)
{
    sim_faults f = sim_provider_faults(p);
    json_t *obj = sim_faults_json(sim_provider_name(p), &f);
    sim_listener *l = sim_admin_listener_of(a, p);
    if (obj != NULL && l != NULL) {
        json_object_set_new(obj, "listening", json_boolean(sim_listener_is_open(l)));
        json_object_set_new(obj, "port", json_integer(sim_listener_port(l)));
    }
    return obj;
}

static void sim_admin_unknown_provider(sim_admin *a, keel_http_response *resp, const char *name)
{
    char names[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < sim_state_provider_count(a->st) && used < sizeof(names); i++) {
        int n = snprintf(names + used, sizeof(names) - used, "%s%s", i > 0 ? ", " : "",
                         sim_provider_name(sim_state_provider_at(a->st, i)));
        if (n < 0)
            break;
        used += (size_t)n;
    }
    char msg[320];
    snprintf(msg, sizeof(msg), "unknown provider '%.60s'; this sandbox has: %s", name, names);
    keel_http_respond_error(resp, 400, "invalid_request_error", "unknown_provider", msg,
                            "provider");
}

/* Answers {"data":data} (takes data; NULL means out of memory). */
static void sim_admin_respond_data(keel_http_response *resp, json_t *data)
{
    json_t *doc = data != NULL ? json_pack("{s:o}", "data", data) : NULL;
    if (doc == NULL) {
        keel_http_respond_error(resp, 500, "api_error", "out_of_memory",
                                "the sandbox ran out of memory", NULL);
        return;
    }
    keel_http_respond_json(resp, 200, doc);
}

/* The provider query filter: false (after answering 400) when it names no provider. */
static bool sim_admin_provider_filter(sim_admin *a, const keel_http_request *req,
                                      keel_http_response *resp, const char **provider)
{
    *provider = keel_http_request_query(req, "provider");
    if (*provider != NULL && sim_state_provider(a->st, *provider) == NULL) {
        sim_admin_unknown_provider(a, resp, *provider);
        return false;
    }
    return true;
}

static void sim_admin_charges(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_admin *a = ctx;
    const char *provider;
    if (!sim_admin_provider_filter(a, req, resp, &provider))
        return;
    const char *key = keel_http_request_query(req, "idempotency_key");
    sim_admin_respond_data(resp, sim_state_charge_log(a->st, provider, key));
}

static void sim_admin_refunds(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_admin *a = ctx;
    const char *provider;
    if (!sim_admin_provider_filter(a, req, resp, &provider))
        return;
    sim_admin_respond_data(
        resp, sim_state_refund_log(a->st, provider, keel_http_request_query(req, "idempotency_key"),
                                   keel_http_request_query(req, "charge")));
}

static void sim_admin_scores(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_admin *a = ctx;
    sim_admin_respond_data(resp,
                           sim_state_score_log(a->st, keel_http_request_query(req, "payment_id")));
}

static void sim_admin_counts(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    (void)req;
    sim_admin *a = ctx;
    sim_admin_respond_data(resp, sim_state_counts(a->st));
}

static void sim_admin_faults_get(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_admin *a = ctx;
    const char *provider;
    if (!sim_admin_provider_filter(a, req, resp, &provider))
        return;
    json_t *data = json_array();
    for (size_t i = 0; data != NULL && i < sim_state_provider_count(a->st); i++) {
        sim_provider *p = sim_state_provider_at(a->st, i);
        if (provider != NULL && strcmp(provider, sim_provider_name(p)) != 0)
            continue;
        json_array_append_new(data, sim_admin_faults_json(a, p));
    }
    sim_admin_respond_data(resp, data);
}

static void sim_admin_faults_post(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_admin *a = ctx;
    json_t *body = keel_http_request_json(req, resp);
    if (body == NULL)
        return;
    const char *name = json_string_value(json_object_get(body, "provider"));
    sim_provider *p = name != NULL ? sim_state_provider(a->st, name) : NULL;
    if (name == NULL) {
        keel_http_respond_error(resp, 400, "invalid_request_error", "parameter_missing",
                                "provider is required, e.g. \"provider\":\"provider_a\"",
                                "provider");
        goto done;
    }
    if (p == NULL) {
        sim_admin_unknown_provider(a, resp, name);
        goto done;
    }
    sim_faults after;
    const char *field = NULL;
    char err[256];
    if (sim_provider_patch_faults(p, body, &after, &field, err, sizeof(err)) != 0) {
        keel_http_respond_error(resp, 400, "invalid_request_error", "parameter_invalid", err,
                                field);
        goto done;
    }
    keel_log_info(
        "%s: faults now error_rate=%g latency_ms=%lld latency_jitter_ms=%lld (%s) "
        "timeout_after_charge_rate=%g timeout_hold_ms=%lld decline_rate=%g outage=%s",
        name, after.error_rate, (long long)after.latency_ms, (long long)after.latency_jitter_ms,
        sim_latency_distribution_name(after.latency_distribution), after.timeout_after_charge_rate,
        (long long)after.timeout_hold_ms, after.decline_rate, after.outage ? "true" : "false");
    if (sim_admin_sync(a, err, sizeof(err)) != 0) {
        keel_http_respond_error(resp, 500, "api_error", "listener_failed", err, NULL);
        goto done;
    }
    json_t *doc = sim_admin_faults_json(a, p);
    if (doc == NULL) {
        keel_http_respond_error(resp, 500, "api_error", "out_of_memory",
                                "the sandbox ran out of memory", NULL);
        goto done;
    }
    keel_http_respond_json(resp, 200, doc);
done:
    json_decref(body);
}

static void sim_admin_reset(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    (void)req;
    sim_admin *a = ctx;
    sim_state_reset(a->st);
    keel_log_info("sandbox reset: charges, refunds, scores and faults cleared, RNGs reseeded");
    char err[256];
    if (sim_admin_sync(a, err, sizeof(err)) != 0) {
        keel_http_respond_error(resp, 500, "api_error", "listener_failed", err, NULL);
        return;
    }
    keel_http_respond_json(resp, 200, json_pack("{s:b}", "reset", 1));
}

void sim_admin_routes(keel_http_server *srv, sim_admin *a)
{
    keel_http_server_route(srv, "GET", "/_sim/charges", sim_admin_charges, a);
    keel_http_server_route(srv, "GET", "/_sim/refunds", sim_admin_refunds, a);
    keel_http_server_route(srv, "GET", "/_sim/scores", sim_admin_scores, a);
    keel_http_server_route(srv, "GET", "/_sim/counts", sim_admin_counts, a);
    keel_http_server_route(srv, "GET", "/_sim/faults", sim_admin_faults_get, a);
    keel_http_server_route(srv, "POST", "/_sim/faults", sim_admin_faults_post, a);
    keel_http_server_route(srv, "POST", "/_sim/reset", sim_admin_reset, a);
}
