/* The ledger's own audit: runs the database's ledger_audit() (the checks keelctl audit
 * prints) on a schedule and exports the number of violations as keel_ledger_audit_failures. */
#ifndef LEDGER_AUDIT_H
#define LEDGER_AUDIT_H

#include <stdint.h>

#include "keel/db.h"
#include "keel/error.h"

typedef struct ledger_auditor ledger_auditor;

/* Counts the violations ledger_audit() reports into *failures. */
keel_result ledger_audit_count(keel_db *db, int64_t *failures);

/* Starts a thread that audits every interval_ms (the first run right away) on a connection
 * of its own, sets the gauge keel_ledger_audit_failures and counts
 * keel_ledger_audit_runs_total{result="ok|failures|error"}. NULL on failure. */
ledger_auditor *ledger_auditor_start(const char *conninfo, const char *password,
                                     int64_t interval_ms);
/* Stops the thread (it wakes on shutdown or here) and frees. NULL is fine. */
void ledger_auditor_stop(ledger_auditor *a);

#endif
