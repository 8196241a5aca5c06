/* The SQL of keel-notifier: every statement on keel_notifier's tables lives here. */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/id.h"
#include "keel/log.h"

/* The public view of an endpoint, built by PostgreSQL so the list and the single read agree. */
#define ENDPOINT_VIEW                                                                              \
    "json_build_object('id', id, 'object', 'webhook_endpoint', 'url', url, "                       \
    "'description', description, 'enabled_events', enabled_events, 'status', status, "             \
    "'disabled_reason', disabled_reason, 'created', extract(epoch FROM created_at)::bigint, "      \
    "'previous_secret_expires', CASE WHEN previous_secret_expires_at > now() "                     \
    "THEN extract(epoch FROM previous_secret_expires_at)::bigint END)"

/* Runs a prepared statement and sorts its result; *res is the caller's on KEEL_OK. */
static keel_result store_run(keel_db *db, const char *name, const char *sql, int n,
                             const char *const *params, const char *what, PGresult **res)
{
    *res = keel_db_exec_prepared(db, name, sql, n, params);
    keel_result rc = keel_db_check(db, *res, what);
    if (rc != KEEL_OK) {
        PQclear(*res);
        *res = NULL;
    }
    return rc;
}

/* Runs a statement for its effect; *rows (may be NULL) gets the affected row count. */
static keel_result store_exec(keel_db *db, const char *name, const char *sql, int n,
                              const char *const *params, const char *what, int *rows)
{
    PGresult *res = NULL;
    keel_result rc = store_run(db, name, sql, n, params, what, &res);
    if (rc == KEEL_OK && rows != NULL) {
        *rows = (int)strtol(PQcmdTuples(res), NULL, 10);
    }
    PQclear(res);
    return rc;
}

/* Parses the first column of the only row as JSON. */
static keel_result store_json_value(PGresult *res, json_t **out)
{
    *out = NULL;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return KEEL_ERR_NOT_FOUND;
    }
    json_error_t jerr;
    *out = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    if (*out == NULL) {
        keel_log_error("the database gave an endpoint view that is not JSON: %s", jerr.text);
        return KEEL_ERR;
    }
    return KEEL_OK;
}

static void store_ms_text(int64_t ms, char out[24])
{
    snprintf(out, 24, "%" PRId64, ms);
}

/* ---- endpoints ---------------------------------------------------------------------- */

keel_result notifier_store_endpoint_insert(keel_db *db, const notifier_endpoint_new *ep,
                                           int max_endpoints)
{
    static const char lock_sql[] =
        "SELECT pg_advisory_xact_lock(hashtext('keel_notifier.endpoints:' || $1))";
    static const char count_sql[] =
        "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL";
    static const char insert_sql[] =
        "INSERT INTO webhook_endpoints (id, merchant_id, url, description, enabled_events, "
        "  secret) "
        "VALUES ($1, $2, $3, $4, ARRAY(SELECT json_array_elements_text($5::json)), $6)";
    PGresult *res = NULL;
    char *events = NULL;
    json_t *arr = json_array();
    keel_result rc = KEEL_ERR;

    for (size_t i = 0; arr != NULL && i < ep->event_count; i++) {
        if (json_array_append_new(arr, json_string(ep->events[i])) != 0) {
            goto done;
        }
    }
    events = arr != NULL ? json_dumps(arr, JSON_COMPACT) : NULL;
    if (events == NULL) {
        keel_log_error("out of memory storing endpoint %s", ep->id);
        goto done;
    }
    const char *lock_params[] = {ep->merchant_id};
    rc = store_run(db, "notifier_endpoint_lock", lock_sql, 1, lock_params,
                   "locking the merchant's endpoints", &res);
    PQclear(res);
    res = NULL;
    if (rc != KEEL_OK) {
        goto done;
    }
    rc = store_run(db, "notifier_endpoint_count", count_sql, 1, lock_params,
                   "counting the merchant's endpoints", &res);
    if (rc != KEEL_OK) {
        goto done;
    }
    if (strtol(PQgetvalue(res, 0, 0), NULL, 10) >= max_endpoints) {
        rc = KEEL_ERR_FULL;
        goto done;
    }
    const char *params[] = {ep->id, ep->merchant_id, ep->url, ep->description, events, ep->secret};
    rc = store_exec(db, "notifier_endpoint_insert", insert_sql, 6, params,
                    "storing a webhook endpoint", NULL);
done:
    PQclear(res);
    res = NULL;
    free(events);
    events = NULL;
    json_decref(arr);
    arr = NULL;
    return rc;
}

