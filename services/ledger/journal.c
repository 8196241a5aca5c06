/* Writing the journal: inbox claim, journal transaction, lines and balances in one transaction. */
#include "journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/id.h"
#include "keel/inbox.h"
#include "keel/log.h"

static const char SQL_INSERT_TXN[] =
    "INSERT INTO journal_transactions (id, source_type, source_id, source_event_id, "
    "merchant_id, payment_id, currency, amount, fee, effective_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz) ON CONFLICT DO NOTHING";
static const char SQL_INSERT_SKIPPED[] =
    "INSERT INTO skipped_events (event_id, source_type, source_id, reason) "
    "VALUES ($1, $2, $3, 'already_posted') ON CONFLICT DO NOTHING";
/* Two statements, not one with a CTE: under READ COMMITTED the SELECT then sees an account
 * that a concurrent transaction created and committed after our INSERT's snapshot. */
static const char SQL_ENSURE_ACCOUNT[] = "INSERT INTO accounts (kind, owner, currency) "
                                         "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
static const char SQL_ACCOUNT_ID[] =
    "SELECT id FROM accounts WHERE kind = $1 AND owner = $2 AND currency = $3";
static const char SQL_INSERT_LINE[] =
    "INSERT INTO journal_lines (transaction_id, account_id, amount, currency, effective_at) "
    "VALUES ($1, $2, $3, $4, $5::timestamptz)";
static const char SQL_ADD_BALANCE[] =
    "UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE id = $1";

typedef struct journal_tx {
    const ledger_posting *p;
    const ledger_post_options *opts;
    ledger_post_result *out;
    char effective[KEEL_RFC3339_LEN];
    char txn_id[LEDGER_TXN_ID_LEN];
    int64_t account_ids[LEDGER_MAX_LINES];
    int attempt;
} journal_tx;

/* Runs a prepared statement and checks it; the caller PQclear()s *res_out when not NULL. */
static keel_result journal_exec(keel_db *db, const char *name, const char *sql, int n,
                                const char *const *params, const char *what, PGresult **res_out)
{
    PGresult *res = keel_db_exec_prepared(db, name, sql, n, params);
    keel_result r = keel_db_check(db, res, what);
    if (r != KEEL_OK || res_out == NULL) {
        PQclear(res);
        res = NULL;
    }
    if (res_out != NULL) {
        *res_out = res;
    }
    return r;
}

/* Stores the id of line i's account into tx; KEEL_ERR_NOT_FOUND when it does not exist. */
static keel_result journal_account_lookup(keel_db *db, journal_tx *tx, size_t i,
                                          const char *const *params)
{
    PGresult *res = NULL;
    keel_result r = journal_exec(db, "ledger_account_id", SQL_ACCOUNT_ID, 3, params,
                                 "finding an account", &res);
    if (r != KEEL_OK) {
        return r;
    }
    if (PQntuples(res) == 1) {
        tx->account_ids[i] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        r = KEEL_ERR_NOT_FOUND;
    }
    PQclear(res);
    return r;
}

/* The account of line i, created on its first use. Looked up first: the common case then
 * writes nothing (an INSERT ... ON CONFLICT would burn a sequence value every time, and
 * under REPEATABLE READ fail on an account another posting just updated). */
static keel_result journal_account(keel_db *db, journal_tx *tx, size_t i)
{
    const ledger_line *l = &tx->p->lines[i];
    const char *params[3] = {ledger_account_kind_name(l->kind), l->owner, tx->p->currency};
    keel_result r = journal_account_lookup(db, tx, i, params);

    if (r != KEEL_ERR_NOT_FOUND) {
        return r;
    }
    r = journal_exec(db, "ledger_ensure_account", SQL_ENSURE_ACCOUNT, 3, params,
                     "creating an account", NULL);
    if (r != KEEL_OK) {
        return r;
    }
    r = journal_account_lookup(db, tx, i, params);
    /* Only under REPEATABLE READ: another posting created it after our snapshot. */
    return r == KEEL_ERR_NOT_FOUND ? KEEL_ERR_TRANSIENT : r;
}

static int journal_cmp_line(const ledger_line *a, const ledger_line *b)
{
    if (a->kind != b->kind) {
        return a->kind < b->kind ? -1 : 1;
    }
    return strcmp(a->owner, b->owner);
}

typedef struct journal_delta {
    int64_t account_id;
    int64_t amount;
} journal_delta;

static int journal_cmp_delta(const void *a, const void *b)
{
    const journal_delta *x = a;
    const journal_delta *y = b;
    return x->account_id < y->account_id ? -1 : x->account_id > y->account_id;
}

/* Adds every line to its account's balance, one atomic UPDATE per account in ascending id:
 * the row locks are always taken in the same order, so two postings cannot deadlock. */
