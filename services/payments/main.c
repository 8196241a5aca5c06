/* keel-payments: wiring only. Configuration, migrations, the providers behind their guards, the
 * risk client, the request consumer, the workers, the outbox relay and /metrics /healthz
 * /readyz; SIGTERM stops them in that order. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/config.h"
#include "keel/consume_thread.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/migrate.h"
#include "keel/outbox.h"
#include "keel/service.h"
#include "keel/shutdown.h"
#include "policy.h"
#include "provider_a.h"
#include "provider_b.h"
#include "provider_guard.h"
#include "request_intake.h"
#include "risk.h"
#include "worker.h"

#define SERVICE "keel-payments"
/* Database work around a provider call (intent, outcome) must fit in the lease too. */
#define LEASE_MARGIN_MS 1000

extern const keel_migration payments_migrations[];
extern const size_t payments_migrations_count;

static const keel_config_spec specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    KEEL_SERVICE_DB_CONFIG_SPECS,
    KEEL_SERVICE_KAFKA_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18110", "port of /metrics, /healthz and /readyz", false},
    {"KEEL_PAYMENTS_PROVIDER_URL", KEEL_CONFIG_STRING, NULL,
     "base URL of provider A (Stripe-shaped), e.g. http://127.0.0.1:18101", false},
    {"KEEL_PAYMENTS_PROVIDER_API_KEY", KEEL_CONFIG_STRING, NULL,
     "bearer key for provider A (or KEEL_PAYMENTS_PROVIDER_API_KEY_FILE)", true},
    {"KEEL_PAYMENTS_PROVIDER_B_URL", KEEL_CONFIG_STRING, "",
     "base URL of provider B (Paystack-shaped), e.g. http://127.0.0.1:18102; empty = no B", false},
    {"KEEL_PAYMENTS_PROVIDER_B_API_KEY", KEEL_CONFIG_STRING, "",
     "bearer key for provider B (or KEEL_PAYMENTS_PROVIDER_B_API_KEY_FILE)", true},
    {"KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS", KEEL_CONFIG_INT, "5000",
     "total time one provider call may take, connect included (both providers)", false},
    {"KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS", KEEL_CONFIG_INT, "1000",
     "time to connect to a provider", false},
    {"KEEL_PAYMENTS_ROUTES", KEEL_CONFIG_STRING, "",
     "providers to try per currency, primary first, e.g. "
     "\"default=provider_a,provider_b;ngn=provider_b,provider_a\"; empty = default=A[,B]",
     false},
    {"KEEL_PAYMENTS_PROVIDER_CALL_ATTEMPTS", KEEL_CONFIG_INT, "3",
     "calls one charge/refund may make at one provider while it answers not-processed", false},
    {"KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS", KEEL_CONFIG_INT, "100",
     "first backoff ceiling between those calls (full jitter, doubling)", false},
    {"KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS", KEEL_CONFIG_INT, "1000",
     "largest backoff between those calls", false},
    {"KEEL_PAYMENTS_RETRY_BUDGET_PERCENT", KEEL_CONFIG_INT, "20",
     "retries per provider may add at most this % of first calls ...", false},
    {"KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND", KEEL_CONFIG_INT, "1",
     "... plus this many retries per second", false},
    {"KEEL_PAYMENTS_BREAKER_WINDOW", KEEL_CONFIG_INT, "20",
     "circuit breaker: the last N calls to a provider are judged", false},
    {"KEEL_PAYMENTS_BREAKER_MIN_CALLS", KEEL_CONFIG_INT, "10",
     "circuit breaker: no verdict before this many calls in the window", false},
    {"KEEL_PAYMENTS_BREAKER_FAILURE_PERCENT", KEEL_CONFIG_INT, "50",
     "circuit breaker: opens when this % of the window failed (timeout, refused, 5xx, 429)", false},
    {"KEEL_PAYMENTS_BREAKER_SLOW_PERCENT", KEEL_CONFIG_INT, "100",
     "circuit breaker: opens when this % of the window was slow", false},
    {"KEEL_PAYMENTS_BREAKER_SLOW_CALL_MS", KEEL_CONFIG_INT, "3000",
     "circuit breaker: a call at least this long is slow", false},
    {"KEEL_PAYMENTS_BREAKER_OPEN_MS", KEEL_CONFIG_INT, "5000",
     "circuit breaker: how long it stays open before half-open probes", false},
    {"KEEL_PAYMENTS_BREAKER_HALF_OPEN_PROBES", KEEL_CONFIG_INT, "3",
     "circuit breaker: probes let through half-open; all must succeed to close", false},
    {"KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS", KEEL_CONFIG_INT, "300000",
     "how long an unknown charge/refund outcome is looked up before requires_review", false},
    {"KEEL_PAYMENTS_RISK_URL", KEEL_CONFIG_STRING, "",
     "base URL of the risk API, e.g. http://127.0.0.1:18103; empty = local rules only", false},
    {"KEEL_PAYMENTS_RISK_API_KEY", KEEL_CONFIG_STRING, "",
     "bearer key for the risk API (or KEEL_PAYMENTS_RISK_API_KEY_FILE)", true},
    {"KEEL_PAYMENTS_RISK_TIMEOUT_MS", KEEL_CONFIG_INT, "500",
     "a risk answer slower than this is not waited for: local rules decide", false},
    {"KEEL_PAYMENTS_LOCAL_RISK_LIMITS", KEEL_CONFIG_STRING, "usd=500000;default=1000000",
     "local risk rules: the largest amount (minor units) per currency, with a default", false},
    {"KEEL_PAYMENTS_LEASE_MS", KEEL_CONFIG_INT, "30000",
     "how long a worker holds a payment; must cover a charge's calls and backoffs + 1000 ms",
     false},
    {"KEEL_PAYMENTS_WORKERS", KEEL_CONFIG_INT, "2", "payment worker threads", false},
    {"KEEL_PAYMENTS_MAX_ATTEMPTS", KEEL_CONFIG_INT, "8",
     "rounds in which no provider processed a charge before it fails provider_unavailable", false},
    {"KEEL_PAYMENTS_REFUND_WAIT_RETRIES", KEEL_CONFIG_INT, "8",
     "retries of a RefundRequested whose payment is not known yet before it is refused", false},
    {"KEEL_PAYMENTS_STARTUP_DB_TIMEOUT_MS", KEEL_CONFIG_INT, "60000",
     "how long start-up waits for PostgreSQL before giving up (exit 1)", false},
    {"KEEL_PAYMENTS_REQUESTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-requests.v1",
     "topic of PaymentRequested (its .dlq twin must exist)", false},
    {"KEEL_PAYMENTS_EVENTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-events.v1",
     "topic PaymentSucceeded / PaymentFailed are published to", false},
    {"KEEL_PAYMENTS_CONSUMER_GROUP", KEEL_CONFIG_STRING, "keel-payments",
     "Kafka consumer group of the request consumer", false},
};