keel_result notifier_store_endpoint_get(keel_db *db, const char *merchant_id, const char *id,
                                        json_t **out)
{
    static const char sql[] = "SELECT " ENDPOINT_VIEW "::text FROM webhook_endpoints "
                              "WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL";
    const char *params[] = {id, merchant_id};
    PGresult *res = NULL;
    *out = NULL;
    keel_result rc =
        store_run(db, "notifier_endpoint_get", sql, 2, params, "reading a webhook endpoint", &res);
    if (rc == KEEL_OK) {
        rc = store_json_value(res, out);
    }
    PQclear(res);
    return rc;
}

keel_result notifier_store_endpoint_list(keel_db *db, const char *merchant_id, json_t **out)
{
    static const char sql[] = "SELECT coalesce(json_agg(" ENDPOINT_VIEW " ORDER BY created_at, id),"
                              " '[]'::json)::text FROM webhook_endpoints "
                              "WHERE merchant_id = $1 AND deleted_at IS NULL";
    const char *params[] = {merchant_id};
    PGresult *res = NULL;
    *out = NULL;
    keel_result rc =
        store_run(db, "notifier_endpoint_list", sql, 1, params, "listing webhook endpoints", &res);
    if (rc == KEEL_OK) {
        rc = store_json_value(res, out);
    }
    PQclear(res);
    return rc;
}

keel_result notifier_store_endpoint_delete(keel_db *db, const char *merchant_id, const char *id)
{
    /* The secrets go with it: nothing can be signed for a deleted endpoint any more. */
    static const char sql[] =
        "UPDATE webhook_endpoints SET deleted_at = now(), status = 'disabled', "
        "  disabled_reason = 'deleted', disabled_at = coalesce(disabled_at, now()), "
        "  secret = '', previous_secret = NULL, previous_secret_expires_at = NULL, "
        "  updated_at = now() "
        "WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL";
    static const char dead_sql[] =
        "UPDATE webhook_deliveries SET status = 'dead', last_error = 'the endpoint was deleted', "
        "  lease_owner = NULL, lease_until = NULL, updated_at = now() "
        "WHERE endpoint_id = $1 AND status = 'pending'";
    const char *params[] = {id, merchant_id};
    int rows = 0;
    keel_result rc = store_exec(db, "notifier_endpoint_delete", sql, 2, params,
                                "deleting a webhook endpoint", &rows);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (rows != 1) {
        return KEEL_ERR_NOT_FOUND;
    }
    return store_exec(db, "notifier_endpoint_delete_deliveries", dead_sql, 1, params,
                      "ending a deleted endpoint's deliveries", NULL);
}

keel_result notifier_store_endpoint_rotate(keel_db *db, const char *merchant_id, const char *id,
                                           const char *new_secret, int64_t overlap_s)
{
    static const char sql[] =
        "UPDATE webhook_endpoints SET previous_secret = secret, "
        "  previous_secret_expires_at = now() + $4::bigint * interval '1 second', "
        "  secret = $3, updated_at = now() "
        "WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL";
    char overlap[24];
    snprintf(overlap, sizeof(overlap), "%" PRId64, overlap_s);
    const char *params[] = {id, merchant_id, new_secret, overlap};
    int rows = 0;
    keel_result rc = store_exec(db, "notifier_endpoint_rotate", sql, 4, params,
                                "rotating a webhook secret", &rows);
    if (rc == KEEL_OK && rows != 1) {
        rc = KEEL_ERR_NOT_FOUND;
    }
    return rc;
}

/* ---- events and deliveries -------------------------------------------------------------- */

