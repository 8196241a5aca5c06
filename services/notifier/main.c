/* keel-notifier: wiring only. Configuration, migrations, the payment-events consumer, the
 * delivery workers, housekeeping and the internal API with /metrics /healthz /readyz; SIGTERM
 * stops them in that order. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "housekeeping.h"
#include "intake.h"
#include "internal_api.h"
#include "keel/config.h"
#include "keel/consume_thread.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/migrate.h"
#include "keel/service.h"
#include "keel/shutdown.h"
#include "keel/ssrf.h"
#include "schedule.h"
#include "worker.h"

#define SERVICE "keel-notifier"
/* Database work around one attempt (claim, record) must fit in the lease too. */
#define LEASE_MARGIN_MS 2000
/* The topics keep records 7 days; inbox rows must outlive any redelivery. */
#define MIN_INBOX_RETENTION_MS (8LL * 24 * 3600 * 1000)
#define MIN_TOKEN_LEN 32

extern const keel_migration notifier_migrations[];
extern const size_t notifier_migrations_count;

static const keel_config_spec specs[] = {
    KEEL_SERVICE_CONFIG_SPECS,
    KEEL_SERVICE_DB_CONFIG_SPECS,
    KEEL_SERVICE_KAFKA_CONFIG_SPECS,
    {"KEEL_HTTP_PORT", KEEL_CONFIG_INT, "18130",
     "port of the internal API (for keel-gateway), /metrics, /healthz and /readyz; bind it to "
     "an internal address",
     false},
    {"KEEL_NOTIFIER_INTERNAL_TOKEN", KEEL_CONFIG_STRING, NULL,
     "shared token keel-gateway presents to the internal API, at least 32 characters (or "
     "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE)",
     true},
    {"KEEL_NOTIFIER_EVENTS_TOPIC", KEEL_CONFIG_STRING, "keel.payment-events.v1",
     "topic of payment and refund outcomes (its .dlq twin must exist)", false},
    {"KEEL_NOTIFIER_CONSUMER_GROUP", KEEL_CONFIG_STRING, "keel-notifier",
     "Kafka consumer group of the events consumer", false},
    {"KEEL_NOTIFIER_WORKERS", KEEL_CONFIG_INT, "4", "delivery worker threads", false},
    {"KEEL_NOTIFIER_LEASE_MS", KEEL_CONFIG_INT, "30000",
     "how long a worker holds a delivery; must exceed DNS + connect + delivery timeouts by "
     "2000 ms",
     false},
    {"KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS", KEEL_CONFIG_INT, "10000",
     "total time one delivery request may take, connect included", false},
    {"KEEL_NOTIFIER_CONNECT_TIMEOUT_MS", KEEL_CONFIG_INT, "3000",
     "time to connect to a merchant's endpoint", false},
    {"KEEL_NOTIFIER_DNS_TIMEOUT_MS", KEEL_CONFIG_INT, "2000",
     "time to resolve an endpoint's host (at registration and before each delivery)", false},
    {"KEEL_NOTIFIER_MAX_RESPONSE_BYTES", KEEL_CONFIG_INT, "65536",
     "an endpoint's answer larger than this counts as a failed attempt", false},
    {"KEEL_NOTIFIER_RETRY_SCHEDULE", KEEL_CONFIG_STRING, NOTIFIER_DEFAULT_SCHEDULE,
     "waits between attempts (ms, s, m, h, d); attempts = entries + 1", false},
    {"KEEL_NOTIFIER_RETRY_JITTER_PCT", KEEL_CONFIG_INT, "20",
     "each wait grows by a random 0..N percent", false},
    {"KEEL_NOTIFIER_DISABLE_AFTER", KEEL_CONFIG_STRING, "3d",
     "an endpoint whose attempts all failed for this long is disabled", false},
    {"KEEL_NOTIFIER_ALLOW_CIDRS", KEEL_CONFIG_STRING, "",
     "non-public ranges endpoints may point at, e.g. 127.0.0.0/8,::1/128 (test stacks only)",
     false},
    {"KEEL_NOTIFIER_ALLOW_HTTP", KEEL_CONFIG_BOOL, "false",
     "accept plain http:// endpoint URLs (test stacks only)", false},
    {"KEEL_NOTIFIER_MAX_ENDPOINTS", KEEL_CONFIG_INT, "16", "webhook endpoints per merchant", false},
    {"KEEL_NOTIFIER_POLL_MS", KEEL_CONFIG_INT, "1000",
     "how often idle workers look for due deliveries (others' retries, replays)", false},
    {"KEEL_NOTIFIER_METRICS_INTERVAL_MS", KEEL_CONFIG_INT, "5000",
     "how often the queue depth and oldest pending age are sampled", false},
    {"KEEL_NOTIFIER_KEEP_SUCCEEDED", KEEL_CONFIG_STRING, "30d",
     "how long succeeded deliveries and their attempts are kept", false},
    {"KEEL_NOTIFIER_KEEP_DEAD", KEEL_CONFIG_STRING, "90d",
     "how long dead deliveries are kept for replay", false},
    {"KEEL_NOTIFIER_KEEP_INBOX", KEEL_CONFIG_STRING, "14d",
     "how long inbox rows are kept; at least 8d (the topics keep records 7 days)", false},
    {"KEEL_NOTIFIER_STARTUP_DB_TIMEOUT_MS", KEEL_CONFIG_INT, "60000",
     "how long start-up waits for PostgreSQL before giving up (exit 1)", false},
};