static keel_result journal_balances(keel_db *db, journal_tx *tx)
{
    journal_delta deltas[LEDGER_MAX_LINES];
    size_t n = 0;

    for (size_t i = 0; i < tx->p->nlines; i++) {
        size_t k = 0;
        while (k < n && deltas[k].account_id != tx->account_ids[i]) {
            k++;
        }
        if (k == n) {
            deltas[n++] = (journal_delta){tx->account_ids[i], 0};
        }
        deltas[k].amount += tx->p->lines[i].amount;
    }
    qsort(deltas, n, sizeof(deltas[0]), journal_cmp_delta);
    for (size_t k = 0; k < n; k++) {
        char id[24];
        char amount[24];
        const char *params[2] = {id, amount};
        keel_result r;

        snprintf(id, sizeof(id), "%" PRId64, deltas[k].account_id);
        snprintf(amount, sizeof(amount), "%" PRId64, deltas[k].amount);
        r = journal_exec(db, "ledger_add_balance", SQL_ADD_BALANCE, 2, params, "updating a balance",
                         NULL);
        if (r != KEEL_OK) {
            return r;
        }
    }
    return KEEL_OK;
}

static keel_result journal_body(keel_db *db, void *arg)
{
    journal_tx *tx = arg;
    const ledger_posting *p = tx->p;
    char amount[24];
    char fee[24];
    PGresult *res = NULL;
    size_t order[LEDGER_MAX_LINES];
    keel_result r;

    /* The body runs again after a transient failure: start from a clean slate. */
    tx->out->outcome = LEDGER_POSTED;
    tx->out->transaction_id[0] = '\0';
    tx->attempt++;
    r = keel_inbox_claim(db, tx->opts->inbox_consumer, p->event_id);
    if (r == KEEL_ERR_CONFLICT) {
        tx->out->outcome = LEDGER_DUPLICATE_EVENT;
        return KEEL_OK;
    }
    if (r != KEEL_OK) {
        return r;
    }
    snprintf(amount, sizeof(amount), "%" PRId64, p->amount);
    snprintf(fee, sizeof(fee), "%" PRId64, p->fee);
    const char *txn_params[10] = {
        tx->txn_id,    p->source_type, p->source_id, p->event_id, p->merchant_id,
        p->payment_id, p->currency,    amount,       fee,         tx->effective};
    r = journal_exec(db, "ledger_insert_txn", SQL_INSERT_TXN, 10, txn_params,
                     "inserting a journal transaction", &res);
    if (r != KEEL_OK) {
        return r;
    }
    bool inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = NULL;
    if (!inserted) {
        /* Posted before under another event id: record why this claim posted nothing, so
         * the audit can account for every inbox row. */
        const char *params[3] = {p->event_id, p->source_type, p->source_id};
        tx->out->outcome = LEDGER_DUPLICATE_SOURCE;
        return journal_exec(db, "ledger_insert_skipped", SQL_INSERT_SKIPPED, 3, params,
                            "recording a duplicate event", NULL);
    }

    /* Accounts are created in (kind, owner) order for the same reason balances are locked
     * in id order: concurrent first uses wait for each other instead of deadlocking. */
    for (size_t i = 0; i < p->nlines; i++) {
        size_t j = i;
        while (j > 0 && journal_cmp_line(&p->lines[order[j - 1]], &p->lines[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t k = 0; k < p->nlines; k++) {
        r = journal_account(db, tx, order[k]);
        if (r != KEEL_OK) {
            return r;
        }
    }
    for (size_t i = 0; i < p->nlines; i++) {
        char account[24];
        char line_amount[24];
        const char *params[5] = {tx->txn_id, account, line_amount, p->currency, tx->effective};

        snprintf(account, sizeof(account), "%" PRId64, tx->account_ids[i]);
        snprintf(line_amount, sizeof(line_amount), "%" PRId64, p->lines[i].amount);
        r = journal_exec(db, "ledger_insert_line", SQL_INSERT_LINE, 5, params,
                         "inserting a journal line", NULL);
        if (r != KEEL_OK) {
            return r;
        }
    }
    if (tx->opts->before_balances != NULL) {
        tx->opts->before_balances(tx->opts->hook_arg, tx->attempt);
    }
    r = journal_balances(db, tx);
    if (r != KEEL_OK) {
        return r;
    }
    snprintf(tx->out->transaction_id, sizeof(tx->out->transaction_id), "%s", tx->txn_id);
    return KEEL_OK;
}

keel_result ledger_journal_post(keel_db *db, const ledger_posting *p,
                                const ledger_post_options *opts, ledger_post_result *out)
{
    keel_db_tx_options tx_opts = {
        .isolation = opts->isolation,
        .max_attempts = opts->max_attempts,
    };
    journal_tx tx = {.p = p, .opts = opts, .out = out};
    keel_result r;

    memset(out, 0, sizeof(*out));
    if (!ledger_posting_balanced(p)) {
        keel_log_error("refusing to post %s %s: its lines do not balance", p->source_type,
                       p->source_id);
        return KEEL_ERR;
    }
    keel_clock_format_rfc3339(p->effective_ms, tx.effective);
    keel_id_new("txn_", tx.txn_id, sizeof(tx.txn_id));
    r = keel_db_transaction(db, &tx_opts, journal_body, &tx, &out->retries);
    if (r != KEEL_OK) {
        out->transaction_id[0] = '\0';
    }
    return r;
}
