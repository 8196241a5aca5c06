/* The POST /v1/payments/{id}/refunds work: refundable check under a row lock, refund row,
 * RefundRequested outbox row. */
#include "refund_create.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "keel/clock.h"
#include "keel/id.h"
#include "keel/log.h"
#include "keel/v1/refunds.pb-c.h"
#include "payment_create.h"
#include "refund_store.h"

/* FOR UPDATE serialises refunds of one payment: the second waits until the first has
 * committed its pending refund, then counts it. */
static const char SQL_LOCK_PAYMENT[] =
    "SELECT amount, currency, status FROM payments WHERE id = $1 AND merchant_id = $2 "
    "FOR UPDATE";

static const char SQL_REFUNDED[] =
    "SELECT coalesce(sum(amount), 0) FROM refunds WHERE payment_id = $1 "
    "AND status IN ('pending', 'succeeded')";

/* Records an error answer: nothing else was written, so committing it only burns the key
 * for this exact request, as Stripe does once an endpoint has started executing. */
static keel_result answer_error(int *status, char **body, unsigned code_status, const char *code,
                                const char *message, const char *param)
{
    *status = (int)code_status;
    *body = gateway_error_render(code_status, code, message, param);
    return *body != NULL ? KEEL_OK : KEEL_ERR;
}

static uint8_t *pack_requested(const char *refund_id, const gateway_refund_request *req,
                               int64_t amount, const char *currency, const char *created_at,
                               size_t *len)
{
    Keel__V1__RefundRequested msg = KEEL__V1__REFUND_REQUESTED__INIT;
    uint8_t *buf;

    msg.refund_id = (char *)refund_id;
    msg.payment_id = (char *)req->payment_id;
    msg.merchant_id = (char *)req->merchant_id;
    msg.amount = amount;
    msg.currency = (char *)currency;
    msg.reason = (char *)(req->input->reason != NULL ? req->input->reason : "");
    msg.created_at = (char *)created_at;
    *len = keel__v1__refund_requested__get_packed_size(&msg);
    buf = malloc(*len > 0 ? *len : 1);
    if (buf != NULL) {
        keel__v1__refund_requested__pack(&msg, buf);
    }
    return buf;
}

static keel_result refund_work(keel_db *db, void *arg, int *status, char **body)
{
    const gateway_refund_request *req = arg;
    const char *lock_params[2] = {req->payment_id, req->merchant_id};
    const char *sum_params[1] = {req->payment_id};
    char refund_id[48];
    char currency[16];
    char created_at[KEEL_RFC3339_LEN];
    char message[200];
    int64_t paid;
    int64_t refundable;
    int64_t amount;
    PGresult *res = NULL;
    json_t *refund = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    keel_result r;

    res =
        keel_db_exec_prepared(db, "gateway_refund_lock_payment", SQL_LOCK_PAYMENT, 2, lock_params);
    r = keel_db_check(db, res, "locking the payment to refund");
    if (r != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) != 1) {
        r = answer_error(status, body, 404, "resource_missing",
                         "no such payment for this API key's merchant", "id");
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 2), "succeeded") != 0) {
        snprintf(message, sizeof(message),
                 "only a succeeded payment can be refunded; this one is %.20s",
                 PQgetvalue(res, 0, 2));
        r = answer_error(status, body, 400, "payment_not_refundable", message, "id");
        goto done;
    }
    paid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(currency, sizeof(currency), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    res = keel_db_exec_prepared(db, "gateway_refund_refunded", SQL_REFUNDED, 1, sum_params);
    r = keel_db_check(db, res, "summing the payment's refunds");
    if (r != KEEL_OK) {
        goto done;
    }
    refundable = paid - strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    amount = req->input->amount > 0 ? req->input->amount : refundable;
    if (refundable <= 0 || amount > refundable) {
        snprintf(message, sizeof(message),
                 "amount %" PRId64 " exceeds what remains refundable of this payment: %" PRId64
                 " %s (of %" PRId64 ", counting succeeded and pending refunds)",
                 amount, refundable > 0 ? refundable : 0, currency, paid);
        r = answer_error(status, body, 400, "amount_exceeds_refundable", message, "amount");
        goto done;
    }

    keel_id_new("re_", refund_id, sizeof(refund_id));
    r = gateway_refund_store_insert(db, refund_id, req->payment_id, req->merchant_id, amount,
                                    currency, req->input->reason, &refund);
    if (r != KEEL_OK) {
        goto done;
    }
    snprintf(created_at, sizeof(created_at), "%s",
             json_string_value(json_object_get(refund, "created_at")));
    payload = pack_requested(refund_id, req, amount, currency, created_at, &payload_len);
    *body = json_dumps(refund, JSON_COMPACT);
    if (payload == NULL || *body == NULL) {
        keel_log_error("out of memory packing RefundRequested for %s", refund_id);
        r = KEEL_ERR;
        goto done;
    }
    r = gateway_outbox_request(db, "keel.v1.RefundRequested", req->payment_id, payload, payload_len,
                               req->traceparent);
    if (r == KEEL_OK) {
        *status = 202;
    }
done:
    PQclear(res);
    json_decref(refund);
    refund = NULL;
    free(payload);
    payload = NULL;
    return r;
}

keel_result gateway_refund_create(keel_db *db, const keel_db_tx_options *opts,
                                  const gateway_refund_request *req, gateway_idem_result *out)
{
    gateway_idem_request idem = {
        .merchant_id = req->merchant_id,
        .key = req->idempotency_key,
        .method = "POST",
        .path = req->path,
        .params = req->params,
        .lease_ms = req->lease_ms,
    };
    return gateway_idempotent_execute(db, opts, &idem, refund_work, (void *)req, out);
}
