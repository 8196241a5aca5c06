/* The ledger's internal HTTP API: parameters checked here, answers read by reads.c. */
#include "api.h"

#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "postings.h"
#include "reads.h"

static void api_unavailable(keel_http_response *resp, const char *message)
{
    keel_http_respond_error(resp, 503, "api_error", "service_unavailable", message, NULL);
    keel_http_response_header(resp, "Retry-After", "1");
}

static void api_bad_param(keel_http_response *resp, const ledger_param_error *err)
{
    keel_http_respond_error(resp, 400, "invalid_request_error", err->code, err->message,
                            err->param);
}

/* The merchant of the path and a pooled connection, or NULL after answering 400/503. */
static keel_db *api_begin(ledger_api *api, const keel_http_request *req, keel_http_response *resp,
                          const char **merchant_id)
{
    keel_db *db;

    *merchant_id = keel_http_request_param(req, "merchant_id");
    if (!ledger_id_valid(*merchant_id)) {
        keel_http_respond_error(resp, 400, "invalid_request_error", "parameter_invalid",
                                "merchant_id must be 1..64 characters of [A-Za-z0-9_.-]",
                                "merchant_id");
        return NULL;
    }
    db = keel_db_pool_acquire(api->pool, api->acquire_timeout_ms);
    if (db == NULL) {
        api_unavailable(resp, "no database connection became free in time; retry shortly");
    }
    return db;
}

/* A pooled connection can be dead without knowing it (PostgreSQL restarted while it sat
 * idle): the first query finds out. One retry on a reconnected connection hides that from
 * the caller; a database that is really down still answers 503 within the timeout. */
static bool api_retry(ledger_api *api, keel_db *db, keel_result r, int *attempts)
{
    if (r != KEEL_ERR_TRANSIENT || (*attempts)++ > 0) {
        return false;
    }
    return keel_db_connect(db, api->acquire_timeout_ms) == KEEL_OK;
}

static void api_finish(ledger_api *api, keel_db *db, const keel_http_request *req,
                       keel_http_response *resp, keel_result r, json_t *body)
{
    keel_db_pool_release(api->pool, db);
    if (r == KEEL_OK && body != NULL) {
        keel_http_respond_json(resp, 200, body);
        return;
    }
    json_decref(body);
    keel_log_warn("%s %s failed (%s); answering 503", keel_http_request_method(req),
                  keel_http_request_path(req), keel_result_name(r));
    api_unavailable(resp, "the ledger database is unavailable; retry shortly");
}

static void handle_balance(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    ledger_api *api = ctx;
    const char *merchant_id;
    json_t *body = NULL;
    keel_db *db = api_begin(api, req, resp, &merchant_id);

    if (db == NULL) {
        return;
    }
    keel_result r;
    int attempts = 0;
    do {
        json_decref(body);
        body = NULL;
        r = ledger_read_balance(db, merchant_id, &body);
    } while (api_retry(api, db, r, &attempts));
    api_finish(api, db, req, resp, r, body);
}

static void handle_entries(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    ledger_api *api = ctx;
    ledger_page_request page;
    ledger_param_error err = {0};
    const char *merchant_id;
    json_t *body = NULL;
    keel_db *db;
    keel_result r;

    /* Parameters first: a bad one is answered without touching the database. */
    if (!ledger_page_parse(keel_http_request_query(req, "limit"),
                           keel_http_request_query(req, "starting_after"),
                           keel_http_request_query(req, "ending_before"),
                           keel_http_request_query(req, "currency"), &page, &err)) {
        api_bad_param(resp, &err);
        return;
    }
    db = api_begin(api, req, resp, &merchant_id);
    if (db == NULL) {
        return;
    }
    int attempts = 0;
    do {
        json_decref(body);
        body = NULL;
        r = ledger_read_entries(db, merchant_id, &page, &body, &err);
    } while (api_retry(api, db, r, &attempts));
    if (r == KEEL_ERR_NOT_FOUND) {
        keel_db_pool_release(api->pool, db);
        api_bad_param(resp, &err);
        return;
    }
    api_finish(api, db, req, resp, r, body);
}

static void handle_statement(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    ledger_api *api = ctx;
    ledger_page_request page;
    ledger_param_error err = {0};
    const char *date = keel_http_request_param(req, "date");
    const char *merchant_id;
    json_t *body = NULL;
    keel_db *db;
    int y, m, d;

    if (!keel_clock_parse_date(date, &y, &m, &d)) {
        keel_http_respond_error(resp, 400, "invalid_request_error", "parameter_invalid",
                                "the date must be a calendar date YYYY-MM-DD from 1970 to 9999, "
                                "e.g. 2025-03-09",
                                "date");
        return;
    }
    /* Only the currency of the paging parameters applies to a statement. */
    if (!ledger_page_parse(NULL, NULL, NULL, keel_http_request_query(req, "currency"), &page,
                           &err)) {
        api_bad_param(resp, &err);
        return;
    }
    db = api_begin(api, req, resp, &merchant_id);
    if (db == NULL) {
        return;
    }
    keel_result r;
    int attempts = 0;
    do {
        json_decref(body);
        body = NULL;
        r = ledger_read_statement(db, merchant_id, date, page.currency, &body);
    } while (api_retry(api, db, r, &attempts));
    api_finish(api, db, req, resp, r, body);
}

void ledger_api_register(ledger_api *api, keel_http_server *srv)
{
    keel_http_server_route(srv, "GET", "/v1/merchants/:merchant_id/balance", handle_balance, api);
    keel_http_server_route(srv, "GET", "/v1/merchants/:merchant_id/balance_transactions",
                           handle_entries, api);
    keel_http_server_route(srv, "GET", "/v1/merchants/:merchant_id/statements/:date",
                           handle_statement, api);
}
