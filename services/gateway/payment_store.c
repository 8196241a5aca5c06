/* SQL of the gateway's payments view. */
#include "payment_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"
#include "list_query.h"
#include "payment_json.h"
#include "payment_sql.h"
#include "refund_store.h"

/* The columns payment_from_row reads, over alias t, in its order. */
#define PAYMENT_COLUMNS GATEWAY_SQL_PAYMENT_COLUMNS

static const char SQL_INSERT[] = GATEWAY_SQL_PAYMENT_INSERT;

static const char SQL_GET[] =
    "SELECT " PAYMENT_COLUMNS " FROM payments t WHERE t.id = $1 AND t.merchant_id = $2";

/* Only a payment of the same merchant changes, and only forward: pending takes any outcome,
 * requires_review takes a final one, a final status never changes (a late or replayed
 * event must not flip succeeded to failed). */
static const char SQL_APPLY[] =
    "INSERT INTO payments AS p (id, merchant_id, amount, currency, metadata, status, "
    "failure_code, failure_message, provider) "
    "VALUES ($1, $2, $3::bigint, $4, '{}', $5, NULLIF($6, ''), NULLIF($7, ''), NULLIF($8, '')) "
    "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
    "failure_code = EXCLUDED.failure_code, failure_message = EXCLUDED.failure_message, "
    "provider = EXCLUDED.provider, updated_at = now() "
    "WHERE p.merchant_id = EXCLUDED.merchant_id AND (p.status = 'pending' OR "
    "(p.status = 'requires_review' AND EXCLUDED.status IN ('succeeded', 'failed')))";

static const char *nullable(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Row `row` of a PAYMENT_COLUMNS result as the API's JSON (a new reference), with refunds
 * (borrowed; NULL = none). */
static json_t *payment_from_row(const PGresult *res, int row, json_t *refunds)
{
    gateway_payment p;
    json_error_t jerr;
    json_t *out = NULL;

    memset(&p, 0, sizeof(p));
    p.id = PQgetvalue(res, row, 0);
    p.amount = strtoll(PQgetvalue(res, row, 1), NULL, 10);
    p.currency = PQgetvalue(res, row, 2);
    p.status = PQgetvalue(res, row, 3);
    p.description = nullable(res, row, 4);
    p.metadata = json_loads(PQgetvalue(res, row, 5), 0, &jerr);
    p.payment_method = nullable(res, row, 6);
    p.failure_code = nullable(res, row, 7);
    p.failure_message = nullable(res, row, 8);
    p.provider = nullable(res, row, 9);
    p.created_at_ms = strtoll(PQgetvalue(res, row, 10), NULL, 10);
    p.updated_at_ms = strtoll(PQgetvalue(res, row, 11), NULL, 10);
    p.amount_refunded = strtoll(PQgetvalue(res, row, 12), NULL, 10);
    p.refunds = refunds;
    if (p.metadata == NULL) {
        keel_log_error("payment %s has metadata jansson cannot read: %s", p.id, jerr.text);
        return NULL;
    }
    out = gateway_payment_to_json(&p);
    json_decref(p.metadata);
    p.metadata = NULL;
    if (out == NULL) {
        keel_log_error("out of memory rendering payment %s", p.id);
    }
    return out;
}

static char *dump(json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
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
    *body = dump(payment_from_row(res, 0, NULL));
    if (*body == NULL) {
        r = KEEL_ERR;
        goto done;
    }
    *created_at_ms = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
done:
    PQclear(res);
    free(metadata);
    metadata = NULL;
    return r;
}

/* Renders the rows in page order with their refunds into a JSON array (new reference). */
static keel_result render_rows(keel_db *db, const char *merchant_id, const PGresult *res, int nrows,
                               bool reversed, json_t **out)
{
    const char *ids[GATEWAY_LIST_LIMIT_MAX] = {0};
    json_t *refunds = NULL;
    keel_result r;

    *out = NULL;
    if (nrows > GATEWAY_LIST_LIMIT_MAX) {
        return KEEL_ERR;
    }
    for (int i = 0; i < nrows; i++) {
        ids[i] = PQgetvalue(res, i, 0);
    }
    r = gateway_refund_store_for_payments(db, merchant_id, ids, nrows, &refunds);
    if (r != KEEL_OK) {
        return r;
    }
    *out = json_array();
    for (int i = 0; *out != NULL && i < nrows; i++) {
        int row = gateway_list_row(i, nrows, reversed);
        json_t *p = payment_from_row(res, row, json_object_get(refunds, PQgetvalue(res, row, 0)));
        if (p == NULL || json_array_append_new(*out, p) != 0) {
            json_decref(*out);
            *out = NULL;
        }
    }
    json_decref(refunds);
    return *out != NULL ? KEEL_OK : KEEL_ERR;
}

keel_result gateway_payment_store_get(keel_db *db, const char *merchant_id, const char *id,
                                      char **body)
{
    const char *params[2] = {id, merchant_id};
    json_t *rows = NULL;
    PGresult *res;
    keel_result r;

    *body = NULL;
    res = keel_db_exec_prepared(db, "gateway_payment_get", SQL_GET, 2, params);
    r = keel_db_check(db, res, "reading the payment");
    if (r == KEEL_OK && PQntuples(res) != 1) {
        r = KEEL_ERR_NOT_FOUND;
    }
    if (r == KEEL_OK) {
        r = render_rows(db, merchant_id, res, 1, false, &rows);
    }
    if (r == KEEL_OK) {
        *body = json_dumps(json_array_get(rows, 0), JSON_COMPACT);
        r = *body != NULL ? KEEL_OK : KEEL_ERR;
    }
    json_decref(rows);
    PQclear(res);
    return r;
}

keel_result gateway_payment_store_list(keel_db *db, const char *merchant_id,
                                       const gateway_list_params *lp, char **body,
                                       const char **bad_param)
{
    const char *scope_params[1] = {merchant_id};
    gateway_list_query q = {
        .name = "gateway_payments_list",
        .table = "payments",
        .columns = PAYMENT_COLUMNS,
        .scope = "t.merchant_id = $1",
        .scope_params = scope_params,
        .nscope = 1,
    };
    PGresult *res = NULL;
    json_t *data = NULL;
    int nrows = 0;
    bool has_more = false;
    bool reversed = false;
    keel_result r;

    *body = NULL;
    r = gateway_list_fetch(db, &q, lp, &res, &nrows, &has_more, &reversed, bad_param);
    if (r == KEEL_OK) {
        r = render_rows(db, merchant_id, res, nrows, reversed, &data);
    }
    if (r == KEEL_OK) {
        *body = gateway_list_render("/v1/payments", data, has_more);
        data = NULL;
        r = *body != NULL ? KEEL_OK : KEEL_ERR;
    }
    json_decref(data);
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
