/* Tests of the ledger's read side against a real PostgreSQL (KEEL_TEST_DATABASE_URL; skipped
 * when unset): merchant copies ordered by version, statements of merchant-local days across
 * daylight-saving changes and odd offsets, cursor pagination under concurrent postings, and
 * the HTTP API's 400s that name the offending parameter. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "api.h"
#include "events.h"
#include "keel/clock.h"
#include "keel/http_client.h"
#include "keel/http_server.h"
#include "ledger_test.h"
#include "merchants.h"
#include "reads.h"

#define HOUR_MS INT64_C(3600000)

static keel_testdb *tdb; /* NULL without a database */
/* tdb's connection and URL, named short for the many statements below. */
static keel_db *db;
static const char *url;
/* What the consumers get in the service: a connection that is not connected yet. */
static keel_db *handler_db;
static ledger_fee_schedule fees;
static ledger_events events;

static int setup(void **state)
{
    (void)state;
    tdb = ledger_test_open("ledger_test_reads", &fees);
    db = tdb != NULL ? tdb->db : NULL;
    url = tdb != NULL ? tdb->url : NULL;
    if (db != NULL) {
        handler_db = keel_db_new(url, NULL, "ledger-test-handler");
        ledger_events_init(&events, handler_db, &fees);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    keel_db_free(handler_db);
    handler_db = NULL;
    keel_testdb_close(&tdb);
    db = NULL;
    url = NULL;
    return 0;
}

#define SKIP_WITHOUT_DB() keel_testdb_skip_without(tdb)

static keel_handle_result merchant_event(const char *event_id, const char *merchant, const char *tz,
                                         int64_t version)
{
    ledger_merchants lm = {.db = handler_db};
    ledger_test_record rec;
    char reason[512];

    ledger_test_merchant_event(&rec, event_id, merchant, tz, version);
    return ledger_merchant_events_handle(&rec.msg, &lm, reason, sizeof(reason));
}

/* Posts a 1000 usd payment (net 941) for merchant at the instant ms, through the handler. */
static void post_at(const char *merchant, int64_t ms, const char *tag)
{
    char when[KEEL_RFC3339_LEN];
    char event_id[96];
    char payment_id[96];
    char reason[512];
    ledger_test_record rec;

    keel_clock_format_rfc3339(ms, when);
    snprintf(event_id, sizeof(event_id), "evt-%s-%s-%lld", merchant, tag, (long long)ms);
    snprintf(payment_id, sizeof(payment_id), "pay_%s_%s_%lld", merchant, tag, (long long)ms);
    ledger_test_payment_succeeded(&rec, event_id, payment_id, merchant, 1000, "usd", when);
    if (ledger_payment_events_handle(&rec.msg, &events, reason, sizeof(reason)) != KEEL_HANDLE_OK) {
        fail_msg("posting %s failed: %s", payment_id, reason);
    }
}

static int64_t parse_ms(const char *rfc3339)
{
    /* keel renders UTC with milliseconds: "2024-03-10T05:00:00.000Z". */
    struct tm tm = {0};
    int ms = 0;
    assert_int_equal(sscanf(rfc3339, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

typedef struct statement_view {
    json_t *json;
    int64_t start_ms;
    int64_t end_ms;
    int64_t opening;
    int64_t closing;
    size_t entries;
    int64_t first_ms; /* effective time of the first and last entry; -1 when none */
    int64_t last_ms;
} statement_view;

/* Reads the usd statement of merchant's date and checks its arithmetic. */
static statement_view statement(const char *merchant, const char *date)
{
    statement_view v = {.first_ms = -1, .last_ms = -1};
    json_t *section;
    json_t *entries;
    int64_t sum = 0;

    assert_int_equal(ledger_read_statement(db, merchant, date, "usd", &v.json), KEEL_OK);
    v.start_ms = parse_ms(json_string_value(json_object_get(v.json, "period_start")));
    v.end_ms = parse_ms(json_string_value(json_object_get(v.json, "period_end")));
    assert_int_equal(json_integer_value(json_object_get(v.json, "period_seconds")),
                     (v.end_ms - v.start_ms) / 1000);
    section = json_array_get(json_object_get(v.json, "currencies"), 0);
    assert_non_null(section);
    v.opening = json_integer_value(json_object_get(section, "opening_balance"));
    v.closing = json_integer_value(json_object_get(section, "closing_balance"));
    entries = json_object_get(section, "entries");
    v.entries = json_array_size(entries);
    assert_int_equal(json_integer_value(json_object_get(section, "entry_count")), v.entries);
    for (size_t i = 0; i < v.entries; i++) {
        json_t *e = json_array_get(entries, i);
        int64_t at = parse_ms(json_string_value(json_object_get(e, "effective_at")));
        assert_true(at >= v.start_ms && at < v.end_ms);
        if (i == 0) {
            v.first_ms = at;
        }
        assert_true(at >= v.last_ms); /* in time order */
        v.last_ms = at;
        sum += json_integer_value(json_object_get(e, "net"));
    }
    /* closing = opening + the day's entries */
    assert_int_equal(v.closing, v.opening + sum);
    return v;
}

static void test_merchant_copy_versions(void **state)
{
    (void)state;
    SKIP_WITHOUT_DB();
    assert_int_equal(merchant_event("evt-m1", "mer_versions", "Europe/Berlin", 0), KEEL_HANDLE_OK);
    assert_int_equal(merchant_event("evt-m2", "mer_versions", "Asia/Tokyo", 3), KEEL_HANDLE_OK);
    /* Older than the copy: ignored, the newer zone stays. */
    assert_int_equal(merchant_event("evt-m3", "mer_versions", "America/Chicago", 2),
                     KEEL_HANDLE_OK);
    /* A replayed MerchantCreated is version 1: ignored too. */
    assert_int_equal(merchant_event("evt-m4", "mer_versions", "UTC", 0), KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM merchants WHERE id = "
                                         "'mer_versions' AND time_zone = 'Asia/Tokyo' AND "
                                         "version = 3"),
                     1);
    /* Duplicate delivery of the same event: OK, one inbox row. */
    assert_int_equal(merchant_event("evt-m2", "mer_versions", "Asia/Tokyo", 3), KEEL_HANDLE_OK);
    assert_int_equal(keel_testdb_int(db, "SELECT count(*) FROM inbox WHERE event_id = 'evt-m2'"),
                     1);
    /* Poison: a zone PostgreSQL does not know, a bad id. */
    assert_int_equal(merchant_event("evt-m5", "mer_versions", "Mars/Olympus_Mons", 4),
                     KEEL_HANDLE_POISON);
    assert_int_equal(merchant_event("evt-m6", "mer versions", "UTC", 4), KEEL_HANDLE_POISON);
    assert_int_equal(keel_testdb_int(db, "SELECT version FROM merchants WHERE id = "
                                         "'mer_versions'"),
                     3);
}

static void test_statement_new_york_dst(void **state)
{
    /* 2024-03-10: clocks go forward at 02:00 EST; 2024-11-03: back at 02:00 EDT. */
    const int64_t mar10_start = INT64_C(1710046800000); /* 2024-03-10T05:00:00Z */
    const int64_t nov03_start = INT64_C(1730606400000); /* 2024-11-03T04:00:00Z */
    statement_view v;

    (void)state;
    SKIP_WITHOUT_DB();
    assert_int_equal(merchant_event("evt-ny", "mer_ny", "America/New_York", 0), KEEL_HANDLE_OK);
    /* One entry on every UTC hour from 3 hours before the day to 3 hours after it. */
    for (int64_t t = mar10_start - 3 * HOUR_MS; t <= mar10_start + 26 * HOUR_MS; t += HOUR_MS) {
        post_at("mer_ny", t, "h");
    }
    for (int64_t t = nov03_start - 3 * HOUR_MS; t <= nov03_start + 28 * HOUR_MS; t += HOUR_MS) {
        post_at("mer_ny", t, "h");
    }
    /* The last millisecond of 2024-03-10 local, and the first of 03-11. */
    post_at("mer_ny", INT64_C(1710129599999), "edge"); /* 2024-03-10T23:59:59.999-04:00 */
    post_at("mer_ny", INT64_C(1710129600000), "edge"); /* 2024-03-11T00:00:00.000-04:00 */

    v = statement("mer_ny", "2024-03-10");
    assert_string_equal(json_string_value(json_object_get(v.json, "time_zone")),
                        "America/New_York");
    assert_int_equal(v.start_ms, mar10_start);
    assert_int_equal(v.end_ms - v.start_ms, 23 * HOUR_MS);
    assert_int_equal(v.entries, 23 + 1); /* 23 hourly entries and the 23:59:59.999 one */
    assert_int_equal(v.first_ms, mar10_start);
    assert_int_equal(v.last_ms, INT64_C(1710129599999));
    int64_t closing_mar10 = v.closing;
    json_decref(v.json);

    v = statement("mer_ny", "2024-03-11");
    assert_int_equal(v.opening, closing_mar10);
    assert_int_equal(v.first_ms, INT64_C(1710129600000)); /* the 00:00:00 entry */
    json_decref(v.json);

    v = statement("mer_ny", "2024-11-03");
    assert_int_equal(v.start_ms, nov03_start);
    assert_int_equal(v.end_ms - v.start_ms, 25 * HOUR_MS);
    assert_int_equal(v.entries, 25);
    assert_int_equal(v.closing - v.opening, 25 * 941);
    json_decref(v.json);

    /* An ordinary day is 24 hours. */
    v = statement("mer_ny", "2024-03-09");
    assert_int_equal(v.end_ms - v.start_ms, 24 * HOUR_MS);
    assert_int_equal(v.entries, 3);
    assert_int_equal(v.opening, 0);
    json_decref(v.json);
}

static void test_statement_kathmandu_and_lagos(void **state)
{
    statement_view v;

    (void)state;
    SKIP_WITHOUT_DB();
    /* Asia/Kathmandu is UTC+05:45: 2024-06-01 starts at 2024-05-31T18:15:00Z. */
    assert_int_equal(merchant_event("evt-ktm", "mer_ktm", "Asia/Kathmandu", 0), KEEL_HANDLE_OK);
    post_at("mer_ktm", INT64_C(1717179299999), "a"); /* 2024-05-31T23:59:59.999+05:45 */
    post_at("mer_ktm", INT64_C(1717179300000), "b"); /* 2024-06-01T00:00:00.000+05:45 */
    post_at("mer_ktm", INT64_C(1717265699999), "c"); /* 2024-06-01T23:59:59.999+05:45 */
    post_at("mer_ktm", INT64_C(1717265700000), "d"); /* 2024-06-02T00:00:00.000+05:45 */
    v = statement("mer_ktm", "2024-06-01");
    assert_int_equal(v.start_ms, INT64_C(1717179300000));
    assert_int_equal(v.end_ms, INT64_C(1717265700000));
    assert_int_equal(v.entries, 2);
    assert_int_equal(v.first_ms, INT64_C(1717179300000));
    assert_int_equal(v.last_ms, INT64_C(1717265699999));
    assert_int_equal(v.opening, 941);
    json_decref(v.json);
    v = statement("mer_ktm", "2024-05-31");
    assert_int_equal(v.entries, 1);
    assert_int_equal(v.last_ms, INT64_C(1717179299999));
    json_decref(v.json);

    /* Africa/Lagos is UTC+01:00 all year: 2024-06-01 starts at 2024-05-31T23:00:00Z. */
    assert_int_equal(merchant_event("evt-los", "mer_los", "Africa/Lagos", 0), KEEL_HANDLE_OK);
    post_at("mer_los", INT64_C(1717196399999), "a"); /* 2024-05-31T23:59:59.999+01:00 */
    post_at("mer_los", INT64_C(1717196400000), "b"); /* 2024-06-01T00:00:00.000+01:00 */
    post_at("mer_los", INT64_C(1717282799999), "c"); /* 2024-06-01T23:59:59.999+01:00 */
    v = statement("mer_los", "2024-06-01");
    assert_int_equal(v.start_ms, INT64_C(1717196400000));
    assert_int_equal(v.end_ms - v.start_ms, 24 * HOUR_MS);
    assert_int_equal(v.entries, 2);
    assert_int_equal(v.first_ms, INT64_C(1717196400000));
    assert_int_equal(v.last_ms, INT64_C(1717282799999));
    json_decref(v.json);

    /* A merchant the ledger has no copy of gets UTC days. */
    post_at("mer_nozone", INT64_C(1717199999999), "a"); /* 2024-05-31T23:59:59.999Z */
    v = statement("mer_nozone", "2024-05-31");
    assert_string_equal(json_string_value(json_object_get(v.json, "time_zone")), "UTC");
    assert_int_equal(v.entries, 1);
    json_decref(v.json);
}

typedef struct poster {
    pthread_t thread;
    atomic_bool stop;
    int posted;
} poster;

/* Posts entries for mer_page while the test walks its pages: newer than everything and
 * inside the walked range. */
static void *poster_main(void *arg)
{
    poster *p = arg;
    keel_db *conn = keel_testdb_connect(url, "ledger-test");
    ledger_events ev;
    char reason[512];

    ledger_events_init(&ev, conn, &fees);
    while (!atomic_load(&p->stop) && p->posted < 200) {
        ledger_test_record rec;
        char when[KEEL_RFC3339_LEN];
        char id[64];
        int64_t at = p->posted % 2 == 0 ? INT64_C(1800000000000) + p->posted
                                        : INT64_C(1750000000000) + (p->posted % 13) * 60000 + 30000;
        keel_clock_format_rfc3339(at, when);
        snprintf(id, sizeof(id), "pay_page_new_%d", p->posted);
        ledger_test_payment_succeeded(&rec, id, id, "mer_page", 1000, "usd", when);
        assert_int_equal(ledger_payment_events_handle(&rec.msg, &ev, reason, sizeof(reason)),
                         KEEL_HANDLE_OK);
        p->posted++;
    }
    keel_db_free(conn);
    return NULL;
}

/* Walks every page in one direction; returns the ids seen, in order (a JSON array). */
static json_t *walk(bool backwards, const char *from, int limit)
{
    json_t *seen = json_array();
    char cursor[LEDGER_TXN_ID_LEN];
    char limit_text[8];
    int pages = 0;

    snprintf(cursor, sizeof(cursor), "%s", from != NULL ? from : "");
    snprintf(limit_text, sizeof(limit_text), "%d", limit);
    for (;;) {
        ledger_page_request req;
        ledger_param_error err;
        json_t *page = NULL;
        json_t *data;
        const char *c = cursor[0] != '\0' ? cursor : NULL;

        assert_true(ledger_page_parse(limit_text, backwards ? NULL : c, backwards ? c : NULL, NULL,
                                      &req, &err));
        assert_int_equal(ledger_read_entries(db, "mer_page", &req, &page, &err), KEEL_OK);
        data = json_object_get(page, "data");
        assert_true(json_array_size(data) <= (size_t)limit);
        for (size_t i = 0; i < json_array_size(data); i++) {
            size_t k = backwards ? json_array_size(data) - 1 - i : i;
            json_array_append(seen, json_object_get(json_array_get(data, k), "id"));
        }
        if (json_array_size(data) > 0) {
            json_t *edge = json_array_get(data, backwards ? 0 : json_array_size(data) - 1);
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(json_object_get(edge, "id")));
        }
        bool more = json_is_true(json_object_get(page, "has_more"));
        json_decref(page);
        pages++;
        assert_true(pages < 1000);
        keel_clock_sleep_ms(5); /* let the poster get entries in between pages */
        if (!more) {
            break;
        }
    }
    return seen;
}

/* seen holds each id of all exactly once (but skip, the cursor a walk started from) and is
 * strictly ordered by (effective_at, id), newest first when descending. */
static void check_walk(json_t *seen, json_t *all, const char *skip, bool descending)
{
    int64_t previous_ms = descending ? INT64_MAX : INT64_MIN;
    char previous_id[LEDGER_TXN_ID_LEN] = "";

    for (size_t i = 0; i < json_array_size(all); i++) {
        const char *id = json_string_value(json_array_get(all, i));
        int count = 0;
        for (size_t k = 0; k < json_array_size(seen); k++) {
            count += strcmp(id, json_string_value(json_array_get(seen, k))) == 0;
        }
        if (count != (skip != NULL && strcmp(id, skip) == 0 ? 0 : 1)) {
            fail_msg("entry %s seen %d times", id, count);
        }
    }
    for (size_t k = 0; k < json_array_size(seen); k++) {
        const char *id = json_string_value(json_array_get(seen, k));
        int64_t ms = keel_testdb_int(db,
                                     "SELECT floor(extract(epoch FROM effective_at) * 1000) "
                                     "FROM journal_transactions WHERE id = '%s'",
                                     id);
        int cmp = ms != previous_ms ? (ms < previous_ms ? -1 : 1) : strcmp(id, previous_id);
        if (k > 0 && (descending ? cmp >= 0 : cmp <= 0)) {
            fail_msg("entry %s (%lld) is out of order after %s (%lld)", id, (long long)ms,
                     previous_id, (long long)previous_ms);
        }
        previous_ms = ms;
        snprintf(previous_id, sizeof(previous_id), "%s", id);
    }
}

static void test_pagination_walk_while_posting(void **state)
{
    poster p = {0};
    json_t *all;
    json_t *seen;
    json_t *back;

    (void)state;
    SKIP_WITHOUT_DB();
    /* 40 entries, some sharing an instant so the id must break the tie. */
    for (int i = 0; i < 40; i++) {
        post_at("mer_page", INT64_C(1750000000000) + (i / 3) * 60000,
                i % 3 == 0 ? "x" : (i % 3 == 1 ? "y" : "z"));
    }
    /* The range being walked: every entry that exists before the walk starts. */
    all = json_array();
    {
        PGresult *res = keel_db_exec(db,
                                     "SELECT id FROM journal_transactions WHERE merchant_id = "
                                     "'mer_page' ORDER BY effective_at DESC, id DESC",
                                     0, NULL);
        assert_int_equal(keel_db_check(db, res, "ids"), KEEL_OK);
        assert_int_equal(PQntuples(res), 40);
        for (int i = 0; i < PQntuples(res); i++) {
            json_array_append_new(all, json_string(PQgetvalue(res, i, 0)));
        }
        PQclear(res);
    }

    atomic_init(&p.stop, false);
    assert_int_equal(pthread_create(&p.thread, NULL, poster_main, &p), 0);
    keel_clock_sleep_ms(20);
    seen = walk(false, NULL, 7);
    back = walk(true, json_string_value(json_array_get(all, json_array_size(all) - 1)), 6);
    atomic_store(&p.stop, true);
    pthread_join(p.thread, NULL);
    assert_true(p.posted > 0);

    /* Each entry of the walked range exactly once, and both walks strictly ordered. */
    check_walk(seen, all, NULL, true);
    check_walk(back, all, json_string_value(json_array_get(all, json_array_size(all) - 1)), false);
    printf("walked %zu entries in pages of 7 (%zu in the range) while %d were posted\n",
           json_array_size(seen), json_array_size(all), p.posted);
    json_decref(all);
    json_decref(seen);
    json_decref(back);
}

static void test_page_params(void **state)
{
    static const struct {
        const char *limit, *after, *before, *currency, *param;
    } bad[] = {
        {"0", NULL, NULL, NULL, "limit"},
        {"101", NULL, NULL, NULL, "limit"},
        {"abc", NULL, NULL, NULL, "limit"},
        {"", NULL, NULL, NULL, "limit"},
        {"-1", NULL, NULL, NULL, "limit"},
        {"1000000000000", NULL, NULL, NULL, "limit"},
        {NULL, "txn_nothex", NULL, NULL, "starting_after"},
        {NULL, "", NULL, NULL, "starting_after"},
        {NULL, NULL, "pay_00000000000000000000000000000000", NULL, "ending_before"},
        {NULL, "txn_00000000000000000000000000000000", "txn_00000000000000000000000000000000", NULL,
         "ending_before"},
        {NULL, NULL, NULL, "xyz", "currency"},
    };
    ledger_page_request req;
    ledger_param_error err;
    json_t *page = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_false(ledger_page_parse(bad[i].limit, bad[i].after, bad[i].before, bad[i].currency,
                                       &req, &err));
        assert_string_equal(err.param, bad[i].param);
    }
    assert_true(ledger_page_parse(NULL, NULL, NULL, NULL, &req, &err));
    assert_int_equal(req.limit, LEDGER_PAGE_DEFAULT_LIMIT);
    assert_true(
        ledger_page_parse("100", "txn_0123456789abcdef0123456789abcdef", NULL, "USD", &req, &err));
    assert_int_equal(req.limit, 100);
    assert_string_equal(req.currency, "usd");
    if (db == NULL) {
        return;
    }
    /* A well-formed cursor that names no entry of this merchant. */
    assert_true(
        ledger_page_parse(NULL, "txn_0123456789abcdef0123456789abcdef", NULL, NULL, &req, &err));
    assert_int_equal(ledger_read_entries(db, "mer_page", &req, &page, &err), KEEL_ERR_NOT_FOUND);
    assert_string_equal(err.param, "starting_after");
    assert_null(page);
}

/* GET path on the API and the parsed JSON answer; *status gets the HTTP status. */
static json_t *http_get(uint16_t port, const char *path, long *status)
{
    char target[512];
    keel_http_call call = {.method = "GET", .url = target, .total_timeout_ms = 5000};
    keel_http_result res = {0};
    json_t *body;

    snprintf(target, sizeof(target), "http://127.0.0.1:%u%s", port, path);
    assert_int_equal(keel_http_client_do(&call, &res), KEEL_HTTP_OK);
    *status = res.status;
    body = json_loads(res.body != NULL ? res.body : "null", JSON_DECODE_ANY, NULL);
    keel_http_result_clear(&res);
    return body;
}

static void expect_400(uint16_t port, const char *path, const char *param)
{
    long status = 0;
    json_t *body = http_get(port, path, &status);
    json_t *err = json_object_get(body, "error");

    if (status != 400 || strcmp(json_string_value(json_object_get(err, "param")), param) != 0) {
        fail_msg("%s: status %ld, param %s; want 400 naming %s", path, status,
                 json_string_value(json_object_get(err, "param")), param);
    }
    json_decref(body);
}

static void test_http_api(void **state)
{
    keel_db_pool *pool;
    keel_http_server *srv;
    ledger_api api;
    char err[256];
    long status = 0;
    json_t *body;
    uint16_t port;

    (void)state;
    SKIP_WITHOUT_DB();
    keel_http_client_global_init();
    pool = keel_db_pool_new(url, NULL, "ledger-test-api", 2);
    api = (ledger_api){.pool = pool, .acquire_timeout_ms = 2000};
    keel_http_server_options opts = {.address = "127.0.0.1", .port = 0, .threads = 2};
    srv = keel_http_server_new(&opts);
    ledger_api_register(&api, srv);
    assert_int_equal(keel_http_server_start(srv, err, sizeof(err)), 0);
    port = keel_http_server_port(srv);

    body = http_get(port, "/v1/merchants/mer_ktm/balance", &status);
    assert_int_equal(status, 200);
    json_t *usd = json_array_get(json_object_get(body, "available"), 0);
    assert_string_equal(json_string_value(json_object_get(usd, "currency")), "usd");
    assert_int_equal(json_integer_value(json_object_get(usd, "amount")), 4 * 941);
    assert_non_null(json_string_value(json_object_get(body, "as_of")));
    json_decref(body);

    body = http_get(port, "/v1/merchants/mer_ktm/balance_transactions?limit=3", &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(body, "data")), 3);
    assert_true(json_is_true(json_object_get(body, "has_more")));
    json_decref(body);

    body = http_get(port, "/v1/merchants/mer_ny/statements/2024-11-03", &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(body, "period_seconds")), 25 * 3600);
    json_decref(body);

    expect_400(port, "/v1/merchants/mer_ktm/balance_transactions?limit=0", "limit");
    expect_400(port, "/v1/merchants/mer_ktm/balance_transactions?limit=ten", "limit");
    expect_400(port, "/v1/merchants/mer_ktm/balance_transactions?starting_after=bogus",
               "starting_after");
    expect_400(port,
               "/v1/merchants/mer_ktm/balance_transactions?ending_before="
               "txn_0123456789abcdef0123456789abcdef",
               "ending_before");
    expect_400(port, "/v1/merchants/mer_ktm/statements/2024-02-30", "date");
    expect_400(port, "/v1/merchants/mer_ktm/statements/yesterday", "date");
    expect_400(port, "/v1/merchants/mer_ktm/statements/2024-06-01?currency=zzz", "currency");

    keel_http_server_free(srv);
    keel_db_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merchant_copy_versions),
        cmocka_unit_test(test_statement_new_york_dst),
        cmocka_unit_test(test_statement_kathmandu_and_lagos),
        cmocka_unit_test(test_pagination_walk_while_posting),
        cmocka_unit_test(test_page_params),
        cmocka_unit_test(test_http_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
