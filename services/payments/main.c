/* keel-payments: wiring only. Configuration, migrations, the request consumer, the payment
 * workers, the outbox relay and /metrics /healthz /readyz; SIGTERM stops them in that order. */
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
#include "provider_a.h"
#include "request_intake.h"
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
     "base URL of provider A, e.g. http://127.0.0.1:18101", false},
    {"KEEL_PAYMENTS_PROVIDER_API_KEY", KEEL_CONFIG_STRING, NULL,
     "bearer key for provider A (or KEEL_PAYMENTS_PROVIDER_API_KEY_FILE)", true},
    {"KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS", KEEL_CONFIG_INT, "5000",
     "total time one provider call may take, connect included", false},
    {"KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS", KEEL_CONFIG_INT, "1000",
     "time to connect to the provider", false},
    {"KEEL_PAYMENTS_LEASE_MS", KEEL_CONFIG_INT, "30000",
     "how long a worker holds a payment; must exceed the provider timeout by 1000 ms", false},
    {"KEEL_PAYMENTS_WORKERS", KEEL_CONFIG_INT, "2", "payment worker threads", false},
    {"KEEL_PAYMENTS_MAX_ATTEMPTS", KEEL_CONFIG_INT, "8",
     "provider attempts without an outcome before a payment fails or goes to review", false},
    {"KEEL_PAYMENTS_STARTUP_DB_TIMEOUT_MS", KEEL_CONFIG_INT, "60000",
     "how long start-up waits for PostgreSQL before giving up (exit 1)", false},
    {"KEEL_PAYMENTS_REQUESTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-requests.v1",
     "topic of PaymentRequested (its .dlq twin must exist)", false},
    {"KEEL_PAYMENTS_EVENTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-events.v1",
     "topic PaymentSucceeded / PaymentFailed are published to", false},
    {"KEEL_PAYMENTS_CONSUMER_GROUP", KEEL_CONFIG_STRING, "keel-payments",
     "Kafka consumer group of the request consumer", false},
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
    return !keel_shutdown_requested() && keel_db_pool_ping(ctx);
}

