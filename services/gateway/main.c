/* keel-gateway: wiring only. Configuration, migrations, the HTTP API, the outbox relay, the
 * payment-events consumer and the idempotency-key pruner; SIGTERM stops them and exits 0. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "keel/config.h"
#include "keel/consume_thread.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/migrate.h"
#include "keel/outbox.h"
#include "keel/service.h"
#include "keel/shutdown.h"
#include "api.h"
#include "balance_api.h"
#include "idempotency_pruner.h"
#include "payment_events.h"
#include "payments_api.h"
#include "webhooks_api.h"

#define SERVICE "keel-gateway"

extern const keel_migration gateway_migrations[];
extern const size_t gateway_migrations_count;

static const keel_config_spec specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    KEEL_SERVICE_DB_CONFIG_SPECS,
    KEEL_SERVICE_KAFKA_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18080",
     "port of the public API, /metrics, /healthz and /readyz", false},
    {"KEEL_GATEWAY_MAX_BODY_BYTES", KEEL_CONFIG_INT, "65536",
     "largest request body accepted; larger ones get 413", false},
    {"KEEL_GATEWAY_DB_ACQUIRE_TIMEOUT_MS", KEEL_CONFIG_INT, "2000",
     "how long a request waits for a free database connection before answering 503", false},
    {"KEEL_GATEWAY_STARTUP_DB_TIMEOUT_MS", KEEL_CONFIG_INT, "60000",
     "how long start-up waits for PostgreSQL before giving up (exit 1)", false},
    {"KEEL_GATEWAY_DB_MAX_WAITERS", KEEL_CONFIG_INT, "32",
     "requests that may wait for a database connection at once; more get 503 at once", false},
    {"KEEL_GATEWAY_RATE_LIMIT_PER_S", KEEL_CONFIG_STRING, "100",
     "requests per second an API key may make, unless the key has its own limit (keelctl "
     "apikey limit)",
     false},
    {"KEEL_GATEWAY_RATE_LIMIT_BURST", KEEL_CONFIG_STRING, "200",
     "requests an idle API key may make at once (the token bucket's size)", false},
    {"KEEL_GATEWAY_IDEMPOTENCY_LEASE_MS", KEEL_CONFIG_INT, "30000",
     "how long an in-flight Idempotency-Key blocks its retries (409) before a retry may take "
     "it over, e.g. after a crash",
     false},
    {"KEEL_GATEWAY_IDEMPOTENCY_PRUNE_INTERVAL_MS", KEEL_CONFIG_INT, "60000",
     "how often Idempotency-Keys past their 24 hours are deleted", false},
    {"KEEL_GATEWAY_MAX_HEADER_BYTES", KEEL_CONFIG_INT, "16384",
     "largest request line plus headers accepted; larger ones get 431", false},
    {"KEEL_GATEWAY_CONNECTION_TIMEOUT_S", KEEL_CONFIG_INT, "15",
     "idle or slow connections are closed after this many seconds", false},
    {"KEEL_GATEWAY_MAX_CONNECTIONS", KEEL_CONFIG_INT, "1024",
     "open connections the gateway accepts in total", false},
    {"KEEL_GATEWAY_MAX_CONNECTIONS_PER_IP", KEEL_CONFIG_INT, "64",
     "open connections one client address may hold; further ones are refused", false},
    GATEWAY_WEBHOOKS_CONFIG_SPECS,
    GATEWAY_BALANCE_CONFIG_SPECS,
};

/* Reads a positive decimal number (rates may be fractional); false for anything else. */
static bool config_positive(const keel_config *cfg, const char *name, double *out)
{
    const char *text = keel_config_string(cfg, name);
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v > 0) || v > 1e6) {
        keel_log_error("%s=%s is not a positive number up to 1000000", name, text);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE, "the public HTTP API of keel: payments, refunds, balances, webhooks",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *url = keel_config_string(cfg, "KEEL_DATABASE_URL");
    keel_db_pool *pool = NULL;
    keel_db *consumer_db = NULL;
    keel_outbox_relay *relay = NULL;
    keel_consume_thread *consumer = NULL;
    keel_http_server *srv = NULL;
    gateway_pruner *pruner = NULL;
    gateway_balance_api *balance = NULL;
    gateway_api api;
    bool api_ready = false;
    gateway_events events;
    char err[512];
    int exit_code = 1;

    if (!keel_service_migrate(cfg, "gateway", gateway_migrations, gateway_migrations_count,
                              keel_config_int(cfg, "KEEL_GATEWAY_STARTUP_DB_TIMEOUT_MS")) ||
        (pool = keel_service_db_pool_new(cfg, SERVICE)) == NULL) {
        goto done;
    }

    if ((relay = keel_service_relay_start(cfg, "gateway")) == NULL) {
        goto done;
    }

    consumer_db = keel_db_new(url, keel_service_db_password(cfg), SERVICE "-consumer");
    gateway_events_init(&events, consumer_db);
    keel_consume_thread_options consumer_opts = {
        .group_id = GATEWAY_CONSUMER_GROUP,
        .topic = GATEWAY_PAYMENT_EVENTS_TOPIC,
        .name = GATEWAY_INBOX_CONSUMER,
        .handler = gateway_payment_events_handle,
        .ctx = &events,
    };
    if ((consumer = keel_service_consume_start(cfg, &consumer_opts)) == NULL) {
        goto done;
    }

    pruner = gateway_pruner_start(
        url, keel_service_db_password(cfg),
        keel_config_int(cfg, "KEEL_GATEWAY_IDEMPOTENCY_PRUNE_INTERVAL_MS"), err, sizeof(err));
    if (pruner == NULL) {
        keel_log_error("cannot start the idempotency pruner: %s", err);
        goto done;
    }

    gateway_api_init(&api, pool, keel_config_int(cfg, "KEEL_GATEWAY_DB_ACQUIRE_TIMEOUT_MS"));
    api_ready = true;
    api.settings.max_db_waiters = (int)keel_config_int(cfg, "KEEL_GATEWAY_DB_MAX_WAITERS");
    api.settings.idempotency_lease_ms = keel_config_int(cfg, "KEEL_GATEWAY_IDEMPOTENCY_LEASE_MS");
    if (!config_positive(cfg, "KEEL_GATEWAY_RATE_LIMIT_PER_S", &api.settings.rate_per_s) ||
        !config_positive(cfg, "KEEL_GATEWAY_RATE_LIMIT_BURST", &api.settings.burst)) {
        goto done;
    }
    keel_http_server_options http_opts = keel_service_http_options(cfg, pool);
    http_opts.max_body_bytes = (size_t)keel_config_int(cfg, "KEEL_GATEWAY_MAX_BODY_BYTES");
    http_opts.max_header_bytes = (size_t)keel_config_int(cfg, "KEEL_GATEWAY_MAX_HEADER_BYTES");
    http_opts.connection_timeout_s =
        (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_CONNECTION_TIMEOUT_S");
    http_opts.max_connections = (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_MAX_CONNECTIONS");
    http_opts.max_connections_per_ip =
        (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_MAX_CONNECTIONS_PER_IP");
    srv = keel_http_server_new(&http_opts);
    gateway_api_register(&api, srv);
    if (!gateway_webhooks_api_register(&api, srv, cfg)) {
        goto done;
    }
    if ((balance = gateway_balance_api_register(&api, srv, cfg)) == NULL) {
        goto done;
    }
    if (keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the HTTP server: %s", err);
        goto done;
    }

    keel_service_wait_for_stop("HTTP server, consumer, outbox relay");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    keel_http_server_free(srv);
    srv = NULL;
    gateway_balance_api_free(balance);
    balance = NULL;
    gateway_pruner_stop(pruner);
    pruner = NULL;
    keel_consume_thread_stop(consumer);
    consumer = NULL;
    keel_outbox_relay_stop(relay);
    relay = NULL;
    keel_db_free(consumer_db);
    consumer_db = NULL;
    if (api_ready) {
        gateway_api_free(&api);
        api_ready = false;
    }
    keel_db_pool_free(pool);
    pool = NULL;
    return keel_service_exit(&cfg, exit_code);
}
