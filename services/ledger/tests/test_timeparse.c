/* Unit tests of the RFC 3339 and calendar-date parsers the ledger trusts before any SQL cast. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "timeparse.h"

static void test_rfc3339_valid(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-03-10T07:00:00Z", INT64_C(1710054000000)},
        {"2024-03-10T07:00:00.5Z", INT64_C(1710054000500)},
        {"2024-03-10T07:00:00.123456789Z", INT64_C(1710054000123)},
        {"2024-03-11T03:59:59.999Z", INT64_C(1710129599999)},
        {"2024-03-10T02:00:00-05:00", INT64_C(1710054000000)},
        {"2024-06-01T00:00:00+05:45", INT64_C(1717179300000)},
        {"2024-02-29t12:00:00z", INT64_C(1709208000000)},
        {"2024-02-29 12:00:00Z", INT64_C(1709208000000)},
        {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -1;
        if (!ledger_time_parse_rfc3339(cases[i].text, &ms)) {
            fail_msg("%s was refused", cases[i].text);
        }
        if (ms != cases[i].ms) {
            fail_msg("%s: got %lld, want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
        }
    }
}

static void test_rfc3339_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "2024-03-10",
        "2024-03-10T07:00:00",  /* no zone */
        "2024-03-10T07:00Z",    /* no seconds */
        "2024-02-30T00:00:00Z", /* no such day */
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* not a leap year either */
        "2024-13-01T00:00:00Z",
        "2024-03-10T24:00:00Z",
        "2024-03-10T23:60:00Z",
        "2024-03-10T23:59:60Z", /* leap seconds are not instants keel can store */
        "2024-03-10T07:00:00.Z",
        "2024-03-10T07:00:00.1234567890Z",
        "2024-03-10T07:00:00+0500",
        "2024-03-10T07:00:00+05:00x",
        "2024-03-10T07:00:00Zjunk",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+01:00", /* before the epoch */
        "２024-03-10T07:00:00Z",
        "2024-3-10T07:00:00Z",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        if (ledger_time_parse_rfc3339(bad[i], &ms)) {
            fail_msg("\"%s\" was accepted as %lld", bad[i], (long long)ms);
        }
    }
    assert_false(ledger_time_parse_rfc3339(NULL, NULL));
}

static void test_date(void **state)
{
    int y = 0, m = 0, d = 0;
    (void)state;
    assert_true(ledger_date_parse("2024-03-10", &y, &m, &d));
    assert_int_equal(y, 2024);
    assert_int_equal(m, 3);
    assert_int_equal(d, 10);
    assert_true(ledger_date_parse("2024-02-29", &y, &m, &d));
    assert_false(ledger_date_parse("2023-02-29", &y, &m, &d));
    assert_false(ledger_date_parse("2024-04-31", &y, &m, &d));
    assert_false(ledger_date_parse("2024-3-10", &y, &m, &d));
    assert_false(ledger_date_parse("2024-03-10x", &y, &m, &d));
    assert_false(ledger_date_parse("20240310", &y, &m, &d));
    assert_false(ledger_date_parse("1969-12-31", &y, &m, &d));
    assert_false(ledger_date_parse("", &y, &m, &d));
    assert_false(ledger_date_parse(NULL, &y, &m, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_valid),
        cmocka_unit_test(test_rfc3339_invalid),
        cmocka_unit_test(test_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
