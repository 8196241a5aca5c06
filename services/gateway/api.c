/* The preamble every public-API handler runs (auth, rate limit, a connection or 503) and
 * keel's error answers. */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "errors.h"
#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "request_body.h"

#define API_DEFAULT_RATE_PER_S 100.0
#define API_DEFAULT_BURST 200.0
#define API_DEFAULT_MAX_DB_WAITERS 32
#define API_RATELIMIT_MAX_KEYS 100000
/* The policy name in RateLimit-Policy / RateLimit: the limit is per API key. */
#define API_POLICY "\"api-key\""

const keel_db_tx_options gateway_api_post_tx_options = {
    .isolation = KEEL_DB_READ_COMMITTED,
    .max_attempts = 3,
    .base_backoff_ms = 20,
    .cap_backoff_ms = 250,
};

void gateway_api_init(gateway_api *api, keel_db_pool *pool, int64_t acquire_timeout_ms)
{
    keel_metrics *m = keel_metrics_default();

    memset(api, 0, sizeof(*api));
    api->pool = pool;
    api->settings = (gateway_api_settings){
        .acquire_timeout_ms = acquire_timeout_ms,
        .max_db_waiters = API_DEFAULT_MAX_DB_WAITERS,
        .rate_per_s = API_DEFAULT_RATE_PER_S,
        .burst = API_DEFAULT_BURST,
        .idempotency_lease_ms = 30000,
    };
    atomic_init(&api->db_waiters, 0);
    api->ratelimit = keel_ratelimit_new(API_RATELIMIT_MAX_KEYS);
    if (api->ratelimit == NULL) {
        keel_log_error("out of memory creating the gateway's rate limiter");
        abort();
    }
    api->payments_created = keel_metrics_counter(m, "keel_gateway_payments_created_total",
                                                 "Payments created by POST /v1/payments", NULL);
    api->refunds_created =
        keel_metrics_counter(m, "keel_gateway_refunds_created_total",
                             "Refunds created by POST /v1/payments/{id}/refunds", NULL);
    api->idempotent_replays =
        keel_metrics_counter(m, "keel_gateway_idempotent_replays_total",
                             "POST requests answered by replaying an Idempotency-Key", NULL);
    api->rate_limited =
        keel_metrics_counter(m, "keel_gateway_rate_limited_total",
                             "Requests refused with 429 by a key's rate limit", NULL);
    api->shed = keel_metrics_counter(m, "keel_gateway_shed_total",
                                     "Requests refused with 503 because no database connection "
                                     "was free in time",
                                     NULL);
}

void gateway_api_free(gateway_api *api)
{
    keel_ratelimit_free(api->ratelimit);
    api->ratelimit = NULL;
}

void gateway_api_respond_text(keel_http_response *resp, unsigned status, const char *body)
{
    keel_http_respond_raw(resp, status, "application/json", body, strlen(body));
}

void gateway_api_error(keel_http_response *resp, unsigned status, const char *code,
                       const char *message, const char *param)
{
    char *body = gateway_error_render(status, code, message, param);
    if (body == NULL) {
        keel_log_error("out of memory rendering a %u %s answer", status, code);
        keel_http_respond_raw(resp, 500, "application/json", "", 0);
        return;
    }
    gateway_api_respond_text(resp, status, body);
    free(body);
}

void gateway_api_unavailable(keel_http_response *resp, const char *message)
{
    gateway_api_error(resp, 503, "service_unavailable", message, NULL);
    keel_http_response_header(resp, "Retry-After", "1");
}

void gateway_api_not_found(keel_http_response *resp, const char *what, const char *param)
{
    char message[128];
    snprintf(message, sizeof(message), "no such %s for this API key's merchant", what);
    gateway_api_error(resp, 404, "resource_missing", message, param);
}

/* The key's own limit, or the gateway's default. */
static keel_ratelimit_limit key_limit(const gateway_api *api, const gateway_principal *who)
{
    if (who->rate_per_s > 0 && who->burst >= 1) {
        return (keel_ratelimit_limit){.rate_per_s = who->rate_per_s, .burst = who->burst};
    }
    return (keel_ratelimit_limit){.rate_per_s = api->settings.rate_per_s,
                                  .burst = api->settings.burst};
}

