/* keel-gateway: wiring only. Configuration, migrations, the HTTP API, the outbox relay and the
 * payment-events consumer; SIGTERM stops them in that order and exits 0. */
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
#include "payment_events.h"
#include "payments_api.h"

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
};

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
    keel_config *cfg = keel_service_start(argc, argv, SERVICE,
                                          "the public HTTP API of keel: payments, idempotency",
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
    consumer_thread ct = {0};
    gateway_api api;
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

    gateway_api_init(&api, pool, keel_config_int(cfg, "KEEL_GATEWAY_DB_ACQUIRE_TIMEOUT_MS"));
    keel_http_server_options http_opts = {
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = (uint16_t)keel_config_int(cfg, "KEEL_HTTP_PORT"),
        .threads = (unsigned)keel_config_int(cfg, "KEEL_HTTP_THREADS"),
        .max_body_bytes = (size_t)keel_config_int(cfg, "KEEL_GATEWAY_MAX_BODY_BYTES"),
        .ready = pool_ready,
        .ready_ctx = pool,
    };
    srv = keel_http_server_new(&http_opts);
    gateway_api_register(&api, srv);
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
    keel_db_pool_free(pool);
    pool = NULL;
    keel_log_info("stopped (exit %d)", exit_code);
    keel_config_free(cfg);
    cfg = NULL;
    return exit_code;
}
