/* Idempotency keys: header rules, fingerprints, claims with a lease, recorded answers. */
#include "idempotency.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/failpoint.h"
#include "keel/id.h"
#include "keel/log.h"
#include "payment_sql.h"

/* The row can vanish between the claim and the read (pruned at its expiry): try again. */
#define IDEM_CLAIM_ATTEMPTS 3
/* At most this many differing parameters are named in a 422 message. */
#define IDEM_MISMATCH_NAMES 4

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

char *gateway_idempotency_canonical(const json_t *params)
{
    json_t *copy = json_object();
    const char *key;
    json_t *value;
    char *text;

    if (copy == NULL) {
        return NULL;
    }
    if (json_is_object(params)) {
        json_object_foreach((json_t *)params, key, value)
        {
            if (!json_is_null(value) && json_object_set(copy, key, value) != 0) {
                json_decref(copy);
                return NULL;
            }
        }
    }
    /* JSON_SORT_KEYS sorts nested objects (metadata) too, so {"a":1,"b":2} and
     * {"b":2,"a":1} are one request, as they are to the validator. */
    text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    return text;
}

void gateway_idempotency_fingerprint(const char *method, const char *path, const char *canonical,
                                     char out[GATEWAY_SHA256_HEX_LEN])
{
    /* Neither a method nor a path can hold "\n", so the separators keep the three parts
     * from running into each other ("POST" "/a" vs "POS" "T/a"). */
    gateway_sha256 *h = gateway_sha256_new();
    gateway_sha256_update(h, method, strlen(method));
    gateway_sha256_update(h, "\n", 1);
    gateway_sha256_update(h, path, strlen(path));
    gateway_sha256_update(h, "\n", 1);
    gateway_sha256_update(h, canonical, strlen(canonical));
    gateway_sha256_final_hex(h, out);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends the sorted names of top-level members that differ between a and b to out. */
static void describe_params(json_t *a, json_t *b, char *out, size_t out_len)
{
    const char *names[128];
    size_t n = 0;
    size_t shown = 0;
    size_t used = strlen(out);
    const char *key;
    json_t *value;

    json_object_foreach(a, key, value)
    {
        if (n < 128 && !json_equal(value, json_object_get(b, key))) {
            names[n++] = key;
        }
    }
    json_object_foreach(b, key, value)
    {
        if (n < 128 && json_object_get(a, key) == NULL) {
            names[n++] = key;
        }
    }
    qsort(names, n, sizeof(names[0]), compare_names);
    for (size_t i = 0; i < n && shown < IDEM_MISMATCH_NAMES; i++, shown++) {
        int w = snprintf(out + used, out_len - used, "%s%s", shown > 0 ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= out_len - used) {
            return;
        }
        used += (size_t)w;
    }
    if (n > shown) {
        snprintf(out + used, out_len - used, " and %zu more", n - shown);
    } else if (n == 0) {
        snprintf(out + used, out_len - used, "the request body");
    }
}

void gateway_idempotency_describe_mismatch(const char *first_method, const char *first_path,
                                           const char *first_params, const char *method,
                                           const char *path, const char *params, char *out,
                                           size_t out_len)
{
    json_t *a;
    json_t *b;

    if (strcmp(first_method, method) != 0 || strcmp(first_path, path) != 0) {
        snprintf(out, out_len, "for another endpoint (%.10s %.150s)", first_method, first_path);
        return;
    }
    a = json_loads(first_params, 0, NULL);
    b = json_loads(params, 0, NULL);
    snprintf(out, out_len, "with different parameters: ");
    if (json_is_object(a) && json_is_object(b)) {
        describe_params(a, b, out, out_len);
    } else {
        snprintf(out, out_len, "with a different request body");
    }
    json_decref(a);
    json_decref(b);
}

void gateway_idem_result_clear(gateway_idem_result *r)
{
    free(r->body);
    r->body = NULL;
    r->status = 0;
    r->outcome = GATEWAY_IDEM_EXECUTED;
    r->mismatch[0] = '\0';
}

static const char SQL_CLAIM[] = GATEWAY_SQL_IDEM_CLAIM;

static const char SQL_READ[] =
    "SELECT request_hash, request_method, request_path, request_params, response_status, "
    "response_body, lock_token FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2";

static const char SQL_COMPLETE[] = GATEWAY_SQL_IDEM_COMPLETE;

static const char SQL_RELEASE[] =
    "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND idem_key = $2 AND lock_token = $3 "
    "AND response_status IS NULL";

static const char SQL_PRUNE[] =
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
    "WHERE expires_at < now() AND (response_status IS NOT NULL "
    "OR coalesce(locked_until, '-infinity') < now()) LIMIT $1::int))";

typedef enum claim_state {
    CLAIM_OWNED,
    CLAIM_DECIDED, /* out holds REPLAYED, MISMATCH or IN_FLIGHT */
    CLAIM_VANISHED,
} claim_state;

/* Reads the row another request holds and decides what this request gets. */
static keel_result classify(keel_db *db, const gateway_idem_request *req, const char *hash,
                            const char *canonical, const char *token, claim_state *state,
                            gateway_idem_result *out)
{
    const char *params[2] = {req->merchant_id, req->key};
    PGresult *res = keel_db_exec_prepared(db, "gateway_idem_read", SQL_READ, 2, params);
    keel_result r = keel_db_check(db, res, "reading the idempotency key");

    if (r != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) != 1) {
        *state = CLAIM_VANISHED;
        goto done;
    }
    *state = CLAIM_DECIDED;
    if (strcmp(PQgetvalue(res, 0, 0), hash) != 0) {
        out->outcome = GATEWAY_IDEM_MISMATCH;
        gateway_idempotency_describe_mismatch(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                                              PQgetvalue(res, 0, 3), req->method, req->path,
                                              canonical, out->mismatch, sizeof(out->mismatch));
        goto done;
    }
    if (!PQgetisnull(res, 0, 4)) {
        out->body = strdup(PQgetvalue(res, 0, 5));
        if (out->body == NULL) {
            keel_log_error("out of memory copying an idempotent response");
            r = KEEL_ERR;
            goto done;
        }
        out->status = atoi(PQgetvalue(res, 0, 4));
        out->outcome = GATEWAY_IDEM_REPLAYED;
        goto done;
    }
    /* Our own claim whose commit we did not hear about (the connection dropped). */
    if (!PQgetisnull(res, 0, 6) && strcmp(PQgetvalue(res, 0, 6), token) == 0) {
        *state = CLAIM_OWNED;
        goto done;
    }
    out->outcome = GATEWAY_IDEM_IN_FLIGHT;
done:
    PQclear(res);
    return r;
}

