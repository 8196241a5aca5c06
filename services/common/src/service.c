/* The start-up and shutdown every keel service shares, from its configuration to its exit. */
#include "keel/service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/db.h"
#include "keel/error.h"
#include "keel/http_client.h"
#include "keel/log.h"
#include "keel/shutdown.h"

/* How long one wait for a stop lasts before it is simply waited again: any value works, the
 * wait returns as soon as the stop arrives. */
#define SERVICE_WAIT_SLICE_MS 60000

keel_config *keel_service_start(int argc, char **argv, const char *service, const char *summary,
                                const keel_config_spec *specs, size_t count)
{
    if (keel_config_wants_help(argc, argv)) {
        keel_config_print_help(stdout, argc > 0 && argv[0] != NULL ? argv[0] : service, summary,
                               specs, count);
        exit(0);
    }

    /* Log at info until the configured level is known, so a configuration error is a JSON
     * line like every other. */
    keel_log_init(service, KEEL_LOG_INFO);

    char err[512];
    keel_config *cfg = keel_config_load(specs, count, err, sizeof err);
    if (cfg == NULL) {
        keel_log_error("configuration error: %s (run with --help to list every variable)", err);
        exit(2);
    }

    keel_log_level level = KEEL_LOG_INFO;
    if (keel_config_has(cfg, "KEEL_LOG_LEVEL")) {
        const char *text = keel_config_string(cfg, "KEEL_LOG_LEVEL");
        if (!keel_log_level_parse(text, &level)) {
            keel_log_error("configuration error: KEEL_LOG_LEVEL=\"%s\" is not a log level; use "
                           "debug, info, warn or error",
                           text);
            keel_config_free(cfg);
            cfg = NULL;
            exit(2);
        }
    }
    keel_log_init(service, level);

    keel_shutdown_install();
    keel_http_client_global_init();

    keel_log_info("%s starting as %s", service, keel_service_instance_id(cfg));
    keel_config_log(cfg);
    return cfg;
}

static pthread_mutex_t service_id_lock = PTHREAD_MUTEX_INITIALIZER;
static char service_id[300];

const char *keel_service_instance_id(const keel_config *cfg)
{
    pthread_mutex_lock(&service_id_lock);
    /* Computed once: the id names this process in logs and locks, so it must not change. */
    if (service_id[0] == '\0') {
        const char *configured = NULL;
        if (cfg != NULL && keel_config_has(cfg, "KEEL_INSTANCE_ID")) {
            configured = keel_config_string(cfg, "KEEL_INSTANCE_ID");
        }
        if (configured != NULL && configured[0] != '\0') {
            snprintf(service_id, sizeof service_id, "%s", configured);
        } else {
            char host[256];
            if (gethostname(host, sizeof host) != 0) {
                snprintf(host, sizeof host, "unknown-host");
            }
            host[sizeof host - 1] = '\0';
            snprintf(service_id, sizeof service_id, "%s-%ld", host, (long)getpid());
        }
    }
    pthread_mutex_unlock(&service_id_lock);
    return service_id;
}

const char *keel_service_db_password(const keel_config *cfg)
{
    const char *pw = keel_config_string(cfg, "KEEL_DATABASE_PASSWORD");
    return pw[0] != '\0' ? pw : NULL;
}

bool keel_service_migrate(const keel_config *cfg, const char *component, const keel_migration *list,
                          size_t count, int64_t connect_timeout_ms)
{
    char err[512];
    char app_name[128];
    bool ok = false;
    snprintf(app_name, sizeof app_name, "%s-migrate", component);
    keel_db *db = keel_db_new(keel_config_string(cfg, "KEEL_DATABASE_URL"),
                              keel_service_db_password(cfg), app_name);
    keel_result r = keel_db_connect(db, connect_timeout_ms);
    if (r != KEEL_OK) {
        keel_log_error("cannot connect to KEEL_DATABASE_URL (%s); check that PostgreSQL is up "
                       "and the URL and password are right",
                       keel_result_name(r));
        goto done;
    }
    if (keel_migrate_apply(db, "libkeel", keel_common_migrations, keel_common_migrations_count, err,
                           sizeof(err)) != KEEL_OK ||
        keel_migrate_apply(db, component, list, count, err, sizeof(err)) != KEEL_OK) {
        keel_log_error("migrations failed: %s", err);
        goto done;
    }
    ok = true;
done:
    keel_db_free(db);
    db = NULL;
    return ok;
}

keel_db_pool *keel_service_db_pool_new(const keel_config *cfg, const char *application_name)
{
    int64_t size = keel_config_int(cfg, "KEEL_DATABASE_POOL_SIZE");
    if (size < 1 || size > INT32_MAX) {
        keel_log_error("KEEL_DATABASE_POOL_SIZE=%lld is not a pool size; use at least 1",
                       (long long)size);
        return NULL;
    }
    keel_db_pool *pool =
        keel_db_pool_new(keel_config_string(cfg, "KEEL_DATABASE_URL"),
                         keel_service_db_password(cfg), application_name, (int)size);
    if (pool == NULL) {
        keel_log_error("cannot create the database pool (%lld connections to KEEL_DATABASE_URL)",
                       (long long)size);
    }
    return pool;
}

keel_outbox_relay *keel_service_relay_start(const keel_config *cfg, const char *component)
{
    char err[512];
    keel_outbox_relay_options opts = {
        .conninfo = keel_config_string(cfg, "KEEL_DATABASE_URL"),
        .password = keel_service_db_password(cfg),
        .brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS"),
        .service = component,
        .instance_id = keel_service_instance_id(cfg),
    };
    keel_outbox_relay *relay = keel_outbox_relay_start(&opts, err, sizeof(err));
    if (relay == NULL) {
        keel_log_error("cannot start the outbox relay: %s", err);
    }
    return relay;
}

keel_consume_thread *keel_service_consume_start(const keel_config *cfg,
                                                const keel_consume_thread_options *opts)
{
    char err[512];
    keel_consume_thread_options o = *opts;
    if (o.brokers == NULL) {
        o.brokers = keel_config_string(cfg, "KEEL_KAFKA_BROKERS");
    }
    if (o.client_id == NULL) {
        o.client_id = keel_service_instance_id(cfg);
    }
    keel_consume_thread *t = keel_consume_thread_start(&o, err, sizeof(err));
    if (t == NULL) {
        keel_log_error("%s", err);
    }
    return t;
}

bool keel_service_pool_ready(void *pool)
{
    /* Not ready once stopping, so a load balancer stops sending before the server closes. */
    return !keel_shutdown_requested() && keel_db_pool_ping(pool);
}

keel_http_server_options keel_service_http_options(const keel_config *cfg, keel_db_pool *pool)
{
    return (keel_http_server_options){
        .address = keel_config_string(cfg, "KEEL_HTTP_ADDRESS"),
        .port = (uint16_t)keel_config_int(cfg, "KEEL_HTTP_PORT"),
        .threads = (unsigned)keel_config_int(cfg, "KEEL_HTTP_THREADS"),
        .ready = pool != NULL ? keel_service_pool_ready : NULL,
        .ready_ctx = pool,
    };
}

void keel_service_wait_for_stop(const char *what)
{
    while (!keel_shutdown_wait_ms(SERVICE_WAIT_SLICE_MS)) {
    }
    keel_log_info("stopping: %s", what);
}

int keel_service_exit(keel_config **cfg, int exit_code)
{
    keel_log_info("stopped (exit %d)", exit_code);
    keel_config_free(*cfg);
    *cfg = NULL;
    return exit_code;
}
