/* keel_testing's PostgreSQL fixture: scratch schemas, migrations and SQL shortcuts that fail
 * the running cmocka test (see keel/testing/db.h). */
#include "keel/testing/db.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "keel/clock.h"

#define TESTDB_CONNECT_MS 10000

/* Reports msg (printf) as cmocka does for a failed assertion, at the test's file and line,
 * and leaves the test (cmocka jumps out of it). */
static void testdb_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static void testdb_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    print_error("\n");
    _fail(file, line);
    abort(); /* _fail does not return; this tells the compiler so */
}

/* Runs sql (with param as $1 when param is not NULL) and returns the first column of its
 * first row, malloc'd: "" when there is no row or the value is NULL. The test fails when the
 * server refuses sql or, with one_row, unless sql returns exactly one row. */
static char *testdb_value(const char *file, int line, keel_db *db, const char *sql,
                          const char *param, bool one_row)
{
    const char *params[] = {param};
    PGresult *res = keel_db_exec(db, sql, param != NULL ? 1 : 0, param != NULL ? params : NULL);
    if (keel_db_check(db, res, "test statement") != KEEL_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s",
                 res != NULL ? PQresultErrorMessage(res) : "no connection to the server");
        PQclear(res);
        testdb_fail(file, line, "statement failed: %s\n  %s", sql, msg);
    }
    int rows = PQntuples(res);
    if (one_row && (rows != 1 || PQnfields(res) < 1)) {
        PQclear(res);
        testdb_fail(file, line, "%s returned %d rows, want exactly one", sql, rows);
    }
    char *v = strdup(rows > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (v == NULL) {
        testdb_fail(file, line, "out of memory");
    }
    return v;
}

/* testdb_value for the statement the printf format fmt makes of ap. */
static char *testdb_valuev(const char *file, int line, keel_db *db, bool one_row, const char *fmt,
                           va_list ap) __attribute__((format(printf, 5, 0)));
static char *testdb_valuev(const char *file, int line, keel_db *db, bool one_row, const char *fmt,
                           va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *sql = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (sql == NULL) {
        va_end(again);
        testdb_fail(file, line, "cannot format the statement \"%s\"", fmt);
    }
    vsnprintf(sql, (size_t)n + 1, fmt, again);
    va_end(again);
    char *v = testdb_value(file, line, db, sql, NULL, one_row);
    free(sql);
    return v;
}

const char *keel_testdb_url(void)
{
    const char *url = getenv("KEEL_TEST_DATABASE_URL");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

keel_db *keel_testdb_connect_at(const char *file, int line, const char *conninfo, const char *app)
{
    keel_db *db = keel_db_new(conninfo, NULL, app);
    if (db == NULL) {
        testdb_fail(file, line, "libpq refused the connection string for %s (see the log)", app);
    }
    if (keel_db_connect(db, TESTDB_CONNECT_MS) != KEEL_OK) {
        keel_db_free(db);
        testdb_fail(file, line,
                    "no connection to the test database within %d ms; is the stack up "
                    "(deploy/run-tests.sh starts one)?",
                    TESTDB_CONNECT_MS);
    }
    return db;
}

void keel_testdb_migrate_at(const char *file, int line, keel_db *db, const char *component,
                            const keel_migration *list, size_t count)
{
    char err[512];
    if (keel_migrate_apply(db, "libkeel", keel_common_migrations, keel_common_migrations_count, err,
                           sizeof(err)) != KEEL_OK ||
        (list != NULL &&
         keel_migrate_apply(db, component, list, count, err, sizeof(err)) != KEEL_OK)) {
        testdb_fail(file, line, "migrations failed: %s", err);
    }
}

/* The base URL with search_path set to schema, malloc'd: as a URL parameter or a key=value
 * option, whichever form the base has. */
static char *testdb_schema_url(const char *file, int line, const char *base, const char *schema)
{
    size_t n = strlen(base) + strlen(schema) + 64;
    char *url = malloc(n);
    if (url == NULL) {
        testdb_fail(file, line, "out of memory");
    }
    if (strstr(base, "://") != NULL) {
        snprintf(url, n, "%s%soptions=-csearch_path%%3D%s", base,
                 strchr(base, '?') != NULL ? "&" : "?", schema);
    } else {
        snprintf(url, n, "%s options='-csearch_path=%s'", base, schema);
    }
    return url;
}

keel_testdb *keel_testdb_open_at(const char *file, int line, const char *prefix, const char *app,
                                 const char *component, const keel_migration *list, size_t count)
{
    const char *base = keel_testdb_url();
    if (base == NULL) {
        return NULL;
    }
    keel_testdb *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        testdb_fail(file, line, "out of memory");
    }
    /* The pid keeps two runs of one program against the same database apart. */
    snprintf(t->schema, sizeof(t->schema), "%s_%ld", prefix, (long)getpid());
    keel_db *admin = keel_testdb_connect_at(file, line, base, app);
    /* A leftover of a crashed run goes first; its CASCADE notices are noise. */
    keel_testdb_exec_at(file, line, admin, "SET client_min_messages = warning");
    keel_testdb_exec_at(file, line, admin, "DROP SCHEMA IF EXISTS %s CASCADE", t->schema);
    keel_testdb_exec_at(file, line, admin, "CREATE SCHEMA %s", t->schema);
    keel_db_free(admin);
    t->url = testdb_schema_url(file, line, base, t->schema);
    t->db = keel_testdb_connect_at(file, line, t->url, app);
    if (component != NULL) {
        keel_testdb_migrate_at(file, line, t->db, component, list, count);
    }
    return t;
}

void keel_testdb_close(keel_testdb **t)
{
    if (*t == NULL) {
        return;
    }
    keel_db_free((*t)->db);
    (*t)->db = NULL;
    /* Not the test's connection: a test may have left it inside a failed transaction. */
    keel_db *admin = keel_db_new(keel_testdb_url(), NULL, "keel-testdb-close");
    if (admin != NULL && keel_db_connect(admin, TESTDB_CONNECT_MS) == KEEL_OK) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", (*t)->schema);
        PQclear(keel_db_exec(admin, "SET client_min_messages = warning", 0, NULL));
        PQclear(keel_db_exec(admin, sql, 0, NULL));
    }
    keel_db_free(admin);
    free((*t)->url);
    free(*t);
    *t = NULL;
}

void keel_testdb_exec_at(const char *file, int line, keel_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(testdb_valuev(file, line, db, false, fmt, ap));
    va_end(ap);
}

char *keel_testdb_text_at(const char *file, int line, keel_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = testdb_valuev(file, line, db, false, fmt, ap);
    va_end(ap);
    return v;
}

char *keel_testdb_text_param_at(const char *file, int line, keel_db *db, const char *sql,
                                const char *param)
{
    return testdb_value(file, line, db, sql, param, false);
}

int64_t keel_testdb_int_at(const char *file, int line, keel_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = testdb_valuev(file, line, db, true, fmt, ap);
    va_end(ap);
    int64_t n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

void keel_testdb_unique_name(char *out, size_t len, const char *what)
{
    static atomic_int seq;
    snprintf(out, len, "kt_%s_%d_%lld_%d", what, (int)getpid(),
             (long long)(keel_clock_now_us() % 100000000LL), atomic_fetch_add(&seq, 1) + 1);
}
