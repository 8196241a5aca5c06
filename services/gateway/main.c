/* keel-gateway: wiring only. Configuration, migrations, the HTTP API, the outbox relay, the
 * payment-events consumer and the idempotency-key pruner; SIGTERM stops them and exits 0. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "keel/config.h"
#include "keel/consume.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/kafka.h"
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

typedef struct consumer_thread {
    keel_consume_options opts;
    pthread_t thread;
    bool started;
} consumer_thread;

static void *consumer_main(void *arg)
{
    consumer_thread *ct = arg;
    keel_consume_run(&ct->opts);
    return NULL;
}

static bool pool_ready(void *ctx)
{
    return keel_db_pool_ping(ctx);
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE, "the public HTTP API of keel: payments, refunds, balances, webhooks",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *url = keel_config_string(cfg, "KEEL_DATABASE_URL");
    const char *brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS");
    const char *instance = keel_service_instance_id(cfg);
    keel_db_pool *pool = NULL;
    keel_db *consumer_db = NULL;
    keel_outbox_relay *relay = NULL;
    keel_consumer *consumer = NULL;
    keel_producer *dlq = NULL;
    keel_http_server *srv = NULL;
    gateway_pruner *pruner = NULL;
    gateway_balance_api *balance = NULL;
    consumer_thread ct = {0};
    gateway_api api;
    bool api_ready = false;
    gateway_events events;
    char err[512];
    int exit_code = 1;

    if (!keel_service_migrate(cfg, "gateway", gateway_migrations, gateway_migrations_count,
                              keel_config_int(cfg, "KEEL_GATEWAY_STARTUP_DB_TIMEOUT_MS"))) {
        goto done;
    }
    pool = keel_db_pool_new(url, keel_service_db_password(cfg), SERVICE,
                            (int)keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE"));

    keel_outbox_relay_options relay_opts = {
        .conninfo = url,
        .password = keel_service_db_password(cfg),
        .brokers = brokers,
        .service = "gateway",
        .instance_id = instance,
    };
    relay = keel_outbox_relay_start(&relay_opts, err, sizeof(err));
    if (relay == NULL) {
        keel_log_error("cannot start the outbox relay: %s", err);
        goto done;
    }

    const char *topics[] = {GATEWAY_PAYMENT_EVENTS_TOPIC};
    keel_consumer_options consumer_opts = {
        .brokers = brokers,
        .group_id = GATEWAY_CONSUMER_GROUP,
        .client_id = instance,
        .topics = topics,
        .topic_count = 1,
    };
    consumer = keel_consumer_new(&consumer_opts, err, sizeof(err));
    if (consumer == NULL) {
        keel_log_error("cannot create the payment-events consumer: %s", err);
        goto done;
    }
    keel_producer_options dlq_opts = {.brokers = brokers, .client_id = instance};
    dlq = keel_producer_new(&dlq_opts, err, sizeof(err));
    if (dlq == NULL) {
        keel_log_error("cannot create the dead-letter producer: %s", err);
        goto done;
    }
    consumer_db = keel_db_new(url, keel_service_db_password(cfg), SERVICE "-consumer");
    gateway_events_init(&events, consumer_db);
    ct.opts = (keel_consume_options){
        .consumer = consumer,
        .dlq_producer = dlq,
        .handler = gateway_payment_events_handle,
        .ctx = &events,
        .name = GATEWAY_INBOX_CONSUMER,
    };
    if (pthread_create(&ct.thread, NULL, consumer_main, &ct) != 0) {
        keel_log_error("cannot start the consumer thread");
        goto done;
    }
    ct.started = true;

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
    keel_http_server_options http_opts = {
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = (uint16_t)keel_config_int(cfg, "KEEL_HTTP_PORT"),
        .threads = (unsigned)keel_config_int(cfg, "KEEL_HTTP_THREADS"),
        .max_body_bytes = (size_t)keel_config_int(cfg, "KEEL_GATEWAY_MAX_BODY_BYTES"),
        .max_header_bytes = (size_t)keel_config_int(cfg, "KEEL_GATEWAY_MAX_HEADER_BYTES"),
        .connection_timeout_s = (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_CONNECTION_TIMEOUT_S"),
        .max_connections = (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_MAX_CONNECTIONS"),
        .max_connections_per_ip =
            (unsigned)keel_config_int(cfg, "KEEL_GATEWAY_MAX_CONNECTIONS_PER_IP"),
        .ready = pool_ready,
        .ready_ctx = pool,
    };
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

    while (!keel_shutdown_wait_ms(60000)) {
    }
    keel_log_info("stopping: HTTP server, consumer, outbox relay");
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
    if (ct.started) {
        pthread_join(ct.thread, NULL);
        ct.started = false;
    }
    keel_consumer_free(consumer);
    consumer = NULL;
    keel_producer_free(dlq);
    dlq = NULL;
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
    keel_log_info("stopped (exit %d)", exit_code);
    keel_config_free(cfg);
    cfg = NULL;
    return exit_code;
}
