/* Unit tests of the pure posting rules: the fee schedule's parser, the fee arithmetic and its
 * rounding, and the balanced lines a payment or refund becomes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fees.h"
#include "postings.h"

static void test_fees_parse_example(void **state)
{
    ledger_fee_schedule s;
    char err[256];

    (void)state;
    assert_true(
        ledger_fees_parse("usd=290bp+30;eur=250bp+25;default=300bp+0", &s, err, sizeof(err)));
    assert_int_equal(s.count, 2);
    assert_int_equal(ledger_fees_rule(&s, "usd")->bp, 290);
    assert_int_equal(ledger_fees_rule(&s, "USD")->fixed, 30);
    assert_int_equal(ledger_fees_rule(&s, "eur")->bp, 250);
    assert_int_equal(ledger_fees_rule(&s, "eur")->fixed, 25);
    assert_int_equal(ledger_fees_rule(&s, "jpy")->bp, 300);
    assert_int_equal(ledger_fees_rule(&s, "jpy")->fixed, 0);
    assert_ptr_equal(ledger_fees_rule(&s, "gbp"), &s.fallback);
    /* Spaces, case and empty rules are tolerated. */
    assert_true(ledger_fees_parse(" GBP = 100BP + 20 ;; Default=0bp+0 ;", &s, err, sizeof(err)));
    assert_int_equal(ledger_fees_rule(&s, "gbp")->bp, 100);
    assert_int_equal(ledger_fees_rule(&s, "gbp")->fixed, 20);
}

static void test_fees_parse_errors(void **state)
{
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"usd=290bp+30", "default"},
        {"", "default"},
        {"usd=290bp+30;default=1bp+0;default=2bp+0", "more than one default"},
        {"usd=290bp+30;usd=1bp+1;default=0bp+0", "usd has more than one rule"},
        {"xxx=1bp+1;default=0bp+0", "\"xxx\" is not a currency"},
        {"usd=10001bp+0;default=0bp+0", "usd=10001bp+0"},
        {"usd=290+30;default=0bp+0", "usd=290+30"},
        {"usd=290bp;default=0bp+0", "usd=290bp"},
        {"usd=-1bp+0;default=0bp+0", "usd=-1bp+0"},
        {"usd=1bp+1000000001;default=0bp+0", "usd=1bp+1000000001"},
        {"usd290bp+30;default=0bp+0", "has no '='"},
        {"=1bp+1;default=0bp+0", "names no currency"},
        {"usd=1bp+1x;default=0bp+0", "usd=1bp+1x"},
    };
    ledger_fee_schedule s;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        if (ledger_fees_parse(cases[i].text, &s, err, sizeof(err))) {
            fail_msg("\"%s\" was accepted", cases[i].text);
        }
        if (strstr(err, cases[i].needle) == NULL) {
            fail_msg("\"%s\": message \"%s\" does not say \"%s\"", cases[i].text, err,
                     cases[i].needle);
        }
    }
}

static void test_fees_rounding(void **state)
{
    ledger_fee_rule r290 = {"usd", 290, 30};
    ledger_fee_rule r50 = {"usd", 50, 0};
    ledger_fee_rule all = {"usd", 10000, 0};
    ledger_fee_rule none = {"", 0, 0};
    int64_t fee = -1;

    (void)state;
    /* 10000 * 2.90 % = 290 exactly, + 30. */
    assert_true(ledger_fees_compute(&r290, 10000, &fee));
    assert_int_equal(fee, 320);
    /* 1050 * 2.90 % = 30.45 → 30 (below half), + 30. */
    assert_true(ledger_fees_compute(&r290, 1050, &fee));
    assert_int_equal(fee, 60);
    /* 0.5 % of 100 = 0.5 → rounds half up to 1; of 99 = 0.495 → 0. */
    assert_true(ledger_fees_compute(&r50, 100, &fee));
    assert_int_equal(fee, 1);
    assert_true(ledger_fees_compute(&r50, 99, &fee));
    assert_int_equal(fee, 0);
    /* 0.5 % of 300 = 1.5 → 2. */
    assert_true(ledger_fees_compute(&r50, 300, &fee));
    assert_int_equal(fee, 2);
    /* The fixed part alone would exceed a tiny payment: capped at the amount. */
    assert_true(ledger_fees_compute(&r290, 20, &fee));
    assert_int_equal(fee, 20);
    assert_true(ledger_fees_compute(&all, 777, &fee));
    assert_int_equal(fee, 777);
    assert_true(ledger_fees_compute(&none, 777, &fee));
    assert_int_equal(fee, 0);
    /* keel's largest amount fits; int64 overflow is refused, not wrapped. */
    assert_true(ledger_fees_compute(&r290, INT64_C(99999999999), &fee));
    assert_int_equal(fee, INT64_C(2900000000) + 30); /* 2899999999.971 rounds up */
    fee = 42;
    assert_false(ledger_fees_compute(&all, INT64_MAX / 1000, &fee));
    assert_int_equal(fee, 42);
    assert_false(ledger_fees_compute(&r290, 0, &fee));
    assert_false(ledger_fees_compute(&r290, -5, &fee));
}

