/* Shared by the gateway's database tests (KEEL_TEST_DATABASE_URL; skipped when unset): the
 * test program's own migrated schema (keel/testing/db.h) holding two merchants, and reading
 * JSON answers. Header-only so each test_*.c stays one executable. */
#ifndef GATEWAY_TEST_DB_FIXTURE_H
#define GATEWAY_TEST_DB_FIXTURE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/id.h"
#include "keel/testing/db.h"

extern const keel_migration gateway_migrations[];
extern const size_t gateway_migrations_count;

/* Every connection of a test, so a test can find its own sessions in pg_stat_activity. */
#define FIXTURE_APP "gateway-test"

typedef struct db_fixture {
    keel_testdb *t;
    keel_db *db; /* t->db */
    char merchant[48];
    char other_merchant[48];
} db_fixture;

/* Another session on the fixture's schema at url (f->t->url), for concurrency tests;
 * keel_db_free it. */
#define fixture_connect(url) keel_testdb_connect((url), FIXTURE_APP)

/* The group setup: a fresh schema with the gateway's tables and two merchants; *state is
 * NULL without a database. */
static inline int fixture_setup(void **state)
{
    keel_testdb *t = keel_testdb_open("gateway_test", FIXTURE_APP, "gateway", gateway_migrations,
                                      gateway_migrations_count);
    db_fixture *f;

    *state = NULL;
    if (t == NULL) {
        return 0;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->t = t;
    f->db = t->db;
    keel_id_new("mer_", f->merchant, sizeof(f->merchant));
    keel_id_new("mer_", f->other_merchant, sizeof(f->other_merchant));
    keel_testdb_exec(f->db, "INSERT INTO merchants (id, name) VALUES ('%s', 'a'), ('%s', 'b')",
                     f->merchant, f->other_merchant);
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    db_fixture *f = *state;
    if (f != NULL) {
        keel_testdb_close(&f->t);
        free(f);
        *state = NULL;
    }
    return 0;
}

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
