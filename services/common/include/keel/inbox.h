/* Idempotent consumer: the event id is recorded in the same transaction as the effect, so a
 * duplicate delivery changes nothing. */
#ifndef KEEL_INBOX_H
#define KEEL_INBOX_H

#include "keel/db.h"
#include "keel/error.h"

/* Inserts (consumer, event_id) into the inbox table in db's open transaction.
 * KEEL_OK: first time, go on with the effect in the same transaction.
 * KEEL_ERR_CONFLICT: already processed, do nothing (commit or roll back, either is fine).
 * KEEL_ERR_TRANSIENT / KEEL_ERR: database trouble, roll back. */
keel_result keel_inbox_claim(keel_db *db, const char *consumer, const char *event_id);

#endif
