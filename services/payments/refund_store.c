/* The refunds table's SQL: admission under the payment's row lock, leases, steps. */
#include "refund_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"

const char *payments_refund_phase_name(payments_refund_phase phase)
{
    switch (phase) {
    case PAYMENTS_REFUND_RECEIVED:
        return "received";
    case PAYMENTS_REFUND_STARTED:
        return "refund_started";
    case PAYMENTS_REFUND_DONE:
        return "done";
    }
    return "done";
}

static bool refund_phase_parse(const char *text, payments_refund_phase *out)
{
    if (strcmp(text, "received") == 0) {
        *out = PAYMENTS_REFUND_RECEIVED;
    } else if (strcmp(text, "refund_started") == 0) {
        *out = PAYMENTS_REFUND_STARTED;
    } else if (strcmp(text, "done") == 0) {
        *out = PAYMENTS_REFUND_DONE;
    } else {
        return false;
    }
    return true;
}

keel_result payments_refund_store_exists(keel_db *db, const char *refund_id, bool *exists)
{
    static const char sql[] = "SELECT 1 FROM refunds WHERE id = $1";
    const char *params[] = {refund_id};
    PGresult *res = keel_db_exec_prepared(db, "refunds_exists", sql, 1, params);
    keel_result rc = keel_db_check(db, res, "looking for a refund");
    *exists = rc == KEEL_OK && PQntuples(res) > 0;
    PQclear(res);
    return rc;
}

keel_result payments_refund_store_lock_payment(keel_db *db, const char *payment_id,
                                               payments_refundable *out)
{
    static const char lock_sql[] =
        "SELECT status, merchant_id, currency, amount, coalesce(provider, ''), "
        "  coalesce(provider_charge_id, '') FROM payments WHERE id = $1 FOR UPDATE";
    /* Failed refunds gave nothing back; every other refund has, will, or may have. */
    static const char sum_sql[] = "SELECT coalesce(sum(amount), 0) FROM refunds "
                                  "WHERE payment_id = $1 AND status <> 'failed'";
    const char *params[] = {payment_id};
    memset(out, 0, sizeof(*out));
    PGresult *res = keel_db_exec_prepared(db, "refunds_lock_payment", lock_sql, 1, params);
    keel_result rc = keel_db_check(db, res, "locking the payment of a refund");
    if (rc != KEEL_OK || PQntuples(res) == 0) {
        PQclear(res);
        return rc;
    }
    out->found = true;
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 0));
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", PQgetvalue(res, 0, 1));
    snprintf(out->currency, sizeof(out->currency), "%s", PQgetvalue(res, 0, 2));
    out->amount = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    snprintf(out->provider, sizeof(out->provider), "%s", PQgetvalue(res, 0, 4));
    snprintf(out->charge_id, sizeof(out->charge_id), "%s", PQgetvalue(res, 0, 5));
    PQclear(res);
    res = keel_db_exec_prepared(db, "refunds_sum", sum_sql, 1, params);
    rc = keel_db_check(db, res, "summing the refunds of a payment");
    if (rc == KEEL_OK) {
        out->refunded = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return rc;
}

keel_result payments_refund_store_insert(keel_db *db, const payments_refund_new *r, bool *inserted)
{
    static const char sql[] =
        "INSERT INTO refunds (id, payment_id, merchant_id, amount, currency, reason, status, "
        "  phase, provider, charge_id, failure_code, failure_message, traceparent, "
        "  request_event_id) "
        "VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "ON CONFLICT (id) DO NOTHING";
    char amount[32];
    bool refused = r->failure_code != NULL;
    snprintf(amount, sizeof(amount), "%" PRId64, r->req->amount);
    const char *params[] = {
        r->req->refund_id,
        r->req->payment_id,
        r->req->merchant_id,
        amount,
        r->currency,
        r->req->reason != NULL ? r->req->reason : "",
        refused ? "failed" : "processing",
        refused ? "done" : "received",
        r->provider,
        r->charge_id,
        r->failure_code,
        r->failure_message,
        r->traceparent != NULL && r->traceparent[0] != '\0' ? r->traceparent : NULL,
        r->event_id,
    };
    *inserted = false;
    PGresult *res = keel_db_exec_prepared(db, "refunds_insert", sql, 14, params);
    keel_result rc = keel_db_check(db, res, "storing a refund request");
    if (rc == KEEL_OK) {
        *inserted = strcmp(PQcmdTuples(res), "1") == 0;
    }
    PQclear(res);
    return rc;
}

