/* The gateway's balance endpoints: a proxy to keel-ledger with a timeout, a breaker and a
 * last-known balance per merchant for when the ledger cannot answer in time. */
#include "balance_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/breaker.h"
#include "keel/clock.h"
#include "keel/http_client.h"
#include "keel/log.h"
#include "keel/metrics.h"

#define BALANCE_MAX_TIMEOUT_MS 60000
#define BALANCE_MAX_CONNECT_MS 500
/* Reading or writing the copy waits at most this long for a pooled connection: the copy is
 * the fallback for a slow dependency and must not become one itself. */
#define BALANCE_COPY_ACQUIRE_MS 300
#define BALANCE_URL_MAX 2048

struct gateway_balance_api {
    gateway_api *api;
    const char *ledger_url; /* owned by the configuration */
    long timeout_ms;
    keel_breaker *breaker;
    keel_metric *calls_ok;
    keel_metric *calls_failed;
    keel_metric *calls_rejected;
    keel_metric *stale;
};

static const char SQL_COPY_SAVE[] =
    "INSERT INTO ledger_balance_copies (merchant_id, available, as_of) "
    "VALUES ($1, $2::jsonb, $3::timestamptz) ON CONFLICT (merchant_id) DO UPDATE SET "
    "available = EXCLUDED.available, as_of = EXCLUDED.as_of, copied_at = now() "
    "WHERE ledger_balance_copies.as_of <= EXCLUDED.as_of";
static const char SQL_COPY_READ[] =
    "SELECT available::text, to_char(as_of AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM ledger_balance_copies WHERE merchant_id = $1";

/* How one call to the ledger went. */
typedef enum ledger_outcome {
    LEDGER_ANSWERED,    /* an answer below 500: res holds it */
    LEDGER_UNAVAILABLE, /* breaker open, not reachable, too slow or 5xx: why says which */
} ledger_outcome;

/* Appends s to out percent-encoded (RFC 3986 unreserved characters stay). */
static bool balance_escape(char *out, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~';
        if (*len + 4 > cap) {
            return false;
        }
        if (plain) {
            out[(*len)++] = (char)c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 0x0f];
        }
    }
    out[*len] = '\0';
    return true;
}

/* The ledger URL of path for merchant, with the named query parameters of req passed on. */
static bool balance_url(const gateway_balance_api *b, const keel_http_request *req,
                        const char *merchant_id, const char *path, const char *const *names,
                        char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/v1/merchants/%s%s", b->ledger_url, merchant_id, path);
    size_t len;
    char sep = '?';

    if (n < 0 || (size_t)n >= cap) {
        return false;
    }
    len = (size_t)n;
    for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
        const char *v = keel_http_request_query(req, names[i]);
        if (v == NULL) {
            continue;
        }
        if (len + strlen(names[i]) + 3 > cap) {
            return false;
        }
        len += (size_t)snprintf(out + len, cap - len, "%c%s=", sep, names[i]);
        sep = '&';
        if (!balance_escape(out, cap, &len, v)) {
            return false;
        }
    }
    return true;
}

/* One GET to the ledger, through the breaker. */
static ledger_outcome balance_call(gateway_balance_api *b, const char *url, keel_http_result *res,
                                   char *why, size_t why_len)
{
    keel_http_call call = {
        .method = "GET",
        .url = url,
        .connect_timeout_ms =
            b->timeout_ms < BALANCE_MAX_CONNECT_MS ? b->timeout_ms : BALANCE_MAX_CONNECT_MS,
        .total_timeout_ms = b->timeout_ms,
    };
    int64_t started;
    bool healthy;

    memset(res, 0, sizeof(*res));
    if (!keel_breaker_allow(b->breaker)) {
        keel_metric_inc(b->calls_rejected);
        snprintf(why, why_len, "the ledger's circuit breaker is open");
        return LEDGER_UNAVAILABLE;
    }
    started = keel_clock_monotonic_ms();
    keel_http_client_do(&call, res);
    healthy = res->failure == KEEL_HTTP_OK && res->status < 500;
    keel_breaker_record(b->breaker, healthy, keel_clock_monotonic_ms() - started);
    if (healthy) {
        keel_metric_inc(b->calls_ok);
        return LEDGER_ANSWERED;
    }
    keel_metric_inc(b->calls_failed);
    if (res->failure != KEEL_HTTP_OK) {
        snprintf(why, why_len, "%s", res->error);
    } else {
        snprintf(why, why_len, "the ledger answered %ld", res->status);
    }
    keel_http_result_clear(res);
    return LEDGER_UNAVAILABLE;
}

