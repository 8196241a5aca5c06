/* PostgreSQL connections on libpq: reconnect with backoff, prepared statements, retried
 * transactions and a small blocking pool. */
#include "keel/db.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"

/* Every statement is bounded on the server so a stuck query cannot hold a worker forever. */
#define DB_STATEMENT_TIMEOUT_MS 30000
/* One connection attempt never takes longer than this (libpq's connect_timeout is ignored by
 * the asynchronous connect we use, so we enforce it ourselves). */
#define DB_CONNECT_ATTEMPT_MS 5000
#define DB_RECONNECT_BASE_MS 100
#define DB_RECONNECT_CAP_MS 5000
/* How long keel_db_transaction waits for a lost connection to come back per attempt. */
#define DB_TX_RECONNECT_MS 5000

struct keel_db {
    char *conninfo;
    char *password;
    char *application_name;
    char *url_password; /* a password written into conninfo itself, scrubbed from messages */
    PGconn *conn;
    char **prepared; /* statement names prepared on the current connection */
    size_t prepared_count;
    size_t prepared_cap;
};

static char *db_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Replaces every occurrence of secret in buf with "***" so no password reaches a log line. */
static void db_scrub(char *buf, const char *secret)
{
    if (!buf || !secret || strlen(secret) < 3) {
        return;
    }
    size_t slen = strlen(secret);
    char *hit;
    while ((hit = strstr(buf, secret)) != NULL) {
        size_t tail = strlen(hit + slen);
        hit[0] = '*';
        hit[1] = '*';
        hit[2] = '*';
        memmove(hit + 3, hit + slen, tail + 1);
    }
}

/* Copies a libpq message into out without trailing newlines and without any password. */
static void db_message(const keel_db *db, const char *msg, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s", msg ? msg : "");
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) {
        out[--n] = '\0';
    }
    for (char *p = out; *p; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
    if (db) {
        db_scrub(out, db->password);
        db_scrub(out, db->url_password);
    }
}

static void db_forget_prepared(keel_db *db)
{
    for (size_t i = 0; i < db->prepared_count; i++) {
        free(db->prepared[i]);
        db->prepared[i] = NULL;
    }
    db->prepared_count = 0;
}

static void db_close(keel_db *db)
{
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db_forget_prepared(db);
}

keel_db *keel_db_new(const char *conninfo, const char *password, const char *application_name)
{
    keel_db *db = NULL;
    PQconninfoOption *opts = NULL;
    char *perr = NULL;

    if (!conninfo) {
        keel_log_error("database: no connection string given (set KEEL_DATABASE_URL)");
        return NULL;
    }
    /* Validate the syntax now so a typo fails at start-up, not in the reconnect loop. The
     * parser's message may quote part of the string (a password), so it is not logged. */
    opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        keel_log_error("database: the connection string is not valid libpq syntax; check the "
                       "URL's percent-encoding or the key=value quoting");
        goto fail;
    }
    db = calloc(1, sizeof(*db));
    if (!db) {
        goto fail;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0]) {
            db->url_password = strdup(o->val);
        }
    }
    db->conninfo = strdup(conninfo);
    db->password = db_strdup(password);
    db->application_name = strdup(application_name ? application_name : "keel");
    if (!db->conninfo || (password && !db->password) || !db->application_name) {
        goto fail;
    }
    PQconninfoFree(opts);
    return db;

fail:
    if (perr) {
        PQfreemem(perr);
        perr = NULL;
    }
    if (opts) {
        PQconninfoFree(opts);
        opts = NULL;
    }
    keel_db_free(db);
    return NULL;
}

void keel_db_free(keel_db *db)
{
    if (!db) {
        return;
    }
    db_close(db);
    free(db->prepared);
    db->prepared = NULL;
    if (db->password) {
        /* The secret should not linger in freed heap memory. */
        memset(db->password, 0, strlen(db->password));
    }
    if (db->url_password) {
        memset(db->url_password, 0, strlen(db->url_password));
    }
    free(db->password);
    free(db->url_password);
    free(db->conninfo);
    free(db->application_name);
    free(db);
}

