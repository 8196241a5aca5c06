/* Balances, paginated entries and merchant-local day statements, read from the journal. */
#include "reads.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/money.h"

/* Milliseconds since the epoch of a timestamptz column, exact for keel's ms timestamps. */
#define MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"

/* One entry as a merchant sees it: its journal transaction and its merchant_payable line. */
#define ENTRY_COLUMNS                                                                              \
    "t.id, t.source_type, t.source_id, t.payment_id, t.currency, t.amount, t.fee, "                \
    "-l.amount, " MS("t.effective_at") ", " MS("t.posted_at")
#define ENTRY_FROM                                                                                 \
    " FROM journal_transactions t JOIN journal_lines l ON l.transaction_id = t.id "                \
    "JOIN accounts a ON a.id = l.account_id AND a.kind = 'merchant_payable' "
#define ENTRY_FILTER " WHERE t.merchant_id = $1 AND ($2 = '' OR t.currency = $2) "
#define CURSOR(op)                                                                                 \
    " AND (t.effective_at, t.id) " op " (SELECT c.effective_at, c.id FROM journal_transactions c " \
    "WHERE c.id = $3 AND c.merchant_id = $1) "

static const char SQL_PAGE_FIRST[] = "SELECT " ENTRY_COLUMNS ENTRY_FROM ENTRY_FILTER
                                     "ORDER BY t.effective_at DESC, t.id DESC LIMIT $3";
static const char SQL_PAGE_AFTER[] = "SELECT " ENTRY_COLUMNS ENTRY_FROM ENTRY_FILTER CURSOR(
    "<") "ORDER BY t.effective_at DESC, t.id DESC LIMIT $4";
static const char SQL_PAGE_BEFORE[] = "SELECT " ENTRY_COLUMNS ENTRY_FROM ENTRY_FILTER CURSOR(
    ">") "ORDER BY t.effective_at ASC, t.id ASC LIMIT $4";
static const char SQL_CURSOR_EXISTS[] =
    "SELECT 1 FROM journal_transactions WHERE id = $1 AND merchant_id = $2";
static const char SQL_BALANCE[] =
    "SELECT currency, -balance FROM accounts "
    "WHERE kind = 'merchant_payable' AND owner = $1 ORDER BY currency";
/* The day's bounds: local midnight of date and of the next date in the merchant's zone. */
static const char SQL_DAY[] =
    "WITH z AS (SELECT coalesce((SELECT time_zone FROM merchants WHERE id = $1), 'UTC') AS tz) "
    "SELECT z.tz, " MS("($2::date::timestamp AT TIME ZONE z.tz)") ", " MS(
        "(($2::date + 1)::timestamp AT TIME ZONE z.tz)") " FROM z";
static const char SQL_STATEMENT_ACCOUNTS[] =
    "SELECT id, currency FROM accounts WHERE kind = 'merchant_payable' AND owner = $1 "
    "AND ($2 = '' OR currency = $2) ORDER BY currency";
static const char SQL_BALANCE_BEFORE[] = "SELECT coalesce(-sum(amount), 0)::bigint, count(*) "
                                         "FROM journal_lines WHERE account_id = $1 "
                                         "AND effective_at < $2::timestamptz";
static const char SQL_DAY_ENTRIES[] =
    "SELECT " ENTRY_COLUMNS ENTRY_FROM "WHERE l.account_id = $1 AND l.effective_at >= "
    "$2::timestamptz AND l.effective_at < $3::timestamptz "
    "ORDER BY l.effective_at, l.transaction_id LIMIT $4";

