/* Applies embedded SQL migrations once each, in order, under an advisory lock, and refuses to
 * start when a file that was already applied has changed. */
#include "keel/migrate.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"

/* Waiting for another instance's migrations, and the DDL itself, may take much longer than
 * the 30 s statement timeout every connection gets; this bound still ends a stuck run. */
#define MIGRATE_STATEMENT_TIMEOUT "15min"
#define MIGRATE_CONNECT_TIMEOUT_MS 30000

static const char migrate_table_sql[] = "CREATE TABLE IF NOT EXISTS keel_schema_migrations ("
                                        " component text NOT NULL,"
                                        " version integer NOT NULL,"
                                        " name text NOT NULL,"
                                        " checksum text NOT NULL,"
                                        " applied_at timestamptz NOT NULL DEFAULT now(),"
                                        " PRIMARY KEY (component, version))";

typedef struct migrate_recorded {
    int version;
    char checksum[65];
} migrate_recorded;

static bool migrate_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int out_len = 0;
    return EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) == 1 && out_len == 32;
}

static bool migrate_sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    if (!migrate_sha256(text, strlen(text), md)) {
        return false;
    }
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return true;
}

/* The advisory lock every keel migration run takes: the first 8 bytes of SHA-256 of
 * "keel_migrate", so it is stable across versions and cannot collide by accident with the
 * small integer keys people pick by hand. */
static bool migrate_lock_key(char out[24])
{
    unsigned char md[32];
    static const char name[] = "keel_migrate";
    if (!migrate_sha256(name, sizeof(name) - 1, md)) {
        return false;
    }
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) {
        k = (k << 8) | md[i];
    }
    snprintf(out, 24, "%lld", (long long)(int64_t)k);
    return true;
}

/* Writes the server's error for res (or the connection's) into err. */
static void migrate_pg_error(keel_db *db, const PGresult *res, const char *what, char *err,
                             size_t err_len)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !msg[0]) {
        PGconn *c = keel_db_conn(db);
        msg = c ? PQerrorMessage(c) : "the database connection was lost";
    }
    snprintf(err, err_len, "%s failed (SQLSTATE %s): %s", what, state ? state : "none", msg);
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) {
        err[--n] = '\0';
    }
}

/* Runs a statement that returns nothing of interest; false with err filled on failure. */
static bool migrate_run(keel_db *db, const char *sql, int nparams, const char *const *params,
                        const char *what, char *err, size_t err_len)
{
    PGresult *res = keel_db_exec(db, sql, nparams, params);
    bool ok = keel_db_check(db, res, what) == KEEL_OK;
    if (!ok) {
        migrate_pg_error(db, res, what, err, err_len);
    }
    PQclear(res);
    return ok;
}

static void migrate_rollback(keel_db *db)
{
    PGconn *c = keel_db_conn(db);
    if (c && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PQclear(PQexec(c, "ROLLBACK"));
    }
}

/* Applies one file and records it, in one transaction: either both happen or neither. */
static bool migrate_apply_one(keel_db *db, const char *component, const keel_migration *m,
                              const char *checksum, char *err, size_t err_len)
{
    PGresult *res = NULL;
    char what[320];
    char version[16];
    bool ok = false;

    if (!migrate_run(db, "BEGIN", 0, NULL, "BEGIN", err, err_len)) {
        goto done;
    }
    /* PQexec (the simple protocol) because a migration file holds several statements. */
    res = PQexec(keel_db_conn(db), m->sql);
    snprintf(what, sizeof(what), "migration %s of %s", m->name, component);
    if (keel_db_check(db, res, what) != KEEL_OK) {
        char pg[512];
        migrate_pg_error(db, res, what, pg, sizeof(pg));
        snprintf(err, err_len,
                 "%s; nothing of it was applied (it runs in one transaction): fix the file "
                 "and start again",
                 pg);
        goto done;
    }
    PQclear(res);
    res = NULL;
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {component, version, m->name, checksum};
    if (!migrate_run(db,
                     "INSERT INTO keel_schema_migrations (component, version, name, checksum) "
                     "VALUES ($1, $2::integer, $3, $4)",
                     4, params, "recording a migration", err, err_len)) {
        goto done;
    }
    res = keel_db_exec(db, "COMMIT", 0, NULL);
    if (keel_db_check(db, res, "COMMIT") != KEEL_OK || strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        migrate_pg_error(db, res, "COMMIT of a migration", err, err_len);
        goto done;
    }
    ok = true;

done:
    PQclear(res);
    res = NULL;
    if (!ok) {
        migrate_rollback(db);
    }
    return ok;
}