/* The ledger's own 4xx (a bad parameter, named in its error object) goes to the client as is. */
static void balance_relay(keel_http_response *resp, const keel_http_result *res)
{
    gateway_api_respond_text(resp, (unsigned)res->status, res->body != NULL ? res->body : "{}");
}

static void balance_save_copy(gateway_balance_api *b, const char *merchant_id, json_t *available,
                              const char *as_of)
{
    char *text = json_dumps(available, JSON_COMPACT);
    const char *params[3] = {merchant_id, text, as_of};
    keel_db *db = text != NULL ? keel_db_pool_acquire(b->api->pool, BALANCE_COPY_ACQUIRE_MS) : NULL;
    PGresult *res;

    if (db == NULL) {
        keel_log_warn("the last-known balance of %s was not updated: no database connection "
                      "in time",
                      merchant_id);
        free(text);
        return;
    }
    res = keel_db_exec_prepared(db, "gateway_balance_copy_save", SQL_COPY_SAVE, 3, params);
    if (keel_db_check(db, res, "saving the last-known balance") != KEEL_OK) {
        keel_log_warn("the last-known balance of %s was not updated", merchant_id);
    }
    PQclear(res);
    keel_db_pool_release(b->api->pool, db);
    free(text);
}

/* Answers the last-known copy as stale, or 503 when there is none (or no database). */
static void balance_answer_copy(gateway_balance_api *b, keel_http_response *resp,
                                const char *merchant_id, const char *why)
{
    const char *params[1] = {merchant_id};
    keel_db *db = keel_db_pool_acquire(b->api->pool, BALANCE_COPY_ACQUIRE_MS);
    PGresult *res = NULL;
    json_t *available = NULL;
    char message[320];

    if (db != NULL) {
        res = keel_db_exec_prepared(db, "gateway_balance_copy_read", SQL_COPY_READ, 1, params);
        if (keel_db_check(db, res, "reading the last-known balance") == KEEL_OK &&
            PQntuples(res) == 1) {
            available = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        }
    }
    if (available != NULL) {
        keel_metric_inc(b->stale);
        keel_log_info("balance of %s answered from its copy of %s: %s", merchant_id,
                      PQgetvalue(res, 0, 1), why);
        keel_http_respond_json(resp, 200,
                               json_pack("{s:s, s:o, s:s, s:b}", "object", "balance", "available",
                                         available, "as_of", PQgetvalue(res, 0, 1), "stale", 1));
    } else {
        snprintf(message, sizeof(message),
                 "the ledger is unavailable (%.200s) and no earlier balance is known; retry "
                 "shortly",
                 why);
        gateway_api_unavailable(resp, message);
    }
    PQclear(res);
    if (db != NULL) {
        keel_db_pool_release(b->api->pool, db);
    }
}

static void handle_balance(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_balance_api *b = ctx;
    gateway_principal who;
    keel_http_result res;
    char url[BALANCE_URL_MAX];
    char why[300];
    json_t *body = NULL;
    json_t *available;
    const char *as_of;

    if (!gateway_api_authenticate(b->api, req, resp, &who)) {
        return;
    }
    if (!balance_url(b, req, who.merchant_id, "/balance", NULL, url, sizeof(url))) {
        gateway_api_unavailable(resp, "the ledger URL is too long");
        return;
    }
    if (balance_call(b, url, &res, why, sizeof(why)) == LEDGER_UNAVAILABLE) {
        balance_answer_copy(b, resp, who.merchant_id, why);
        return;
    }
    if (res.status != 200) {
        balance_relay(resp, &res);
        keel_http_result_clear(&res);
        return;
    }
    body = json_loads(res.body != NULL ? res.body : "", 0, NULL);
    available = json_object_get(body, "available");
    as_of = json_string_value(json_object_get(body, "as_of"));
    if (!json_is_array(available) || as_of == NULL) {
        keel_log_warn("the ledger's balance answer for %s has no available/as_of", who.merchant_id);
        balance_answer_copy(b, resp, who.merchant_id, "the ledger's answer was malformed");
    } else {
        balance_save_copy(b, who.merchant_id, available, as_of);
        keel_http_respond_json(resp, 200,
                               json_pack("{s:s, s:O, s:s, s:b}", "object", "balance", "available",
                                         available, "as_of", as_of, "stale", 0));
    }
    json_decref(body);
    keel_http_result_clear(&res);
}

