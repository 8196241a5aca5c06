/* The consumer handler of keel.merchant-events.v1: the ledger's own copy of each merchant
 * (its IANA time zone decides what "a day" is in statements). */
#ifndef LEDGER_MERCHANTS_H
#define LEDGER_MERCHANTS_H

#include <stddef.h>

#include "keel/consume.h"
#include "keel/db.h"

#define LEDGER_MERCHANT_EVENTS_CONSUMER "ledger.merchant-events"

typedef struct ledger_merchants {
    keel_db *db; /* the consumer thread's own connection */
} ledger_merchants;

/* A keel_message_handler; ctx is a ledger_merchants. MerchantCreated counts as version 1;
 * MerchantUpdated replaces the copy only when its version is higher, so a late or replayed
 * event never undoes a newer one. POISON for an unknown type, an undecodable payload, an
 * invalid id, a time zone PostgreSQL does not know or an unsupported currency; RETRY when
 * the database is away. */
keel_handle_result ledger_merchant_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                 size_t reason_len);

#endif