bool keel_db_is_connected(keel_db *db)
{
    return db && db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

PGconn *keel_db_conn(keel_db *db)
{
    return keel_db_is_connected(db) ? db->conn : NULL;
}

/* Waits until fd is ready for the direction libpq asked for, the deadline passes (0) or a
 * stop is requested (-1). */
static int db_wait_socket(int fd, bool for_write, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - keel_clock_monotonic_ms();
        if (left <= 0) {
            return 0;
        }
        struct pollfd pfd[2] = {
            {.fd = fd, .events = for_write ? POLLOUT : POLLIN},
            {.fd = keel_shutdown_fd(), .events = POLLIN},
        };
        int n = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno != EINTR) {
            return 0;
        }
        if (keel_shutdown_requested()) {
            return -1;
        }
        if (n > 0 && pfd[0].revents) {
            return 1;
        }
    }
}

/* Server notices go to the JSON log instead of libpq's default (raw lines on stderr):
 * warnings at warn level, the chatter ("already exists, skipping") at debug. */
static void db_notice(void *arg, const PGresult *res)
{
    const keel_db *db = arg;
    char msg[512];
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    db_message(db, PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), msg, sizeof(msg));
    if (severity && strcmp(severity, "WARNING") == 0) {
        keel_log_warn("database warning: %s", msg);
    } else {
        keel_log_debug("database notice: %s", msg);
    }
}

/* One connection attempt bounded by budget_ms. KEEL_OK, KEEL_ERR_TRANSIENT (retry) or
 * KEEL_ERR_TIMEOUT when a stop was requested while waiting; msg says why on failure. */
static keel_result db_connect_once(keel_db *db, int64_t budget_ms, char *msg, size_t msg_len)
{
    const char *keys[12];
    const char *vals[12];
    int n = 0;
    PGconn *c = NULL;
    PGresult *res = NULL;
    keel_result rc = KEEL_ERR_TRANSIENT;
    char stmt[96];

    keys[n] = "dbname"; /* expanded: the whole conninfo; the keys below override it */
    vals[n++] = db->conninfo;
    if (db->password) {
        keys[n] = "password";
        vals[n++] = db->password;
    }
    keys[n] = "application_name";
    vals[n++] = db->application_name;
    keys[n] = "connect_timeout";
    vals[n++] = "5";
    /* Keepalives and a TCP user timeout notice a silently dead server within about a
     * minute, so a blocked call returns instead of waiting for the kernel's hours. */
    keys[n] = "keepalives";
    vals[n++] = "1";
    keys[n] = "keepalives_idle";
    vals[n++] = "30";
    keys[n] = "keepalives_interval";
    vals[n++] = "10";
    keys[n] = "keepalives_count";
    vals[n++] = "3";
    keys[n] = "tcp_user_timeout";
    vals[n++] = "60000";
    keys[n] = NULL;
    vals[n] = NULL;

    c = PQconnectStartParams(keys, vals, 1);
    if (!c) {
        snprintf(msg, msg_len, "out of memory starting a connection");
        goto done;
    }
    int64_t deadline = keel_clock_monotonic_ms() + budget_ms;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            break;
        }
        int w = db_wait_socket(PQsocket(c), st == PGRES_POLLING_WRITING, deadline);
        if (w == 0) {
            snprintf(msg, msg_len, "no answer within %lld ms", (long long)budget_ms);
            goto done;
        }
        if (w < 0) {
            snprintf(msg, msg_len, "stop requested while connecting");
            rc = KEEL_ERR_TIMEOUT;
            goto done;
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        db_message(db, PQerrorMessage(c), msg, msg_len);
        goto done;
    }
    PQsetNoticeReceiver(c, db_notice, db);
    snprintf(stmt, sizeof(stmt), "SET statement_timeout = %d", DB_STATEMENT_TIMEOUT_MS);
    res = PQexec(c, stmt);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_message(db, PQerrorMessage(c), msg, msg_len);
        goto done;
    }
    db_close(db);
    db->conn = c;
    c = NULL;
    rc = KEEL_OK;

done:
    if (res) {
        PQclear(res);
        res = NULL;
    }
    if (c) {
        PQfinish(c);
        c = NULL;
    }
    return rc;
}

