/* SQL of the gateway's refunds view. */
#include "refund_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"
#include "list_query.h"
#include "payment_json.h"

/* The columns refund_from_row reads, over alias t; timestamps as epoch milliseconds. */
#define REFUND_COLUMNS                                                                             \
    "t.id, t.payment_id, t.amount, t.currency, t.status, t.reason, t.failure_code, "               \
    "t.failure_message, floor(extract(epoch FROM t.created_at) * 1000)::bigint, "                  \
    "floor(extract(epoch FROM t.updated_at) * 1000)::bigint"

static const char SQL_INSERT[] =
    "INSERT INTO refunds AS t (id, payment_id, merchant_id, amount, currency, reason, status) "
    "VALUES ($1, $2, $3, $4::bigint, $5, $6, 'pending') RETURNING " REFUND_COLUMNS;

static const char SQL_FOR_PAYMENTS[] =
    "SELECT " REFUND_COLUMNS " FROM (SELECT r.*, row_number() OVER (PARTITION BY r.payment_id "
    "ORDER BY r.created_at DESC, r.id DESC) AS n FROM refunds r "
    "WHERE r.merchant_id = $1 AND r.payment_id = ANY($2::text[])) t "
    "WHERE t.n <= $3::int ORDER BY t.payment_id, t.created_at DESC, t.id DESC";

static const char SQL_PAYMENT_EXISTS[] =
    "SELECT 1 FROM payments WHERE id = $1 AND merchant_id = $2";

/* Only a pending refund of the same payment and merchant takes an outcome. */
static const char SQL_APPLY[] =
    "UPDATE refunds SET status = $4, provider = NULLIF($5, ''), "
    "provider_refund_id = NULLIF($6, ''), failure_code = NULLIF($7, ''), "
    "failure_message = NULLIF($8, ''), updated_at = now() "
    "WHERE id = $1 AND payment_id = $2 AND merchant_id = $3 AND status = 'pending'";

