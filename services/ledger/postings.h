/* The posting rules: which balanced journal lines a succeeded payment or refund becomes.
 * Pure functions; journal.h writes the result. docs/ledger.md states the rules. */
#ifndef LEDGER_POSTINGS_H
#define LEDGER_POSTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fees.h"

#define LEDGER_MAX_LINES 4
#define LEDGER_ID_MAX 64 /* bytes of a payment, refund, merchant or provider id */

typedef enum ledger_account_kind {
    LEDGER_PROVIDER_CLEARING = 0, /* what a provider owes keel: debited when it charges */
    LEDGER_MERCHANT_PAYABLE,      /* what keel owes a merchant: credited net of fees */
    LEDGER_FEE_REVENUE,           /* keel's fees: credited */
} ledger_account_kind;

/* "provider_clearing", "merchant_payable" or "fee_revenue" (the accounts.kind values). */
const char *ledger_account_kind_name(ledger_account_kind kind);

typedef struct ledger_line {
    ledger_account_kind kind;
    char owner[LEDGER_ID_MAX + 1]; /* provider or merchant id; "" for fee revenue */
    int64_t amount;                /* debit > 0, credit < 0 */
} ledger_line;

/* One journal transaction to write. amount and fee are the merchant's view (what
 * /v1/balance/transactions shows): a payment's gross amount and fee, a refund's negative
 * amount and fee 0. */
typedef struct ledger_posting {
    const char *source_type; /* "payment" or "refund" */
    char source_id[LEDGER_ID_MAX + 1];
    char event_id[LEDGER_ID_MAX + 1];
    char merchant_id[LEDGER_ID_MAX + 1];
    char payment_id[LEDGER_ID_MAX + 1];
    char currency[4];
    int64_t amount;
    int64_t fee;
    int64_t effective_ms; /* the event's own time (succeeded_at), ms since the epoch */
    size_t nlines;
    ledger_line lines[LEDGER_MAX_LINES];
} ledger_posting;

/* A succeeded payment or refund, as the event carried it. */
typedef struct ledger_money_event {
    const char *event_id;  /* the CloudEvents id */
    const char *source_id; /* payment id, or refund id */
    const char *payment_id;
    const char *merchant_id;
    const char *provider;
    const char *currency;
    int64_t amount;
    int64_t effective_ms;
} ledger_money_event;

/* True for 1..LEDGER_ID_MAX bytes of [A-Za-z0-9_.-]: ids become account names and URLs. */
bool ledger_id_valid(const char *s);

/* PaymentSucceeded: debit provider_clearing:<provider>:<cur> amount, credit
 * merchant_payable:<merchant>:<cur> amount - fee, credit fee_revenue:<cur> fee (no fee line
 * when the fee is 0). False with the broken rule in err for an invalid event. */
bool ledger_posting_payment(const ledger_fee_schedule *fees, const ledger_money_event *ev,
                            ledger_posting *out, char *err, size_t err_len);

/* RefundSucceeded: debit merchant_payable amount, credit provider_clearing amount. keel
 * keeps the fee it took on the payment, so the merchant bears the whole refund. */
bool ledger_posting_refund(const ledger_money_event *ev, ledger_posting *out, char *err,
                           size_t err_len);

/* True when there are 2..LEDGER_MAX_LINES lines summing to zero (one currency per posting)
 * without overflow, and none is zero except the merchant's (a fee that took the whole
 * amount). The journal checks the sum again at COMMIT; this catches it earlier. */
bool ledger_posting_balanced(const ledger_posting *p);

#endif
