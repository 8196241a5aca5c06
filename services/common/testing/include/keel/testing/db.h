/* Test support for unit tests that need a real PostgreSQL: the scratch database named by
 * KEEL_TEST_DATABASE_URL, a fresh migrated schema per test program, and SQL shortcuts that
 * fail the running cmocka test. Linked into test executables only (library keel_testing). */
#ifndef KEEL_TESTING_DB_H
#define KEEL_TESTING_DB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/db.h"
#include "keel/migrate.h"

/* Every helper below that can fail the test is a macro over a *_at function, so that a
 * failure is reported at the test's own file and line, as cmocka's assertions are. */

/* KEEL_TEST_DATABASE_URL, or NULL when it is unset or empty: tests that need a database then
 * skip (keel_testdb_skip_without), so a plain `ctest` without a stack still passes. */
const char *keel_testdb_url(void);

/* Skips the running test when p (a database handle, URL or fixture) is NULL. */
#define keel_testdb_skip_without(p)                                                                \
    do {                                                                                           \
        if ((p) == NULL) {                                                                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* A new connection to conninfo (a libpq URL or key=value string) under application_name
 * app, connected within 10 s or the test fails. The caller frees it with keel_db_free. */
#define keel_testdb_connect(conninfo, app) keel_testdb_connect_at(__FILE__, __LINE__, conninfo, app)
keel_db *keel_testdb_connect_at(const char *file, int line, const char *conninfo, const char *app);

/* Applies libkeel's migrations on db, then component's list (when list is not NULL), as a
 * service does at start-up; the test fails with the migration's error otherwise. */
#define keel_testdb_migrate(db, component, list, count)                                            \
    keel_testdb_migrate_at(__FILE__, __LINE__, db, component, list, count)
void keel_testdb_migrate_at(const char *file, int line, keel_db *db, const char *component,
                            const keel_migration *list, size_t count);

/* A test program's own schema in the scratch database, so programs that ctest runs in
 * parallel never see each other's rows. */
typedef struct keel_testdb {
    char schema[64]; /* <prefix>_<pid> */
    char *url;       /* KEEL_TEST_DATABASE_URL with search_path set to schema */
    keel_db *db;     /* connected to url; for the test's own statements */
} keel_testdb;

/* Drops a leftover schema <prefix>_<pid>, creates it, applies libkeel's and component's
 * migrations in it (none at all when component is NULL, for tests of migrating itself), and
 * returns it with a connection under application_name app. NULL when
 * KEEL_TEST_DATABASE_URL is unset. Any failure fails the test (or the group setup). Further
 * connections to the schema: keel_testdb_connect(t->url, app). Free with keel_testdb_close. */
#define keel_testdb_open(prefix, app, component, list, count)                                      \
    keel_testdb_open_at(__FILE__, __LINE__, prefix, app, component, list, count)
keel_testdb *keel_testdb_open_at(const char *file, int line, const char *prefix, const char *app,
                                 const char *component, const keel_migration *list, size_t count);

/* Drops the schema (best effort: a test that failed may have lost the server), closes the
 * connection, frees *t and sets it to NULL. Does nothing when *t is NULL. */
void keel_testdb_close(keel_testdb **t);

/* Runs a statement built from the printf format fmt; the test fails when the server refuses
 * it. Rows it returns are ignored. */
#define keel_testdb_exec(db, ...) keel_testdb_exec_at(__FILE__, __LINE__, db, __VA_ARGS__)
void keel_testdb_exec_at(const char *file, int line, keel_db *db, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs a query built from fmt and returns the first column of its first row, malloc'd
 * (the caller frees it): "" when there is no row or the value is NULL. */
#define keel_testdb_text(db, ...) keel_testdb_text_at(__FILE__, __LINE__, db, __VA_ARGS__)
char *keel_testdb_text_at(const char *file, int line, keel_db *db, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like keel_testdb_text for sql with one text parameter $1 (none when param is NULL), for
 * values a test should not splice into SQL. */
#define keel_testdb_text_param(db, sql, param)                                                     \
    keel_testdb_text_param_at(__FILE__, __LINE__, db, sql, param)
char *keel_testdb_text_param_at(const char *file, int line, keel_db *db, const char *sql,
                                const char *param);

/* Runs a query built from fmt and returns its one value as an integer; the test fails unless
 * the query returns exactly one row. For counts: keel_testdb_int(db, "SELECT count(*) ..."). */
#define keel_testdb_int(db, ...) keel_testdb_int_at(__FILE__, __LINE__, db, __VA_ARGS__)
int64_t keel_testdb_int_at(const char *file, int line, keel_db *db, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fails the test unless keel_testdb_text(db, ...) gives the string want. */
#define keel_testdb_assert_text(db, want, ...)                                                     \
    do {                                                                                           \
        char *got_ = keel_testdb_text(db, __VA_ARGS__);                                            \
        if (strcmp(got_, (want)) != 0) {                                                           \
            fail_msg("query gave '%s', want '%s'", got_, (want));                                  \
        }                                                                                          \
        free(got_);                                                                                \
    } while (0)

/* Writes kt_<what>_<pid>_<microseconds>_<sequence> into out: a name (table, component,
 * consumer, event id) that no other run or parallel test uses, and a valid SQL identifier
 * when what is one. */
void keel_testdb_unique_name(char *out, size_t len, const char *what);

#endif