keel_result keel_db_connect(keel_db *db, int64_t timeout_ms)
{
    if (!db) {
        return KEEL_ERR;
    }
    if (keel_db_is_connected(db)) {
        return KEEL_OK;
    }
    bool had_connection = db->conn != NULL;
    db_close(db); /* a broken connection is dropped, with what was prepared on it */

    const keel_backoff backoff = {
        .base_ms = DB_RECONNECT_BASE_MS, .cap_ms = DB_RECONNECT_CAP_MS, .max_attempts = 0};
    int64_t start = keel_clock_monotonic_ms();
    int64_t deadline = start + (timeout_ms > 0 ? timeout_ms : 0);
    char msg[512] = "";

    for (int attempt = 0;; attempt++) {
        if (keel_shutdown_requested()) {
            return KEEL_ERR_TRANSIENT;
        }
        int64_t left = deadline - keel_clock_monotonic_ms();
        int64_t budget = left < DB_CONNECT_ATTEMPT_MS ? left : DB_CONNECT_ATTEMPT_MS;
        /* Even a tiny timeout gets one real attempt (a TLS handshake to a distant server
         * takes a few hundred ms); later ones stay within the caller's timeout. */
        int64_t floor_ms = attempt == 0 ? 1000 : 250;
        if (budget < floor_ms) {
            budget = floor_ms;
        }
        keel_result rc = db_connect_once(db, budget, msg, sizeof(msg));
        if (rc == KEEL_OK) {
            if (had_connection || attempt > 0) {
                keel_log_info("database: connected to %s on %s:%s as %s after %d attempt(s)",
                              PQdb(db->conn), PQhost(db->conn), PQport(db->conn), PQuser(db->conn),
                              attempt + 1);
            } else {
                keel_log_info("database: connected to %s on %s:%s as %s", PQdb(db->conn),
                              PQhost(db->conn), PQport(db->conn), PQuser(db->conn));
            }
            return KEEL_OK;
        }
        if (rc == KEEL_ERR_TIMEOUT) { /* a stop was requested during the attempt */
            return KEEL_ERR_TRANSIENT;
        }
        /* During an outage every caller retries: one line at the first failure and one per
         * ten after it say enough. */
        if (attempt % 10 == 0) {
            keel_log_warn("database: connection attempt %d failed: %s", attempt + 1, msg);
        } else {
            keel_log_debug("database: connection attempt %d failed: %s", attempt + 1, msg);
        }
        left = deadline - keel_clock_monotonic_ms();
        if (left <= 0) {
            if (attempt > 0) {
                keel_log_warn("database: still not connected after %lld ms (%d attempts); "
                              "last error: %s; check that PostgreSQL is up and "
                              "KEEL_DATABASE_URL",
                              (long long)(keel_clock_monotonic_ms() - start), attempt + 1, msg);
            }
            return KEEL_ERR_TIMEOUT;
        }
        int64_t delay = keel_backoff_delay_ms(&backoff, attempt, NULL);
        if (delay > left) {
            delay = left;
        }
        if (keel_shutdown_wait_ms(delay)) {
            return KEEL_ERR_TRANSIENT;
        }
    }
}

