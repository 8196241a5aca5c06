/* The start-up and shutdown every keel service shares: configuration rows, logging, signals. */
#ifndef KEEL_SERVICE_H
#define KEEL_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/config.h"
#include "keel/migrate.h"

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

#endif
