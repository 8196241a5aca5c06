/* The one interface keel-payments uses for every payment provider: charge, refund, and look
 * either up by its idempotency key. */
#ifndef PAYMENTS_PROVIDER_H
#define PAYMENTS_PROVIDER_H

#include <stdint.h>

/* What one charge call tells us. The worker's whole safety rests on these four meanings, so an
 * adapter must never pick a more definite answer than the provider gave. */
typedef enum payments_charge_status {
    PAYMENTS_CHARGE_SUCCEEDED = 0, /* the provider charged: charge_id is set */
    PAYMENTS_CHARGE_DECLINED,      /* a final no (card declined, invalid request): failure_code */
    PAYMENTS_CHARGE_NOT_PROCESSED, /* the provider certainly did not charge: safe to retry */
    PAYMENTS_CHARGE_UNKNOWN,       /* it may have charged: resolve by a lookup, never guess */
} payments_charge_status;

/* What a lookup by idempotency key tells us. */
typedef enum payments_lookup_status {
    PAYMENTS_LOOKUP_FOUND = 0, /* a charge exists: the outcome holds SUCCEEDED or DECLINED */
    PAYMENTS_LOOKUP_NOT_FOUND, /* the provider has no charge under this key: nothing charged */
    PAYMENTS_LOOKUP_FAILED,    /* no usable answer: we still do not know */
} payments_lookup_status;

typedef struct payments_charge_request {
    const char *payment_id; /* also the Idempotency-Key: the same on every attempt */
    const char *merchant_id;
    int64_t amount; /* minor units */
    const char *currency;
    const char *payment_method;
    const char *description;   /* may be "" */
    const char *metadata_json; /* a JSON object of strings, or NULL for none */
    const char *traceparent;   /* may be NULL or "" */
} payments_charge_request;

/* One refund of (part of) a charge. */
typedef struct payments_refund_request {
    const char *refund_id;  /* also the idempotency key: the same on every attempt */
    const char *payment_id; /* the charge's idempotency key (provider B's reference) */
    const char *charge_id;  /* the provider's id of the charge */
    int64_t amount;         /* minor units */
    const char *currency;
    const char *traceparent; /* may be NULL or "" */
} payments_refund_request;

/* The outcome of a charge or a refund call. The four meanings are the same for both: for a
 * refund, SUCCEEDED means the money went back, DECLINED a final refusal (nothing refunded),
 * NOT_PROCESSED certainly nothing refunded, UNKNOWN it may have been. */
typedef struct payments_charge_outcome {
    payments_charge_status status;
    long http_status;          /* the HTTP status when an answer arrived, else 0 */
    char charge_id[128];       /* the provider's charge id (for a refund: its refund id) when it
                                  named one, else "" */
    char failure_code[64];     /* for DECLINED, e.g. "card_declined" */
    char failure_message[256]; /* for DECLINED: the provider's words */
    char detail[384];          /* for logs and last_error: why this status was chosen */
} payments_charge_outcome;

typedef struct payments_provider payments_provider;

/* A provider adapter. Every function may be called from several worker threads at once and
 * blocks for at most the adapter's configured timeouts. */
struct payments_provider {
    const char *name; /* stable, for the database, events and metric labels: "provider_a" */
    void *impl;       /* the adapter's own state */
    /* One charge under req->payment_id as the idempotency key. Always fills out. */
    void (*charge)(payments_provider *p, const payments_charge_request *req,
                   payments_charge_outcome *out);
    /* Asks for the charge made under this idempotency key. Fills out when FOUND. */
    payments_lookup_status (*lookup)(payments_provider *p, const char *payment_id,
                                     const char *traceparent, payments_charge_outcome *out);
    /* One refund under req->refund_id as the idempotency key. Always fills out. */
    void (*refund)(payments_provider *p, const payments_refund_request *req,
                   payments_charge_outcome *out);
    /* Asks for the refund made under req->refund_id. Fills out when FOUND. */
    payments_lookup_status (*refund_lookup)(payments_provider *p,
                                            const payments_refund_request *req,
                                            payments_charge_outcome *out);
    /* Frees impl and p. */
    void (*free)(payments_provider *p);
};

/* Names for logs and metric labels. */
const char *payments_charge_status_name(payments_charge_status s);
const char *payments_lookup_status_name(payments_lookup_status s);

/* Frees through p->free; NULL is fine. */
void payments_provider_free(payments_provider *p);

#endif