/* An integer setting that must lie in [lo, hi]; logs and returns false otherwise. */
static bool int_in(const keel_config *cfg, const char *name, int64_t lo, int64_t hi)
{
    int64_t v = keel_config_int(cfg, name);
    if (v < lo || v > hi) {
        keel_log_error("%s=%lld must be %lld..%lld", name, (long long)v, (long long)lo,
                       (long long)hi);
        return false;
    }
    return true;
}

/* Checks the numbers the table cannot: ranges, and the lease against the longest work done
 * under one renewal. */
static bool check_config(const keel_config *cfg)
{
    static const struct {
        const char *name;
        int64_t lo, hi;
    } ranges[] = {
        {"KEEL_HTTP_PORT", 0, 65535},
        {"KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS", 1, 600000},
        {"KEEL_PAYMENTS_PROVIDER_CALL_ATTEMPTS", 1, 10},
        {"KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS", 0, 60000},
        {"KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS", 0, 60000},
        {"KEEL_PAYMENTS_RETRY_BUDGET_PERCENT", 0, 1000},
        {"KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND", 0, 10000},
        {"KEEL_PAYMENTS_BREAKER_WINDOW", 1, 10000},
        {"KEEL_PAYMENTS_BREAKER_MIN_CALLS", 1, 10000},
        {"KEEL_PAYMENTS_BREAKER_FAILURE_PERCENT", 1, 100},
        {"KEEL_PAYMENTS_BREAKER_SLOW_PERCENT", 1, 100},
        {"KEEL_PAYMENTS_BREAKER_SLOW_CALL_MS", 1, 600000},
        {"KEEL_PAYMENTS_BREAKER_OPEN_MS", 1, 3600000},
        {"KEEL_PAYMENTS_BREAKER_HALF_OPEN_PROBES", 1, 100},
        {"KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS", 1, 7 * 86400000LL},
        {"KEEL_PAYMENTS_RISK_TIMEOUT_MS", 1, 60000},
        {"KEEL_PAYMENTS_WORKERS", 1, 64},
        {"KEEL_PAYMENTS_MAX_ATTEMPTS", 1, 1000},
        {"KEEL_PAYMENTS_REFUND_WAIT_RETRIES", 1, 1000},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (!int_in(cfg, ranges[i].name, ranges[i].lo, ranges[i].hi)) {
            return false;
        }
    }
    int64_t timeout = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS");
    int64_t connect = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS");
    int64_t calls = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CALL_ATTEMPTS");
    int64_t base = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS");
    int64_t cap = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS");
    int64_t risk = keel_config_int(cfg, "KEEL_PAYMENTS_RISK_TIMEOUT_MS");
    int64_t lease = keel_config_int(cfg, "KEEL_PAYMENTS_LEASE_MS");
    int64_t workers = keel_config_int(cfg, "KEEL_PAYMENTS_WORKERS");
    int64_t pool = keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE");

    if (connect < 1 || connect > timeout) {
        keel_log_error("KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS=%lld must be 1..%lld (the "
                       "total timeout)",
                       (long long)connect, (long long)timeout);
        return false;
    }
    if (cap < base) {
        keel_log_error("KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS=%lld must be >= "
                       "KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS=%lld",
                       (long long)cap, (long long)base);
        return false;
    }
    /* One renewal of the lease covers one provider's calls and backoffs (the intent renews
     * it), or the risk call. */
    int64_t longest = calls * timeout + (calls - 1) * cap;
    if (risk > longest) {
        longest = risk;
    }
    if (lease < longest + LEASE_MARGIN_MS) {
        /* Otherwise a lease could expire while its holder still waits for a provider, and a
         * second worker would act on the same payment at the same time. */
        keel_log_error("KEEL_PAYMENTS_LEASE_MS=%lld is too short: one charge may take %lld ms "
                       "(%lld calls of KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS=%lld plus backoffs of "
                       "up to %lld ms) and the lease must exceed that by %d ms; raise the lease "
                       "or lower the timeout or attempts",
                       (long long)lease, (long long)longest, (long long)calls, (long long)timeout,
                       (long long)cap, LEASE_MARGIN_MS);
        return false;
    }
    if (pool < workers + 1) {
        keel_log_error("KEEL_DATABASE_POOL_SIZE=%lld is too small: each of the %lld workers and "
                       "the consumer needs a connection; set it to at least %lld",
                       (long long)pool, (long long)workers, (long long)(workers + 1));
        return false;
    }
    return true;
}