keel_result notifier_store_event_insert(keel_db *db, const notifier_event_row *ev, int *deliveries)
{
    static const char match_sql[] =
        "SELECT id FROM webhook_endpoints "
        "WHERE merchant_id = $1 AND status = 'enabled' AND deleted_at IS NULL "
        "  AND ($2 = ANY (enabled_events) OR '*' = ANY (enabled_events)) "
        "  AND created_at <= to_timestamp($3::double precision / 1000) "
        "ORDER BY id";
    static const char event_sql[] =
        "INSERT INTO webhook_events (id, merchant_id, type, source_event_id, body, traceparent) "
        "VALUES ($1, $2, $3, $4, $5, nullif($6, '')) ON CONFLICT (source_event_id) DO NOTHING";
    static const char delivery_sql[] =
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id) VALUES ($1, $2, $3)";
    PGresult *endpoints = NULL;
    char occurred[24];
    int rows = 0;
    *deliveries = 0;

    store_ms_text(ev->occurred_ms, occurred);
    const char *match_params[] = {ev->merchant_id, ev->type, occurred};
    keel_result rc = store_run(db, "notifier_event_match", match_sql, 3, match_params,
                               "finding the endpoints of an event", &endpoints);
    if (rc != KEEL_OK || PQntuples(endpoints) == 0) {
        goto done;
    }
    const char *event_params[] = {ev->event_id, ev->merchant_id,
                                  ev->type,     ev->source_event_id,
                                  ev->body,     ev->traceparent != NULL ? ev->traceparent : ""};
    rc = store_exec(db, "notifier_event_insert", event_sql, 6, event_params, "storing an event",
                    &rows);
    if (rc != KEEL_OK || rows != 1) {
        goto done; /* already stored under this source event: its deliveries exist */
    }
    for (int i = 0; i < PQntuples(endpoints); i++) {
        char id[48];
        keel_id_new("whd_", id, sizeof(id));
        const char *params[] = {id, ev->event_id, PQgetvalue(endpoints, i, 0)};
        rc = store_exec(db, "notifier_delivery_insert", delivery_sql, 3, params,
                        "creating a delivery", NULL);
        if (rc != KEEL_OK) {
            goto done;
        }
        (*deliveries)++;
    }
done:
    PQclear(endpoints);
    endpoints = NULL;
    if (rc != KEEL_OK) {
        *deliveries = 0;
    }
    return rc;
}

void notifier_claim_clear(notifier_claim *c)
{
    if (c == NULL) {
        return;
    }
    free(c->body);
    c->body = NULL;
    free(c->url);
    c->url = NULL;
    /* Secrets do not linger in freed or reused memory longer than needed. */
    memset(c->secret, 0, sizeof(c->secret));
    memset(c->previous_secret, 0, sizeof(c->previous_secret));
}

/* Copies a column into a fixed buffer; false when it does not fit. */
static bool store_copy(const PGresult *res, int col, char *out, size_t out_len)
{
    size_t n = (size_t)PQgetlength(res, 0, col);
    if (n >= out_len) {
        return false;
    }
    memcpy(out, PQgetvalue(res, 0, col), n);
    out[n] = '\0';
    return true;
}

keel_result notifier_store_claim(keel_db *db, const char *owner, int64_t lease_ms,
                                 notifier_claim *out)
{
    /* The subquery locks the one row it picks and skips rows other claims lock right now;
     * the join reads what that delivery needs in the same round trip. */
    static const char sql[] =
        "WITH c AS ("
        "  UPDATE webhook_deliveries "
        "  SET lease_owner = $1, lease_until = now() + $2::bigint * interval '1 millisecond' "
        "  WHERE id = (SELECT id FROM webhook_deliveries "
        "    WHERE status = 'pending' AND next_attempt_at <= now() "
        "      AND (lease_until IS NULL OR lease_until < now()) "
        "    ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "  RETURNING id, event_id, endpoint_id, attempts) "
        "SELECT c.id, c.event_id, c.endpoint_id, c.attempts, e.type, e.body, ep.url, "
        "  ep.merchant_id, ep.secret, "
        "  CASE WHEN ep.previous_secret_expires_at > now() THEN ep.previous_secret "
        "       ELSE '' END, "
        "  CASE WHEN ep.deleted_at IS NOT NULL THEN 'deleted' ELSE ep.status END, "
        "  coalesce(e.traceparent, '') "
        "FROM c JOIN webhook_events e ON e.id = c.event_id "
        "  JOIN webhook_endpoints ep ON ep.id = c.endpoint_id";
    char lease[24];
    PGresult *res = NULL;
    memset(out, 0, sizeof(*out));
    store_ms_text(lease_ms, lease);
    const char *params[] = {owner, lease};
    keel_result rc =
        store_run(db, "notifier_claim", sql, 2, params, "claiming a due delivery", &res);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (PQntuples(res) == 0) {
        rc = KEEL_ERR_NOT_FOUND;
        goto done;
    }
    out->attempts = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10);
    out->body_len = (size_t)PQgetlength(res, 0, 5);
    out->body = strdup(PQgetvalue(res, 0, 5));
    out->url = strdup(PQgetvalue(res, 0, 6));
    if (!store_copy(res, 0, out->id, sizeof(out->id)) ||
        !store_copy(res, 1, out->event_id, sizeof(out->event_id)) ||
        !store_copy(res, 2, out->endpoint_id, sizeof(out->endpoint_id)) ||
        !store_copy(res, 4, out->event_type, sizeof(out->event_type)) ||
        !store_copy(res, 7, out->merchant_id, sizeof(out->merchant_id)) ||
        !store_copy(res, 8, out->secret, sizeof(out->secret)) ||
        !store_copy(res, 9, out->previous_secret, sizeof(out->previous_secret)) ||
        !store_copy(res, 10, out->endpoint_state, sizeof(out->endpoint_state)) ||
        !store_copy(res, 11, out->traceparent, sizeof(out->traceparent)) || out->body == NULL ||
        out->url == NULL) {
        /* Out of memory or a row this build cannot hold: leave it to its lease. */
        keel_log_error("claimed delivery %.40s could not be read (a value is too long or "
                       "memory ran out); it is retried when its lease ends",
                       PQgetvalue(res, 0, 0));
        notifier_claim_clear(out);
        rc = KEEL_ERR;
    }
