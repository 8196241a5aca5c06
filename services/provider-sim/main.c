/* keel-provider-sim: wires the sandbox providers, their listeners and the admin server. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "keel/config.h"
#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/service.h"
#include "listener.h"
#include "provider_a.h"
#include "provider_b.h"
#include "risk.h"
#include "sim_state.h"

/* The start-up fault variables of one provider, KEEL_SIM_<P>_*. */
#define SIM_FAULT_SPECS(P, WHO)                                                                    \
    {"KEEL_SIM_" P "_ERROR_RATE", KEEL_CONFIG_STRING, "0",                                         \
     WHO ": share (0..1) of requests answered 500 before any work", false},                        \
        {"KEEL_SIM_" P "_LATENCY_MS", KEEL_CONFIG_INT, "0",                                        \
         WHO ": milliseconds slept before each request is handled (0..60000)", false},             \
        {"KEEL_SIM_" P "_LATENCY_JITTER_MS", KEEL_CONFIG_INT, "0",                                 \
         WHO ": random extra milliseconds on top of the latency (0..60000)", false},               \
        {"KEEL_SIM_" P "_LATENCY_DISTRIBUTION", KEEL_CONFIG_STRING, "uniform",                     \
         WHO ": how the jitter is spread: uniform, or exponential (mean = jitter)", false},        \
        {"KEEL_SIM_" P "_TIMEOUT_AFTER_CHARGE_RATE", KEEL_CONFIG_STRING, "0",                      \
         WHO ": share (0..1) of operations recorded and then held before the answer", false},      \
        {"KEEL_SIM_" P "_TIMEOUT_HOLD_MS", KEEL_CONFIG_INT, "30000",                               \
         WHO ": how long such an answer is held (0..120000)", false},                              \
        {"KEEL_SIM_" P "_DECLINE_RATE", KEEL_CONFIG_STRING, "0",                                   \
         WHO ": share (0..1) of otherwise good charges declined", false},                          \
    {                                                                                              \
        "KEEL_SIM_" P "_OUTAGE", KEEL_CONFIG_BOOL, "false",                                        \
            WHO ": start in an outage (listener closed) until POST /_sim/faults ends it", false    \
    }

static const keel_config_spec sim_specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18100",
     "admin port: /_sim/charges, /_sim/refunds, /_sim/scores, /_sim/counts, /_sim/faults, "
     "/_sim/reset, /metrics, /healthz, /readyz",
     false},
    {"KEEL_SIM_PROVIDER_A_PORT", KEEL_CONFIG_INT, "18101",
     "port of provider A's API (Stripe-shaped; closed while provider A is in an outage)", false},
    {"KEEL_SIM_PROVIDER_B_PORT", KEEL_CONFIG_INT, "18102",
     "port of provider B's API (Paystack-shaped; closed while provider B is in an outage)", false},
    {"KEEL_SIM_RISK_PORT", KEEL_CONFIG_INT, "18103",
     "port of the risk-scoring API (closed while risk is in an outage)", false},
    {"KEEL_SIM_PROVIDER_THREADS", KEEL_CONFIG_INT, "16",
     "worker threads per provider listener; each held timeout-after-charge request occupies one",
     false},
    {"KEEL_SIM_API_KEY", KEEL_CONFIG_STRING, "",
     "key provider calls must send as 'Authorization: Bearer <key>'; empty = no check "
     "(or KEEL_SIM_API_KEY_FILE)",
     true},
    {"KEEL_SIM_SEED", KEEL_CONFIG_INT, "1",
     "seed of the fault-injection RNG: one seed gives one sequence of fault decisions", false},
    SIM_FAULT_SPECS("A", "provider A"),
    SIM_FAULT_SPECS("B", "provider B"),
    SIM_FAULT_SPECS("RISK", "risk"),
};

/* One sandbox API and its listener. */
typedef struct sim_main_api {
    const char *name;     /* the provider's name in the state */
    const char *env;      /* KEEL_SIM_<env>_* */
    const char *port_var; /* its listener's port variable */
    sim_listener_routes_fn routes;
    sim_api_error_fn errors; /* the API's error shape */
    sim_api *api;            /* its routes' ctx */
    sim_faults faults;       /* at start */
    uint16_t port;
    sim_provider *provider; /* in the state */
    sim_listener *listener;
} sim_main_api;