/* Checks the numbers the table cannot: ranges, and the lease against the provider timeout. */
static bool check_config(const keel_config *cfg)
{
    int64_t port = keel_config_int(cfg, "KEEL_HTTP_PORT");
    int64_t timeout = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS");
    int64_t connect = keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS");
    int64_t lease = keel_config_int(cfg, "KEEL_PAYMENTS_LEASE_MS");
    int64_t workers = keel_config_int(cfg, "KEEL_PAYMENTS_WORKERS");
    int64_t attempts = keel_config_int(cfg, "KEEL_PAYMENTS_MAX_ATTEMPTS");
    int64_t pool = keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE");

    if (port < 0 || port > 65535) {
        keel_log_error("KEEL_HTTP_PORT=%lld is not a port (0..65535)", (long long)port);
        return false;
    }
    if (timeout < 1 || timeout > 600000 || connect < 1 || connect > timeout) {
        keel_log_error("KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS=%lld and "
                       "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS=%lld must satisfy 1 <= connect "
                       "<= total <= 600000",
                       (long long)timeout, (long long)connect);
        return false;
    }
    if (lease < timeout + LEASE_MARGIN_MS) {
        /* Otherwise a lease could expire while its holder still waits for the provider, and a
         * second worker would act on the same payment at the same time. */
        keel_log_error("KEEL_PAYMENTS_LEASE_MS=%lld must exceed KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS"
                       "=%lld by at least %d ms, so a worker's lease cannot expire during its "
                       "provider call: raise the lease or lower the timeout",
                       (long long)lease, (long long)timeout, LEASE_MARGIN_MS);
        return false;
    }
    if (workers < 1 || workers > 64) {
        keel_log_error("KEEL_PAYMENTS_WORKERS=%lld must be 1..64", (long long)workers);
        return false;
    }
    if (attempts < 1 || attempts > 1000) {
        keel_log_error("KEEL_PAYMENTS_MAX_ATTEMPTS=%lld must be 1..1000", (long long)attempts);
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

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE, "the payment state machine: charges providers, publishes outcomes",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *url = keel_config_string(cfg, "KEEL_DATABASE_URL");
    const char *brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS");
    const char *instance = keel_service_instance_id(cfg);
    keel_db_pool *pool = NULL;
    payments_provider *provider = NULL;
    payments_workers *workers = NULL;
    keel_outbox_relay *relay = NULL;
    keel_consumer *consumer = NULL;
    keel_producer *dlq = NULL;
    keel_http_server *srv = NULL;
    consumer_thread ct = {0};
    payments_intake intake = {0};
    char err[512];
    int exit_code = 1;

    if (!check_config(cfg)) {
        exit_code = 2;
        goto done;
    }
    payments_provider_a_options pa_opts = {
        .base_url = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_URL"),
        .api_key = keel_config_string(cfg, "KEEL_PAYMENTS_PROVIDER_API_KEY"),
        .timeout_ms = (long)keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS"),
        .connect_timeout_ms =
            (long)keel_config_int(cfg, "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS"),
    };
    provider = payments_provider_a_new(&pa_opts, err, sizeof(err));
    if (provider == NULL) {
        keel_log_error("%s", err);
        exit_code = 2;
        goto done;
    }
    if (!keel_service_migrate(cfg, "payments", payments_migrations, payments_migrations_count,
                              keel_config_int(cfg, "KEEL_PAYMENTS_STARTUP_DB_TIMEOUT_MS"))) {
        goto done;
    }
    pool = keel_db_pool_new(url, keel_service_db_password(cfg), SERVICE,
                            (int)keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE"));
    if (pool == NULL) {
        keel_log_error("cannot create the database pool");
        goto done;
    }

    keel_outbox_relay_options relay_opts = {
        .conninfo = url,
        .password = keel_service_db_password(cfg),
        .brokers = brokers,
        .service = "payments",
        .instance_id = instance,
    };
    relay = keel_outbox_relay_start(&relay_opts, err, sizeof(err));
    if (relay == NULL) {
        keel_log_error("cannot start the outbox relay: %s", err);
        goto done;
    }

    payments_workers_options w_opts = {
        .pool = pool,
        .provider = provider,
        .instance_id = instance,
        .events_topic = keel_config_string(cfg, "KEEL_PAYMENTS_EVENTS_TOPIC"),
        .workers = (int)keel_config_int(cfg, "KEEL_PAYMENTS_WORKERS"),
        .lease_ms = keel_config_int(cfg, "KEEL_PAYMENTS_LEASE_MS"),
        .max_attempts = (int)keel_config_int(cfg, "KEEL_PAYMENTS_MAX_ATTEMPTS"),
    };
    workers = payments_workers_start(&w_opts, err, sizeof(err));
    if (workers == NULL) {
        keel_log_error("cannot start the payment workers: %s", err);
        goto done;
    }

    const char *topics[] = {keel_config_string(cfg, "KEEL_PAYMENTS_REQUESTS_TOPIC")};
    keel_consumer_options consumer_opts = {
        .brokers = brokers,
        .group_id = keel_config_string(cfg, "KEEL_PAYMENTS_CONSUMER_GROUP"),
        .client_id = instance,
        .topics = topics,
        .topic_count = 1,
    };
    consumer = keel_consumer_new(&consumer_opts, err, sizeof(err));
    if (consumer == NULL) {
        keel_log_error("cannot create the payment-requests consumer: %s", err);
        goto done;
    }
    keel_producer_options dlq_opts = {.brokers = brokers, .client_id = instance};
    dlq = keel_producer_new(&dlq_opts, err, sizeof(err));
    if (dlq == NULL) {
        keel_log_error("cannot create the dead-letter producer: %s", err);
        goto done;
    }
    intake = (payments_intake){
        .pool = pool,
        .on_stored = payments_workers_notify,
        .on_stored_arg = workers,
    };
    ct.opts = (keel_consume_options){
        .consumer = consumer,
        .dlq_producer = dlq,
        .handler = payments_intake_handle,
        .ctx = &intake,
        .name = PAYMENTS_INBOX_CONSUMER,
    };
    if (pthread_create(&ct.thread, NULL, consumer_main, &ct) != 0) {
        keel_log_error("cannot start the consumer thread");
        goto done;
    }
    ct.started = true;

    keel_http_server_options http_opts = {
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = (uint16_t)keel_config_int(cfg, "KEEL_HTTP_PORT"),
        .threads = (unsigned)keel_config_int(cfg, "KEEL_HTTP_THREADS"),
        .ready = pool_ready,
        .ready_ctx = pool,
    };
    srv = keel_http_server_new(&http_opts);
    if (srv == NULL || keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the HTTP server: %s", srv == NULL ? "out of memory" : err);
        goto done;
    }
    keel_log_info("listening on %s:%u; %d workers, provider %s at %s", http_opts.address,
                  keel_http_server_port(srv), w_opts.workers, provider->name, pa_opts.base_url);

    while (!keel_shutdown_wait_ms(60000)) {
    }
    keel_log_info("stopping: consumer, then workers (each finishes its payment), then relay");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    if (ct.started) {
        pthread_join(ct.thread, NULL);
        ct.started = false;
    }
    keel_consumer_free(consumer);
    consumer = NULL;
    payments_workers_stop(workers);
    workers = NULL;
    keel_producer_free(dlq);
    dlq = NULL;
    /* After the workers: every outcome they committed is in the outbox for this round. */
    keel_outbox_relay_stop(relay);
    relay = NULL;
    keel_http_server_free(srv);
    srv = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    payments_provider_free(provider);
    provider = NULL;
    keel_log_info("stopped (exit %d)", exit_code);
    keel_config_free(cfg);
    cfg = NULL;
    return exit_code;
}