static bool reads_txn_id_valid(const char *s)
{
    if (strlen(s) != 36 || strncmp(s, "txn_", 4) != 0) {
        return false;
    }
    for (size_t i = 4; i < 36; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool reads_param_error(ledger_param_error *err, const char *param, const char *code,
                              const char *message)
{
    err->param = param;
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", message);
    return false;
}

bool ledger_page_parse(const char *limit, const char *starting_after, const char *ending_before,
                       const char *currency, ledger_page_request *out, ledger_param_error *err)
{
    memset(out, 0, sizeof(*out));
    out->limit = LEDGER_PAGE_DEFAULT_LIMIT;
    if (limit != NULL) {
        size_t n = strlen(limit);
        int v = 0;
        if (n == 0 || n > 3 || strspn(limit, "0123456789") != n) {
            return reads_param_error(err, "limit", "parameter_invalid_integer",
                                     "limit must be an integer from 1 to 100");
        }
        v = atoi(limit);
        if (v < 1 || v > LEDGER_PAGE_MAX_LIMIT) {
            return reads_param_error(err, "limit", "parameter_invalid_integer",
                                     "limit must be an integer from 1 to 100");
        }
        out->limit = v;
    }
    if (starting_after != NULL && ending_before != NULL) {
        return reads_param_error(err, "ending_before", "parameter_invalid",
                                 "use starting_after or ending_before, not both");
    }
    if (starting_after != NULL) {
        if (!reads_txn_id_valid(starting_after)) {
            return reads_param_error(err, "starting_after", "parameter_invalid",
                                     "starting_after must be the id of a balance transaction "
                                     "(txn_ followed by 32 hex digits)");
        }
        snprintf(out->starting_after, sizeof(out->starting_after), "%s", starting_after);
    }
    if (ending_before != NULL) {
        if (!reads_txn_id_valid(ending_before)) {
            return reads_param_error(err, "ending_before", "parameter_invalid",
                                     "ending_before must be the id of a balance transaction "
                                     "(txn_ followed by 32 hex digits)");
        }
        snprintf(out->ending_before, sizeof(out->ending_before), "%s", ending_before);
    }
    if (currency != NULL) {
        const keel_currency *cur = keel_currency_find(currency);
        if (cur == NULL) {
            return reads_param_error(err, "currency", "parameter_invalid",
                                     "currency must be a lowercase ISO 4217 code keel supports, "
                                     "e.g. usd");
        }
        snprintf(out->currency, sizeof(out->currency), "%s", cur->code);
    }
    return true;
}

static json_t *reads_time(int64_t ms)
{
    char buf[KEEL_RFC3339_LEN];
    return json_string(keel_clock_format_rfc3339(ms, buf));
}

static int64_t reads_int(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* An entry from a row of ENTRY_COLUMNS. */
static json_t *reads_entry(const PGresult *res, int row)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "id",
                     PQgetvalue(res, row, 0), "object", "balance_transaction", "type",
                     PQgetvalue(res, row, 1), "source", PQgetvalue(res, row, 2), "payment",
                     PQgetvalue(res, row, 3), "currency", PQgetvalue(res, row, 4), "amount",
                     (json_int_t)reads_int(res, row, 5), "fee", (json_int_t)reads_int(res, row, 6),
                     "net", (json_int_t)reads_int(res, row, 7), "effective_at",
                     reads_time(reads_int(res, row, 8)), "created",
                     reads_time(reads_int(res, row, 9)));
}

static keel_result reads_query(keel_db *db, const char *name, const char *sql, int n,
                               const char *const *params, PGresult **out)
{
    PGresult *res = keel_db_exec_prepared(db, name, sql, n, params);
    keel_result r = keel_db_check(db, res, name);
    if (r != KEEL_OK) {
        PQclear(res);
        res = NULL;
    }
    *out = res;
    return r;
}

keel_result ledger_read_balance(keel_db *db, const char *merchant_id, json_t **out)
{
    const char *params[1] = {merchant_id};
    PGresult *res = NULL;
    json_t *available;
    keel_result r;

    *out = NULL;
    r = reads_query(db, "ledger_read_balance", SQL_BALANCE, 1, params, &res);
    if (r != KEEL_OK) {
        return r;
    }
    available = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_array_append_new(available, json_pack("{s:s, s:I}", "currency", PQgetvalue(res, i, 0),
                                                   "amount", (json_int_t)reads_int(res, i, 1)));
    }
    PQclear(res);
    *out = json_pack("{s:s, s:s, s:o, s:o}", "object", "balance", "merchant_id", merchant_id,
                     "available", available, "as_of", reads_time(keel_clock_now_ms()));
    return *out != NULL ? KEEL_OK : KEEL_ERR;
}

keel_result ledger_read_entries(keel_db *db, const char *merchant_id,
                                const ledger_page_request *req, json_t **out,
                                ledger_param_error *err)
{
    const char *cursor = req->starting_after[0] != '\0' ? req->starting_after : req->ending_before;
    bool backwards = req->ending_before[0] != '\0';
    char limit[16];
    PGresult *res = NULL;
    json_t *data;
    keel_result r;
    int rows;

    *out = NULL;
    /* One more than asked tells whether there is a next page. */
    snprintf(limit, sizeof(limit), "%d", req->limit + 1);
    if (cursor[0] != '\0') {
        const char *params[2] = {cursor, merchant_id};
        r = reads_query(db, "ledger_cursor_exists", SQL_CURSOR_EXISTS, 2, params, &res);
        if (r != KEEL_OK) {
            return r;
        }
        rows = PQntuples(res);
        PQclear(res);
        res = NULL;
        if (rows == 0) {
            err->param = backwards ? "ending_before" : "starting_after";
            err->code = "resource_missing";
            snprintf(err->message, sizeof(err->message), "no balance transaction %s", cursor);
            return KEEL_ERR_NOT_FOUND;
        }
        const char *params4[4] = {merchant_id, req->currency, cursor, limit};
        r = backwards ? reads_query(db, "ledger_page_before", SQL_PAGE_BEFORE, 4, params4, &res)
                      : reads_query(db, "ledger_page_after", SQL_PAGE_AFTER, 4, params4, &res);
    } else {
        const char *params3[3] = {merchant_id, req->currency, limit};
        r = reads_query(db, "ledger_page_first", SQL_PAGE_FIRST, 3, params3, &res);
    }
    if (r != KEEL_OK) {
        return r;
    }
    rows = PQntuples(res);
    int shown = rows > req->limit ? req->limit : rows;
    data = json_array();
    for (int i = 0; i < shown; i++) {
        /* A page before the cursor was read oldest first; it is shown newest first. */
        int row = backwards ? shown - 1 - i : i;
        json_array_append_new(data, reads_entry(res, row));
    }
    PQclear(res);
    *out =
        json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", rows > req->limit);
    return *out != NULL ? KEEL_OK : KEEL_ERR;
}

