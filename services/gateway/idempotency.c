/* Idempotency keys: header rules, request fingerprints and the idempotency_keys rows. */
#include "idempotency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"

/* How long a key replays its first answer; after that the key may be used afresh. */
#define IDEM_TTL "interval '24 hours'"

gateway_idem_key_check gateway_idempotency_key_check(const char *key)
{
    size_t len;

    if (key == NULL || key[0] == '\0') {
        return GATEWAY_IDEM_KEY_MISSING;
    }
    len = strlen(key);
    if (len > GATEWAY_IDEMPOTENCY_KEY_MAX) {
        return GATEWAY_IDEM_KEY_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c > 0x7e) {
            return GATEWAY_IDEM_KEY_INVALID;
        }
    }
    return GATEWAY_IDEM_KEY_OK;
}

void gateway_idempotency_request_hash(const char *method, const char *path, const char *body,
                                      size_t body_len, char out[GATEWAY_SHA256_HEX_LEN])
{
    /* Neither a method nor a path can hold "\n", so the separators keep the three parts
     * from running into each other ("POST" "/a" vs "POS" "T/a"). */
    gateway_sha256 *h = gateway_sha256_new();
    gateway_sha256_update(h, method, strlen(method));
    gateway_sha256_update(h, "\n", 1);
    gateway_sha256_update(h, path, strlen(path));
    gateway_sha256_update(h, "\n", 1);
    gateway_sha256_update(h, body, body_len);
    gateway_sha256_final_hex(h, out);
}

void gateway_idem_record_clear(gateway_idem_record *r)
{
    free(r->body);
    r->body = NULL;
    r->status = 0;
    r->state = GATEWAY_IDEM_NEW;
}

static const char SQL_INSERT[] =
    "INSERT INTO idempotency_keys (merchant_id, idem_key, request_hash, expires_at) "
    "VALUES ($1, $2, $3, now() + " IDEM_TTL ") "
    "ON CONFLICT (merchant_id, idem_key) DO NOTHING";

/* FOR UPDATE: of two requests that both find an expired row, one takes it over and the
 * other waits, then sees the fresh row and replays it. */
static const char SQL_SELECT[] =
    "SELECT request_hash, response_status, response_body, expires_at <= now() "
    "FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2 FOR UPDATE";

static const char SQL_TAKE_OVER[] =
    "UPDATE idempotency_keys SET request_hash = $3, response_status = NULL, "
    "response_body = NULL, created_at = now(), expires_at = now() + " IDEM_TTL " "
    "WHERE merchant_id = $1 AND idem_key = $2";

static const char SQL_COMPLETE[] =
    "UPDATE idempotency_keys SET response_status = $3::int, response_body = $4 "
    "WHERE merchant_id = $1 AND idem_key = $2";

keel_result gateway_idempotency_claim(keel_db *db, const char *merchant_id, const char *key,
                                      const char *request_hash, gateway_idem_record *out)
{
    const char *params[3] = {merchant_id, key, request_hash};
    PGresult *res = NULL;
    keel_result r;

    gateway_idem_record_clear(out);
    res = keel_db_exec_prepared(db, "gateway_idem_insert", SQL_INSERT, 3, params);
    r = keel_db_check(db, res, "inserting the idempotency key");
    if (r != KEEL_OK) {
        goto done;
    }
    if (strcmp(PQcmdTuples(res), "1") == 0) {
        out->state = GATEWAY_IDEM_NEW;
        goto done;
    }
    PQclear(res);
    res = keel_db_exec_prepared(db, "gateway_idem_select", SQL_SELECT, 2, params);
    r = keel_db_check(db, res, "reading the idempotency key");
    if (r != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) != 1) {
        /* Pruned between our two statements: the next attempt inserts it afresh. */
        r = KEEL_ERR_TRANSIENT;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
        PQclear(res);
        res = keel_db_exec_prepared(db, "gateway_idem_take_over", SQL_TAKE_OVER, 3, params);
        r = keel_db_check(db, res, "taking over an expired idempotency key");
        out->state = GATEWAY_IDEM_NEW;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 0), request_hash) != 0) {
        out->state = GATEWAY_IDEM_MISMATCH;
        goto done;
    }
    if (PQgetisnull(res, 0, 1) || PQgetisnull(res, 0, 2)) {
        out->state = GATEWAY_IDEM_INCOMPLETE;
        goto done;
    }
    out->body = strdup(PQgetvalue(res, 0, 2));
    if (out->body == NULL) {
        keel_log_error("out of memory copying an idempotent response");
        r = KEEL_ERR;
        goto done;
    }
    out->status = atoi(PQgetvalue(res, 0, 1));
    out->state = GATEWAY_IDEM_REPLAY;
done:
    PQclear(res);
    return r;
}

keel_result gateway_idempotency_complete(keel_db *db, const char *merchant_id, const char *key,
                                         int status, const char *body)
{
    char status_text[16];
    const char *params[4] = {merchant_id, key, status_text, body};
    PGresult *res;
    keel_result r;

    snprintf(status_text, sizeof(status_text), "%d", status);
    res = keel_db_exec_prepared(db, "gateway_idem_complete", SQL_COMPLETE, 4, params);
    r = keel_db_check(db, res, "recording the idempotent response");
    if (r == KEEL_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        keel_log_error("idempotency key of merchant %s vanished inside its own transaction",
                       merchant_id);
        r = KEEL_ERR;
    }
    PQclear(res);
    return r;
}
