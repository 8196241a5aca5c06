/* Intake of keel.payment-events.v1: each payment or refund outcome becomes one stored event and
 * one delivery per matching endpoint, in the same transaction as its inbox row. */
#ifndef NOTIFIER_INTAKE_H
#define NOTIFIER_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "keel/consume.h"
#include "keel/db.h"

#define NOTIFIER_INBOX_CONSUMER "notifier"

typedef struct notifier_intake {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms; /* 0 = 2000 */
    /* Called after deliveries were committed (e.g. to wake the workers); may be NULL. */
    void (*on_stored)(void *arg);
    void *on_stored_arg;
} notifier_intake;

/* A keel_message_handler; ctx is a notifier_intake. Types merchants are not sent are
 * committed and skipped; an undecodable payload of a delivered type is poison; database
 * trouble retries the record in place. */
keel_handle_result notifier_intake_handle(const keel_message *msg, void *ctx, char *reason,
                                          size_t reason_len);

#endif