static keel_result claim(keel_db *db, const gateway_idem_request *req, const char *hash,
                         const char *canonical, const char *token, claim_state *state,
                         gateway_idem_result *out)
{
    char lease[24];
    const char *params[8] = {req->merchant_id, req->key,  hash,  req->method,
                             req->path,        canonical, token, lease};
    PGresult *res;
    keel_result r;

    snprintf(lease, sizeof(lease), "%lld",
             (long long)(req->lease_ms > 0 ? req->lease_ms : GATEWAY_IDEMPOTENCY_LEASE_MS_DEFAULT));
    /* Outside any transaction: the claim commits at once and other requests see it. */
    res = keel_db_exec_prepared(db, "gateway_idem_claim", SQL_CLAIM, 8, params);
    r = keel_db_check(db, res, "claiming the idempotency key");
    if (r == KEEL_OK && PQntuples(res) == 1) {
        *state = CLAIM_OWNED;
    }
    PQclear(res);
    if (r != KEEL_OK || *state == CLAIM_OWNED) {
        return r;
    }
    return classify(db, req, hash, canonical, token, state, out);
}

typedef struct work_tx {
    const gateway_idem_request *req;
    const char *token;
    gateway_idem_work_fn work;
    void *arg;
    int status;
    char *body;
    bool lost_lease;
} work_tx;

static keel_result work_tx_body(keel_db *db, void *arg)
{
    work_tx *tx = arg;
    char status_text[16];
    PGresult *res;
    keel_result r;

    /* The body may run again after a transient error: start from a clean answer. */
    free(tx->body);
    tx->body = NULL;
    tx->status = 0;
    tx->lost_lease = false;
    r = tx->work(db, tx->arg, &tx->status, &tx->body);
    if (r != KEEL_OK) {
        return r;
    }
    if (tx->body == NULL || tx->status < 100 || tx->status > 599) {
        keel_log_error("idempotent work for %s %s gave no answer to record", tx->req->method,
                       tx->req->path);
        return KEEL_ERR;
    }
    snprintf(status_text, sizeof(status_text), "%d", tx->status);
    const char *params[5] = {tx->req->merchant_id, tx->req->key, tx->token, status_text, tx->body};
    res = keel_db_exec_prepared(db, "gateway_idem_complete", SQL_COMPLETE, 5, params);
    r = keel_db_check(db, res, "recording the idempotent response");
    if (r == KEEL_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        tx->lost_lease = true;
        r = KEEL_ERR_CONFLICT;
    }
    PQclear(res);
    return r;
}

