/* keel_notifier's SQL: endpoints and their secrets, events and deliveries, the workers' claim
 * under a lease, recording an attempt with its effect on the endpoint, statistics, pruning. */
#ifndef NOTIFIER_STORE_H
#define NOTIFIER_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/error.h"
#include "signature.h"

/* ---- endpoints ---------------------------------------------------------------------- */

typedef struct notifier_endpoint_new {
    const char *id; /* we_... */
    const char *merchant_id;
    const char *url;
    const char *description;
    const char *const *events; /* enabled event types */
    size_t event_count;
    const char *secret;
} notifier_endpoint_new;

/* Inserts an endpoint unless the merchant already has max_endpoints (not deleted):
 * KEEL_ERR_FULL then. Takes a per-merchant transaction lock so concurrent creations cannot
 * both slip under the limit: call inside a transaction. */
keel_result notifier_store_endpoint_insert(keel_db *db, const notifier_endpoint_new *ep,
                                           int max_endpoints);

/* The public JSON view of one endpoint of merchant_id (never its secrets):
 * {"id","object":"webhook_endpoint","url","description","enabled_events","status",
 *  "disabled_reason","created","previous_secret_expires"}. KEEL_ERR_NOT_FOUND when there is
 * no such endpoint (or it was deleted). *out is the caller's. */
keel_result notifier_store_endpoint_get(keel_db *db, const char *merchant_id, const char *id,
                                        json_t **out);
/* Every endpoint of merchant_id, oldest first, as a JSON array of those views. */
keel_result notifier_store_endpoint_list(keel_db *db, const char *merchant_id, json_t **out);

/* Deletes (marks) an endpoint and makes its pending deliveries dead. KEEL_ERR_NOT_FOUND when
 * absent. Call inside a transaction. */
keel_result notifier_store_endpoint_delete(keel_db *db, const char *merchant_id, const char *id);

/* Makes new_secret current and keeps the current one valid for overlap_s more seconds (a
 * previous secret still in its overlap is dropped: one rotation at a time). */
keel_result notifier_store_endpoint_rotate(keel_db *db, const char *merchant_id, const char *id,
                                           const char *new_secret, int64_t overlap_s);

/* ---- events and deliveries -------------------------------------------------------------- */

typedef struct notifier_event_row {
    const char *event_id; /* evt_... */
    const char *merchant_id;
    const char *type;
    const char *source_event_id; /* the Kafka record's ce_id */
    const char *body;
    const char *traceparent; /* of the Kafka record; may be NULL or "" */
    int64_t occurred_ms;     /* when the outcome happened; endpoints created later do not get it */
} notifier_event_row;

/* Stores the event and one pending delivery per enabled endpoint of its merchant that
 * subscribes to its type and existed when it occurred. Stores nothing when no endpoint
 * matches. *deliveries gets the number created. Call inside a transaction. */
keel_result notifier_store_event_insert(keel_db *db, const notifier_event_row *ev, int *deliveries);

/* What a worker holds after a claim. Strings are malloc'd; free with _claim_clear. */
typedef struct notifier_claim {
    char id[48];
    char event_id[48];
    char endpoint_id[48];
    char event_type[48];
    char merchant_id[64];
    int attempts; /* attempts made before this one, in the current schedule */
    char *body;
    size_t body_len;
    char *url;
    char secret[NOTIFIER_SECRET_LEN];
    char previous_secret[NOTIFIER_SECRET_LEN]; /* "" unless in a rotation's overlap */
    char endpoint_state[16];                   /* enabled, disabled or deleted */
    char traceparent[64];                      /* the outcome's trace; "" when none */
} notifier_claim;

void notifier_claim_clear(notifier_claim *c);

/* Leases the pending delivery that is due longest (skipping ones other workers hold) to
 * owner for lease_ms. KEEL_ERR_NOT_FOUND when nothing is due. */
keel_result notifier_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                 notifier_claim *out);

/* Ends leases whose owner starts with prefix: at start-up, those of this instance's previous
 * run, which died holding them. *released gets the count. */
keel_result notifier_store_release_leases(keel_db *db, const char *owner_prefix, int *released);

/* One attempt and its consequences. */
typedef struct notifier_attempt {
    const char *delivery_id;
    const char *endpoint_id;
    const char *owner;
    const char *status;  /* the delivery's new status: pending, succeeded or dead */
    const char *outcome; /* for the log row: succeeded, retry, dead, gone, endpoint_disabled */
    int attempt;         /* this attempt's number in its schedule (attempts after it) */
    int64_t started_ms;
    int64_t duration_ms;
    int64_t next_delay_ms; /* for pending */
    long http_status;      /* 0 = no answer */
    const char *error;     /* NULL on success */
    const char *address;   /* the address connected to, or NULL */
    bool log_attempt;      /* false when no attempt was made (endpoint gone) */
    bool endpoint_ok;      /* a 2xx: the endpoint's failure run ends */
    bool endpoint_failed;  /* counts toward disabling after disable_after_ms of failures */
    bool endpoint_gone;    /* 410: disable the endpoint now */
    int64_t disable_after_ms;
} notifier_attempt;

/* What recording did to the endpoint. */
typedef struct notifier_attempt_effect {
    bool endpoint_disabled;   /* this attempt disabled it (410, or failing too long) */
    int64_t failing_for_ms;   /* how long it has been failing, when it has */
    int deliveries_abandoned; /* other pending deliveries made dead with it */
} notifier_attempt_effect;

/* Records the attempt in one transaction (opened here): the delivery's new state, the log
 * row, the endpoint's failure run, and when the endpoint is disabled, its other pending
 * deliveries dead. KEEL_ERR_CONFLICT when owner no longer holds the lease. */
keel_result notifier_store_record(keel_db *db, const notifier_attempt *a,
                                  notifier_attempt_effect *effect);

/* ---- operations ------------------------------------------------------------------------- */

typedef struct notifier_stats {
    int64_t pending;
    int64_t dead;
    double oldest_pending_s; /* age of the oldest pending delivery; 0 when none */
} notifier_stats;

keel_result notifier_store_stats(keel_db *db, notifier_stats *out);

/* Deletes succeeded deliveries completed more than succeeded_ms ago, dead ones last touched
 * more than dead_ms ago, events left without deliveries, and inbox rows of consumer older
 * than inbox_ms. *deleted gets the number of deliveries removed. */
keel_result notifier_store_prune(keel_db *db, const char *consumer, int64_t succeeded_ms,
                                 int64_t dead_ms, int64_t inbox_ms, int64_t *deleted);

#endif