typedef struct statement_tx {
    const char *merchant_id;
    const char *date;
    const char *currency;
    json_t *result;
} statement_tx;

/* Opening and closing balance and the day's entries of one account into section. */
static keel_result statement_account(keel_db *db, const char *account_id, const char *start,
                                     const char *end, json_t *section)
{
    const char *at_start[2] = {account_id, start};
    const char *at_end[2] = {account_id, end};
    char max[16];
    const char *day[4] = {account_id, start, end, max};
    PGresult *res = NULL;
    int64_t opening, closing, count_before_start, count_before_end;
    json_t *entries;
    keel_result r;

    r = reads_query(db, "ledger_balance_before", SQL_BALANCE_BEFORE, 2, at_start, &res);
    if (r != KEEL_OK) {
        return r;
    }
    opening = reads_int(res, 0, 0);
    count_before_start = reads_int(res, 0, 1);
    PQclear(res);
    r = reads_query(db, "ledger_balance_before", SQL_BALANCE_BEFORE, 2, at_end, &res);
    if (r != KEEL_OK) {
        return r;
    }
    closing = reads_int(res, 0, 0);
    count_before_end = reads_int(res, 0, 1);
    PQclear(res);
    snprintf(max, sizeof(max), "%d", LEDGER_STATEMENT_MAX_ENTRIES);
    r = reads_query(db, "ledger_day_entries", SQL_DAY_ENTRIES, 4, day, &res);
    if (r != KEEL_OK) {
        return r;
    }
    entries = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_array_append_new(entries, reads_entry(res, i));
    }
    PQclear(res);
    json_object_set_new(section, "opening_balance", json_integer(opening));
    json_object_set_new(section, "closing_balance", json_integer(closing));
    json_object_set_new(section, "net_change", json_integer(closing - opening));
    json_object_set_new(section, "entry_count",
                        json_integer(count_before_end - count_before_start));
    json_object_set_new(
        section, "entries_truncated",
        json_boolean(count_before_end - count_before_start > LEDGER_STATEMENT_MAX_ENTRIES));
    json_object_set_new(section, "entries", entries);
    return KEEL_OK;
}

static keel_result statement_body(keel_db *db, void *arg)
{
    statement_tx *tx = arg;
    const char *day_params[2] = {tx->merchant_id, tx->date};
    const char *acct_params[2] = {tx->merchant_id, tx->currency};
    char start[KEEL_RFC3339_LEN];
    char end[KEEL_RFC3339_LEN];
    PGresult *res = NULL;
    PGresult *accounts = NULL;
    json_t *currencies = NULL;
    keel_result r;

    json_decref(tx->result); /* from an attempt that was retried */
    tx->result = NULL;
    r = reads_query(db, "ledger_statement_day", SQL_DAY, 2, day_params, &res);
    if (r != KEEL_OK) {
        return r;
    }
    int64_t start_ms = reads_int(res, 0, 1);
    int64_t end_ms = reads_int(res, 0, 2);
    keel_clock_format_rfc3339(start_ms, start);
    keel_clock_format_rfc3339(end_ms, end);
    tx->result = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "object", "statement",
                           "merchant_id", tx->merchant_id, "date", tx->date, "time_zone",
                           PQgetvalue(res, 0, 0), "period_start", start, "period_end", end,
                           "period_seconds", (json_int_t)((end_ms - start_ms) / 1000));
    PQclear(res);
    res = NULL;
    r = reads_query(db, "ledger_statement_accounts", SQL_STATEMENT_ACCOUNTS, 2, acct_params,
                    &accounts);
    if (r != KEEL_OK) {
        return r;
    }
    currencies = json_array();
    for (int i = 0; i < PQntuples(accounts) && r == KEEL_OK; i++) {
        json_t *section = json_pack("{s:s}", "currency", PQgetvalue(accounts, i, 1));
        r = statement_account(db, PQgetvalue(accounts, i, 0), start, end, section);
        json_array_append_new(currencies, section);
    }
    PQclear(accounts);
    json_object_set_new(tx->result, "currencies", currencies);
    return r;
}

keel_result ledger_read_statement(keel_db *db, const char *merchant_id, const char *date,
                                  const char *currency, json_t **out)
{
    static const keel_db_tx_options opts = {.isolation = KEEL_DB_REPEATABLE_READ,
                                            .max_attempts = 3};
    statement_tx tx = {.merchant_id = merchant_id, .date = date, .currency = currency};
    keel_result r = keel_db_transaction(db, &opts, statement_body, &tx, NULL);

    if (r != KEEL_OK) {
        json_decref(tx.result);
        tx.result = NULL;
    }
    *out = tx.result;
    return r;
}
