/* Shared by the gateway's database tests (KEEL_TEST_DATABASE_URL; skipped when unset): a
 * migrated schema, two merchants, and small SQL helpers. Header-only so each test_*.c stays
 * one executable. */
#ifndef GATEWAY_TEST_DB_FIXTURE_H
#define GATEWAY_TEST_DB_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/db.h"
#include "keel/id.h"
#include "keel/migrate.h"

extern const keel_migration gateway_migrations[];
extern const size_t gateway_migrations_count;

typedef struct db_fixture {
    keel_db *db;
    char merchant[48];
    char other_merchant[48];
} db_fixture;

static inline const char *fixture_db_url(void)
{
    const char *url = getenv("KEEL_TEST_DATABASE_URL");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

static inline keel_db *fixture_connect(void)
{
    keel_db *db = keel_db_new(fixture_db_url(), NULL, "gateway-test");
    assert_int_equal(keel_db_connect(db, 10000), KEEL_OK);
    return db;
}

/* Runs sql (no parameters) and returns the first column of the first row, malloc'd. */
static inline char *sql_value(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    char *v;

    if (keel_db_check(db, res, "test query") != KEEL_OK) {
        fail_msg("query failed: %s", sql);
    }
    assert_true(PQntuples(res) >= 1);
    v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static inline void sql_run(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    if (keel_db_check(db, res, "test statement") != KEEL_OK) {
        fail_msg("statement failed: %s", sql);
    }
    PQclear(res);
}

static inline void assert_sql(keel_db *db, const char *sql, const char *want)
{
    char *got = sql_value(db, sql);
    if (strcmp(got, want) != 0) {
        fail_msg("%s gave '%s', want '%s'", sql, got, want);
    }
    free(got);
}

/* Migrates the scratch database and adds two merchants; *state is NULL without a database. */
static inline int fixture_setup(void **state)
{
    db_fixture *f;
    char err[512];
    char sql[256];

    if (fixture_db_url() == NULL) {
        *state = NULL;
        return 0;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->db = fixture_connect();
    if (keel_migrate_apply(f->db, "libkeel", keel_common_migrations, keel_common_migrations_count,
                           err, sizeof(err)) != KEEL_OK ||
        keel_migrate_apply(f->db, "gateway", gateway_migrations, gateway_migrations_count, err,
                           sizeof(err)) != KEEL_OK) {
        fail_msg("migrations: %s", err);
    }
    keel_id_new("mer_", f->merchant, sizeof(f->merchant));
    keel_id_new("mer_", f->other_merchant, sizeof(f->other_merchant));
    snprintf(sql, sizeof(sql), "INSERT INTO merchants (id, name) VALUES ('%s', 'a'), ('%s', 'b')",
             f->merchant, f->other_merchant);
    sql_run(f->db, sql);
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    db_fixture *f = *state;
    if (f != NULL) {
        keel_db_free(f->db);
        free(f);
    }
    return 0;
}

#define SKIP_WITHOUT_DB(f)                                                                         \
    do {                                                                                           \
        if ((f) == NULL) {                                                                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The string member name of the JSON object text, malloc'd. */
static inline char *json_member(const char *text, const char *name)
{
    json_t *j = json_loads(text, 0, NULL);
    char *v;
    assert_non_null(j);
    assert_non_null(json_string_value(json_object_get(j, name)));
    v = strdup(json_string_value(json_object_get(j, name)));
    json_decref(j);
    return v;
}

#endif