/* Everything built from the configuration that the workers borrow. */
typedef struct payments_setup {
    payments_guard *guards[PAYMENTS_MAX_PROVIDERS];
    int n_guards;
    payments_routes routes;
    payments_risk_limits limits;
    payments_risk *risk;
} payments_setup;

static void setup_clear(payments_setup *s)
{
    for (int i = 0; i < s->n_guards; i++) {
        payments_guard_free(s->guards[i]);
        s->guards[i] = NULL;
    }
    s->n_guards = 0;
    payments_risk_free(s->risk);
    s->risk = NULL;
}

static keel_breaker_options breaker_options(const keel_config *cfg)
{
    return (keel_breaker_options){
        .window_size = (int)keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_WINDOW"),
        .min_calls = (int)keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_MIN_CALLS"),
        .failure_rate = (double)keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_FAILURE_PERCENT") / 100,
        .slow_rate = (double)keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_SLOW_PERCENT") / 100,
        .slow_call_ms = keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_SLOW_CALL_MS"),
        .open_ms = keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_OPEN_MS"),
        .half_open_probes = (int)keel_config_int(cfg, "KEEL_PAYMENTS_BREAKER_HALF_OPEN_PROBES"),
    };
}

/* Puts provider (NULL: its constructor failed, err says why) behind a guard. */
static bool setup_add(payments_setup *s, const keel_config *cfg, payments_provider *provider,
                      char *err, size_t err_len)
{
    if (provider == NULL) {
        return false;
    }
    payments_guard_options go = {
        .call_attempts = (int)keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CALL_ATTEMPTS"),
        .backoff_base_ms = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS"),
        .backoff_cap_ms = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS"),
        .budget_ratio = (double)keel_config_int(cfg, "KEEL_PAYMENTS_RETRY_BUDGET_PERCENT") / 100,
        .budget_min_per_second =
            (double)keel_config_int(cfg, "KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND"),
        .breaker = breaker_options(cfg),
    };
    payments_guard *g = payments_guard_new(provider, &go, err, err_len);
    if (g == NULL) {
        return false;
    }
    s->guards[s->n_guards++] = g;
    return true;
}