static ledger_fee_schedule test_schedule(void)
{
    ledger_fee_schedule s;
    char err[256];
    assert_true(ledger_fees_parse("usd=290bp+30;default=0bp+0", &s, err, sizeof(err)));
    return s;
}

static void test_posting_payment(void **state)
{
    ledger_fee_schedule s = test_schedule();
    ledger_money_event ev = {.event_id = "evt-1",
                             .source_id = "pay_1",
                             .payment_id = "pay_1",
                             .merchant_id = "mer_1",
                             .provider = "provider_a",
                             .currency = "USD",
                             .amount = 10000,
                             .effective_ms = 1000};
    ledger_posting p;
    char err[256];

    (void)state;
    assert_true(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_string_equal(p.source_type, "payment");
    assert_string_equal(p.currency, "usd");
    assert_int_equal(p.amount, 10000);
    assert_int_equal(p.fee, 320);
    assert_int_equal(p.nlines, 3);
    assert_int_equal(p.lines[0].kind, LEDGER_PROVIDER_CLEARING);
    assert_string_equal(p.lines[0].owner, "provider_a");
    assert_int_equal(p.lines[0].amount, 10000);
    assert_int_equal(p.lines[1].kind, LEDGER_MERCHANT_PAYABLE);
    assert_string_equal(p.lines[1].owner, "mer_1");
    assert_int_equal(p.lines[1].amount, -9680);
    assert_int_equal(p.lines[2].kind, LEDGER_FEE_REVENUE);
    assert_string_equal(p.lines[2].owner, "");
    assert_int_equal(p.lines[2].amount, -320);
    assert_true(ledger_posting_balanced(&p));

    /* No fee, no fee line. */
    ev.currency = "jpy";
    assert_true(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_int_equal(p.nlines, 2);
    assert_int_equal(p.lines[1].amount, -10000);
    assert_true(ledger_posting_balanced(&p));

    /* An unbalanced posting is caught before it reaches the database. */
    p.lines[0].amount += 1;
    assert_false(ledger_posting_balanced(&p));
}

static void test_posting_refund(void **state)
{
    ledger_money_event ev = {.event_id = "evt-2",
                             .source_id = "re_1",
                             .payment_id = "pay_1",
                             .merchant_id = "mer_1",
                             .provider = "provider_a",
                             .currency = "usd",
                             .amount = 2500,
                             .effective_ms = 1000};
    ledger_posting p;
    char err[256];

    (void)state;
    assert_true(ledger_posting_refund(&ev, &p, err, sizeof(err)));
    assert_string_equal(p.source_type, "refund");
    assert_string_equal(p.source_id, "re_1");
    assert_string_equal(p.payment_id, "pay_1");
    assert_int_equal(p.amount, -2500);
    assert_int_equal(p.fee, 0);
    assert_int_equal(p.nlines, 2);
    assert_int_equal(p.lines[0].kind, LEDGER_MERCHANT_PAYABLE);
    assert_int_equal(p.lines[0].amount, 2500);
    assert_int_equal(p.lines[1].kind, LEDGER_PROVIDER_CLEARING);
    assert_int_equal(p.lines[1].amount, -2500);
    assert_true(ledger_posting_balanced(&p));
}

static void test_posting_invalid(void **state)
{
    ledger_fee_schedule s = test_schedule();
    ledger_money_event good = {.event_id = "evt-3",
                               .source_id = "pay_3",
                               .payment_id = "pay_3",
                               .merchant_id = "mer_3",
                               .provider = "provider_a",
                               .currency = "usd",
                               .amount = 100,
                               .effective_ms = 0};
    ledger_money_event ev;
    ledger_posting p;
    char err[256];

    (void)state;
    ev = good;
    ev.amount = 0;
    assert_false(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_non_null(strstr(err, "amount"));
    ev = good;
    ev.currency = "xxx";
    assert_false(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_non_null(strstr(err, "currency"));
    ev = good;
    ev.merchant_id = "mer 3";
    assert_false(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_non_null(strstr(err, "ids"));
    ev = good;
    ev.provider = "";
    assert_false(ledger_posting_refund(&ev, &p, err, sizeof(err)));
    ev = good;
    ev.effective_ms = -1;
    assert_false(ledger_posting_payment(&s, &ev, &p, err, sizeof(err)));
    assert_true(ledger_id_valid("pay_0193ab-x.y"));
    assert_false(ledger_id_valid("a:b"));
    assert_false(ledger_id_valid(NULL));
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    assert_false(ledger_id_valid(longid));
    longid[64] = '\0';
    assert_true(ledger_id_valid(longid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fees_parse_example), cmocka_unit_test(test_fees_parse_errors),
        cmocka_unit_test(test_fees_rounding),      cmocka_unit_test(test_posting_payment),
        cmocka_unit_test(test_posting_refund),     cmocka_unit_test(test_posting_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
