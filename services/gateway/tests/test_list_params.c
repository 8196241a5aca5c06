/* Unit tests of the list query parameters and of RFC 3339 / Unix-seconds timestamps. */
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

static void test_timestamps(void **state)
{
    (void)state;
    expect_ts("0", 0);
    expect_ts("1700000000", INT64_C(1700000000000));
    expect_ts("253402300799", INT64_C(253402300799000));
    expect_ts("1970-01-01T00:00:00Z", 0);
    expect_ts("2023-11-14T22:13:20Z", INT64_C(1700000000000));
    expect_ts("2023-11-14t22:13:20z", INT64_C(1700000000000));
    /* Any offset names the same instant. */
    expect_ts("2023-11-15T00:13:20+02:00", INT64_C(1700000000000));
    expect_ts("2023-11-14T17:43:20-04:30", INT64_C(1700000000000));
    expect_ts("2023-11-15T00:13:20 02:00", INT64_C(1700000000000)); /* '+' decoded as blank */
    expect_ts("2023-11-14T22:13:20-00:00", INT64_C(1700000000000));
    /* Fractions: milliseconds exact, finer ones round up. */
    expect_ts("2023-11-14T22:13:20.5Z", INT64_C(1700000000500));
    expect_ts("2023-11-14T22:13:20.123Z", INT64_C(1700000000123));
    expect_ts("2023-11-14T22:13:20.123000000Z", INT64_C(1700000000123));
    expect_ts("2023-11-14T22:13:20.123000001Z", INT64_C(1700000000124));
    /* Leap day and leap second; a day across the DST change in Europe is just 24 h in UTC. */
    expect_ts("2024-02-29T00:00:00Z", INT64_C(1709164800000));
    expect_ts("2016-12-31T23:59:60Z", INT64_C(1483228800000));
    expect_ts("2025-03-30T01:30:00+01:00", INT64_C(1743294600000));
    expect_ts("1969-12-31T23:59:59Z", -1000);

    expect_bad_ts("");
    expect_bad_ts("-1");
    expect_bad_ts("253402300800");
    expect_bad_ts("1234567890123");
    expect_bad_ts("2023-11-14");
    expect_bad_ts("2023-11-14T22:13:20");  /* no offset */
    expect_bad_ts("2023-11-14 22:13:20Z"); /* blank separator */
    expect_bad_ts("2023-02-29T00:00:00Z"); /* not a leap year */
    expect_bad_ts("2023-13-01T00:00:00Z");
    expect_bad_ts("2023-00-01T00:00:00Z");
    expect_bad_ts("2023-01-32T00:00:00Z");
    expect_bad_ts("2023-01-01T24:00:00Z");
    expect_bad_ts("2023-01-01T00:60:00Z");
    expect_bad_ts("2023-01-01T00:00:61Z");
    expect_bad_ts("2023-01-01T00:00:00.Z");
    expect_bad_ts("2023-01-01T00:00:00.1234567890Z");
    expect_bad_ts("2023-01-01T00:00:00+24:00");
    expect_bad_ts("2023-01-01T00:00:00+0200");
    expect_bad_ts("2023-01-01T00:00:00Zjunk");
    expect_bad_ts("0000-01-01T00:00:00Z");
    expect_bad_ts("2023-1-01T00:00:00Z");
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
