/* Tests of GET /v1/payments' SQL against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped
 * when unset): keyset pages forwards and backwards with created_at ties, filters, cursors of
 * another merchant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"
#include "payment_store.h"

#define N 23

/* Inserts N payments for a fresh merchant; payment i is created at base + (i / 3) seconds,
 * so every created_at is shared by three payments and only the id breaks the tie. Fills
 * ids newest first in list order. */
static void seed(db_fixture *f, char *merchant, char ids[N][40])
{
    keel_id_new("mer_", merchant, 48);
    keel_testdb_exec(f->db, "INSERT INTO merchants (id, name) VALUES ('%s', 'lists')", merchant);
    for (int i = 0; i < N; i++) {
        char id[48];
        keel_id_new("pay_", id, sizeof(id));
        keel_testdb_exec(
            f->db,
            "INSERT INTO payments (id, merchant_id, amount, currency, status, created_at) "
            "VALUES ('%s', '%s', %d, 'usd', '%s', "
            "'2025-01-01T00:00:00Z'::timestamptz + interval '%d seconds')",
            id, merchant, 100 + i, i % 2 == 0 ? "succeeded" : "failed", i / 3);
    }
    char *all = keel_testdb_text(f->db,
                                 "SELECT string_agg(id, ',' ORDER BY created_at DESC, id DESC) "
                                 "FROM payments WHERE merchant_id = '%s'",
                                 merchant);
    char *save = NULL;
    int k = 0;
    for (char *tok = strtok_r(all, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        snprintf(ids[k++], 40, "%s", tok);
    }
    assert_int_equal(k, N);
    free(all);
}

/* Fetches one page; returns its ids (count in *n) and has_more. */
static bool page(db_fixture *f, const char *merchant, const gateway_list_params *lp, char out[][40],
                 int *n)
{
    char *body = NULL;
    const char *bad = NULL;
    json_t *j;
    json_t *data;
    bool more;

    assert_int_equal(gateway_payment_store_list(f->db, merchant, lp, &body, &bad), KEEL_OK);
    j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    data = json_object_get(j, "data");
    *n = (int)json_array_size(data);
    for (int i = 0; i < *n; i++) {
        snprintf(out[i], 40, "%s",
                 json_string_value(json_object_get(json_array_get(data, (size_t)i), "id")));
    }
    more = json_is_true(json_object_get(j, "has_more"));
    json_decref(j);
    free(body);
    return more;
}

static void test_walk_forward_and_back(void **state)
{
    db_fixture *f = *state;
    char merchant[48];
    char ids[N][40];
    char got[100][40];
    gateway_list_params lp;
    int seen = 0;
    int n;
    bool more;

    keel_testdb_skip_without(f);
    seed(f, merchant, ids);
    memset(&lp, 0, sizeof(lp));
    lp.limit = 5;
    /* Forwards: every payment once, in order, has_more false only on the last page. */
    do {
        more = page(f, merchant, &lp, got, &n);
        for (int i = 0; i < n; i++) {
            assert_string_equal(got[i], ids[seen + i]);
        }
        seen += n;
        if (n > 0) {
            snprintf(lp.starting_after, sizeof(lp.starting_after), "%s", got[n - 1]);
        }
        assert_true(more == (seen < N));
    } while (more);
    assert_int_equal(seen, N);

    /* Backwards from the oldest: ending_before pages come newest first too. */
    memset(lp.starting_after, 0, sizeof(lp.starting_after));
    snprintf(lp.ending_before, sizeof(lp.ending_before), "%s", ids[N - 1]);
    seen = N - 1;
    do {
        more = page(f, merchant, &lp, got, &n);
        for (int i = 0; i < n; i++) {
            assert_string_equal(got[i], ids[seen - n + i]);
        }
        seen -= n;
        if (n > 0) {
            snprintf(lp.ending_before, sizeof(lp.ending_before), "%s", got[0]);
        }
    } while (more);
    assert_int_equal(seen, 0);
}

static void test_filters_and_foreign_cursor(void **state)
{
    db_fixture *f = *state;
    char merchant[48];
    char ids[N][40];
    char got[100][40];
    gateway_list_params lp;
    gateway_error err;
    const char *bad = NULL;
    char *body = NULL;
    int n;

    keel_testdb_skip_without(f);
    seed(f, merchant, ids);
    /* created in [00:00:02, 00:00:04): payments 6..11, i.e. six of them. */
    {
        const char *names[] = {"limit", "created[gte]", "created[lt]"};
        const char *values[] = {"100", "2025-01-01T01:00:02+01:00", "1735689604"};
        assert_true(gateway_list_params_parse(GATEWAY_LIST_PAYMENTS, names, values, 3, &lp, &err));
    }
    assert_false(page(f, merchant, &lp, got, &n));
    assert_int_equal(n, 6);
    {
        const char *names[] = {"limit", "status"};
        const char *values[] = {"100", "failed"};
        assert_true(gateway_list_params_parse(GATEWAY_LIST_PAYMENTS, names, values, 2, &lp, &err));
    }
    assert_false(page(f, merchant, &lp, got, &n));
    assert_int_equal(n, N / 2);
    /* A cursor that is another merchant's payment names nothing here. */
    memset(&lp, 0, sizeof(lp));
    lp.limit = 10;
    snprintf(lp.starting_after, sizeof(lp.starting_after), "%s", ids[3]);
    assert_int_equal(gateway_payment_store_list(f->db, f->other_merchant, &lp, &body, &bad),
                     KEEL_ERR_NOT_FOUND);
    assert_string_equal(bad, "starting_after");
    assert_null(body);
    /* And the other merchant's list holds none of these payments. */
    memset(lp.starting_after, 0, sizeof(lp.starting_after));
    lp.limit = 100;
    page(f, f->other_merchant, &lp, got, &n);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < N; k++) {
            assert_string_not_equal(got[i], ids[k]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_forward_and_back),
        cmocka_unit_test(test_filters_and_foreign_cursor),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