/* The durations of the table, parsed once. */
typedef struct durations {
    int64_t disable_after_ms;
    int64_t keep_succeeded_ms;
    int64_t keep_dead_ms;
    int64_t keep_inbox_ms;
} durations;

static bool parse_duration(const keel_config *cfg, const char *name, int64_t *out)
{
    if (!notifier_duration_parse(keel_config_string(cfg, name), out)) {
        keel_log_error("%s=%s is not a duration such as 30s, 15m, 12h or 3d", name,
                       keel_config_string(cfg, name));
        return false;
    }
    return true;
}

static bool in_range(const keel_config *cfg, const char *name, int64_t lo, int64_t hi)
{
    int64_t v = keel_config_int(cfg, name);
    if (v < lo || v > hi) {
        keel_log_error("%s=%lld must be %lld..%lld", name, (long long)v, (long long)lo,
                       (long long)hi);
        return false;
    }
    return true;
}

/* Checks what the table cannot: ranges, the lease against the timeouts, retention. */
static bool check_config(const keel_config *cfg, durations *d)
{
    if (!in_range(cfg, "KEEL_HTTP_PORT", 0, 65535) ||
        !in_range(cfg, "KEEL_NOTIFIER_WORKERS", 1, 64) ||
        !in_range(cfg, "KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS", 100, 120000) ||
        !in_range(cfg, "KEEL_NOTIFIER_CONNECT_TIMEOUT_MS", 50, 60000) ||
        !in_range(cfg, "KEEL_NOTIFIER_DNS_TIMEOUT_MS", 50, 30000) ||
        !in_range(cfg, "KEEL_NOTIFIER_MAX_RESPONSE_BYTES", 1024, 16 << 20) ||
        !in_range(cfg, "KEEL_NOTIFIER_MAX_ENDPOINTS", 1, 1000) ||
        !in_range(cfg, "KEEL_NOTIFIER_POLL_MS", 50, 60000) ||
        !in_range(cfg, "KEEL_NOTIFIER_METRICS_INTERVAL_MS", 200, 600000)) {
        return false;
    }
    if (strlen(keel_config_string(cfg, "KEEL_NOTIFIER_INTERNAL_TOKEN")) < MIN_TOKEN_LEN) {
        keel_log_error(
            "KEEL_NOTIFIER_INTERNAL_TOKEN is shorter than %d characters; generate one "
            "with `openssl rand -hex 24` into the file KEEL_NOTIFIER_INTERNAL_TOKEN_FILE "
            "names (keel-gateway reads the same file)",
            MIN_TOKEN_LEN);
        return false;
    }
    int64_t lease = keel_config_int(cfg, "KEEL_NOTIFIER_LEASE_MS");
    int64_t need = keel_config_int(cfg, "KEEL_NOTIFIER_DNS_TIMEOUT_MS") +
                   keel_config_int(cfg, "KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS") + LEASE_MARGIN_MS;
    if (lease < need) {
        /* Otherwise a lease could expire while its holder still waits for the endpoint, and a
         * second worker would send the same event at the same time. */
        keel_log_error("KEEL_NOTIFIER_LEASE_MS=%lld must be at least DNS timeout + delivery "
                       "timeout + %d ms = %lld: raise the lease or lower the timeouts",
                       (long long)lease, LEASE_MARGIN_MS, (long long)need);
        return false;
    }
    int64_t workers = keel_config_int(cfg, "KEEL_NOTIFIER_WORKERS");
    int64_t pool = keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE");
    if (pool < workers + 2) {
        keel_log_error("KEEL_DATABASE_POOL_SIZE=%lld is too small: the %lld workers, the "
                       "consumer and the API need at least %lld connections",
                       (long long)pool, (long long)workers, (long long)(workers + 2));
        return false;
    }
    if (!parse_duration(cfg, "KEEL_NOTIFIER_DISABLE_AFTER", &d->disable_after_ms) ||
        !parse_duration(cfg, "KEEL_NOTIFIER_KEEP_SUCCEEDED", &d->keep_succeeded_ms) ||
        !parse_duration(cfg, "KEEL_NOTIFIER_KEEP_DEAD", &d->keep_dead_ms) ||
        !parse_duration(cfg, "KEEL_NOTIFIER_KEEP_INBOX", &d->keep_inbox_ms)) {
        return false;
    }
    if (d->keep_inbox_ms < MIN_INBOX_RETENTION_MS) {
        keel_log_error("KEEL_NOTIFIER_KEEP_INBOX=%s is shorter than 8d: an event Kafka redelivers "
                       "after its inbox row is gone would be delivered to merchants twice",
                       keel_config_string(cfg, "KEEL_NOTIFIER_KEEP_INBOX"));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    keel_config *cfg =
        keel_service_start(argc, argv, SERVICE,
                           "webhook endpoints, signed deliveries, retries, dead letters and replay",
                           specs, sizeof(specs) / sizeof(specs[0]));
    const char *instance = keel_service_instance_id(cfg);
    keel_db_pool *pool = NULL;
    keel_ssrf_allowlist *allow = NULL;
    notifier_schedule schedule = {0};
    notifier_workers *workers = NULL;
    notifier_housekeeping *housekeeping = NULL;
    keel_consume_thread *consumer = NULL;
    keel_http_server *srv = NULL;
    notifier_intake intake = {0};
    notifier_api api = {0};
    durations d = {0};
    char err[512];
    int exit_code = 1;

    if (!check_config(cfg, &d)) {
        exit_code = 2;
        goto done;
    }
    if (!notifier_schedule_parse(keel_config_string(cfg, "KEEL_NOTIFIER_RETRY_SCHEDULE"),
                                 (int)keel_config_int(cfg, "KEEL_NOTIFIER_RETRY_JITTER_PCT"),
                                 &schedule, err, sizeof(err))) {
        keel_log_error("KEEL_NOTIFIER_RETRY_SCHEDULE / _JITTER_PCT: %s", err);
        exit_code = 2;
        goto done;
    }
    allow = keel_ssrf_allowlist_parse(keel_config_string(cfg, "KEEL_NOTIFIER_ALLOW_CIDRS"), err,
                                      sizeof(err));
    if (allow == NULL) {
        keel_log_error("KEEL_NOTIFIER_ALLOW_CIDRS: %s", err);
        exit_code = 2;
        goto done;
    }
    if (keel_ssrf_allowlist_count(allow) > 0) {
        keel_log_warn("KEEL_NOTIFIER_ALLOW_CIDRS=%s: endpoints may point at these non-public "
                      "addresses; never set this in production",
                      keel_config_string(cfg, "KEEL_NOTIFIER_ALLOW_CIDRS"));
    }
    if (!keel_service_migrate(cfg, "notifier", notifier_migrations, notifier_migrations_count,
                              keel_config_int(cfg, "KEEL_NOTIFIER_STARTUP_DB_TIMEOUT_MS")) ||
        (pool = keel_service_db_pool_new(cfg, SERVICE)) == NULL) {
        goto done;
    }

    notifier_workers_options w_opts = {
        .pool = pool,
        .instance_id = instance,
        .workers = (int)keel_config_int(cfg, "KEEL_NOTIFIER_WORKERS"),
        .lease_ms = keel_config_int(cfg, "KEEL_NOTIFIER_LEASE_MS"),
        .schedule = &schedule,
        .allow = allow,
        .allow_http = keel_config_bool(cfg, "KEEL_NOTIFIER_ALLOW_HTTP"),
        .dns_timeout_ms = keel_config_int(cfg, "KEEL_NOTIFIER_DNS_TIMEOUT_MS"),
        .connect_timeout_ms = (long)keel_config_int(cfg, "KEEL_NOTIFIER_CONNECT_TIMEOUT_MS"),
        .total_timeout_ms = (long)keel_config_int(cfg, "KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS"),
        .max_response_bytes = (size_t)keel_config_int(cfg, "KEEL_NOTIFIER_MAX_RESPONSE_BYTES"),
        .disable_after_ms = d.disable_after_ms,
        .poll_ms = keel_config_int(cfg, "KEEL_NOTIFIER_POLL_MS"),
    };
    workers = notifier_workers_start(&w_opts, err, sizeof(err));
    if (workers == NULL) {
        keel_log_error("cannot start the delivery workers: %s", err);
        goto done;
    }
    notifier_housekeeping_options h_opts = {
        .pool = pool,
        .sample_ms = keel_config_int(cfg, "KEEL_NOTIFIER_METRICS_INTERVAL_MS"),
        .keep_succeeded_ms = d.keep_succeeded_ms,
        .keep_dead_ms = d.keep_dead_ms,
        .keep_inbox_ms = d.keep_inbox_ms,
    };
    housekeeping = notifier_housekeeping_start(&h_opts, err, sizeof(err));
    if (housekeeping == NULL) {
        keel_log_error("cannot start housekeeping: %s", err);
        goto done;
    }

    intake = (notifier_intake){
        .pool = pool,
        .on_stored = notifier_workers_notify,
        .on_stored_arg = workers,
    };
    keel_consume_thread_options c_opts = {
        .group_id = keel_config_string(cfg, "KEEL_NOTIFIER_CONSUMER_GROUP"),
        .topic = keel_config_string(cfg, "KEEL_NOTIFIER_EVENTS_TOPIC"),
        .name = NOTIFIER_INBOX_CONSUMER,
        .handler = notifier_intake_handle,
        .ctx = &intake,
    };
    if ((consumer = keel_service_consume_start(cfg, &c_opts)) == NULL) {
        goto done;
    }

    api = (notifier_api){
        .pool = pool,
        .acquire_timeout_ms = 2000,
        .token = keel_config_string(cfg, "KEEL_NOTIFIER_INTERNAL_TOKEN"),
        .allow = allow,
        .allow_http = w_opts.allow_http,
        .dns_timeout_ms = w_opts.dns_timeout_ms,
        .max_endpoints = (int)keel_config_int(cfg, "KEEL_NOTIFIER_MAX_ENDPOINTS"),
    };
    keel_http_server_options http_opts = keel_service_http_options(cfg, pool);
    http_opts.max_body_bytes = 16384;
    srv = keel_http_server_new(&http_opts);
    if (srv == NULL) {
        keel_log_error("cannot create the HTTP server (out of memory)");
        goto done;
    }
    notifier_api_register(&api, srv);
    if (keel_http_server_start(srv, err, sizeof(err)) != 0) {
        keel_log_error("cannot start the HTTP server: %s", err);
        goto done;
    }
    keel_log_info("listening on %s:%u; %d workers, %d attempts per delivery, %zu allow-listed "
                  "ranges",
                  http_opts.address, keel_http_server_port(srv), w_opts.workers,
                  notifier_schedule_max_attempts(&schedule), keel_ssrf_allowlist_count(allow));

    keel_service_wait_for_stop(
        "API, consumer, then workers (each records its delivery), housekeeping");
    exit_code = 0;
done:
    /* A failed start-up also stops whatever already runs, so ask every loop to end. */
    keel_shutdown_request();
    keel_http_server_free(srv);
    srv = NULL;
    keel_consume_thread_stop(consumer);
    consumer = NULL;
    notifier_workers_stop(workers);
    workers = NULL;
    notifier_housekeeping_stop(housekeeping);
    housekeeping = NULL;
    keel_db_pool_free(pool);
    pool = NULL;
    keel_ssrf_allowlist_free(allow);
    allow = NULL;
    notifier_schedule_clear(&schedule);
    return keel_service_exit(&cfg, exit_code);
}
