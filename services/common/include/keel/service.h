/* The start-up and shutdown every keel service shares, from its configuration to its exit. */
#ifndef KEEL_SERVICE_H
#define KEEL_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/config.h"
#include "keel/consume_thread.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/migrate.h"
#include "keel/outbox.h"

/* Rows every service has; put them first in the service's own table. */
#define KEEL_SERVICE_CONFIG_SPECS                                                                  \
    {"KEEL_LOG_LEVEL", KEEL_CONFIG_STRING, "info", "log level: debug, info, warn or error",        \
     false},                                                                                       \
        {"KEEL_HTTP_ADDRESS", KEEL_CONFIG_STRING, "127.0.0.1",                                     \
         "address the HTTP server (API, /metrics, /healthz, /readyz) listens on", false},          \
        {"KEEL_HTTP_THREADS", KEEL_CONFIG_INT, "4", "HTTP server worker threads", false},          \
    {                                                                                              \
        "KEEL_INSTANCE_ID", KEEL_CONFIG_STRING, "",                                                \
            "this instance's name in logs and locks; empty = <hostname>-<pid>", false              \
    }

/* Rows of a service that owns a database. */
#define KEEL_SERVICE_DB_CONFIG_SPECS                                                               \
    {"KEEL_DATABASE_URL", KEEL_CONFIG_STRING, NULL,                                                \
     "libpq URL of this service's own database, without the password", false},                     \
        {"KEEL_DATABASE_PASSWORD", KEEL_CONFIG_STRING, "",                                         \
         "password of the service's database role (or KEEL_DATABASE_PASSWORD_FILE)", true},        \
    {                                                                                              \
        "KEEL_DATABASE_POOL_SIZE", KEEL_CONFIG_INT, "8", "database connections in the pool", false \
    }

/* Rows of a service that talks to Kafka. */
#define KEEL_SERVICE_KAFKA_CONFIG_SPECS                                                            \
    {                                                                                              \
        "KEEL_KAFKA_BROKERS", KEEL_CONFIG_STRING, "127.0.0.1:9092",                                \
            "Kafka bootstrap servers, comma-separated", false                                      \
    }

/* Handles --help (prints the table, exits 0), loads the configuration (on error prints the
 * reason to stderr and exits 2), initialises logging from KEEL_LOG_LEVEL, installs the
 * SIGTERM/SIGINT handlers, initialises libcurl, and logs the configuration with secrets
 * redacted. Returns the configuration (the caller frees it). */
keel_config *keel_service_start(int argc, char **argv, const char *service, const char *summary,
                                const keel_config_spec *specs, size_t count);

/* KEEL_INSTANCE_ID, or "<hostname>-<pid>" when it is empty. Points into static storage. */
const char *keel_service_instance_id(const keel_config *cfg);

/* KEEL_DATABASE_PASSWORD, or NULL when it is empty (libpq then uses its usual sources). */
const char *keel_service_db_password(const keel_config *cfg);

/* Opens a connection of its own to KEEL_DATABASE_URL (waiting up to connect_timeout_ms for
 * PostgreSQL), applies libkeel's migrations and then the service's (component = the
 * service's short name), and closes it. Logs what failed and what to check; returns false
 * then, and the caller exits non-zero. */
bool keel_service_migrate(const keel_config *cfg, const char *component, const keel_migration *list,
                          size_t count, int64_t connect_timeout_ms);

/* Creates the pool of KEEL_DATABASE_POOL_SIZE connections to KEEL_DATABASE_URL (with
 * KEEL_DATABASE_PASSWORD), each named application_name in pg_stat_activity. Connections open
 * on first use, so this does not wait for PostgreSQL (keel_service_migrate did). Logs what
 * failed and returns NULL then; the caller exits non-zero. Free with keel_db_pool_free. */
keel_db_pool *keel_service_db_pool_new(const keel_config *cfg, const char *application_name);

/* Starts the service's outbox relay (keel/outbox.h) on a connection of its own to
 * KEEL_DATABASE_URL, publishing to KEEL_KAFKA_BROKERS; component (the service's short name)
 * names its leader lock, and this instance competes under its instance id. Logs what failed
 * and returns NULL then. Stop it with keel_outbox_relay_stop. */
keel_outbox_relay *keel_service_relay_start(const keel_config *cfg, const char *component);

/* Starts a consumer thread (keel/consume_thread.h); opts' brokers and client_id default (when
 * NULL) to KEEL_KAFKA_BROKERS and the instance id. Logs what failed and returns NULL then.
 * Stop it with keel_consume_thread_stop after requesting shutdown. */
keel_consume_thread *keel_service_consume_start(const keel_config *cfg,
                                                const keel_consume_thread_options *opts);

/* The /readyz check of a service whose work needs its database, for
 * keel_http_server_options.ready with the pool as ctx: true while no stop was requested
 * (keel/shutdown.h) and a pooled connection answers. May block up to about 1.5 s. */
bool keel_service_pool_ready(void *pool);

/* The HTTP server options every service shares: KEEL_HTTP_ADDRESS, KEEL_HTTP_PORT (a row of
 * the service's own table) and KEEL_HTTP_THREADS, with /readyz answered by
 * keel_service_pool_ready(pool), or always ready when pool is NULL. The other fields are
 * zero (the server's defaults): set them before keel_http_server_new. The strings stay
 * owned by cfg. */
keel_http_server_options keel_service_http_options(const keel_config *cfg, keel_db_pool *pool);

/* Blocks until a stop is requested (SIGTERM, SIGINT or keel_shutdown_request), then logs
 * "stopping: <what>", what names what stops and in which order. */
void keel_service_wait_for_stop(const char *what);

/* The last step of main: logs "stopped (exit <exit_code>)", frees *cfg and sets it to NULL.
 * Returns exit_code, for `return keel_service_exit(&cfg, exit_code);`. */
int keel_service_exit(keel_config **cfg, int exit_code);

#endif
