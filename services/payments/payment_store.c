/* The payments table's SQL: insert a request, claim under a lease, record steps and outcomes. */
#include "payment_store.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"
#include "keel/money.h"

void payments_payment_clear(payments_payment *p)
{
    if (p == NULL) {
        return;
    }
    free(p->merchant_id);
    p->merchant_id = NULL;
    free(p->description);
    p->description = NULL;
    free(p->metadata_json);
    p->metadata_json = NULL;
    free(p->payment_method);
    p->payment_method = NULL;
}

const char *payments_phase_name(payments_phase phase)
{
    switch (phase) {
    case PAYMENTS_PHASE_RECEIVED:
        return "received";
    case PAYMENTS_PHASE_CHARGE_STARTED:
        return "charge_started";
    case PAYMENTS_PHASE_DONE:
        return "done";
    case PAYMENTS_PHASE_RISK_CHECKED:
        return "risk_checked";
    }
    return "done";
}

static bool phase_parse(const char *text, payments_phase *out)
{
    if (strcmp(text, "received") == 0) {
        *out = PAYMENTS_PHASE_RECEIVED;
    } else if (strcmp(text, "charge_started") == 0) {
        *out = PAYMENTS_PHASE_CHARGE_STARTED;
    } else if (strcmp(text, "done") == 0) {
        *out = PAYMENTS_PHASE_DONE;
    } else if (strcmp(text, "risk_checked") == 0) {
        *out = PAYMENTS_PHASE_RISK_CHECKED;
    } else {
        return false;
    }
    return true;
}

/* The request's metadata map as a compact JSON object (later duplicates of a key win). */
static char *metadata_to_json(const Keel__V1__PaymentRequested *req)
{
    json_t *obj = json_object();
    char *text = NULL;
    if (obj == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        const Keel__V1__PaymentRequested__MetadataEntry *e = req->metadata[i];
        if (e == NULL || e->key == NULL) {
            continue;
        }
        if (json_object_set_new(obj, e->key, json_string(e->value != NULL ? e->value : "")) != 0) {
            goto done;
        }
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
done:
    json_decref(obj);
    return text;
}

keel_result payments_store_insert(keel_db *db, const Keel__V1__PaymentRequested *req,
                                  const char *event_id, const char *traceparent, bool *inserted)
{
    static const char sql[] =
        "INSERT INTO payments (id, merchant_id, amount, currency, description, metadata, "
        "payment_method, traceparent, request_event_id) "
        "VALUES ($1, $2, $3::bigint, $4, $5, $6::jsonb, $7, $8, $9) "
        "ON CONFLICT (id) DO NOTHING";
    keel_result rc = KEEL_ERR;
    PGresult *res = NULL;
    char amount[32];
    *inserted = false;

    const keel_currency *cur = keel_currency_find(req->currency);
    char *metadata = metadata_to_json(req);
    if (cur == NULL || metadata == NULL) {
        keel_log_error("payment %s cannot be stored: %s", req->payment_id,
                       cur == NULL ? "unknown currency (validate first)"
                                   : "metadata could not be encoded as JSON");
        goto done;
    }
    snprintf(amount, sizeof(amount), "%" PRId64, req->amount);
    const char *params[] = {
        req->payment_id,
        req->merchant_id,
        amount,
        cur->code, /* the canonical lowercase code, whatever case the producer used */
        req->description != NULL ? req->description : "",
        metadata,
        req->payment_method != NULL ? req->payment_method : "",
        traceparent != NULL && traceparent[0] != '\0' ? traceparent : NULL,
        event_id,
    };
    res = keel_db_exec_prepared(db, "payments_insert", sql, 9, params);
    rc = keel_db_check(db, res, "storing a payment request");
    if (rc == KEEL_OK) {
        *inserted = strcmp(PQcmdTuples(res), "1") == 0;
    }
done:
    PQclear(res);
    free(metadata);
    return rc;
}

static char *dup_value(const PGresult *res, int col)
{
    return strdup(PQgetvalue(res, 0, col));
}

keel_result payments_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                 payments_payment *out)
{
    /* The subquery locks the one row it picks (skipping rows other workers are locking right
     * now), so the UPDATE cannot race with another claim. */
    static const char sql[] =
        "UPDATE payments SET lease_owner = $1, "
        "  lease_until = now() + $2::bigint * interval '1 millisecond' "
        "WHERE id = (SELECT id FROM payments "
        "  WHERE phase <> 'done' AND next_attempt_at <= now() "
        "    AND (lease_until IS NULL OR lease_until < now()) "
        "  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, merchant_id, amount, currency, description, metadata::text, "
        "  payment_method, phase, attempts, ambiguous, coalesce(traceparent, ''), "
        "  coalesce(provider, ''), coalesce(ambiguous_provider, ''), coalesce(risk_score, -1), "
        "  risk_degraded, "
        "  coalesce((extract(epoch FROM now() - unknown_since) * 1000)::bigint, -1)";
    keel_result rc;
    char lease[32];
    memset(out, 0, sizeof(*out));
    snprintf(lease, sizeof(lease), "%" PRId64, lease_ms);
    const char *params[] = {owner, lease};
    PGresult *res = keel_db_exec_prepared(db, "payments_claim", sql, 2, params);
    rc = keel_db_check(db, res, "claiming a due payment");
    if (rc != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        rc = KEEL_ERR_NOT_FOUND;
        goto done;
    }
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, 0, 0));
    out->merchant_id = dup_value(res, 1);
    out->amount = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(out->currency, sizeof(out->currency), "%s", PQgetvalue(res, 0, 3));
    out->description = dup_value(res, 4);
    out->metadata_json = dup_value(res, 5);
    out->payment_method = dup_value(res, 6);
    out->attempts = (int)strtol(PQgetvalue(res, 0, 8), NULL, 10);
    out->ambiguous = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
    snprintf(out->traceparent, sizeof(out->traceparent), "%s", PQgetvalue(res, 0, 10));
    snprintf(out->provider, sizeof(out->provider), "%s", PQgetvalue(res, 0, 11));
    snprintf(out->ambiguous_provider, sizeof(out->ambiguous_provider), "%s",
             PQgetvalue(res, 0, 12));
    out->risk_score = (int)strtol(PQgetvalue(res, 0, 13), NULL, 10);
    out->risk_degraded = strcmp(PQgetvalue(res, 0, 14), "t") == 0;
    out->unknown_age_ms = strtoll(PQgetvalue(res, 0, 15), NULL, 10);
    if (out->unknown_age_ms < -1) {
        out->unknown_age_ms = 0; /* a clock that went back: the outcome became unknown now */
    }
    if (out->merchant_id == NULL || out->description == NULL || out->metadata_json == NULL ||
        out->payment_method == NULL || !phase_parse(PQgetvalue(res, 0, 7), &out->phase)) {
        /* Out of memory, or a phase this build does not know: leave the row to its lease. */
        keel_log_error("claimed payment %s could not be read (phase \"%s\")", out->id,
                       PQgetvalue(res, 0, 7));
        payments_payment_clear(out);
        rc = KEEL_ERR;
    }