done:
    PQclear(res);
    res = NULL;
    return rc;
}

keel_result notifier_store_release_leases(keel_db *db, const char *owner_prefix, int *released)
{
    static const char sql[] =
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL "
        "WHERE status = 'pending' AND lease_owner IS NOT NULL "
        "  AND left(lease_owner, length($1)) = $1";
    const char *params[] = {owner_prefix};
    *released = 0;
    return store_exec(db, "notifier_release_leases", sql, 1, params,
                      "releasing this instance's old leases", released);
}

/* ---- recording an attempt ----------------------------------------------------------- */

typedef struct record_tx {
    const notifier_attempt *a;
    notifier_attempt_effect *effect;
} record_tx;

static keel_result record_delivery(keel_db *db, const notifier_attempt *a)
{
    static const char sql[] =
        "UPDATE webhook_deliveries SET status = $3, attempts = $4::integer, "
        "  attempts_total = attempts_total + CASE WHEN $9::boolean THEN 1 ELSE 0 END, "
        "  next_attempt_at = now() + $5::bigint * interval '1 millisecond', "
        "  last_attempt_at = CASE WHEN $9::boolean "
        "    THEN to_timestamp($6::double precision / 1000) ELSE last_attempt_at END, "
        "  last_status = CASE WHEN $9::boolean THEN $7::integer ELSE last_status END, "
        "  last_error = $8, "
        "  lease_owner = NULL, lease_until = NULL, updated_at = now(), "
        "  completed_at = CASE WHEN $3 = 'succeeded' THEN now() END "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
    char attempt[16];
    char delay[24];
    char started[24];
    char http_status[16];
    snprintf(attempt, sizeof(attempt), "%d", a->attempt);
    store_ms_text(a->next_delay_ms > 0 ? a->next_delay_ms : 0, delay);
    store_ms_text(a->started_ms, started);
    snprintf(http_status, sizeof(http_status), "%ld", a->http_status);
    const char *params[] = {a->delivery_id,
                            a->owner,
                            a->status,
                            attempt,
                            delay,
                            started,
                            a->http_status > 0 ? http_status : NULL,
                            a->error,
                            a->log_attempt ? "true" : "false"};
    int rows = 0;
    keel_result rc = store_exec(db, "notifier_record_delivery", sql, 9, params,
                                "recording a delivery attempt", &rows);
    if (rc == KEEL_OK && rows != 1) {
        rc = KEEL_ERR_CONFLICT;
    }
    return rc;
}

static keel_result record_log_row(keel_db *db, const notifier_attempt *a)
{
    static const char sql[] =
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, address, "
        "  http_status, error, outcome) "
        "VALUES ($1, $2::integer, to_timestamp($3::double precision / 1000), $4::integer, $5, "
        "  $6::integer, $7, $8)";
    char attempt[16];
    char started[24];
    char duration[24];
    char http_status[16];
    snprintf(attempt, sizeof(attempt), "%d", a->attempt);
    store_ms_text(a->started_ms, started);
    store_ms_text(a->duration_ms, duration);
    snprintf(http_status, sizeof(http_status), "%ld", a->http_status);
    const char *params[] = {a->delivery_id, attempt,    started,
                            duration,       a->address, a->http_status > 0 ? http_status : NULL,
                            a->error,       a->outcome};
    return store_exec(db, "notifier_record_attempt", sql, 8, params, "logging a delivery attempt",
                      NULL);
}

