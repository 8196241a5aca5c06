/* The consumer handler of keel.payment-events.v1: succeeded payments and refunds are posted
 * to the journal through the inbox; failures and reviews move no money and are skipped. */
#ifndef LEDGER_EVENTS_H
#define LEDGER_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "fees.h"
#include "journal.h"
#include "keel/consume.h"
#include "keel/db.h"
#include "keel/metrics.h"

#define LEDGER_PAYMENT_EVENTS_CONSUMER "ledger.payment-events"

typedef struct ledger_events {
    keel_db *db; /* the consumer thread's own connection */
    const ledger_fee_schedule *fees;
    ledger_post_options post;
    keel_metric *posted_payments;
    keel_metric *posted_refunds;
    keel_metric *duplicates;
    keel_metric *ignored;
    keel_metric *retries;
} ledger_events;

/* Fills ev (READ COMMITTED postings, inbox consumer LEDGER_PAYMENT_EVENTS_CONSUMER) and
 * registers its metrics. db and fees stay the caller's and must outlive ev. */
void ledger_events_init(ledger_events *ev, keel_db *db, const ledger_fee_schedule *fees);

/* A keel_message_handler; ctx is a ledger_events. OK once posted, for a duplicate, and for
 * PaymentFailed / RefundFailed / PaymentRequiresReview (nothing to post); POISON for an
 * unknown type, an undecodable payload or an invalid event (reason says which); RETRY when
 * the database is away. */
keel_handle_result ledger_payment_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                size_t reason_len);

#endif