/* Providers, routes and the risk client from the configuration. */
static bool setup_build(payments_setup *s, const keel_config *cfg, char *err, size_t err_len)
{
    long timeout = (long)keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS");
    long connect = (long)keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS");
    payments_provider_a_options a = {
        .base_url = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_URL"),
        .api_key = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_API_KEY"),
        .timeout_ms = timeout,
        .connect_timeout_ms = connect,
    };
    if (!setup_add(s, cfg, payments_provider_a_new(&a, err, err_len), err, err_len)) {
        return false;
    }
    const char *b_url = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_B_URL");
    if (b_url[0] != '\0') {
        payments_provider_b_options b = {
            .base_url = b_url,
            .api_key = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_B_API_KEY"),
            .timeout_ms = timeout,
            .connect_timeout_ms = connect,
        };
        if (!setup_add(s, cfg, payments_provider_b_new(&b, err, err_len), err, err_len)) {
            return false;
        }
    }
    const char *names[PAYMENTS_MAX_PROVIDERS];
    char default_route[128] = "default=";
    for (int i = 0; i < s->n_guards; i++) {
        names[i] = payments_guard_name(s->guards[i]);
        strncat(default_route, names[i], sizeof(default_route) - strlen(default_route) - 2);
        if (i + 1 < s->n_guards) {
            strcat(default_route, ",");
        }
    }
    const char *routes = keel_config_string(cfg, "KEEL_PAYMENTS_ROUTES");
    if (payments_routes_parse(routes[0] != '\0' ? routes : default_route, names, s->n_guards,
                              &s->routes, err, err_len) != 0) {
        return false;
    }
    if (payments_risk_limits_parse(keel_config_string(cfg, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS"),
                                   &s->limits, err, err_len) != 0) {
        return false;
    }
    long risk_timeout = (long)keel_config_int(cfg, "KEEL_PAYMENTS_RISK_TIMEOUT_MS");
    payments_risk_options ro = {
        .url = keel_config_string(cfg, "KEEL_PAYMENTS_RISK_URL"),
        .api_key = keel_config_string(cfg, "KEEL_PAYMENTS_RISK_API_KEY"),
        .timeout_ms = risk_timeout,
        .connect_timeout_ms = connect < risk_timeout ? connect : risk_timeout,
        .limits = &s->limits,
        .breaker = breaker_options(cfg),
    };
    s->risk = payments_risk_new(&ro, err, err_len);
    return s->risk != NULL;
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE,
        "the payment state machine: risk check, charges and refunds at providers behind "
        "breakers, safe fallback, outcomes through the outbox",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *instance = keel_service_instance_id(cfg);
    const char *events_topic = keel_config_string(cfg, "KEEL_PAYMENTS_EVENTS_TOPIC");
    keel_db_pool *pool = NULL;
    payments_setup setup = {0};
    payments_workers *workers = NULL;
    keel_outbox_relay *relay = NULL;
    keel_consume_thread *consumer = NULL;
    keel_http_server *srv = NULL;
    payments_intake intake = {0};
    char err[512];
    int exit_code = 1;

    if (!check_config(cfg)) {
        exit_code = 2;
        goto done;
    }
    if (!setup_build(&setup, cfg, err, sizeof(err))) {
        keel_log_error("%s", err);
        exit_code = 2;
        goto done;
    }
    if (!keel_service_migrate(cfg, "payments", payments_migrations, payments_migrations_count,
                              keel_config_int(cfg, "KEEL_PAYMENTS_STARTUP_DB_TIMEOUT_MS")) ||
        (pool = keel_service_db_pool_new(cfg, SERVICE)) == NULL) {
        goto done;
    }

    if ((relay = keel_service_relay_start(cfg, "payments")) == NULL) {
        goto done;
    }

    payments_workers_options w_opts = {
        .pool = pool,
        .guards = setup.guards,
        .n_guards = setup.n_guards,
        .routes = &setup.routes,
        .risk = setup.risk,
        .instance_id = instance,
        .events_topic = events_topic,
        .workers = (int)keel_config_int(cfg, "KEEL_PAYMENTS_WORKERS"),
        .lease_ms = keel_config_int(cfg, "KEEL_PAYMENTS_LEASE_MS"),
        .max_attempts = (int)keel_config_int(cfg, "KEEL_PAYMENTS_MAX_ATTEMPTS"),
        .unknown_deadline_ms = keel_config_int(cfg, "KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS"),
    };
    workers = payments_workers_start(&w_opts, err, sizeof(err));
    if (workers == NULL) {
        keel_log_error("cannot start the payment workers: %s", err);
        goto done;
    }

    intake = (payments_intake){
        .pool = pool,
        .on_stored = payments_workers_notify,
        .on_stored_arg = workers,
        .events_topic = events_topic,
        .refund_wait_retries = (int)keel_config_int(cfg, "KEEL_PAYMENTS_REFUND_WAIT_RETRIES"),
    };
    keel_consume_thread_options consumer_opts = {
        .group_id = keel_config_string(cfg, "KEEL_PAYMENTS_CONSUMER_GROUP"),
        .topic = keel_config_string(cfg, "KEEL_PAYMENTS_REQUESTS_TOPIC"),
        .name = PAYMENTS_INBOX_CONSUMER,
        .handler = payments_intake_handle,
        .ctx = &intake,
    };
    if ((consumer = keel_service_consume_start(cfg, &consumer_opts)) == NULL) {
        goto done;
    }

    keel_http_server_options http_opts = keel_service_http_options(cfg, pool);
    srv = keel_http_server_new(&http_opts);
    if (srv == NULL || keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the HTTP server: %s", srv == NULL ? "out of memory" : err);
        goto done;
    }
    keel_log_info(
        "listening on %s:%u; %d workers, %d provider(s), risk API %s", http_opts.address,
        keel_http_server_port(srv), w_opts.workers, setup.n_guards,
        keel_config_string(cfg, "KEEL_PAYMENTS_RISK_URL")[0] != '\0' ? "on" : "off (local rules)");

    keel_service_wait_for_stop("consumer, then workers (each finishes what it holds), then relay");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    keel_consume_thread_stop(consumer);
    consumer = NULL;
    payments_workers_stop(workers);
    workers = NULL;
    /* After the workers: every outcome they committed is in the outbox for this round. */
    keel_outbox_relay_stop(relay);
    relay = NULL;
    keel_http_server_free(srv);
    srv = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    setup_clear(&setup);
    return keel_service_exit(&cfg, exit_code);
}