static bool migrate_check_list(const char *component, const keel_migration *list, size_t count,
                               char *err, size_t err_len)
{
    for (size_t i = 0; i < count; i++) {
        const keel_migration *m = &list[i];
        if (!m->name || !m->sql || m->version <= 0) {
            snprintf(err, err_len,
                     "migration #%zu of %s has no name, no SQL or a version below 1; "
                     "migration files are named NNN_name.sql with NNN >= 1",
                     i, component);
            return false;
        }
        if (i > 0 && m->version <= list[i - 1].version) {
            snprintf(err, err_len,
                     "migrations %s and %s of %s are out of order or share version %d; give "
                     "each file its own increasing number",
                     list[i - 1].name, m->name, component, m->version);
            return false;
        }
    }
    return true;
}

keel_result keel_migrate_apply(keel_db *db, const char *component, const keel_migration *list,
                               size_t count, char *err, size_t err_len)
{
    keel_result rc = KEEL_ERR;
    PGresult *res = NULL;
    migrate_recorded *recorded = NULL;
    int nrecorded = 0;
    char saved_timeout[64] = "";
    char key[24];
    bool locked = false;
    size_t applied = 0;
    char scratch[8];
    const char *lock_params[] = {key};

    if (!err || err_len == 0) {
        err = scratch;
        err_len = sizeof(scratch);
    }
    err[0] = '\0';
    if (!db || !component || !component[0] || (count > 0 && !list)) {
        snprintf(err, err_len,
                 "keel_migrate_apply needs a database, a component name and a "
                 "list of migrations");
        return KEEL_ERR;
    }
    if (!migrate_check_list(component, list, count, err, err_len)) {
        return KEEL_ERR;
    }
    rc = keel_db_connect(db, MIGRATE_CONNECT_TIMEOUT_MS);
    if (rc != KEEL_OK) {
        snprintf(err, err_len,
                 "cannot apply migrations of %s: the database is not reachable (see the "
                 "connection errors logged above)",
                 component);
        return rc;
    }
    rc = KEEL_ERR;
    if (PQtransactionStatus(keel_db_conn(db)) != PQTRANS_IDLE) {
        snprintf(err, err_len,
                 "keel_migrate_apply was called inside an open transaction; each migration "
                 "needs its own");
        return KEEL_ERR;
    }
    if (!migrate_lock_key(key)) {
        snprintf(err, err_len, "SHA-256 is not available from libcrypto");
        return KEEL_ERR;
    }

    res = keel_db_exec(db, "SHOW statement_timeout", 0, NULL);
    if (keel_db_check(db, res, "SHOW statement_timeout") != KEEL_OK || PQntuples(res) != 1) {
        migrate_pg_error(db, res, "SHOW statement_timeout", err, err_len);
        goto done;
    }
    snprintf(saved_timeout, sizeof(saved_timeout), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (!migrate_run(db, "SET statement_timeout = '" MIGRATE_STATEMENT_TIMEOUT "'", 0, NULL,
                     "SET statement_timeout", err, err_len)) {
        goto done;
    }

    /* A session lock: held across the per-file transactions, so two instances starting
     * together apply each file once; the second waits, then finds everything recorded. */
    int64_t wait_start = keel_clock_monotonic_ms();
    if (!migrate_run(db, "SELECT pg_advisory_lock($1::bigint)", 1, lock_params,
                     "taking the migration lock", err, err_len)) {
        goto done;
    }
    locked = true;
    int64_t waited = keel_clock_monotonic_ms() - wait_start;
    if (waited > 1000) {
        keel_log_info("migrations of %s: waited %lld ms for another instance's migrations",
                      component, (long long)waited);
    }

    if (!migrate_run(db, migrate_table_sql, 0, NULL, "creating keel_schema_migrations", err,
                     err_len)) {
        goto done;
    }
    const char *comp_params[] = {component};
    res = keel_db_exec(db,
                       "SELECT version, checksum FROM keel_schema_migrations "
                       "WHERE component = $1 ORDER BY version",
                       1, comp_params);
    if (keel_db_check(db, res, "reading keel_schema_migrations") != KEEL_OK) {
        migrate_pg_error(db, res, "reading keel_schema_migrations", err, err_len);
        goto done;
    }
    nrecorded = PQntuples(res);
    if (nrecorded > 0) {
        recorded = calloc((size_t)nrecorded, sizeof(*recorded));
        if (!recorded) {
            snprintf(err, err_len, "out of memory reading keel_schema_migrations");
            goto done;
        }
    }
    for (int i = 0; i < nrecorded; i++) {
        recorded[i].version = atoi(PQgetvalue(res, i, 0));
        snprintf(recorded[i].checksum, sizeof(recorded[i].checksum), "%s", PQgetvalue(res, i, 1));
    }
    PQclear(res);
    res = NULL;

    for (size_t i = 0; i < count; i++) {
        const keel_migration *m = &list[i];
        char sum[65];
        if (!migrate_sha256_hex(m->sql, sum)) {
            snprintf(err, err_len, "SHA-256 is not available from libcrypto");
            goto done;
        }
        const migrate_recorded *rec = NULL;
        for (int j = 0; j < nrecorded; j++) {
            if (recorded[j].version == m->version) {
                rec = &recorded[j];
            }
        }
        if (rec) {
            if (strcmp(rec->checksum, sum) != 0) {
                snprintf(err, err_len,
                         "migration %s of %s was changed after it was applied (recorded "
                         "sha256 %.12s..., the file now has %.12s...); an applied migration "
                         "must never be edited: restore the file and add a new migration "
                         "(version above %d) for the change instead",
                         m->name, component, rec->checksum, sum, list[count - 1].version);
                goto done;
            }
            continue;
        }
        int64_t t0 = keel_clock_monotonic_ms();
        if (!migrate_apply_one(db, component, m, sum, err, err_len)) {
            goto done;
        }
        applied++;
        keel_log_info("migrations of %s: applied %s in %lld ms", component, m->name,
                      (long long)(keel_clock_monotonic_ms() - t0));
    }
    keel_log_info("migrations of %s: %zu applied now, %zu already in place", component, applied,
                  count - applied);
    rc = KEEL_OK;

done:
    PQclear(res);
    res = NULL;
    free(recorded);
    recorded = NULL;
    if (rc != KEEL_OK) {
        keel_log_error("migrations of %s: %s", component, err);
    }
    /* Release the lock and restore the session even on error, so a pooled connection goes
     * back the way it came (when the connection is gone, the server already released it). */
    if (locked && keel_db_is_connected(db)) {
        char ignored[256];
        migrate_run(db, "SELECT pg_advisory_unlock($1::bigint)", 1, lock_params,
                    "releasing the migration lock", ignored, sizeof(ignored));
    }
    if (saved_timeout[0] && keel_db_is_connected(db)) {
        char ignored[256];
        const char *params[] = {saved_timeout};
        migrate_run(db, "SELECT set_config('statement_timeout', $1, false)", 1, params,
                    "restoring statement_timeout", ignored, sizeof(ignored));
    }
    return rc;
}