static int64_t ceil_seconds(int64_t ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

/* RateLimit-Policy and RateLimit in the syntax of draft-ietf-httpapi-ratelimit-headers: the
 * bucket (burst tokens refilled at rate_per_s) is a quota q over the window w it takes to
 * refill, r the whole tokens left and t the seconds until the bucket is full again. */
static void ratelimit_headers(keel_http_response *resp, const keel_ratelimit_limit *lim,
                              const keel_ratelimit_decision *d)
{
    char value[96];
    long long window = (long long)ceil(lim->burst / lim->rate_per_s);

    snprintf(value, sizeof(value), API_POLICY ";q=%lld;w=%lld", (long long)lim->burst,
             window < 1 ? 1 : window);
    keel_http_response_header(resp, "RateLimit-Policy", value);
    snprintf(value, sizeof(value), API_POLICY ";r=%lld;t=%lld", (long long)d->remaining,
             (long long)ceil_seconds(d->reset_ms));
    keel_http_response_header(resp, "RateLimit", value);
}

static void respond_limited(gateway_api *api, keel_http_response *resp,
                            const keel_ratelimit_limit *lim, const keel_ratelimit_decision *d)
{
    char message[200];
    char retry[24];
    int64_t seconds = ceil_seconds(d->retry_after_ms);

    keel_metric_inc(api->rate_limited);
    snprintf(message, sizeof(message),
             "too many requests for this API key (%g per second, bursts of %g); retry after the "
             "Retry-After seconds",
             lim->rate_per_s, lim->burst);
    gateway_api_error(resp, 429, "rate_limited", message, NULL);
    snprintf(retry, sizeof(retry), "%lld", (long long)(seconds < 1 ? 1 : seconds));
    keel_http_response_header(resp, "Retry-After", retry);
    ratelimit_headers(resp, lim, d);
}

/* A pooled connection, or NULL after answering 503: when too many requests already wait
 * for one, or none becomes free within the acquire timeout. Shedding early keeps a slow
 * database from turning into a queue that grows without bound. */
static keel_db *acquire(gateway_api *api, keel_http_response *resp)
{
    keel_db *db = NULL;
    int waiting = atomic_fetch_add(&api->db_waiters, 1);

    if (waiting < api->settings.max_db_waiters) {
        db = keel_db_pool_acquire(api->pool, api->settings.acquire_timeout_ms);
    }
    atomic_fetch_sub(&api->db_waiters, 1);
    if (db == NULL) {
        keel_metric_inc(api->shed);
        gateway_api_unavailable(resp, "the service is busy: no database connection became free "
                                      "in time; retry after the Retry-After seconds");
        return NULL;
    }
    /* Holds the connection a while, so tests can saturate the pool on purpose. */
    KEEL_FAILPOINT("gateway.after_db_acquire");
    return db;
}

void gateway_api_release(gateway_api *api, keel_db *db)
{
    if (db != NULL) {
        keel_db_pool_release(api->pool, db);
    }
}

keel_db *gateway_api_begin(gateway_api *api, const keel_http_request *req, keel_http_response *resp,
                           gateway_principal *who)
{
    const char *secret;
    size_t secret_len;
    char hash[GATEWAY_SHA256_HEX_LEN];
    keel_ratelimit_limit known;
    keel_ratelimit_limit lim;
    keel_ratelimit_decision d;
    bool taken = false;
    keel_db *db;
    keel_result r;

    memset(who, 0, sizeof(*who));
    if (!gateway_auth_parse_bearer(keel_http_request_header(req, "Authorization"), &secret,
                                   &secret_len)) {
        gateway_auth_respond_unauthorized(resp);
        return NULL;
    }
    /* Buckets are keyed by the secret's hash, never the secret. A key seen before is limited
     * before any database work, so a flood from one key costs no connections. */
    gateway_sha256_hex(secret, secret_len, hash);
    if (keel_ratelimit_lookup(api->ratelimit, hash, &known)) {
        taken = true;
        if (!keel_ratelimit_take(api->ratelimit, hash, &known, keel_clock_monotonic_ms(), &d)) {
            respond_limited(api, resp, &known, &d);
            return NULL;
        }
    }
    db = acquire(api, resp);
    if (db == NULL) {
        return NULL;
    }
    r = gateway_auth_lookup_hash(db, hash, who);
    if (r != KEEL_OK) {
        gateway_api_release(api, db);
        if (r == KEEL_ERR_NOT_FOUND) {
            gateway_auth_respond_unauthorized(resp);
        } else {
            gateway_api_unavailable(resp, "the database is unavailable; retry shortly");
        }
        return NULL;
    }
    lim = key_limit(api, who);
    if (!taken) {
        if (!keel_ratelimit_take(api->ratelimit, hash, &lim, keel_clock_monotonic_ms(), &d)) {
            gateway_api_release(api, db);
            respond_limited(api, resp, &lim, &d);
            return NULL;
        }
    } else if (lim.rate_per_s != known.rate_per_s || lim.burst != known.burst) {
        /* The key's limit was changed with keelctl: it applies from the next request. */
        keel_ratelimit_configure(api->ratelimit, hash, &lim);
    }
    ratelimit_headers(resp, &lim, &d);
    return db;
}

bool gateway_api_authenticate(gateway_api *api, const keel_http_request *req,
                              keel_http_response *resp, gateway_principal *who)
{
    keel_db *db = gateway_api_begin(api, req, resp, who);
    gateway_api_release(api, db);
    return db != NULL;
}

const char *gateway_api_idempotency_key(const keel_http_request *req, keel_http_response *resp)
{
    const char *key = keel_http_request_header(req, GATEWAY_IDEMPOTENCY_HEADER);

    switch (gateway_idempotency_key_check(key)) {
    case GATEWAY_IDEM_KEY_OK:
        return key;
    case GATEWAY_IDEM_KEY_MISSING:
        gateway_api_error(resp, 400, "idempotency_key_missing",
                          "this POST needs an Idempotency-Key header: a unique value per "
                          "operation (e.g. a UUID) that you reuse when you retry it",
                          GATEWAY_IDEMPOTENCY_HEADER);
        return NULL;
    case GATEWAY_IDEM_KEY_INVALID:
        break;
    }
    gateway_api_error(resp, 400, "idempotency_key_invalid",
                      "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
                      GATEWAY_IDEMPOTENCY_HEADER);
    return NULL;
}

keel_db *gateway_api_begin_post(gateway_api *api, const keel_http_request *req,
                                keel_http_response *resp, gateway_principal *who, const char **key,
                                json_t **body)
{
    keel_db *db = gateway_api_begin(api, req, resp, who);

    *key = NULL;
    *body = NULL;
    if (db == NULL) {
        return NULL;
    }
    *key = gateway_api_idempotency_key(req, resp);
    if (*key != NULL) {
        *body = gateway_api_body(req, resp);
    }
    if (*body == NULL) {
        gateway_api_release(api, db);
        return NULL;
    }
    return db;
}

json_t *gateway_api_body(const keel_http_request *req, keel_http_response *resp)
{
    gateway_error err;
    size_t len;
    const char *body = keel_http_request_body(req, &len);
    json_t *doc =
        gateway_body_parse(keel_http_request_header(req, "Content-Type"), body, len, &err);

    if (doc == NULL) {
        gateway_api_error(resp, err.status, err.code, err.message, err.param);
    }
    return doc;
}

void gateway_api_respond_idempotent(gateway_api *api, keel_http_response *resp,
                                    const gateway_idem_result *result)
{
    char message[320];

    switch (result->outcome) {
    case GATEWAY_IDEM_EXECUTED:
        gateway_api_respond_text(resp, (unsigned)result->status, result->body);
        return;
    case GATEWAY_IDEM_REPLAYED:
        keel_metric_inc(api->idempotent_replays);
        gateway_api_respond_text(resp, (unsigned)result->status, result->body);
        keel_http_response_header(resp, "Idempotent-Replayed", "true");
        return;
    case GATEWAY_IDEM_MISMATCH:
        snprintf(message, sizeof(message),
                 "this Idempotency-Key was already used %s; use a new key for a new request",
                 result->mismatch);
        gateway_api_error(resp, 422, "idempotency_key_reused", message, GATEWAY_IDEMPOTENCY_HEADER);
        return;
    case GATEWAY_IDEM_IN_FLIGHT:
        break;
    }
    gateway_api_error(resp, 409, "idempotency_key_in_use",
                      "another request with this Idempotency-Key is in progress; retry after "
                      "the Retry-After seconds to get its answer",
                      GATEWAY_IDEMPOTENCY_HEADER);
    keel_http_response_header(resp, "Retry-After", "1");
}

void gateway_api_finish_post(gateway_api *api, keel_http_response *resp, keel_result r,
                             const gateway_idem_result *result, const char *what)
{
    if (r != KEEL_OK) {
        keel_log_warn("%s failed (%s); answering 503", what, keel_result_name(r));
        gateway_api_unavailable(resp, "the database is unavailable; nothing was done, retry with "
                                      "the same Idempotency-Key");
        return;
    }
    gateway_api_respond_idempotent(api, resp, result);
}

void gateway_api_trace_begin(const keel_http_request *req, gateway_api_trace *trace)
{
    memset(trace, 0, sizeof(*trace));
    trace->traceparent = keel_http_request_header(req, "traceparent");
    /* The server sets the log trace id only for a valid incoming traceparent. */
    if (keel_log_trace_id() == NULL || keel_log_trace_id()[0] == '\0') {
        char trace_id[33];
        keel_traceparent_new(trace->fresh);
        keel_traceparent_trace_id(trace->fresh, trace_id);
        keel_log_set_trace_id(trace_id);
        trace->traceparent = trace->fresh;
        trace->own = true;
    }
}

void gateway_api_trace_end(gateway_api_trace *trace)
{
    if (trace->own) {
        keel_log_set_trace_id(NULL);
        trace->own = false;
    }
}

typedef struct query_collect {
    const char **names;
    const char **values;
    size_t cap;
    size_t n;
} query_collect;

static bool query_collect_one(void *ctx, const char *name, const char *value)
{
    query_collect *c = ctx;
    if (c->n < c->cap) {
        c->names[c->n] = name;
        c->values[c->n] = value;
    }
    c->n++;
    return true;
}

void gateway_api_query_params(const keel_http_request *req, const char **names, const char **values,
                              size_t cap, size_t *n)
{
    query_collect c = {names, values, cap, 0};
    keel_http_request_query_each(req, query_collect_one, &c);
    *n = c.n;
}