/* Reads a rate variable. Returns 0, or -1 with a message in err. */
static int sim_main_rate(const keel_config *cfg, const char *name, double *out, char *err,
                         size_t err_len)
{
    const char *text = keel_config_string(cfg, name);
    if (sim_rate_parse(text, out) == 0)
        return 0;
    snprintf(err, err_len, "%s=\"%s\" is not a rate; use a number from 0 to 1, e.g. 0.25", name,
             text);
    return -1;
}

/* Reads a milliseconds variable. Returns 0, or -1 with a message in err. */
static int sim_main_ms(const keel_config *cfg, const char *name, int64_t max, int64_t *out,
                       char *err, size_t err_len)
{
    *out = keel_config_int(cfg, name);
    if (*out >= 0 && *out <= max)
        return 0;
    snprintf(err, err_len, "%s=%lld is out of range; use 0 to %lld", name, (long long)*out,
             (long long)max);
    return -1;
}

/* Reads KEEL_SIM_<env>_* into f. Returns 0, or -1 with a message in err. */
static int sim_main_faults(const keel_config *cfg, const char *env, sim_faults *f, char *err,
                           size_t err_len)
{
    char name[96];
    sim_faults_clear(f);
#define SIM_VAR(suffix) (snprintf(name, sizeof(name), "KEEL_SIM_%s_" suffix, env), name)
    if (sim_main_rate(cfg, SIM_VAR("ERROR_RATE"), &f->error_rate, err, err_len) != 0 ||
        sim_main_rate(cfg, SIM_VAR("TIMEOUT_AFTER_CHARGE_RATE"), &f->timeout_after_charge_rate, err,
                      err_len) != 0 ||
        sim_main_rate(cfg, SIM_VAR("DECLINE_RATE"), &f->decline_rate, err, err_len) != 0 ||
        sim_main_ms(cfg, SIM_VAR("LATENCY_MS"), SIM_LATENCY_MAX_MS, &f->latency_ms, err, err_len) !=
            0 ||
        sim_main_ms(cfg, SIM_VAR("LATENCY_JITTER_MS"), SIM_LATENCY_MAX_MS, &f->latency_jitter_ms,
                    err, err_len) != 0 ||
        sim_main_ms(cfg, SIM_VAR("TIMEOUT_HOLD_MS"), SIM_TIMEOUT_HOLD_MAX_MS, &f->timeout_hold_ms,
                    err, err_len) != 0)
        return -1;
    const char *dist = keel_config_string(cfg, SIM_VAR("LATENCY_DISTRIBUTION"));
    if (sim_latency_distribution_parse(dist, &f->latency_distribution) != 0) {
        snprintf(err, err_len, "%s=\"%s\" is not a distribution; use uniform or exponential", name,
                 dist);
        return -1;
    }
    f->outage = keel_config_bool(cfg, SIM_VAR("OUTAGE"));
#undef SIM_VAR
    return 0;
}

