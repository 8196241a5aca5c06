/* PostgreSQL on libpq: connections that come back after a restart, a small pool, prepared
 * statements, and a transaction helper that retries what is safe to retry. */
#ifndef KEEL_DB_H
#define KEEL_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "keel/error.h"
#include "keel/retry.h"

typedef struct keel_db keel_db; /* one connection, reconnected when lost */

/* conninfo: a libpq URL or key=value string. password may be NULL (then libpq's usual
 * sources apply); it is kept in memory only, never logged. Does not connect yet. */
keel_db *keel_db_new(const char *conninfo, const char *password, const char *application_name);
void keel_db_free(keel_db *db);

/* Connects (or reconnects) with capped exponential backoff and full jitter until connected,
 * until timeout_ms passes (KEEL_ERR_TIMEOUT), or until shutdown is requested
 * (KEEL_ERR_TRANSIENT). A healthy connection returns KEEL_OK at once. */
keel_result keel_db_connect(keel_db *db, int64_t timeout_ms);
/* The live connection, or NULL when not connected. Owned by db. */
PGconn *keel_db_conn(keel_db *db);
bool keel_db_is_connected(keel_db *db);

/* Runs a statement with text parameters (params may be NULL when nparams is 0).
 * Returns the result (caller PQclear()s it) or NULL when the connection is missing. */
PGresult *keel_db_exec(keel_db *db, const char *sql, int nparams, const char *const *params);
/* Like keel_db_exec, with per-parameter lengths and formats (for bytea in binary). */
PGresult *keel_db_exec_bin(keel_db *db, const char *sql, int nparams, const char *const *params,
                           const int *lengths, const int *formats);
/* Prepares sql under name on this connection the first time (and again after a reconnect),
 * then executes it. Same ownership as keel_db_exec. */
PGresult *keel_db_exec_prepared(keel_db *db, const char *name, const char *sql, int nparams,
                                const char *const *params);

/* Sorts a result: KEEL_OK for PGRES_COMMAND_OK/TUPLES_OK; KEEL_ERR_TRANSIENT for
 * serialization failure (40001), deadlock (40P01), lost connection, admin shutdown
 * (57P01..57P03), too many connections (53300); KEEL_ERR_CONFLICT for unique violation
 * (23505); KEEL_ERR otherwise. A NULL result counts as a lost connection. On a failure it
 * logs the SQLSTATE and message at warn level, prefixed with what. */
keel_result keel_db_check(keel_db *db, const PGresult *res, const char *what);

typedef enum keel_db_isolation {
    KEEL_DB_READ_COMMITTED = 0,
    KEEL_DB_REPEATABLE_READ,
    KEEL_DB_SERIALIZABLE,
} keel_db_isolation;

/* Body of a transaction. Return KEEL_OK to commit; any other code rolls back.
 * KEEL_ERR_TRANSIENT rolls back and runs the body again (after backoff). */
typedef keel_result (*keel_db_tx_fn)(keel_db *db, void *arg);

typedef struct keel_db_tx_options {
    keel_db_isolation isolation;
    int max_attempts;        /* 0 = 10 */
    int64_t base_backoff_ms; /* 0 = 20 */
    int64_t cap_backoff_ms;  /* 0 = 2000 */
} keel_db_tx_options;

/* BEGIN ... fn ... COMMIT. Retries (BEGIN again, fn again) when the body, the BEGIN or the
 * COMMIT hits a transient error, reconnecting if the connection was lost, up to
 * max_attempts, with full-jitter backoff; stops early on shutdown. A COMMIT whose outcome
 * is unknown (connection lost during COMMIT) is also retried, so bodies must be idempotent
 * through their own keys (inbox, idempotency, unique constraints), as keel's always are.
 * opts may be NULL. Returns the body's last result or the database's. The number of
 * retries made is added to *retries when retries is not NULL. */
keel_result keel_db_transaction(keel_db *db, const keel_db_tx_options *opts, keel_db_tx_fn fn,
                                void *arg, int *retries);

/* A fixed-size pool of keel_db connections for multi-threaded servers. */
typedef struct keel_db_pool keel_db_pool;
keel_db_pool *keel_db_pool_new(const char *conninfo, const char *password,
                               const char *application_name, int size);
void keel_db_pool_free(keel_db_pool *pool);
/* Waits up to timeout_ms for a free connection, which it connects if needed (bounded by
 * the same timeout). NULL when none is free in time: the caller sheds load (503). */
keel_db *keel_db_pool_acquire(keel_db_pool *pool, int64_t timeout_ms);
void keel_db_pool_release(keel_db_pool *pool, keel_db *db);
/* True when at least one connection is connected and answers "SELECT 1" (for /readyz). */
bool keel_db_pool_ping(keel_db_pool *pool);

#endif