/* Makes the endpoint's other pending deliveries dead once it is disabled. Leased ones are
 * left to their holders, whose next claim sees the endpoint disabled. */
static keel_result record_abandon_others(keel_db *db, const notifier_attempt *a, const char *why,
                                         int *count)
{
    static const char sql[] =
        "UPDATE webhook_deliveries SET status = 'dead', last_error = $3, updated_at = now() "
        "WHERE endpoint_id = $1 AND status = 'pending' AND id <> $2 "
        "  AND (lease_until IS NULL OR lease_until < now())";
    const char *params[] = {a->endpoint_id, a->delivery_id, why};
    return store_exec(db, "notifier_record_abandon", sql, 3, params,
                      "ending a disabled endpoint's deliveries", count);
}

static keel_result record_endpoint(keel_db *db, const notifier_attempt *a,
                                   notifier_attempt_effect *effect)
{
    static const char ok_sql[] =
        "UPDATE webhook_endpoints SET failing_since = NULL, updated_at = now() "
        "WHERE id = $1 AND failing_since IS NOT NULL";
    static const char gone_sql[] =
        "UPDATE webhook_endpoints SET status = 'disabled', "
        "  disabled_reason = 'the endpoint answered 410 Gone', disabled_at = now(), "
        "  updated_at = now() "
        "WHERE id = $1 AND status = 'enabled' AND deleted_at IS NULL";
    /* One more failure: start or extend the run, and disable the endpoint when the run has
     * lasted disable_after_ms. */
    static const char failed_sql[] =
        "WITH cur AS (SELECT id, status, "
        "    coalesce(failing_since, to_timestamp($2::double precision / 1000)) AS since "
        "  FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL FOR UPDATE) "
        "UPDATE webhook_endpoints ep SET failing_since = cur.since, updated_at = now(), "
        "  status = CASE WHEN cur.status = 'enabled' "
        "    AND cur.since <= now() - $3::bigint * interval '1 millisecond' "
        "    THEN 'disabled' ELSE ep.status END, "
        "  disabled_at = CASE WHEN cur.status = 'enabled' "
        "    AND cur.since <= now() - $3::bigint * interval '1 millisecond' "
        "    THEN now() ELSE ep.disabled_at END, "
        "  disabled_reason = CASE WHEN cur.status = 'enabled' "
        "    AND cur.since <= now() - $3::bigint * interval '1 millisecond' "
        "    THEN 'every delivery attempt failed since ' || "
        "      to_char(cur.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "    ELSE ep.disabled_reason END "
        "FROM cur WHERE ep.id = cur.id "
        "RETURNING (cur.status = 'enabled' AND ep.status = 'disabled')::text, "
        "  greatest(0, (extract(epoch FROM now() - cur.since) * 1000)::bigint)";
    const char *params[] = {a->endpoint_id};
    keel_result rc = KEEL_OK;
    int rows = 0;

    if (a->endpoint_ok) {
        return store_exec(db, "notifier_endpoint_ok", ok_sql, 1, params,
                          "ending an endpoint's failure run", NULL);
    }
    if (a->endpoint_gone) {
        rc = store_exec(db, "notifier_endpoint_gone", gone_sql, 1, params,
                        "disabling an endpoint that answered 410", &rows);
        if (rc == KEEL_OK && rows == 1) {
            effect->endpoint_disabled = true;
            rc = record_abandon_others(db, a, "the endpoint answered 410 Gone and was disabled",
                                       &effect->deliveries_abandoned);
        }
        return rc;
    }
    if (!a->endpoint_failed) {
        return KEEL_OK;
    }
    char started[24];
    char after[24];
    PGresult *res = NULL;
    store_ms_text(a->started_ms, started);
    store_ms_text(a->disable_after_ms, after);
    const char *fparams[] = {a->endpoint_id, started, after};
    rc = store_run(db, "notifier_endpoint_failed", failed_sql, 3, fparams,
                   "counting an endpoint's failure", &res);
    if (rc != KEEL_OK) {
        return rc;
    }
    if (PQntuples(res) == 1) {
        effect->endpoint_disabled = strcmp(PQgetvalue(res, 0, 0), "true") == 0;
        effect->failing_for_ms = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    res = NULL;
    if (effect->endpoint_disabled) {
        rc = record_abandon_others(db, a, "the endpoint was disabled after failing for too long",
                                   &effect->deliveries_abandoned);
    }
    return rc;
}

static keel_result record_body(keel_db *db, void *arg)
{
    record_tx *tx = arg;
    /* The body may run again after a transient failure: start from a clean slate. */
    memset(tx->effect, 0, sizeof(*tx->effect));
    keel_result rc = record_delivery(db, tx->a);
    if (rc == KEEL_OK && tx->a->log_attempt) {
        rc = record_log_row(db, tx->a);
    }
    if (rc == KEEL_OK) {
        rc = record_endpoint(db, tx->a, tx->effect);
    }
    return rc;
}

keel_result notifier_store_record(keel_db *db, const notifier_attempt *a,
                                  notifier_attempt_effect *effect)
{
    record_tx tx = {.a = a, .effect = effect};
    return keel_db_transaction(db, NULL, record_body, &tx, NULL);
}

/* ---- operations ------------------------------------------------------------------------- */

keel_result notifier_store_stats(keel_db *db, notifier_stats *out)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'), "
        "  (SELECT count(*) FROM webhook_deliveries WHERE status = 'dead'), "
        "  coalesce((SELECT extract(epoch FROM now() - min(created_at)) "
        "    FROM webhook_deliveries WHERE status = 'pending'), 0)";
    PGresult *res = NULL;
    memset(out, 0, sizeof(*out));
    keel_result rc =
        store_run(db, "notifier_stats", sql, 0, NULL, "reading delivery statistics", &res);
    if (rc != KEEL_OK) {
        return rc;
    }
    out->pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->dead = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->oldest_pending_s = strtod(PQgetvalue(res, 0, 2), NULL);
    PQclear(res);
    return KEEL_OK;
}

