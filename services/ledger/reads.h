/* The ledger's read side: a merchant's balances, its entries with Stripe-style cursor
 * pagination, and the statement of one merchant-local day. Results are JSON objects. */
#ifndef LEDGER_READS_H
#define LEDGER_READS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "journal.h"
#include "keel/db.h"
#include "keel/error.h"

#define LEDGER_PAGE_DEFAULT_LIMIT 10
#define LEDGER_PAGE_MAX_LIMIT 100
#define LEDGER_STATEMENT_MAX_ENTRIES 10000 /* per currency; more are counted, not listed */

/* A request parameter that cannot be served: the name goes into the 400's "param". */
typedef struct ledger_param_error {
    const char *param;
    const char *code; /* e.g. "parameter_invalid_integer", "resource_missing" */
    char message[240];
} ledger_param_error;

typedef struct ledger_page_request {
    int limit;
    char starting_after[LEDGER_TXN_ID_LEN]; /* "" when absent */
    char ending_before[LEDGER_TXN_ID_LEN];  /* "" when absent */
    char currency[4];                       /* "" = every currency */
} ledger_page_request;

/* Checks the raw query values (NULL = absent): limit a decimal 1..100 (default 10),
 * starting_after / ending_before a txn_ id and not both, currency one keel supports.
 * False with the offending parameter in err. */
bool ledger_page_parse(const char *limit, const char *starting_after, const char *ending_before,
                       const char *currency, ledger_page_request *out, ledger_param_error *err);

/* {"object":"balance","merchant_id":..,"available":[{"currency","amount"}],"as_of":..}:
 * what keel owes the merchant per currency (the negated merchant_payable balances). */
keel_result ledger_read_balance(keel_db *db, const char *merchant_id, json_t **out);

/* {"object":"list","data":[entry...],"has_more":..}, newest first by (effective_at, id).
 * Keyset pagination: a page after (or before) an entry holds exactly the entries ordered
 * after (before) it, so walking pages while new entries arrive returns each entry once.
 * KEEL_ERR_NOT_FOUND with err filled when a cursor names no entry of this merchant. */
keel_result ledger_read_entries(keel_db *db, const char *merchant_id,
                                const ledger_page_request *req, json_t **out,
                                ledger_param_error *err);

/* The statement of date (YYYY-MM-DD, checked by the caller) in the merchant's time zone
 * (UTC when the ledger has no copy of the merchant): the day is
 * [date 00:00 local, next date 00:00 local), computed by PostgreSQL, so it lasts 23 or 25
 * hours on daylight-saving days. Per currency (or only `currency` when not ""): opening
 * balance, the entries of the day in order, closing balance. Read in one REPEATABLE READ
 * snapshot, so closing = opening + the entries' nets even while postings arrive. */
keel_result ledger_read_statement(keel_db *db, const char *merchant_id, const char *date,
                                  const char *currency, json_t **out);

#endif