static const char *nullable(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static json_t *refund_from_row(const PGresult *res, int row)
{
    gateway_refund r = {
        .id = PQgetvalue(res, row, 0),
        .payment_id = PQgetvalue(res, row, 1),
        .amount = strtoll(PQgetvalue(res, row, 2), NULL, 10),
        .currency = PQgetvalue(res, row, 3),
        .status = PQgetvalue(res, row, 4),
        .reason = nullable(res, row, 5),
        .failure_code = nullable(res, row, 6),
        .failure_message = nullable(res, row, 7),
        .created_at_ms = strtoll(PQgetvalue(res, row, 8), NULL, 10),
        .updated_at_ms = strtoll(PQgetvalue(res, row, 9), NULL, 10),
    };
    return gateway_refund_to_json(&r);
}

keel_result gateway_refund_store_insert(keel_db *db, const char *id, const char *payment_id,
                                        const char *merchant_id, int64_t amount,
                                        const char *currency, const char *reason, json_t **refund)
{
    char amount_text[24];
    const char *params[6] = {id, payment_id, merchant_id, amount_text, currency, reason};
    PGresult *res;
    keel_result r;

    *refund = NULL;
    snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
    res = keel_db_exec_prepared(db, "gateway_refund_insert", SQL_INSERT, 6, params);
    r = keel_db_check(db, res, "inserting the refund");
    if (r == KEEL_OK) {
        *refund = refund_from_row(res, 0);
        if (*refund == NULL) {
            keel_log_error("out of memory rendering refund %s", id);
            r = KEEL_ERR;
        }
    }
    PQclear(res);
    return r;
}

/* "{id1,id2}": a text[] literal. Ids are keel ids ([a-z0-9_]), which need no quoting;
 * anything else is left out (it cannot name a stored payment anyway). */
static char *id_array_literal(const char *const *ids, int n)
{
    size_t cap = 3;
    for (int i = 0; i < n; i++) {
        cap += strlen(ids[i]) + 1;
    }
    char *out = malloc(cap);
    size_t used = 0;
    if (out == NULL) {
        return NULL;
    }
    out[used++] = '{';
    for (int i = 0; i < n; i++) {
        if (strspn(ids[i], "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(ids[i]) ||
            ids[i][0] == '\0') {
            continue;
        }
        if (used > 1) {
            out[used++] = ',';
        }
        memcpy(out + used, ids[i], strlen(ids[i]));
        used += strlen(ids[i]);
    }
    out[used++] = '}';
    out[used] = '\0';
    return out;
}

keel_result gateway_refund_store_for_payments(keel_db *db, const char *merchant_id,
                                              const char *const *payment_ids, int n,
                                              json_t **by_payment)
{
    char max_text[16];
    char *ids = NULL;
    PGresult *res = NULL;
    keel_result r = KEEL_ERR;

    *by_payment = json_object();
    ids = id_array_literal(payment_ids, n);
    if (*by_payment == NULL || ids == NULL) {
        keel_log_error("out of memory reading refunds");
        goto done;
    }
    if (n == 0) {
        r = KEEL_OK;
        goto done;
    }
    snprintf(max_text, sizeof(max_text), "%d", GATEWAY_REFUNDS_EMBEDDED_MAX);
    const char *params[3] = {merchant_id, ids, max_text};
    res = keel_db_exec_prepared(db, "gateway_refunds_for_payments", SQL_FOR_PAYMENTS, 3, params);
    r = keel_db_check(db, res, "reading the payments' refunds");
    for (int i = 0; r == KEEL_OK && i < PQntuples(res); i++) {
        const char *pid = PQgetvalue(res, i, 1);
        json_t *list = json_object_get(*by_payment, pid);
        json_t *refund = refund_from_row(res, i);
        if (list == NULL) {
            list = json_array();
            if (list == NULL || json_object_set_new(*by_payment, pid, list) != 0) {
                list = NULL;
            }
        }
        if (list == NULL || refund == NULL || json_array_append_new(list, refund) != 0) {
            keel_log_error("out of memory rendering refunds");
            r = KEEL_ERR;
        }
    }
done:
    PQclear(res);
    free(ids);
    ids = NULL;
    if (r != KEEL_OK) {
        json_decref(*by_payment);
        *by_payment = NULL;
    }
    return r;
}

keel_result gateway_refund_store_list(keel_db *db, const char *merchant_id, const char *payment_id,
                                      const gateway_list_params *lp, char **body,
                                      const char **bad_param)
{
    const char *exists_params[2] = {payment_id, merchant_id};
    const char *scope_params[2] = {merchant_id, payment_id};
    gateway_list_query q = {
        .name = "gateway_refunds_list",
        .table = "refunds",
        .columns = REFUND_COLUMNS,
        .scope = "t.merchant_id = $1 AND t.payment_id = $2",
        .scope_params = scope_params,
        .nscope = 2,
    };
    char url[128];
    PGresult *res = NULL;
    json_t *data = NULL;
    int nrows = 0;
    bool has_more = false;
    bool reversed = false;
    keel_result r;

    *body = NULL;
    *bad_param = NULL;
    res = keel_db_exec_prepared(db, "gateway_refunds_payment_exists", SQL_PAYMENT_EXISTS, 2,
                                exists_params);
    r = keel_db_check(db, res, "looking up the payment");
    if (r == KEEL_OK && PQntuples(res) != 1) {
        *bad_param = "id";
        r = KEEL_ERR_NOT_FOUND;
    }
    PQclear(res);
    res = NULL;
    if (r != KEEL_OK) {
        return r;
    }
    r = gateway_list_fetch(db, &q, lp, &res, &nrows, &has_more, &reversed, bad_param);
    if (r != KEEL_OK) {
        goto done;
    }
    data = json_array();
    for (int i = 0; data != NULL && i < nrows; i++) {
        json_t *refund = refund_from_row(res, gateway_list_row(i, nrows, reversed));
        if (refund == NULL || json_array_append_new(data, refund) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    snprintf(url, sizeof(url), "/v1/payments/%s/refunds", payment_id);
    *body = data != NULL ? gateway_list_render(url, data, has_more) : NULL;
    data = NULL;
    if (*body == NULL) {
        keel_log_error("out of memory rendering the refunds of %s", payment_id);
        r = KEEL_ERR;
    }
done:
    PQclear(res);
    return r;
}

keel_result gateway_refund_store_apply_outcome(keel_db *db, const gateway_refund_outcome *o,
                                               bool *applied)
{
    const char *params[8] = {o->refund_id,    o->payment_id,     o->merchant_id,
                             o->status,       o->provider,       o->provider_refund_id,
                             o->failure_code, o->failure_message};
    PGresult *res;
    keel_result r;

    *applied = false;
    res = keel_db_exec_prepared(db, "gateway_refund_apply", SQL_APPLY, 8, params);
    r = keel_db_check(db, res, "applying the refund outcome");
    if (r == KEEL_OK) {
        *applied = strcmp(PQcmdTuples(res), "1") == 0;
    }
    PQclear(res);
    return r;
}