keel_result notifier_store_prune(keel_db *db, const char *consumer, int64_t succeeded_ms,
                                 int64_t dead_ms, int64_t inbox_ms, int64_t *deleted)
{
    /* In batches, so one run never holds many row locks or a long transaction. */
    static const char deliveries_sql[] =
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
        "  WHERE (status = 'succeeded' "
        "         AND completed_at < now() - $1::bigint * interval '1 millisecond') "
        "     OR (status = 'dead' AND updated_at < now() - $2::bigint * interval '1 millisecond')"
        "  LIMIT 5000)";
    static const char events_sql[] =
        "DELETE FROM webhook_events e WHERE e.id IN (SELECT id FROM webhook_events "
        "  WHERE created_at < now() - least($1::bigint, $2::bigint) * interval '1 millisecond' "
        "    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = "
        "webhook_events.id)"
        "  LIMIT 5000)";
    static const char inbox_sql[] =
        "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE consumer = $1 "
        "  AND processed_at < now() - $2::bigint * interval '1 millisecond' LIMIT 5000)";
    char succeeded[24];
    char dead[24];
    char inbox[24];
    keel_result rc = KEEL_OK;
    *deleted = 0;
    store_ms_text(succeeded_ms, succeeded);
    store_ms_text(dead_ms, dead);
    store_ms_text(inbox_ms, inbox);
    const char *dparams[] = {succeeded, dead};
    const char *iparams[] = {consumer, inbox};
    /* At most 20 batches of each per run; the next run goes on where this one stopped. */
    for (int batch = 0; batch < 20; batch++) {
        int rows = 0;
        rc = store_exec(db, "notifier_prune_deliveries", deliveries_sql, 2, dparams,
                        "pruning old deliveries", &rows);
        if (rc != KEEL_OK) {
            return rc;
        }
        *deleted += rows;
        if (rows < 5000) {
            break;
        }
    }
    for (int batch = 0; batch < 20; batch++) {
        int rows = 0;
        rc = store_exec(db, "notifier_prune_events", events_sql, 2, dparams,
                        "pruning events without deliveries", &rows);
        if (rc != KEEL_OK || rows < 5000) {
            break;
        }
    }
    for (int batch = 0; rc == KEEL_OK && batch < 20; batch++) {
        int rows = 0;
        rc = store_exec(db, "notifier_prune_inbox", inbox_sql, 2, iparams, "pruning old inbox rows",
                        &rows);
        if (rows < 5000) {
            break;
        }
    }
    return rc;
}