static void release(keel_db *db, const gateway_idem_request *req, const char *token)
{
    const char *params[3] = {req->merchant_id, req->key, token};
    PGresult *res = keel_db_exec_prepared(db, "gateway_idem_release", SQL_RELEASE, 3, params);
    if (keel_db_check(db, res, "releasing the idempotency key") != KEEL_OK) {
        keel_log_warn("could not release Idempotency-Key of merchant %s; it frees itself when "
                      "its lease ends",
                      req->merchant_id);
    }
    PQclear(res);
}

keel_result gateway_idempotent_execute(keel_db *db, const keel_db_tx_options *opts,
                                       const gateway_idem_request *req, gateway_idem_work_fn work,
                                       void *arg, gateway_idem_result *out)
{
    char hash[GATEWAY_SHA256_HEX_LEN];
    char token[KEEL_UUID_STR_LEN];
    char *canonical = gateway_idempotency_canonical(req->params);
    claim_state state = CLAIM_VANISHED;
    work_tx tx;
    keel_result r = KEEL_ERR_TRANSIENT;

    memset(out, 0, sizeof(*out));
    memset(&tx, 0, sizeof(tx));
    if (canonical == NULL) {
        keel_log_error("out of memory canonicalising a request for its idempotency key");
        return KEEL_ERR;
    }
    gateway_idempotency_fingerprint(req->method, req->path, canonical, hash);
    keel_uuid7_new(token);
    for (int attempt = 0; attempt < IDEM_CLAIM_ATTEMPTS && state == CLAIM_VANISHED; attempt++) {
        gateway_idem_result_clear(out);
        r = claim(db, req, hash, canonical, token, &state, out);
        if (r != KEEL_OK) {
            goto done;
        }
    }
    if (state == CLAIM_VANISHED) {
        r = KEEL_ERR_TRANSIENT;
        goto done;
    }
    if (state == CLAIM_DECIDED) {
        goto done;
    }
    /* Claimed (committed) but nothing done yet: a crash here leaves a claim that only its
     * lease's end can free. */
    KEEL_FAILPOINT("gateway.after_idempotency_claim");
    tx = (work_tx){.req = req, .token = token, .work = work, .arg = arg};
    r = keel_db_transaction(db, opts, work_tx_body, &tx, NULL);
    if (r == KEEL_OK) {
        out->outcome = GATEWAY_IDEM_EXECUTED;
        out->status = tx.status;
        out->body = tx.body;
        tx.body = NULL;
        goto done;
    }
    if (tx.lost_lease) {
        /* Our lease ran out and another request took the key over; what we did rolled back
         * and that request's answer is the one that counts. */
        keel_log_warn("Idempotency-Key of merchant %s was taken over while this request worked "
                      "on it; answering 409",
                      req->merchant_id);
        out->outcome = GATEWAY_IDEM_IN_FLIGHT;
        r = KEEL_OK;
        goto done;
    }
    release(db, req, token);
done:
    free(tx.body);
    tx.body = NULL;
    free(canonical);
    canonical = NULL;
    if (r != KEEL_OK) {
        gateway_idem_result_clear(out);
    }
    return r;
}

keel_result gateway_idempotency_prune(keel_db *db, int batch, int *deleted)
{
    char batch_text[16];
    const char *params[1] = {batch_text};
    PGresult *res;
    keel_result r;

    *deleted = 0;
    snprintf(batch_text, sizeof(batch_text), "%d", batch > 0 ? batch : 1000);
    res = keel_db_exec_prepared(db, "gateway_idem_prune", SQL_PRUNE, 1, params);
    r = keel_db_check(db, res, "pruning expired idempotency keys");
    if (r == KEEL_OK) {
        *deleted = atoi(PQcmdTuples(res));
    }
    PQclear(res);
    return r;
}