done:
    PQclear(res);
    return rc;
}

keel_result payments_store_exec_owned(keel_db *db, const char *name, const char *sql, int n,
                                      const char *const *params, const char *what)
{
    PGresult *res = keel_db_exec_prepared(db, name, sql, n, params);
    keel_result rc = keel_db_check(db, res, what);
    if (rc == KEEL_OK && strcmp(PQcmdTuples(res), "1") != 0) {
        rc = KEEL_ERR_CONFLICT;
    }
    PQclear(res);
    return rc;
}

keel_result payments_store_set_risk(keel_db *db, const char *id, const char *owner,
                                    int64_t lease_ms, int score, bool degraded, const char *reason)
{
    static const char sql[] =
        "UPDATE payments SET phase = 'risk_checked', risk_score = $4::integer, "
        "  risk_degraded = $5::boolean, risk_reason = $6, "
        "  lease_until = now() + $3::bigint * interval '1 millisecond', updated_at = now() "
        "WHERE id = $1 AND lease_owner = $2 AND phase = 'received'";
    char lease[32];
    char score_text[16];
    snprintf(lease, sizeof(lease), "%" PRId64, lease_ms);
    snprintf(score_text, sizeof(score_text), "%d", score);
    const char *params[] = {id, owner, lease, score_text, degraded ? "true" : "false", reason};
    return payments_store_exec_owned(db, "payments_set_risk", sql, 6, params,
                                     "recording the risk decision");
}

