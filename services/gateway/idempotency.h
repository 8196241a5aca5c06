/* Idempotency keys: the Idempotency-Key header rules, the request fingerprint, and the
 * idempotency_keys rows that let a retried POST replay the first answer. */
#ifndef GATEWAY_IDEMPOTENCY_H
#define GATEWAY_IDEMPOTENCY_H

#include <stddef.h>

#include "digest.h"
#include "keel/db.h"
#include "keel/error.h"

#define GATEWAY_IDEMPOTENCY_KEY_MAX 255

typedef enum gateway_idem_key_check {
    GATEWAY_IDEM_KEY_OK = 0,
    GATEWAY_IDEM_KEY_MISSING, /* header absent or empty */
    GATEWAY_IDEM_KEY_INVALID, /* longer than 255 bytes or not printable ASCII (0x20..0x7e) */
} gateway_idem_key_check;

gateway_idem_key_check gateway_idempotency_key_check(const char *key);

/* The request fingerprint stored with a key: SHA-256 hex of method, "\n", path, "\n" and
 * the raw body bytes. The same key with another fingerprint is a reused key (422). */
void gateway_idempotency_request_hash(const char *method, const char *path, const char *body,
                                      size_t body_len, char out[GATEWAY_SHA256_HEX_LEN]);

typedef enum gateway_idem_state {
    GATEWAY_IDEM_NEW = 0,    /* the row is ours: do the work, then gateway_idempotency_complete */
    GATEWAY_IDEM_REPLAY,     /* the same request completed before: answer status and body */
    GATEWAY_IDEM_MISMATCH,   /* the key was used for a different request */
    GATEWAY_IDEM_INCOMPLETE, /* a committed row without a response (not written by this code) */
} gateway_idem_state;

typedef struct gateway_idem_record {
    gateway_idem_state state;
    int status; /* REPLAY: the recorded HTTP status */
    char *body; /* REPLAY: the recorded body, malloc'd; free with gateway_idem_record_clear */
} gateway_idem_record;

/* Claims (merchant_id, key) inside db's open transaction. Inserts the row; when it exists
 * already, the INSERT waits for the transaction that wrote it, so a concurrent twin of this
 * request blocks here until the first commits and then replays its answer. A row past its
 * expires_at is taken over as NEW. Returns KEEL_OK with out filled, or the database's error
 * (KEEL_ERR_TRANSIENT when the row vanished between the two statements: run the
 * transaction again). */
keel_result gateway_idempotency_claim(keel_db *db, const char *merchant_id, const char *key,
                                      const char *request_hash, gateway_idem_record *out);

/* Records the answer of a NEW claim, in the same transaction as the work it describes. */
keel_result gateway_idempotency_complete(keel_db *db, const char *merchant_id, const char *key,
                                         int status, const char *body);

void gateway_idem_record_clear(gateway_idem_record *r);

#endif
