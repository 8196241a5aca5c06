/* Helpers shared by the ledger's database tests: a fresh schema per test program in the
 * database KEEL_TEST_DATABASE_URL names (tests are skipped when it is unset), SQL shortcuts,
 * and payment events built as the consumer receives them. Header-only (static functions). */
#ifndef LEDGER_TEST_H
#define LEDGER_TEST_H

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keel/consume.h"
#include "keel/db.h"
#include "keel/migrate.h"
#include "keel/v1/merchants.pb-c.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

#include "fees.h"

extern const keel_migration ledger_migrations[];
extern const size_t ledger_migrations_count;

static inline const char *ledger_test_base_url(void)
{
    const char *url = getenv("KEEL_TEST_DATABASE_URL");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

/* The test URL with search_path set to schema, so every table the test creates lives there
 * and tests sharing the scratch database never see each other's rows. malloc'd. */
static inline char *ledger_test_schema_url(const char *schema)
{
    const char *base = ledger_test_base_url();
    size_t n = strlen(base) + strlen(schema) + 64;
    char *url = malloc(n);

    assert_non_null(url);
    if (strstr(base, "://") != NULL) {
        snprintf(url, n, "%s%soptions=-csearch_path%%3D%s", base,
                 strchr(base, '?') != NULL ? "&" : "?", schema);
    } else {
        snprintf(url, n, "%s options='-csearch_path=%s'", base, schema);
    }
    return url;
}

static inline void ledger_test_sql(keel_db *db, const char *sql)
{
    PGresult *res = keel_db_exec(db, sql, 0, NULL);
    if (keel_db_check(db, res, "test statement") != KEEL_OK) {
        fail_msg("statement failed: %s", sql);
    }
    PQclear(res);
}

/* The first column of the first row as an integer. */
static inline int64_t ledger_test_int(keel_db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int64_t ledger_test_int(keel_db *db, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    PGresult *res;
    int64_t v;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    res = keel_db_exec(db, sql, 0, NULL);
    if (keel_db_check(db, res, "test query") != KEEL_OK || PQntuples(res) < 1) {
        fail_msg("query failed: %s", sql);
    }
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

static inline keel_db *ledger_test_connect(const char *url)
{
    keel_db *db = keel_db_new(url, NULL, "ledger-test");
    assert_non_null(db);
    assert_int_equal(keel_db_connect(db, 10000), KEEL_OK);
    return db;
}

/* Drops and recreates schema, applies libkeel's and the ledger's migrations in it, and
 * returns a connection whose search_path is that schema. *url_out gets its URL. */
static inline keel_db *ledger_test_fresh(const char *schema, char **url_out)
{
    char sql[256];
    char err[512];
    keel_db *admin = ledger_test_connect(ledger_test_base_url());
    keel_db *db;

    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    ledger_test_sql(admin, "SET client_min_messages = warning");
    ledger_test_sql(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
    ledger_test_sql(admin, sql);
    keel_db_free(admin);
    *url_out = ledger_test_schema_url(schema);
    db = ledger_test_connect(*url_out);
    if (keel_migrate_apply(db, "libkeel", keel_common_migrations, keel_common_migrations_count, err,
                           sizeof(err)) != KEEL_OK ||
        keel_migrate_apply(db, "ledger", ledger_migrations, ledger_migrations_count, err,
                           sizeof(err)) != KEEL_OK) {
        fail_msg("migrations: %s", err);
    }
    return db;
}

/* A test program's setup: the fee schedule "usd=290bp+30;default=0bp+0" and, when
 * KEEL_TEST_DATABASE_URL is set, a fresh schema (else *db stays NULL and tests skip). */
static inline void ledger_test_open(const char *schema, keel_db **db, char **url,
                                    ledger_fee_schedule *fees)
{
    char err[256];
    assert_true(ledger_fees_parse("usd=290bp+30;default=0bp+0", fees, err, sizeof(err)));
    *db = NULL;
    *url = NULL;
    if (ledger_test_base_url() != NULL) {
        *db = ledger_test_fresh(schema, url);
    }
}

static inline void ledger_test_close(keel_db **db, char **url)
{
    keel_db_free(*db);
    *db = NULL;
    free(*url);
    *url = NULL;
}

#define LEDGER_TEST_SKIP_WITHOUT(db)                                                               \
    do {                                                                                           \
        if ((db) == NULL) {                                                                        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* A record as keel_consume_run hands it to a handler; payload points into buf. */
typedef struct ledger_test_record {
    keel_message msg;
    uint8_t buf[1024];
} ledger_test_record;

static inline void ledger_test_record_init(ledger_test_record *r, const char *topic,
                                           const char *type, const char *event_id)
{
    memset(r, 0, sizeof(*r));
    r->msg.topic = topic;
    r->msg.payload = r->buf;
    /* A test id or type that does not fit is a broken test, not something to truncate. */
    assert_true(snprintf(r->msg.ce.id, sizeof(r->msg.ce.id), "%s", event_id) <
                (int)sizeof(r->msg.ce.id));
    assert_true(snprintf(r->msg.ce.type, sizeof(r->msg.ce.type), "%s", type) <
                (int)sizeof(r->msg.ce.type));
    snprintf(r->msg.ce.source, sizeof(r->msg.ce.source), "/tests");
    snprintf(r->msg.ce.time, sizeof(r->msg.ce.time), "2020-01-01T00:00:00.000Z");
}

static inline void ledger_test_payment_succeeded(ledger_test_record *r, const char *event_id,
                                                 const char *payment_id, const char *merchant_id,
                                                 int64_t amount, const char *currency,
                                                 const char *succeeded_at)
{
    Keel__V1__PaymentSucceeded m = KEEL__V1__PAYMENT_SUCCEEDED__INIT;

    ledger_test_record_init(r, "keel.payment-events.v1", "keel.v1.PaymentSucceeded", event_id);
    m.payment_id = (char *)payment_id;
    m.merchant_id = (char *)merchant_id;
    m.amount = amount;
    m.currency = (char *)currency;
    m.provider = (char *)"provider_a";
    m.provider_charge_id = (char *)"ch_test";
    m.succeeded_at = (char *)succeeded_at;
    assert_true(keel__v1__payment_succeeded__get_packed_size(&m) <= sizeof(r->buf));
    r->msg.len = keel__v1__payment_succeeded__pack(&m, r->buf);
}

static inline void ledger_test_refund_succeeded(ledger_test_record *r, const char *event_id,
                                                const char *refund_id, const char *payment_id,
                                                const char *merchant_id, int64_t amount,
                                                const char *succeeded_at)
{
    Keel__V1__RefundSucceeded m = KEEL__V1__REFUND_SUCCEEDED__INIT;

    ledger_test_record_init(r, "keel.payment-events.v1", "keel.v1.RefundSucceeded", event_id);
    m.refund_id = (char *)refund_id;
    m.payment_id = (char *)payment_id;
    m.merchant_id = (char *)merchant_id;
    m.amount = amount;
    m.currency = (char *)"usd";
    m.provider = (char *)"provider_a";
    m.provider_refund_id = (char *)"re_test";
    m.succeeded_at = (char *)succeeded_at;
    r->msg.len = keel__v1__refund_succeeded__pack(&m, r->buf);
}

/* MerchantCreated when version is 0, else MerchantUpdated with that version. */
static inline void ledger_test_merchant_event(ledger_test_record *r, const char *event_id,
                                              const char *merchant_id, const char *time_zone,
                                              int64_t version)
{
    if (version == 0) {
        Keel__V1__MerchantCreated m = KEEL__V1__MERCHANT_CREATED__INIT;
        ledger_test_record_init(r, "keel.merchant-events.v1", "keel.v1.MerchantCreated", event_id);
        m.merchant_id = (char *)merchant_id;
        m.name = (char *)"Test Merchant";
        m.time_zone = (char *)time_zone;
        m.default_currency = (char *)"usd";
        r->msg.len = keel__v1__merchant_created__pack(&m, r->buf);
        return;
    }
    Keel__V1__MerchantUpdated m = KEEL__V1__MERCHANT_UPDATED__INIT;
    ledger_test_record_init(r, "keel.merchant-events.v1", "keel.v1.MerchantUpdated", event_id);
    m.merchant_id = (char *)merchant_id;
    m.name = (char *)"Test Merchant";
    m.time_zone = (char *)time_zone;
    m.default_currency = (char *)"usd";
    m.version = version;
    r->msg.len = keel__v1__merchant_updated__pack(&m, r->buf);
}

#endif
