/* The posting rules of the ledger: payments and refunds into balanced journal lines. */
#include "postings.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "keel/money.h"

const char *ledger_account_kind_name(ledger_account_kind kind)
{
    switch (kind) {
    case LEDGER_PROVIDER_CLEARING:
        return "provider_clearing";
    case LEDGER_MERCHANT_PAYABLE:
        return "merchant_payable";
    case LEDGER_FEE_REVENUE:
        return "fee_revenue";
    }
    return "unknown";
}

bool ledger_id_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > LEDGER_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

static void postings_add_line(ledger_posting *p, ledger_account_kind kind, const char *owner,
                              int64_t amount)
{
    ledger_line *l = &p->lines[p->nlines++];
    l->kind = kind;
    snprintf(l->owner, sizeof(l->owner), "%s", owner);
    l->amount = amount;
}

/* Checks what both kinds of event share and fills the posting's header. */
static bool postings_begin(const char *what, const ledger_money_event *ev, ledger_posting *out,
                           char *err, size_t err_len)
{
    const keel_currency *cur = keel_currency_find(ev->currency);
    char why[160];

    memset(out, 0, sizeof(*out));
    if (!ledger_id_valid(ev->event_id)) {
        snprintf(err, err_len, "%s: the event id must be 1..%d characters of [A-Za-z0-9_.-]", what,
                 LEDGER_ID_MAX);
        return false;
    }
    if (!ledger_id_valid(ev->source_id) || !ledger_id_valid(ev->payment_id) ||
        !ledger_id_valid(ev->merchant_id) || !ledger_id_valid(ev->provider)) {
        snprintf(err, err_len,
                 "%s: ids (payment, refund, merchant, provider) must be 1..%d characters of "
                 "[A-Za-z0-9_.-]",
                 what, LEDGER_ID_MAX);
        return false;
    }
    if (!keel_money_amount_valid(cur, ev->amount, why, sizeof(why))) {
        snprintf(err, err_len, "%s: %s", what, why);
        return false;
    }
    if (ev->effective_ms < 0) {
        snprintf(err, err_len, "%s: no valid time", what);
        return false;
    }
    snprintf(out->source_id, sizeof(out->source_id), "%s", ev->source_id);
    snprintf(out->event_id, sizeof(out->event_id), "%s", ev->event_id);
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", ev->merchant_id);
    snprintf(out->payment_id, sizeof(out->payment_id), "%s", ev->payment_id);
    snprintf(out->currency, sizeof(out->currency), "%s", cur->code);
    out->effective_ms = ev->effective_ms;
    return true;
}

bool ledger_posting_payment(const ledger_fee_schedule *fees, const ledger_money_event *ev,
                            ledger_posting *out, char *err, size_t err_len)
{
    int64_t fee = 0;

    if (!postings_begin("PaymentSucceeded", ev, out, err, err_len)) {
        return false;
    }
    if (!ledger_fees_compute(ledger_fees_rule(fees, out->currency), ev->amount, &fee)) {
        snprintf(err, err_len, "PaymentSucceeded: the fee on %" PRId64 " %s overflows", ev->amount,
                 out->currency);
        return false;
    }
    out->source_type = "payment";
    out->amount = ev->amount;
    out->fee = fee;
    postings_add_line(out, LEDGER_PROVIDER_CLEARING, ev->provider, ev->amount);
    postings_add_line(out, LEDGER_MERCHANT_PAYABLE, ev->merchant_id, -(ev->amount - fee));
    if (fee > 0) {
        postings_add_line(out, LEDGER_FEE_REVENUE, "", -fee);
    }
    return true;
}

bool ledger_posting_refund(const ledger_money_event *ev, ledger_posting *out, char *err,
                           size_t err_len)
{
    if (!postings_begin("RefundSucceeded", ev, out, err, err_len)) {
        return false;
    }
    out->source_type = "refund";
    out->amount = -ev->amount;
    out->fee = 0;
    postings_add_line(out, LEDGER_MERCHANT_PAYABLE, ev->merchant_id, ev->amount);
    postings_add_line(out, LEDGER_PROVIDER_CLEARING, ev->provider, -ev->amount);
    return true;
}

bool ledger_posting_balanced(const ledger_posting *p)
{
    int64_t sum = 0;

    if (p->nlines < 2 || p->nlines > LEDGER_MAX_LINES) {
        return false;
    }
    for (size_t i = 0; i < p->nlines; i++) {
        /* A zero line would be noise in every statement; a fee of 0 gets no line. */
        if (p->lines[i].amount == 0 && p->lines[i].kind != LEDGER_MERCHANT_PAYABLE) {
            return false;
        }
        if (__builtin_add_overflow(sum, p->lines[i].amount, &sum)) {
            return false;
        }
    }
    return sum == 0;
}