keel_result payments_store_mark_charge_started(keel_db *db, const char *id, const char *owner,
                                               int64_t lease_ms, const char *provider,
                                               int64_t *attempt_id)
{
    static const char sql[] =
        "UPDATE payments SET phase = 'charge_started', provider = $4, "
        "  lease_until = now() + $3::bigint * interval '1 millisecond', updated_at = now() "
        "WHERE id = $1 AND lease_owner = $2 AND phase <> 'done'";
    static const char insert_sql[] =
        "INSERT INTO payment_attempts (payment_id, provider) VALUES ($1, $2) RETURNING id";
    char lease[32];
    snprintf(lease, sizeof(lease), "%" PRId64, lease_ms);
    const char *params[] = {id, owner, lease, provider};
    keel_result rc = payments_store_exec_owned(db, "payments_charge_started", sql, 4, params,
                                               "recording the intent to charge");
    if (rc != KEEL_OK || attempt_id == NULL) {
        return rc;
    }
    const char *iparams[] = {id, provider};
    PGresult *res = keel_db_exec_prepared(db, "payments_attempt_insert", insert_sql, 2, iparams);
    rc = keel_db_check(db, res, "recording a provider attempt");
    if (rc == KEEL_OK) {
        *attempt_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return rc;
}

keel_result payments_store_mark_not_charged(keel_db *db, const char *id, const char *owner)
{
    static const char sql[] = "UPDATE payments SET phase = 'risk_checked', updated_at = now() "
                              "WHERE id = $1 AND lease_owner = $2 AND phase = 'charge_started'";
    const char *params[] = {id, owner};
    return payments_store_exec_owned(db, "payments_not_charged", sql, 2, params,
                                     "recording that nothing was charged");
}

keel_result payments_store_finish_attempt(keel_db *db, int64_t attempt_id, const char *outcome,
                                          int calls, const char *detail)
{
    static const char sql[] =
        "UPDATE payment_attempts SET outcome = $2, calls = $3::integer, detail = $4, "
        "  finished_at = now() WHERE id = $1::bigint";
    char id[32];
    char calls_text[16];
    snprintf(id, sizeof(id), "%" PRId64, attempt_id);
    snprintf(calls_text, sizeof(calls_text), "%d", calls);
    const char *params[] = {id, outcome, calls_text, detail};
    PGresult *res = keel_db_exec_prepared(db, "payments_attempt_finish", sql, 4, params);
    keel_result rc = keel_db_check(db, res, "finishing a provider attempt");
    PQclear(res);
    return rc;
}

keel_result payments_store_record(keel_db *db, const char *id, const char *owner,
                                  const payments_record *rec)
{
    static const char sql[] =
        "UPDATE payments SET status = $3, phase = $4, "
        "  provider = coalesce($5, provider), "
        "  provider_charge_id = coalesce($6, provider_charge_id), "
        "  failure_code = $7, failure_message = $8, attempts = $9::integer, "
        "  ambiguous = $10::boolean, "
        "  next_attempt_at = now() + $11::bigint * interval '1 millisecond', "
        "  last_error = $12, ambiguous_provider = coalesce($13, ambiguous_provider), "
        "  unknown_since = CASE WHEN $14::boolean THEN coalesce(unknown_since, now()) "
        "    ELSE unknown_since END, "
        "  lease_owner = NULL, lease_until = NULL, updated_at = now() "
        "WHERE id = $1 AND lease_owner = $2 AND phase <> 'done'";
    char attempts[16];
    char delay[32];
    snprintf(attempts, sizeof(attempts), "%d", rec->attempts);
    snprintf(delay, sizeof(delay), "%" PRId64, rec->retry_delay_ms > 0 ? rec->retry_delay_ms : 0);
    const char *params[] = {
        id,
        owner,
        rec->status,
        payments_phase_name(rec->phase),
        rec->provider != NULL && rec->provider[0] != '\0' ? rec->provider : NULL,
        rec->provider_charge_id != NULL && rec->provider_charge_id[0] != '\0'
            ? rec->provider_charge_id
            : NULL,
        rec->failure_code,
        rec->failure_message,
        attempts,
        rec->ambiguous ? "true" : "false",
        delay,
        rec->last_error,
        rec->ambiguous_provider != NULL && rec->ambiguous_provider[0] != '\0'
            ? rec->ambiguous_provider
            : NULL,
        rec->mark_unknown ? "true" : "false",
    };
    return payments_store_exec_owned(db, "payments_record", sql, 14, params,
                                     "recording a payment step");
}