/* Reads a port variable. Returns 0, or -1 with a message in err. */
static int sim_main_port(const keel_config *cfg, const char *name, uint16_t *out, char *err,
                         size_t err_len)
{
    int64_t v = keel_config_int(cfg, name);
    if (v < 0 || v > 65535) {
        snprintf(err, err_len, "%s=%lld is not a TCP port; use 1 to 65535 (0 = any free port)",
                 name, (long long)v);
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, "keel-provider-sim",
        "sandbox payment providers (A: Stripe-shaped, B: Paystack-shaped) and a risk-scoring API "
        "with fault injection, for the local stack and tests",
        sim_specs, sizeof(sim_specs) / sizeof(sim_specs[0]));
    int exit_code = 2;
    char err[512];
    sim_state *st = NULL;

    sim_admin *admin = NULL;
    keel_http_server *srv = NULL;
    sim_main_api apis[] = {
        {.name = PROVIDER_A_NAME,
         .env = "A",
         .port_var = "KEEL_SIM_PROVIDER_A_PORT",
         .routes = provider_a_routes,
         .errors = keel_http_respond_error},
        {.name = PROVIDER_B_NAME,
         .env = "B",
         .port_var = "KEEL_SIM_PROVIDER_B_PORT",
         .routes = provider_b_routes,
         .errors = provider_b_respond_error},
        {.name = RISK_NAME,
         .env = "RISK",
         .port_var = "KEEL_SIM_RISK_PORT",
         .routes = risk_routes,
         .errors = keel_http_respond_error},
    };
    const size_t napis = sizeof(apis) / sizeof(apis[0]);

    uint16_t admin_port;
    int64_t threads = keel_config_int(cfg, "KEEL_HTTP_THREADS");
    int64_t provider_threads = keel_config_int(cfg, "KEEL_SIM_PROVIDER_THREADS");
    int bad = sim_main_port(cfg, "KEEL_HTTP_PORT", &admin_port, err, sizeof(err));
    for (size_t i = 0; bad == 0 && i < napis; i++) {
        bad = sim_main_port(cfg, apis[i].port_var, &apis[i].port, err, sizeof(err));
        if (bad == 0)
            bad = sim_main_faults(cfg, apis[i].env, &apis[i].faults, err, sizeof(err));
    }
    if (bad == 0 &&
        (threads < 1 || threads > 256 || provider_threads < 1 || provider_threads > 256)) {
        snprintf(err, sizeof(err),
                 "KEEL_HTTP_THREADS and KEEL_SIM_PROVIDER_THREADS must be 1 to 256");
        bad = -1;
    }
    if (bad != 0) {
        keel_log_error("configuration error: %s", err);
        goto failed;
    }
    exit_code = 1;
    /* From here every failure is out of memory unless it says otherwise. */
    snprintf(err, sizeof(err), "out of memory");

    const char *api_key = keel_config_string(cfg, "KEEL_SIM_API_KEY");
    st = sim_state_new((uint64_t)keel_config_int(cfg, "KEEL_SIM_SEED"), 0);
    admin = st != NULL ? sim_admin_new(st) : NULL;
    if (admin == NULL)
        goto failed;
    for (size_t i = 0; i < napis; i++) {
        apis[i].provider = sim_state_add_provider(st, apis[i].name, &apis[i].faults);
        if (apis[i].provider == NULL)
            goto failed;
        apis[i].api = sim_api_new(&(sim_api_options){
            .provider = apis[i].provider,
            .api_key = api_key,
            .metrics = keel_metrics_default(),
            .respond_error = apis[i].errors,
        });
        if (apis[i].api == NULL)
            goto failed;
        apis[i].listener = sim_listener_new(&(sim_listener_options){
            .name = apis[i].name,
            .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
            .port = apis[i].port,
            .threads = (unsigned)provider_threads,
            .routes = apis[i].routes,
            .routes_ctx = apis[i].api,
        });
        if (apis[i].listener == NULL ||
            sim_admin_add_listener(admin, apis[i].provider, apis[i].listener) != 0)
            goto failed;
    }
    /* Opens each provider listener unless it starts in an outage. */
    if (sim_admin_sync(admin, err, sizeof(err)) != 0)
        goto failed;

    srv = keel_http_server_new(&(keel_http_server_options){
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = admin_port,
        .threads = (unsigned)threads,
    });
    if (srv == NULL)
        goto failed;
    sim_admin_routes(srv, admin);
    if (keel_http_server_start(srv, err, sizeof(err)) != 0)
        goto failed;
    for (size_t i = 0; i < napis; i++)
        keel_log_info("%s on port %u%s", apis[i].name,
                      (unsigned)sim_listener_port(apis[i].listener),
                      apis[i].faults.outage ? " (closed: outage)" : "");
    keel_log_info("keel-provider-sim ready: admin on port %u",
                  (unsigned)keel_http_server_port(srv));

    keel_service_wait_for_stop(
        "held requests wake, then the admin server and provider listeners close");
    exit_code = 0;

failed:
    if (exit_code == 1)
        keel_log_error("cannot start the sandbox: %s", err);
    /* Wake held requests first so closing the listeners does not wait out their holds. */
    if (st != NULL)
        sim_state_interrupt(st);
    keel_http_server_free(srv);
    srv = NULL;
    for (size_t i = 0; i < napis; i++) {
        sim_listener_free(apis[i].listener);
        apis[i].listener = NULL;
    }
    sim_admin_free(admin);
    admin = NULL;
    for (size_t i = 0; i < napis; i++) {
        sim_api_free(apis[i].api);
        apis[i].api = NULL;
    }
    sim_state_free(st);
    st = NULL;
    return keel_service_exit(&cfg, exit_code);
}