keel_result payments_refund_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                        payments_refund *out)
{
    static const char sql[] =
        "UPDATE refunds SET lease_owner = $1, "
        "  lease_until = now() + $2::bigint * interval '1 millisecond' "
        "WHERE id = (SELECT id FROM refunds "
        "  WHERE phase <> 'done' AND next_attempt_at <= now() "
        "    AND (lease_until IS NULL OR lease_until < now()) "
        "  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, payment_id, merchant_id, amount, currency, coalesce(provider, ''), "
        "  coalesce(charge_id, ''), phase, attempts, ambiguous, coalesce(traceparent, ''), "
        "  coalesce((extract(epoch FROM now() - unknown_since) * 1000)::bigint, -1)";
    char lease[32];
    memset(out, 0, sizeof(*out));
    snprintf(lease, sizeof(lease), "%" PRId64, lease_ms);
    const char *params[] = {owner, lease};
    PGresult *res = keel_db_exec_prepared(db, "refunds_claim", sql, 2, params);
    keel_result rc = keel_db_check(db, res, "claiming a due refund");
    if (rc != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        rc = KEEL_ERR_NOT_FOUND;
        goto done;
    }
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, 0, 0));
    snprintf(out->payment_id, sizeof(out->payment_id), "%s", PQgetvalue(res, 0, 1));
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", PQgetvalue(res, 0, 2));
    out->amount = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    snprintf(out->currency, sizeof(out->currency), "%s", PQgetvalue(res, 0, 4));
    snprintf(out->provider, sizeof(out->provider), "%s", PQgetvalue(res, 0, 5));
    snprintf(out->charge_id, sizeof(out->charge_id), "%s", PQgetvalue(res, 0, 6));
    out->attempts = (int)strtol(PQgetvalue(res, 0, 8), NULL, 10);
    out->ambiguous = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
    snprintf(out->traceparent, sizeof(out->traceparent), "%s", PQgetvalue(res, 0, 10));
    out->unknown_age_ms = strtoll(PQgetvalue(res, 0, 11), NULL, 10);
    if (out->unknown_age_ms < -1) {
        out->unknown_age_ms = 0;
    }
    if (!refund_phase_parse(PQgetvalue(res, 0, 7), &out->phase)) {
        keel_log_error("claimed refund %s has an unknown phase \"%s\"", out->id,
                       PQgetvalue(res, 0, 7));
        rc = KEEL_ERR;
    }
done:
    PQclear(res);
    return rc;
}

keel_result payments_refund_store_mark_started(keel_db *db, const char *id, const char *owner,
                                               int64_t lease_ms)
{
    static const char sql[] =
        "UPDATE refunds SET phase = 'refund_started', "
        "  lease_until = now() + $3::bigint * interval '1 millisecond', updated_at = now() "
        "WHERE id = $1 AND lease_owner = $2 AND phase <> 'done'";
    char lease[32];
    snprintf(lease, sizeof(lease), "%" PRId64, lease_ms);
    const char *params[] = {id, owner, lease};
    return payments_store_exec_owned(db, "refunds_started", sql, 3, params,
                                     "recording the intent to refund");
}

keel_result payments_refund_store_record(keel_db *db, const char *id, const char *owner,
                                         const payments_refund_record *rec)
{
    static const char sql[] =
        "UPDATE refunds SET status = $3, phase = $4, "
        "  provider_refund_id = coalesce($5, provider_refund_id), "
        "  failure_code = $6, failure_message = $7, attempts = $8::integer, "
        "  ambiguous = $9::boolean, "
        "  unknown_since = CASE WHEN $10::boolean THEN coalesce(unknown_since, now()) "
        "    ELSE unknown_since END, "
        "  next_attempt_at = now() + $11::bigint * interval '1 millisecond', "
        "  last_error = $12, lease_owner = NULL, lease_until = NULL, updated_at = now() "
        "WHERE id = $1 AND lease_owner = $2 AND phase <> 'done'";
    char attempts[16];
    char delay[32];
    snprintf(attempts, sizeof(attempts), "%d", rec->attempts);
    snprintf(delay, sizeof(delay), "%" PRId64, rec->retry_delay_ms > 0 ? rec->retry_delay_ms : 0);
    const char *params[] = {
        id,
        owner,
        rec->status,
        payments_refund_phase_name(rec->phase),
        rec->provider_refund_id != NULL && rec->provider_refund_id[0] != '\0'
            ? rec->provider_refund_id
            : NULL,
        rec->failure_code,
        rec->failure_message,
        attempts,
        rec->ambiguous ? "true" : "false",
        rec->mark_unknown ? "true" : "false",
        delay,
        rec->last_error,
    };
    return payments_store_exec_owned(db, "refunds_record", sql, 12, params,
                                     "recording a refund step");
}
