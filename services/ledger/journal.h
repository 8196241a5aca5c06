/* Writing the journal: one posting becomes one database transaction holding the inbox claim,
 * the journal transaction, its lines and the balance updates, or nothing at all. */
#ifndef LEDGER_JOURNAL_H
#define LEDGER_JOURNAL_H

#include "keel/db.h"
#include "keel/error.h"
#include "postings.h"

#define LEDGER_TXN_ID_LEN 40 /* "txn_" + 32 hex digits + NUL, with room */

typedef enum ledger_post_outcome {
    LEDGER_POSTED = 0,       /* a new journal transaction */
    LEDGER_DUPLICATE_EVENT,  /* this event id was handled before (the inbox said so) */
    LEDGER_DUPLICATE_SOURCE, /* a new event id for a payment/refund posted before */
} ledger_post_outcome;

typedef struct ledger_post_options {
    const char *inbox_consumer;  /* e.g. LEDGER_PAYMENT_EVENTS_CONSUMER */
    keel_db_isolation isolation; /* the service uses READ COMMITTED */
    int max_attempts;            /* of keel_db_transaction; 0 = its default */
    /* For tests only (NULL in the service): runs inside the transaction after the lines
     * are written and before the balances are updated, on every attempt. */
    void (*before_balances)(void *arg, int attempt);
    void *hook_arg;
} ledger_post_options;

typedef struct ledger_post_result {
    ledger_post_outcome outcome;
    char transaction_id[LEDGER_TXN_ID_LEN]; /* the new transaction when POSTED, else "" */
    int retries; /* transactions run again after serialization failures or deadlocks */
} ledger_post_result;

/* Posts p (which must be balanced) through the inbox. Accounts are created on first use;
 * balances change with atomic `balance = balance + delta` updates taken in ascending
 * account id, so concurrent postings neither lose updates nor deadlock each other; what
 * the database still aborts (serialization failures under REPEATABLE READ, deadlocks) is
 * retried by keel_db_transaction and counted in out->retries. KEEL_OK with out filled, or
 * the database's error (KEEL_ERR for an unbalanced posting, which is never written). */
keel_result ledger_journal_post(keel_db *db, const ledger_posting *p,
                                const ledger_post_options *opts, ledger_post_result *out);

#endif