/* Lists and statements have no copy: the ledger's answer, its 4xx, or 503. */
static void balance_proxy(gateway_balance_api *b, const keel_http_request *req,
                          keel_http_response *resp, const char *path, const char *const *names,
                          const char *list_url)
{
    gateway_principal who;
    keel_http_result res;
    char url[BALANCE_URL_MAX];
    char why[300];
    char message[400];
    json_t *body;

    if (!gateway_api_authenticate(b->api, req, resp, &who)) {
        return;
    }
    if (!balance_url(b, req, who.merchant_id, path, names, url, sizeof(url))) {
        gateway_api_error(resp, 400, "parameter_invalid", "the query parameters are too long",
                          NULL);
        return;
    }
    if (balance_call(b, url, &res, why, sizeof(why)) == LEDGER_UNAVAILABLE) {
        snprintf(message, sizeof(message), "the ledger is unavailable (%.200s); retry shortly",
                 why);
        gateway_api_unavailable(resp, message);
        return;
    }
    body = res.status == 200 ? json_loads(res.body != NULL ? res.body : "", 0, NULL) : NULL;
    if (body != NULL && list_url != NULL) {
        json_object_set_new(body, "url", json_string(list_url));
    }
    if (body != NULL) {
        keel_http_respond_json(resp, 200, body);
    } else {
        balance_relay(resp, &res);
    }
    keel_http_result_clear(&res);
}

static void handle_transactions(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    static const char *const names[] = {"limit", "starting_after", "ending_before", "currency",
                                        NULL};
    balance_proxy(ctx, req, resp, "/balance_transactions", names, "/v1/balance/transactions");
}

static void handle_statement(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    static const char *const names[] = {"currency", NULL};
    const char *date = keel_http_request_param(req, "date");
    char path[64];

    /* The ledger checks the date; this only keeps the path a single segment. */
    if (date == NULL || strlen(date) != 10 || strspn(date, "0123456789-") != 10) {
        gateway_api_error(resp, 400, "parameter_invalid",
                          "the statement date must be YYYY-MM-DD, e.g. 2025-03-09", "date");
        return;
    }
    snprintf(path, sizeof(path), "/statements/%s", date);
    balance_proxy(ctx, req, resp, path, names, NULL);
}

gateway_balance_api *gateway_balance_api_register(gateway_api *api, keel_http_server *srv,
                                                  const keel_config *cfg)
{
    keel_metrics *m = keel_metrics_default();
    static const char calls_help[] = "Calls from the gateway to keel-ledger, by result";
    const char *url = keel_config_string(cfg, "KEEL_GATEWAY_LEDGER_URL");
    int64_t timeout = keel_config_int(cfg, "KEEL_GATEWAY_LEDGER_TIMEOUT_MS");
    gateway_balance_api *b;

    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        keel_log_error("KEEL_GATEWAY_LEDGER_URL=%s must be an http:// or https:// URL", url);
        return NULL;
    }
    if (url[strlen(url) - 1] == '/' || strlen(url) > 512) {
        keel_log_error("KEEL_GATEWAY_LEDGER_URL=%s: give the base URL without a trailing slash, "
                       "at most 512 characters",
                       url);
        return NULL;
    }
    if (timeout < 1 || timeout > BALANCE_MAX_TIMEOUT_MS) {
        keel_log_error("KEEL_GATEWAY_LEDGER_TIMEOUT_MS=%lld must be 1..%d", (long long)timeout,
                       BALANCE_MAX_TIMEOUT_MS);
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->api = api;
    b->ledger_url = url;
    b->timeout_ms = (long)timeout;
    /* A call that uses its whole timeout counts as slow, so a hanging ledger opens the
     * breaker as surely as a dead one. */
    keel_breaker_options opts = {.name = "ledger", .slow_call_ms = timeout};
    b->breaker = keel_breaker_new(&opts);
    if (b->breaker == NULL) {
        free(b);
        return NULL;
    }
    b->calls_ok =
        keel_metrics_counter(m, "keel_gateway_ledger_calls_total", calls_help, "result=\"ok\"");
    b->calls_failed =
        keel_metrics_counter(m, "keel_gateway_ledger_calls_total", calls_help, "result=\"failed\"");
    b->calls_rejected = keel_metrics_counter(m, "keel_gateway_ledger_calls_total", calls_help,
                                             "result=\"breaker_open\"");
    b->stale = keel_metrics_counter(m, "keel_gateway_balance_stale_total",
                                    "GET /v1/balance answered from the last-known copy because "
                                    "the ledger could not answer in time",
                                    NULL);
    keel_http_server_route(srv, "GET", "/v1/balance", handle_balance, b);
    keel_http_server_route(srv, "GET", "/v1/balance/transactions", handle_transactions, b);
    keel_http_server_route(srv, "GET", "/v1/statements/:date", handle_statement, b);
    return b;
}

void gateway_balance_api_free(gateway_balance_api *b)
{
    if (b == NULL) {
        return;
    }
    keel_breaker_free(b->breaker);
    b->breaker = NULL;
    free(b);
}
