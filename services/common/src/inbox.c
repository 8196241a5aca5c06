/* Idempotent consumer: records an event id in the caller's transaction so duplicates are seen. */
#include "keel/inbox.h"

#include <string.h>

#include "keel/failpoint.h"
#include "keel/log.h"

keel_result keel_inbox_claim(keel_db *db, const char *consumer, const char *event_id)
{
    if (!consumer || !consumer[0] || !event_id || !event_id[0]) {
        keel_log_error("inbox: a claim needs a consumer name and an event id");
        return KEEL_ERR;
    }
    PGconn *conn = keel_db_conn(db);
    if (!conn) {
        keel_log_warn("inbox: no database connection for consumer %s, event %s", consumer,
                      event_id);
        return KEEL_ERR_TRANSIENT;
    }
    /* Outside a transaction the claim would commit on its own, before the effect: a crash in
     * between would then drop the event silently. Refuse instead. */
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_IDLE) {
        keel_log_error("inbox: claim of event %s for %s outside a transaction; call it after "
                       "BEGIN (inside keel_db_transaction)",
                       event_id, consumer);
        return KEEL_ERR;
    }
    if (ts == PQTRANS_INERROR) {
        keel_log_warn("inbox: claim of event %s for %s in a transaction that already failed; "
                      "roll back",
                      event_id, consumer);
        return KEEL_ERR;
    }

    /* ON CONFLICT DO NOTHING keeps the transaction usable on a duplicate (a unique violation
     * would abort it), and waits for a concurrent claim of the same id to end first. */
    const char *params[] = {consumer, event_id};
    PGresult *res = keel_db_exec_prepared(
        db, "keel_inbox_claim",
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, params);
    keel_result rc = keel_db_check(db, res, "inbox claim");
    if (rc == KEEL_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        keel_log_debug("inbox: event %s already processed by %s; skipping", event_id, consumer);
        rc = KEEL_ERR_CONFLICT;
    }
    PQclear(res);
    KEEL_FAILPOINT("inbox.after_claim"); /* claimed, effect and commit still to come */
    return rc;
}
