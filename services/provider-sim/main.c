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
#include "keel/shutdown.h"
#include "listener.h"
#include "provider_a.h"
#include "sim_state.h"

static const keel_config_spec sim_specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18100",
     "admin port: /_sim/charges, /_sim/faults, /_sim/reset, /metrics, /healthz, /readyz", false},
    {"KEEL_SIM_PROVIDER_A_PORT", KEEL_CONFIG_INT, "18101",
     "port of provider A's API (closed while provider A is in a simulated outage)", false},
    {"KEEL_SIM_PROVIDER_THREADS", KEEL_CONFIG_INT, "16",
     "worker threads per provider listener; each held timeout-after-charge request occupies one",
     false},
    {"KEEL_SIM_API_KEY", KEEL_CONFIG_STRING, "",
     "key provider calls must send as 'Authorization: Bearer <key>'; empty = no check "
     "(or KEEL_SIM_API_KEY_FILE)",
     true},
    {"KEEL_SIM_SEED", KEEL_CONFIG_INT, "1",
     "seed of the fault-injection RNG: one seed gives one sequence of fault decisions", false},
    {"KEEL_SIM_A_ERROR_RATE", KEEL_CONFIG_STRING, "0",
     "provider A: share (0..1) of requests answered 500 before any work", false},
    {"KEEL_SIM_A_LATENCY_MS", KEEL_CONFIG_INT, "0",
     "provider A: milliseconds slept before each request is handled (0..60000)", false},
    {"KEEL_SIM_A_TIMEOUT_AFTER_CHARGE_RATE", KEEL_CONFIG_STRING, "0",
     "provider A: share (0..1) of charges recorded and then held 30 s before the answer", false},
    {"KEEL_SIM_A_OUTAGE", KEEL_CONFIG_BOOL, "false",
     "provider A: start in an outage (listener closed) until POST /_sim/faults ends it", false},
};

/* Reads KEEL_SIM_<letter>_* into f. Returns 0, or -1 with a message in err. */
static int sim_main_faults(const keel_config *cfg, char letter, sim_faults *f, char *err,
                           size_t err_len)
{
    char name[64];
    sim_faults_clear(f);
    snprintf(name, sizeof(name), "KEEL_SIM_%c_ERROR_RATE", letter);
    const char *text = keel_config_string(cfg, name);
    if (sim_rate_parse(text, &f->error_rate) != 0)
        goto bad_rate;
    snprintf(name, sizeof(name), "KEEL_SIM_%c_TIMEOUT_AFTER_CHARGE_RATE", letter);
    text = keel_config_string(cfg, name);
    if (sim_rate_parse(text, &f->timeout_after_charge_rate) != 0)
        goto bad_rate;
    snprintf(name, sizeof(name), "KEEL_SIM_%c_LATENCY_MS", letter);
    f->latency_ms = keel_config_int(cfg, name);
    if (f->latency_ms < 0 || f->latency_ms > SIM_LATENCY_MAX_MS) {
        snprintf(err, err_len, "%s=%lld is out of range; use 0 to %d", name,
                 (long long)f->latency_ms, SIM_LATENCY_MAX_MS);
        return -1;
    }
    snprintf(name, sizeof(name), "KEEL_SIM_%c_OUTAGE", letter);
    f->outage = keel_config_bool(cfg, name);
    return 0;
bad_rate:
    snprintf(err, err_len, "%s=\"%s\" is not a rate; use a number from 0 to 1, e.g. 0.25", name,
             text);
    return -1;
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
        "sandbox payment providers with fault injection, for the local stack and tests", sim_specs,
        sizeof(sim_specs) / sizeof(sim_specs[0]));
    int exit_code = 2;
    char err[512];
    sim_state *st = NULL;
    provider_a *pa = NULL;
    sim_listener *listener_a = NULL;
    sim_admin *admin = NULL;
    keel_http_server *srv = NULL;

    uint16_t admin_port, port_a;
    sim_faults faults_a;
    int64_t threads = keel_config_int(cfg, "KEEL_HTTP_THREADS");
    int64_t provider_threads = keel_config_int(cfg, "KEEL_SIM_PROVIDER_THREADS");
    if (sim_main_port(cfg, "KEEL_HTTP_PORT", &admin_port, err, sizeof(err)) != 0 ||
        sim_main_port(cfg, "KEEL_SIM_PROVIDER_A_PORT", &port_a, err, sizeof(err)) != 0 ||
        sim_main_faults(cfg, 'A', &faults_a, err, sizeof(err)) != 0) {
        keel_log_error("configuration error: %s", err);
        goto done;
    }
    if (threads < 1 || threads > 256 || provider_threads < 1 || provider_threads > 256) {
        keel_log_error("configuration error: KEEL_HTTP_THREADS and KEEL_SIM_PROVIDER_THREADS "
                       "must be 1 to 256");
        goto done;
    }
    exit_code = 1;

    st = sim_state_new((uint64_t)keel_config_int(cfg, "KEEL_SIM_SEED"), 0);
    sim_provider *state_a =
        st != NULL ? sim_state_add_provider(st, PROVIDER_A_NAME, &faults_a) : NULL;
    if (state_a == NULL) {
        keel_log_error("cannot create the sandbox state (out of memory)");
        goto done;
    }
    pa = provider_a_new(&(provider_a_options){
        .provider = state_a,
        .api_key = keel_config_string(cfg, "KEEL_SIM_API_KEY"),
        .metrics = keel_metrics_default(),
    });
    listener_a = sim_listener_new(&(sim_listener_options){
        .name = PROVIDER_A_NAME,
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = port_a,
        .threads = (unsigned)provider_threads,
        .routes = provider_a_routes,
        .routes_ctx = pa,
    });
    admin = sim_admin_new(st);
    if (pa == NULL || listener_a == NULL || admin == NULL ||
        sim_admin_add_listener(admin, state_a, listener_a) != 0) {
        keel_log_error("cannot create provider A (out of memory)");
        goto done;
    }
    /* Opens each provider listener unless it starts in an outage. */
    if (sim_admin_sync(admin, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the provider listeners: %s", err);
        goto done;
    }

    srv = keel_http_server_new(&(keel_http_server_options){
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = admin_port,
        .threads = (unsigned)threads,
    });
    if (srv == NULL) {
        keel_log_error("cannot create the admin HTTP server (out of memory)");
        goto done;
    }
    sim_admin_routes(srv, admin);
    if (keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the admin HTTP server: %s", err);
        goto done;
    }
    keel_log_info("keel-provider-sim ready: admin on port %u, provider_a on port %u%s",
                  (unsigned)keel_http_server_port(srv), (unsigned)sim_listener_port(listener_a),
                  faults_a.outage ? " (closed: outage)" : "");

    while (!keel_shutdown_wait_ms(60000)) {
    }
    keel_log_info("keel-provider-sim stopping");
    exit_code = 0;

done:
    /* Wake held requests first so closing the listeners does not wait out their holds. */
    if (st != NULL)
        sim_state_interrupt(st);
    keel_http_server_free(srv);
    srv = NULL;
    sim_listener_free(listener_a);
    listener_a = NULL;
    sim_admin_free(admin);
    admin = NULL;
    provider_a_free(pa);
    pa = NULL;
    sim_state_free(st);
    st = NULL;
    keel_config_free(cfg);
    cfg = NULL;
    return exit_code;
}