PGresult *keel_db_exec(keel_db *db, const char *sql, int nparams, const char *const *params)
{
    if (!keel_db_is_connected(db)) {
        return NULL;
    }
    return PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

PGresult *keel_db_exec_bin(keel_db *db, const char *sql, int nparams, const char *const *params,
                           const int *lengths, const int *formats)
{
    if (!keel_db_is_connected(db)) {
        return NULL;
    }
    return PQexecParams(db->conn, sql, nparams, NULL, params, lengths, formats, 0);
}

static bool db_is_prepared(const keel_db *db, const char *name)
{
    for (size_t i = 0; i < db->prepared_count; i++) {
        if (strcmp(db->prepared[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static bool db_remember_prepared(keel_db *db, const char *name)
{
    if (db->prepared_count == db->prepared_cap) {
        size_t cap = db->prepared_cap ? db->prepared_cap * 2 : 16;
        char **grown = realloc(db->prepared, cap * sizeof(*grown));
        if (!grown) {
            return false;
        }
        db->prepared = grown;
        db->prepared_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        return false;
    }
    db->prepared[db->prepared_count++] = copy;
    return true;
}

PGresult *keel_db_exec_prepared(keel_db *db, const char *name, const char *sql, int nparams,
                                const char *const *params)
{
    if (!keel_db_is_connected(db)) {
        return NULL;
    }
    if (!db_is_prepared(db, name)) {
        PGresult *prep = PQprepare(db->conn, name, sql, nparams, NULL);
        ExecStatusType st = PQresultStatus(prep);
        const char *state = PQresultErrorField(prep, PG_DIAG_SQLSTATE);
        /* 42P05: already prepared on this session (e.g. by code that bypassed the list);
         * the statement exists, so go on. Prepared statements outlive a rolled-back
         * transaction, so remembering the name is right even inside one. */
        if (st != PGRES_COMMAND_OK && !(state && strcmp(state, "42P05") == 0)) {
            return prep; /* the caller's keel_db_check reports it */
        }
        PQclear(prep);
        if (!db_remember_prepared(db, name)) {
            keel_log_error("database: out of memory remembering prepared statement %s", name);
        }
    }
    return PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
}

static bool db_state_is(const char *state, const char *code)
{
    return state && strcmp(state, code) == 0;
}

keel_result keel_db_check(keel_db *db, const PGresult *res, const char *what)
{
    char msg[512];
    const char *label = what ? what : "query";

    if (!res) {
        keel_log_warn("%s: no database connection (will retry once it is back)", label);
        return KEEL_ERR_TRANSIENT;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return KEEL_OK;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    db_message(db, PQresultErrorMessage(res), msg, sizeof(msg));
    if (msg[0] == '\0') {
        snprintf(msg, sizeof(msg), "%s", PQresStatus(st));
    }

    keel_result rc = KEEL_ERR;
    bool lost = db && db->conn && PQstatus(db->conn) == CONNECTION_BAD;
    if (lost || db_state_is(state, "40001") || db_state_is(state, "40P01") ||
        db_state_is(state, "57P01") || db_state_is(state, "57P02") || db_state_is(state, "57P03") ||
        db_state_is(state, "53300") || (state && strncmp(state, "08", 2) == 0)) {
        rc = KEEL_ERR_TRANSIENT;
    } else if (db_state_is(state, "23505")) {
        rc = KEEL_ERR_CONFLICT;
    }
    keel_log_warn("%s: %s (SQLSTATE %s%s): %s", label, keel_result_name(rc), state ? state : "none",
                  lost ? ", connection lost" : "", msg);
    return rc;
}

static const char *db_begin_sql(keel_db_isolation iso)
{
    switch (iso) {
    case KEEL_DB_REPEATABLE_READ:
        return "BEGIN ISOLATION LEVEL REPEATABLE READ";
    case KEEL_DB_SERIALIZABLE:
        return "BEGIN ISOLATION LEVEL SERIALIZABLE";
    case KEEL_DB_READ_COMMITTED:
    default:
        return "BEGIN ISOLATION LEVEL READ COMMITTED";
    }
}

/* Leaves the session outside any transaction; a broken connection needs nothing. */
static void db_rollback(keel_db *db)
{
    if (!keel_db_is_connected(db) || PQtransactionStatus(db->conn) == PQTRANS_IDLE) {
        return;
    }
    PGresult *res = PQexec(db->conn, "ROLLBACK");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[256];
        db_message(db, PQerrorMessage(db->conn), msg, sizeof(msg));
        keel_log_warn("database: ROLLBACK failed: %s", msg);
    }
    PQclear(res);
}

/* One BEGIN/body/COMMIT. */
static keel_result db_tx_once(keel_db *db, keel_db_isolation iso, keel_db_tx_fn fn, void *arg)
{
    keel_result rc = keel_db_connect(db, DB_TX_RECONNECT_MS);
    if (rc != KEEL_OK) {
        return KEEL_ERR_TRANSIENT;
    }
    if (PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        /* Someone left a transaction open on this connection: never run inside it. */
        keel_log_warn("database: a transaction was left open on this connection; rolling it "
                      "back before BEGIN");
        db_rollback(db);
    }
    PGresult *res = PQexec(db->conn, db_begin_sql(iso));
    rc = keel_db_check(db, res, "BEGIN");
    PQclear(res);
    if (rc != KEEL_OK) {
        return rc;
    }
    rc = fn(db, arg);
    if (rc != KEEL_OK) {
        db_rollback(db);
        return rc;
    }
    res = keel_db_is_connected(db) ? PQexec(db->conn, "COMMIT") : NULL;
    rc = keel_db_check(db, res, "COMMIT");
    if (rc == KEEL_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* The server answers COMMIT of a failed transaction with ROLLBACK: the body ignored
         * an error, so nothing was stored. */
        keel_log_error("database: the transaction body returned ok after a failed statement; "
                       "the server rolled the transaction back (fix the body's error "
                       "handling)");
        rc = KEEL_ERR;
    }
    PQclear(res);
    return rc;
}

keel_result keel_db_transaction(keel_db *db, const keel_db_tx_options *opts, keel_db_tx_fn fn,
                                void *arg, int *retries)
{
    if (!db || !fn) {
        return KEEL_ERR;
    }
    keel_db_isolation iso = opts ? opts->isolation : KEEL_DB_READ_COMMITTED;
    keel_backoff backoff = {
        .base_ms = opts && opts->base_backoff_ms > 0 ? opts->base_backoff_ms : 20,
        .cap_ms = opts && opts->cap_backoff_ms > 0 ? opts->cap_backoff_ms : 2000,
        .max_attempts = opts && opts->max_attempts > 0 ? opts->max_attempts : 10,
    };
    keel_result rc = KEEL_ERR;
    for (int attempt = 0;; attempt++) {
        rc = db_tx_once(db, iso, fn, arg);
        if (rc != KEEL_ERR_TRANSIENT) {
            return rc;
        }
        if (!keel_backoff_should_retry(&backoff, attempt + 1)) {
            keel_log_warn("database: transaction still failing transiently after %d "
                          "attempts; giving up",
                          attempt + 1);
            return rc;
        }
        if (keel_shutdown_requested() ||
            keel_shutdown_wait_ms(keel_backoff_delay_ms(&backoff, attempt, NULL))) {
            return rc;
        }
        if (retries) {
            (*retries)++;
        }
        keel_metric_inc(keel_metrics_counter(
            keel_metrics_default(), "keel_db_transaction_retries_total",
            "Database transactions run again after a transient error (serialization failure, "
            "deadlock, lost connection).",
            NULL));
    }
}

/* ---- pool ----------------------------------------------------------------------------- */

struct keel_db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size;
    keel_db **dbs;
    bool *in_use;
    bool *known_up; /* last seen connected, updated at release (read for /readyz) */
};

keel_db_pool *keel_db_pool_new(const char *conninfo, const char *password,
                               const char *application_name, int size)
{
    keel_db_pool *pool = NULL;
    pthread_condattr_t attr;
    bool attr_ok = false;

    if (size <= 0) {
        keel_log_error("database: pool size must be at least 1, got %d", size);
        return NULL;
    }
    pool = calloc(1, sizeof(*pool));
    if (!pool) {
        goto fail;
    }
    pool->dbs = calloc((size_t)size, sizeof(*pool->dbs));
    pool->in_use = calloc((size_t)size, sizeof(*pool->in_use));
    pool->known_up = calloc((size_t)size, sizeof(*pool->known_up));
    if (!pool->dbs || !pool->in_use || !pool->known_up) {
        goto fail;
    }
    pool->size = size;
    for (int i = 0; i < size; i++) {
        pool->dbs[i] = keel_db_new(conninfo, password, application_name);
        if (!pool->dbs[i]) {
            goto fail;
        }
    }
    pthread_mutex_init(&pool->mu, NULL);
    /* Timed waits run on the monotonic clock so a wall-clock jump cannot stretch them. */
    if (pthread_condattr_init(&attr) != 0) {
        goto fail_sync;
    }
    attr_ok = true;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&pool->cv, &attr) != 0) {
        goto fail_sync;
    }
    pthread_condattr_destroy(&attr);
    return pool;

fail_sync:
    if (attr_ok) {
        pthread_condattr_destroy(&attr);
    }
    pthread_mutex_destroy(&pool->mu);
fail:
    if (pool) {
        for (int i = 0; pool->dbs && i < size; i++) {
            keel_db_free(pool->dbs[i]);
            pool->dbs[i] = NULL;
        }
        free(pool->dbs);
        free(pool->in_use);
        free(pool->known_up);
        free(pool);
    }
    return NULL;
}

void keel_db_pool_free(keel_db_pool *pool)
{
    if (!pool) {
        return;
    }
    for (int i = 0; i < pool->size; i++) {
        keel_db_free(pool->dbs[i]);
        pool->dbs[i] = NULL;
    }
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->dbs);
    free(pool->in_use);
    free(pool->known_up);
    free(pool);
}

static void pool_deadline(struct timespec *ts, int64_t deadline_ms)
{
    ts->tv_sec = (time_t)(deadline_ms / 1000);
    ts->tv_nsec = (long)((deadline_ms % 1000) * 1000000);
}

/* Takes a free slot (preferring a connected one), or -1 when none frees up in time. */
static int pool_take(keel_db_pool *pool, int64_t deadline_ms)
{
    int slot = -1;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        for (int i = 0; i < pool->size; i++) {
            if (!pool->in_use[i] && (slot < 0 || (pool->known_up[i] && !pool->known_up[slot]))) {
                slot = i;
            }
        }
        if (slot >= 0) {
            pool->in_use[slot] = true;
            break;
        }
        int64_t now = keel_clock_monotonic_ms();
        if (now >= deadline_ms) {
            break;
        }
        struct timespec ts;
        pool_deadline(&ts, deadline_ms);
        pthread_cond_timedwait(&pool->cv, &pool->mu, &ts);
    }
    pthread_mutex_unlock(&pool->mu);
    return slot;
}

static void pool_put(keel_db_pool *pool, int slot, bool up)
{
    pthread_mutex_lock(&pool->mu);
    pool->in_use[slot] = false;
    pool->known_up[slot] = up;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

keel_db *keel_db_pool_acquire(keel_db_pool *pool, int64_t timeout_ms)
{
    if (!pool) {
        return NULL;
    }
    int64_t deadline = keel_clock_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int slot = pool_take(pool, deadline);
    if (slot < 0) {
        return NULL;
    }
    keel_db *db = pool->dbs[slot];
    int64_t left = deadline - keel_clock_monotonic_ms();
    if (keel_db_connect(db, left > 0 ? left : 0) != KEEL_OK) {
        pool_put(pool, slot, false);
        return NULL;
    }
    pthread_mutex_lock(&pool->mu);
    pool->known_up[slot] = true;
    pthread_mutex_unlock(&pool->mu);
    return db;
}

void keel_db_pool_release(keel_db_pool *pool, keel_db *db)
{
    if (!pool || !db) {
        return;
    }
    for (int i = 0; i < pool->size; i++) {
        if (pool->dbs[i] != db) {
            continue;
        }
        if (keel_db_is_connected(db)) {
            PGTransactionStatusType ts = PQtransactionStatus(db->conn);
            if (ts == PQTRANS_ACTIVE || ts == PQTRANS_UNKNOWN) {
                /* A query still running cannot be cancelled cheaply here: drop the session. */
                db_close(db);
            } else if (ts != PQTRANS_IDLE) {
                keel_log_warn("database: a connection came back to the pool inside a "
                              "transaction; rolling it back");
                db_rollback(db);
            }
        }
        pool_put(pool, i, keel_db_is_connected(db));
        return;
    }
    keel_log_error("database: keel_db_pool_release got a connection that is not from this "
                   "pool; ignored");
}

static bool pool_select1(keel_db *db)
{
    PGresult *res = keel_db_exec(db, "SELECT 1", 0, NULL);
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

bool keel_db_pool_ping(keel_db_pool *pool)
{
    if (!pool) {
        return false;
    }
    int64_t deadline = keel_clock_monotonic_ms() + 500;
    int slot = pool_take(pool, deadline);
    if (slot < 0) {
        /* Every connection is busy: the pool is working, ready if any was last seen up. */
        bool any = false;
        pthread_mutex_lock(&pool->mu);
        for (int i = 0; i < pool->size; i++) {
            any = any || pool->known_up[i];
        }
        pthread_mutex_unlock(&pool->mu);
        return any;
    }
    keel_db *db = pool->dbs[slot];
    bool ok = keel_db_connect(db, 1000) == KEEL_OK && pool_select1(db);
    pool_put(pool, slot, keel_db_is_connected(db));
    return ok;
}
