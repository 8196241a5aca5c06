/* keel-ledger: wiring only. Configuration, migrations, the payment-events and merchant-events
 * consumers, the periodic audit and the internal HTTP API; SIGTERM stops them in turn. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "audit.h"
#include "events.h"
#include "fees.h"
#include "keel/config.h"
#include "keel/consume_thread.h"
#include "keel/db.h"
#include "keel/http_server.h"
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

/* Starts the consumer of the topic in the variable topic_var, in the group <prefix>-suffix;
 * NULL when it cannot (logged). */
static keel_consume_thread *consumer_start(const keel_config *cfg, const char *topic_var,
                                           const char *suffix, keel_message_handler handler,
                                           void *handler_ctx, const char *name)
{
    char group[256];
    snprintf(group, sizeof(group), "%s-%s", keel_config_string(cfg, "KEEL_LEDGER_CONSUMER_GROUP"),
             suffix);
    keel_consume_thread_options opts = {
        .group_id = group,
        .topic = keel_config_string(cfg, topic_var),
        .name = name,
        .handler = handler,
        .ctx = handler_ctx,
    };
    return keel_service_consume_start(cfg, &opts);
}

int main(int argc, char **argv)
{
    keel_config *cfg = keel_service_start(
        argc, argv, SERVICE,
        "the double-entry journal: posts payments and refunds, serves balances and statements",
        specs, sizeof(specs) / sizeof(specs[0]));
    const char *url = keel_config_string(cfg, "KEEL_DATABASE_URL");
    const char *password = keel_service_db_password(cfg);
    static ledger_fee_schedule fees;
    keel_db_pool *pool = NULL;
    keel_http_server *srv = NULL;
    ledger_auditor *auditor = NULL;
    keel_consume_thread *payments = NULL;
    keel_consume_thread *merchants = NULL;
    keel_db *payments_db = NULL;
    keel_db *merchants_db = NULL;
    ledger_events events;
    ledger_merchants merchant_copy = {0};
    ledger_api api;
    char err[512];
    int exit_code = 1;

    if (!check_config(cfg, &fees)) {
        exit_code = 2;
        goto done;
    }
    if (!keel_service_migrate(cfg, "ledger", ledger_migrations, ledger_migrations_count,
                              keel_config_int(cfg, "KEEL_LEDGER_STARTUP_DB_TIMEOUT_MS")) ||
        (pool = keel_service_db_pool_new(cfg, SERVICE)) == NULL) {
        goto done;
    }

    payments_db = keel_db_new(url, password, SERVICE "-payments");
    ledger_events_init(&events, payments_db, &fees);
    payments =
        consumer_start(cfg, "KEEL_LEDGER_PAYMENT_EVENTS_TOPIC", "payments",
                       ledger_payment_events_handle, &events, LEDGER_PAYMENT_EVENTS_CONSUMER);
    if (payments == NULL) {
        goto done;
    }
    merchants_db = keel_db_new(url, password, SERVICE "-merchants");
    merchant_copy.db = merchants_db;
    merchants = consumer_start(cfg, "KEEL_LEDGER_MERCHANT_EVENTS_TOPIC", "merchants",
                               ledger_merchant_events_handle, &merchant_copy,
                               LEDGER_MERCHANT_EVENTS_CONSUMER);
    if (merchants == NULL) {
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
    keel_http_server_options http_opts = keel_service_http_options(cfg, pool);
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

    keel_service_wait_for_stop("HTTP server, consumers (each finishes its record), audit");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    keel_http_server_free(srv);
    srv = NULL;
    keel_consume_thread_stop(payments);
    payments = NULL;
    keel_db_free(payments_db);
    payments_db = NULL;
    keel_consume_thread_stop(merchants);
    merchants = NULL;
    keel_db_free(merchants_db);
    merchants_db = NULL;
    ledger_auditor_stop(auditor);
    auditor = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    return keel_service_exit(&cfg, exit_code);
}
