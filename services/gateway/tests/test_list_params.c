/* Unit tests of the list query parameters and of the gateway's timestamp forms on top of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "list_params.h"

#define PAY_ID "pay_0193aaaabbbbccccddddeeeeffff0000"

static void expect_ts(const char *s, int64_t want)
{
    int64_t got = -1;
    if (!gateway_timestamp_parse(s, &got)) {
        fail_msg("refused timestamp '%s'", s);
    }
    if (got != want) {
        fail_msg("'%s' gave %lld, want %lld", s, (long long)got, (long long)want);
    }
}

static void expect_bad_ts(const char *s)
{
    int64_t got;
    if (gateway_timestamp_parse(s, &got)) {
        fail_msg("accepted timestamp '%s' as %lld", s, (long long)got);
    }
}

/* The gateway's own share of timestamp parsing: Unix seconds, the blank that an unencoded
 * '+' becomes, and rounding up. RFC 3339 itself is tested with keel/clock.h (test_clock.c). */
static void test_timestamps(void **state)
{
    (void)state;
    expect_ts("0", 0);
    expect_ts("1700000000", INT64_C(1700000000000));
    expect_ts("253402300799", INT64_C(253402300799000));
    expect_ts("2023-11-14T22:13:20Z", INT64_C(1700000000000));
    expect_ts("2023-11-15T00:13:20+02:00", INT64_C(1700000000000));
    expect_ts("2023-11-15T00:13:20 02:00", INT64_C(1700000000000)); /* '+' decoded as blank */
    /* Fractions: milliseconds exact, finer ones round up. */
    expect_ts("2023-11-14T22:13:20.123000000Z", INT64_C(1700000000123));
    expect_ts("2023-11-14T22:13:20.123000001Z", INT64_C(1700000000124));
    expect_ts("2023-11-15T00:13:20.123000001 02:00", INT64_C(1700000000124));

    expect_bad_ts("");
    expect_bad_ts("-1");
    expect_bad_ts("253402300800");
    expect_bad_ts("1234567890123");
    expect_bad_ts("1700000000.5");
    expect_bad_ts("2023-11-14 22:13:20Z");      /* blank separator: only the sign is mended */
    expect_bad_ts("2023-11-14T22:13:20  2:00"); /* one blank is mended, not two */
    expect_bad_ts("2023-11-15T00:13:20 0200");
    expect_bad_ts(" 1700000000");
    expect_bad_ts("2023-11-14T22:13:20Z                                                 02:00");
    assert_false(gateway_timestamp_parse(NULL, NULL));
}

static bool parse(gateway_list_kind kind, const char *const *names, const char *const *values,
                  size_t n, gateway_list_params *lp, gateway_error *err)
{
    return gateway_list_params_parse(kind, names, values, n, lp, err);
}

static void test_defaults_and_all_fields(void **state)
{
    gateway_list_params lp;
    gateway_error err;
    const char *names[] = {"limit", "starting_after", "created[gte]", "created[lt]", "status"};
    const char *values[] = {"100", PAY_ID, "1700000000", "2023-11-15T00:00:00Z", "succeeded"};

    (void)state;
    assert_true(parse(GATEWAY_LIST_PAYMENTS, NULL, NULL, 0, &lp, &err));
    assert_int_equal(lp.limit, GATEWAY_LIST_LIMIT_DEFAULT);
    assert_string_equal(lp.starting_after, "");
    assert_false(lp.has_created_gte);
    assert_null(lp.status);

    assert_true(parse(GATEWAY_LIST_PAYMENTS, names, values, 5, &lp, &err));
    assert_int_equal(lp.limit, 100);
    assert_string_equal(lp.starting_after, PAY_ID);
    assert_true(lp.has_created_gte);
    assert_int_equal(lp.created_gte_ms, INT64_C(1700000000000));
    assert_true(lp.has_created_lt);
    assert_int_equal(lp.created_lt_ms, INT64_C(1700006400000));
    assert_string_equal(lp.status, "succeeded");
}

static void expect_refused(gateway_list_kind kind, const char *name, const char *value,
                           const char *code, const char *param)
{
    gateway_list_params lp;
    gateway_error err;
    const char *names[1] = {name};
    const char *values[1] = {value};

    if (parse(kind, names, values, 1, &lp, &err)) {
        fail_msg("accepted %s=%s", name, value != NULL ? value : "(null)");
    }
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, code);
    assert_string_equal(err.param, param);
    assert_true(strlen(err.message) > 0);
}

static void test_refusals(void **state)
{
    gateway_list_params lp;
    gateway_error err;

    (void)state;
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "0", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "101", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "-1", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "1.5", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", "0010", "parameter_invalid_integer", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "limit", NULL, "parameter_invalid_string", "limit");
    expect_refused(GATEWAY_LIST_PAYMENTS, "starting_after", "pay_xyz", "parameter_invalid_string",
                   "starting_after");
    expect_refused(GATEWAY_LIST_PAYMENTS, "ending_before", "re_0193aaaabbbbccccddddeeeeffff0000",
                   "parameter_invalid_string", "ending_before");
    expect_refused(GATEWAY_LIST_PAYMENTS, "created[gte]", "yesterday",
                   "parameter_invalid_timestamp", "created[gte]");
    expect_refused(GATEWAY_LIST_PAYMENTS, "status", "refunded", "parameter_invalid_string",
                   "status");
    expect_refused(GATEWAY_LIST_PAYMENTS, "merchant_id", "mer_1", "parameter_unknown",
                   "merchant_id");
    expect_refused(GATEWAY_LIST_PAYMENTS, "created", "1", "parameter_unknown", "created");
    /* The refund list takes no filters, only paging. */
    expect_refused(GATEWAY_LIST_REFUNDS, "status", "pending", "parameter_unknown", "status");
    expect_refused(GATEWAY_LIST_REFUNDS, "starting_after", PAY_ID, "parameter_invalid_string",
                   "starting_after");

    {
        const char *names[] = {"limit", "limit"};
        const char *values[] = {"1", "2"};
        assert_false(parse(GATEWAY_LIST_PAYMENTS, names, values, 2, &lp, &err));
        assert_string_equal(err.code, "parameter_duplicated");
        assert_string_equal(err.param, "limit");
    }
    {
        const char *names[] = {"starting_after", "ending_before"};
        const char *values[] = {PAY_ID, PAY_ID};
        assert_false(parse(GATEWAY_LIST_PAYMENTS, names, values, 2, &lp, &err));
        assert_string_equal(err.code, "parameters_exclusive");
    }
    /* More parameters than the handler collects: refused before any is read. */
    assert_false(parse(GATEWAY_LIST_PAYMENTS, NULL, NULL, GATEWAY_LIST_MAX_PARAMS + 1, &lp, &err));
    assert_string_equal(err.code, "too_many_parameters");
    assert_string_equal(err.param, "");
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(gateway_id_valid(PAY_ID, "pay_"));
    assert_false(gateway_id_valid(PAY_ID, "re_"));
    assert_false(gateway_id_valid("pay_0193AAAABBBBCCCCDDDDEEEEFFFF0000", "pay_"));
    assert_false(gateway_id_valid("pay_0193aaaabbbbccccddddeeeeffff000", "pay_"));
    assert_false(gateway_id_valid("pay_0193aaaabbbbccccddddeeeeffff00000", "pay_"));
    assert_false(gateway_id_valid("", "pay_"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_defaults_and_all_fields),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
