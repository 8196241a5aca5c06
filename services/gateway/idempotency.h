/* Idempotency keys with Stripe's semantics: the Idempotency-Key header rules, the request
 * fingerprint, and running a POST's work exactly once per (merchant, key) with the answer
 * recorded for replays. */
#ifndef GATEWAY_IDEMPOTENCY_H
#define GATEWAY_IDEMPOTENCY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "keel/db.h"
#include "keel/error.h"

#define GATEWAY_IDEMPOTENCY_KEY_MAX 255
#define GATEWAY_IDEMPOTENCY_LEASE_MS_DEFAULT 30000

typedef enum gateway_idem_key_check {
    GATEWAY_IDEM_KEY_OK = 0,
    GATEWAY_IDEM_KEY_MISSING, /* header absent or empty */
    GATEWAY_IDEM_KEY_INVALID, /* longer than 255 bytes or not printable ASCII (0x20..0x7e) */
} gateway_idem_key_check;

gateway_idem_key_check gateway_idempotency_key_check(const char *key);

/* The parameters of a request in canonical form: the body object with members whose value
 * is null dropped (null means absent) and keys sorted, as compact JSON (malloc'd). params
 * NULL (no body) gives "{}". NULL only when out of memory. */
char *gateway_idempotency_canonical(const json_t *params);

/* The fingerprint stored with a key: SHA-256 hex of method, "\n", path, "\n" and the
 * canonical parameters. The same key with another fingerprint is a reused key (422). */
void gateway_idempotency_fingerprint(const char *method, const char *path, const char *canonical,
                                     char out[GATEWAY_SHA256_HEX_LEN]);

/* Says what differs between the request a key was first used for and this one, for the 422
 * message: "POST /v1/payments" when the endpoint differs, else the differing top-level
 * parameters ("amount, description"), at most a few. Pure; writes into out. */
void gateway_idempotency_describe_mismatch(const char *first_method, const char *first_path,
                                           const char *first_params, const char *method,
                                           const char *path, const char *params, char *out,
                                           size_t out_len);

/* The request a key is claimed for. */
typedef struct gateway_idem_request {
    const char *merchant_id;
    const char *key;
    const char *method;
    const char *path;
    const json_t *params; /* the parsed body, NULL when there is none */
    int64_t lease_ms;     /* how long the claim holds before another request may recover it */
} gateway_idem_request;

typedef enum gateway_idem_outcome {
    GATEWAY_IDEM_EXECUTED = 0, /* the work ran now: answer status and body */
    GATEWAY_IDEM_REPLAYED,     /* it ran before: repeat the recorded status and body */
    GATEWAY_IDEM_MISMATCH,     /* the key belongs to a different request (422) */
    GATEWAY_IDEM_IN_FLIGHT,    /* another request holds the key right now (409) */
} gateway_idem_outcome;

typedef struct gateway_idem_result {
    gateway_idem_outcome outcome;
    int status;         /* EXECUTED / REPLAYED */
    char *body;         /* EXECUTED / REPLAYED: the exact JSON text to answer (malloc'd) */
    char mismatch[200]; /* MISMATCH: what differs (gateway_idempotency_describe_mismatch) */
} gateway_idem_result;

void gateway_idem_result_clear(gateway_idem_result *r);

/* The work of a request, run inside the transaction that also records its answer. It sets
 * *status and *body (malloc'd JSON text) to the answer to record, which may be an error the
 * work decided on (e.g. 400 amount_exceeds_refundable): that answer is recorded too, with
 * nothing else the work wrote rolled back only when it returns an error code. Returning a
 * code other than KEEL_OK rolls everything back; KEEL_ERR_TRANSIENT runs it again. */
typedef keel_result (*gateway_idem_work_fn)(keel_db *db, void *arg, int *status, char **body);

/* Runs work at most once for (merchant, key):
 *  1. claims the key in a short transaction of its own: a new key, one past its 24 hours, or
 *     one whose holder died (lease over, same fingerprint) becomes ours with a fresh lease
 *     and lock token; otherwise the existing row decides: another fingerprint → MISMATCH, a
 *     recorded answer → REPLAYED, a live claim → IN_FLIGHT;
 *  2. runs work and records its answer in one transaction (keel_db_transaction with opts,
 *     which may be NULL), guarded by the lock token so that a holder whose lease was taken
 *     over records nothing (IN_FLIGHT then);
 *  3. when step 2 fails, deletes the claim again so the client's retry can run at once (if
 *     even that fails, the lease expiry frees the key).
 * Returns KEEL_OK with out filled, or the database's error (answer 503: nothing was done). */
keel_result gateway_idempotent_execute(keel_db *db, const keel_db_tx_options *opts,
                                       const gateway_idem_request *req, gateway_idem_work_fn work,
                                       void *arg, gateway_idem_result *out);

/* Deletes up to batch keys past their 24 hours (answered, or claims whose lease is over too).
 * *deleted gets the number removed. */
keel_result gateway_idempotency_prune(keel_db *db, int batch, int *deleted);

#endif
