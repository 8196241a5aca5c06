/* SQL of the gateway's payments view. */
#include "payment_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"
#include "payment_json.h"

/* The columns gateway_payment_from_row reads, in its order. Timestamps travel as epoch
 * milliseconds so rendering does not depend on the session's DateStyle or TimeZone. */
#define PAYMENT_COLUMNS                                                                            \
    "id, amount, currency, status, description, metadata::text, payment_method, "                  \
    "failure_code, failure_message, provider, "                                                    \
    "floor(extract(epoch FROM created_at) * 1000)::bigint, "                                       \
    "floor(extract(epoch FROM updated_at) * 1000)::bigint"

static const char SQL_INSERT[] =
    "INSERT INTO payments (id, merchant_id, amount, currency, description, metadata, "
    "payment_method, status) VALUES ($1, $2, $3::bigint, $4, $5, $6::jsonb, $7, 'pending') "
    "RETURNING " PAYMENT_COLUMNS;

static const char SQL_GET[] =
    "SELECT " PAYMENT_COLUMNS " FROM payments WHERE id = $1 AND merchant_id = $2";

/* Only a pending row of the same merchant changes: a terminal status is final (a late or
 * replayed event must not flip succeeded to failed), and an event naming another merchant
 * is not allowed to touch this merchant's payment. */
static const char SQL_APPLY[] =
    "INSERT INTO payments AS p (id, merchant_id, amount, currency, metadata, status, "
    "failure_code, failure_message, provider) "
    "VALUES ($1, $2, $3::bigint, $4, '{}', $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, '')) "
    "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
    "failure_code = EXCLUDED.failure_code, failure_message = EXCLUDED.failure_message, "
    "provider = EXCLUDED.provider, updated_at = now() "
    "WHERE p.status = 'pending' AND p.merchant_id = EXCLUDED.merchant_id";

static const char *nullable(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

/* Renders row 0 of a PAYMENT_COLUMNS result as the API's JSON text. */
static keel_result render_row(const PGresult *res, char **body, int64_t *created_at_ms)
{
    gateway_payment p;
    json_error_t jerr;
    keel_result r = KEEL_OK;

    memset(&p, 0, sizeof(p));
    p.id = PQgetvalue(res, 0, 0);
    p.amount = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    p.currency = PQgetvalue(res, 0, 2);
    p.status = PQgetvalue(res, 0, 3);
    p.description = nullable(res, 4);
    p.metadata = json_loads(PQgetvalue(res, 0, 5), 0, &jerr);
    p.payment_method = nullable(res, 6);
    p.failure_code = nullable(res, 7);
    p.failure_message = nullable(res, 8);
    p.provider = nullable(res, 9);
    p.created_at_ms = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
    p.updated_at_ms = strtoll(PQgetvalue(res, 0, 11), NULL, 10);
    if (p.metadata == NULL) {
        keel_log_error("payment %s has metadata jansson cannot read: %s", p.id, jerr.text);
        r = KEEL_ERR;
        goto done;
    }
    *body = gateway_payment_render(&p);
    if (*body == NULL) {
        keel_log_error("out of memory rendering payment %s", p.id);
        r = KEEL_ERR;
        goto done;
    }
    if (created_at_ms != NULL) {
        *created_at_ms = p.created_at_ms;
    }
done:
    json_decref(p.metadata);
    p.metadata = NULL;
    return r;
}

keel_result gateway_payment_store_insert(keel_db *db, const char *id, const char *merchant_id,
                                         const gateway_payment_input *in, char **body,
                                         int64_t *created_at_ms)
{
    char amount[24];
    char *metadata = NULL;
    PGresult *res = NULL;
    keel_result r;

    *body = NULL;
    snprintf(amount, sizeof(amount), "%" PRId64, in->amount);
    metadata = in->metadata != NULL ? json_dumps(in->metadata, JSON_COMPACT) : strdup("{}");
    if (metadata == NULL) {
        keel_log_error("out of memory serialising the metadata of payment %s", id);
        r = KEEL_ERR;
        goto done;
    }
    const char *params[7] = {
        id, merchant_id, amount, in->currency->code, in->description, metadata, in->payment_method};
    res = keel_db_exec_prepared(db, "gateway_payment_insert", SQL_INSERT, 7, params);
    r = keel_db_check(db, res, "inserting the payment");
    if (r != KEEL_OK) {
        goto done;
    }
    r = render_row(res, body, created_at_ms);
done:
    PQclear(res);
    free(metadata);
    metadata = NULL;
    return r;
}

keel_result gateway_payment_store_get(keel_db *db, const char *merchant_id, const char *id,
                                      char **body)
{
    const char *params[2] = {id, merchant_id};
    PGresult *res;
    keel_result r;

    *body = NULL;
    res = keel_db_exec_prepared(db, "gateway_payment_get", SQL_GET, 2, params);
    r = keel_db_check(db, res, "reading the payment");
    if (r == KEEL_OK) {
        r = PQntuples(res) == 1 ? render_row(res, body, NULL) : KEEL_ERR_NOT_FOUND;
    }
    PQclear(res);
    return r;
}

keel_result gateway_payment_store_apply_outcome(keel_db *db, const gateway_payment_outcome *o,
                                                bool *applied)
{
    char amount[24];
    const char *params[8] = {o->payment_id,      o->merchant_id, amount,
                             o->currency,        o->status,      o->failure_code,
                             o->failure_message, o->provider};
    PGresult *res;
    keel_result r;

    *applied = false;
    snprintf(amount, sizeof(amount), "%" PRId64, o->amount);
    res = keel_db_exec_prepared(db, "gateway_payment_apply", SQL_APPLY, 8, params);
    r = keel_db_check(db, res, "applying the payment outcome");
    if (r == KEEL_OK) {
        *applied = strcmp(PQcmdTuples(res), "1") == 0;
    }
    PQclear(res);
    return r;
}
