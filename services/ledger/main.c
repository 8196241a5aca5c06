/* keel-ledger: wiring only. Configuration, migrations, the payment-events and merchant-events
 * consumers, the periodic audit and the internal HTTP API; SIGTERM stops them in turn. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "audit.h"
#include "events.h"
#include "fees.h"
#include "keel/config.h"
#include "keel/consume.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/kafka.h"
#include "keel/log.h"
#include "keel/migrate.h"
#include "keel/service.h"
#include "keel/shutdown.h"
#include "merchants.h"

#define SERVICE "keel-ledger"

extern const keel_migration ledger_migrations[];
extern const size_t ledger_migrations_count;

static const keel_config_spec specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    KEEL_SERVICE_DB_CONFIG_SPECS,
    KEEL_SERVICE_KAFKA_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18120",
     "port of the internal API (balances, entries, statements), /metrics, /healthz, /readyz",
     false},
    {"KEEL_LEDGER_FEES", KEEL_CONFIG_STRING, "usd=290bp+30;eur=250bp+25;default=300bp+0",
     "fee schedule: <currency|default>=<basis points>bp+<fixed minor units>;...", false},
    {"KEEL_LEDGER_PAYMENT_EVENTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-events.v1",
     "topic of payment and refund outcomes (its .dlq twin must exist)", false},
    {"KEEL_LEDGER_MERCHANT_EVENTS_TOPIC", KEEL_CONFIG_STRING, "keel.merchant-events.v1",
     "topic of MerchantCreated / MerchantUpdated (its .dlq twin must exist)", false},
    {"KEEL_LEDGER_CONSUMER_GROUP", KEEL_CONFIG_STRING, "keel-ledger",
     "prefix of the two consumer groups (<prefix>-payments, <prefix>-merchants)", false},
    {"KEEL_LEDGER_AUDIT_INTERVAL_MS", KEEL_CONFIG_INT, "60000",
     "how often the ledger audits its books (keel_ledger_audit_failures); 0 = never", false},
    {"KEEL_LEDGER_DB_ACQUIRE_TIMEOUT_MS", KEEL_CONFIG_INT, "2000",
     "how long an API request waits for a free database connection before answering 503", false},
    {"KEEL_LEDGER_STARTUP_DB_TIMEOUT_MS", KEEL_CONFIG_INT, "60000",
     "how long start-up waits for PostgreSQL before giving up (exit 1)", false},
};

/* One consumer: its Kafka consumer, handler and thread. */
typedef struct consumer_thread {
    keel_consume_options opts;
    keel_consumer *consumer;
    keel_db *db;
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

static bool check_config(const keel_config *cfg, ledger_fee_schedule *fees)
{
    char err[512];
    int64_t port = keel_config_int(cfg, "KEEL_HTTP_PORT");
    int64_t interval = keel_config_int(cfg, "KEEL_LEDGER_AUDIT_INTERVAL_MS");
    int64_t pool = keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE");

    if (port < 0 || port > 65535) {
        keel_log_error("KEEL_HTTP_PORT=%lld is not a port (0..65535)", (long long)port);
        return false;
    }
    if (interval < 0 || (interval > 0 && interval < 100)) {
        keel_log_error("KEEL_LEDGER_AUDIT_INTERVAL_MS=%lld must be 0 (off) or at least 100",
                       (long long)interval);
        return false;
    }
    if (pool < 1 || pool > 100) {
        keel_log_error("KEEL_DATABASE_POOL_SIZE=%lld must be 1..100", (long long)pool);
        return false;
    }
    if (!ledger_fees_parse(keel_config_string(cfg, "KEEL_LEDGER_FEES"), fees, err, sizeof(err))) {
        keel_log_error("%s", err);
        return false;
    }
    return true;
}

/* Creates the consumer of topic in group and starts its thread. */
static bool consumer_start(consumer_thread *ct, const keel_config *cfg, const char *topic,
                           const char *group, keel_producer *dlq, keel_message_handler handler,
                           void *handler_ctx, const char *name)
{
    char err[512];
    const char *topics[] = {topic};
    keel_consumer_options opts = {
        .brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS"),
        .group_id = group,
        .client_id = keel_service_instance_id(cfg),
        .topics = topics,
        .topic_count = 1,
    };

    ct->consumer = keel_consumer_new(&opts, err, sizeof(err));
    if (ct->consumer == NULL) {
        keel_log_error("cannot create the consumer of %s: %s", topic, err);
        return false;
    }
    ct->opts = (keel_consume_options){
        .consumer = ct->consumer,
        .dlq_producer = dlq,
        .handler = handler,
        .ctx = handler_ctx,
        .name = name,
    };
    if (pthread_create(&ct->thread, NULL, consumer_main, ct) != 0) {
        keel_log_error("cannot start the consumer thread of %s", topic);
        return false;
    }
    ct->started = true;
    return true;
}

static void consumer_stop(consumer_thread *ct)
{
    if (ct->started) {
        pthread_join(ct->thread, NULL);
        ct->started = false;
    }
    keel_consumer_free(ct->consumer);
    ct->consumer = NULL;
    keel_db_free(ct->db);
    ct->db = NULL;
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE,
        "the double-entry journal: posts payments and refunds, serves balances and statements",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *url = keel_config_string(cfg, "KEEL_DATABASE_URL");
    const char *password = keel_service_db_password(cfg);
    const char *brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS");
    const char *group = keel_config_string(cfg, "KEEL_LEDGER_CONSUMER_GROUP");
    static ledger_fee_schedule fees;
    keel_db_pool *pool = NULL;
    keel_producer *dlq = NULL;
    keel_http_server *srv = NULL;
    ledger_auditor *auditor = NULL;
    consumer_thread payments = {0};
    consumer_thread merchants = {0};
    ledger_events events;
    ledger_merchants merchant_copy = {0};
    ledger_api api;
    char err[512];
    char group_name[256];
    int exit_code = 1;

    if (!check_config(cfg, &fees)) {
        exit_code = 2;
        goto done;
    }
    if (!keel_service_migrate(cfg, "ledger", ledger_migrations, ledger_migrations_count,
                              keel_config_int(cfg, "KEEL_LEDGER_STARTUP_DB_TIMEOUT_MS"))) {
        goto done;
    }
    pool = keel_db_pool_new(url, password, SERVICE,
                            (int)keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE"));
    if (pool == NULL) {
        keel_log_error("cannot create the database pool");
        goto done;
    }
    keel_producer_options dlq_opts = {.brokers = brokers,
                                      .client_id = keel_service_instance_id(cfg)};
    dlq = keel_producer_new(&dlq_opts, err, sizeof(err));
    if (dlq == NULL) {
        keel_log_error("cannot create the dead-letter producer: %s", err);
        goto done;
    }

    payments.db = keel_db_new(url, password, SERVICE "-payments");
    ledger_events_init(&events, payments.db, &fees);
    snprintf(group_name, sizeof(group_name), "%s-payments", group);
    if (!consumer_start(&payments, cfg, keel_config_string(cfg, "KEEL_LEDGER_PAYMENT_EVENTS_TOPIC"),
                        group_name, dlq, ledger_payment_events_handle, &events,
                        LEDGER_PAYMENT_EVENTS_CONSUMER)) {
        goto done;
    }
    merchants.db = keel_db_new(url, password, SERVICE "-merchants");
    merchant_copy.db = merchants.db;
    snprintf(group_name, sizeof(group_name), "%s-merchants", group);
    if (!consumer_start(&merchants, cfg,
                        keel_config_string(cfg, "KEEL_LEDGER_MERCHANT_EVENTS_TOPIC"), group_name,
                        dlq, ledger_merchant_events_handle, &merchant_copy,
                        LEDGER_MERCHANT_EVENTS_CONSUMER)) {
        goto done;
    }
    if (keel_config_int(cfg, "KEEL_LEDGER_AUDIT_INTERVAL_MS") > 0) {
        auditor = ledger_auditor_start(url, password,
                                       keel_config_int(cfg, "KEEL_LEDGER_AUDIT_INTERVAL_MS"));
        if (auditor == NULL) {
            keel_log_error("cannot start the audit thread");
            goto done;
        }
    }

    api = (ledger_api){
        .pool = pool,
        .acquire_timeout_ms = keel_config_int(cfg, "KEEL_LEDGER_DB_ACQUIRE_TIMEOUT_MS"),
    };
    keel_http_server_options http_opts = {
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = (uint16_t)keel_config_int(cfg, "KEEL_HTTP_PORT"),
        .threads = (unsigned)keel_config_int(cfg, "KEEL_HTTP_THREADS"),
        .ready = pool_ready,
        .ready_ctx = pool,
    };
    srv = keel_http_server_new(&http_opts);
    if (srv == NULL) {
        keel_log_error("cannot create the HTTP server");
        goto done;
    }
    ledger_api_register(&api, srv);
    if (keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the HTTP server: %s", err);
        goto done;
    }
    keel_log_info("listening on %s:%u", http_opts.address, keel_http_server_port(srv));

    while (!keel_shutdown_wait_ms(60000)) {
    }
    keel_log_info("stopping: HTTP server, consumers (each finishes its record), audit");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    keel_http_server_free(srv);
    srv = NULL;
    consumer_stop(&payments);
    consumer_stop(&merchants);
    ledger_auditor_stop(auditor);
    auditor = NULL;
    keel_producer_free(dlq);
    dlq = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    keel_log_info("stopped (exit %d)", exit_code);
    keel_config_free(cfg);
    cfg = NULL;
    return exit_code;
}
