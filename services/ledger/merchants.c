/* Keeps the ledger's copy of merchants from MerchantCreated / MerchantUpdated, newest version wins.
 */
#include "merchants.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keel/inbox.h"
#include "keel/log.h"
#include "keel/money.h"
#include "keel/v1/merchants.pb-c.h"
#include "postings.h"

#define TYPE_CREATED "keel.v1.MerchantCreated"
#define TYPE_UPDATED "keel.v1.MerchantUpdated"
#define MERCHANTS_NAME_MAX 200
#define MERCHANTS_TZ_MAX 64

typedef struct merchant_copy {
    const char *id;
    const char *name;
    const char *time_zone;
    const char *currency;
    int64_t version;
} merchant_copy;

typedef struct merchant_tx {
    const char *event_id;
    const merchant_copy *m;
    bool duplicate;
    bool applied;
    bool unknown_zone;
} merchant_tx;

static const char SQL_UPSERT[] =
    "INSERT INTO merchants (id, name, time_zone, default_currency, version) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
    "time_zone = EXCLUDED.time_zone, default_currency = EXCLUDED.default_currency, "
    "version = EXCLUDED.version, updated_at = now() WHERE merchants.version < EXCLUDED.version";

/* KEEL_OK when PostgreSQL knows tz, KEEL_ERR_NOT_FOUND when it does not, else db trouble. */
static keel_result merchants_zone_known(keel_db *db, const char *tz)
{
    const char *params[1] = {tz};
    PGresult *res = keel_db_exec_prepared(
        db, "ledger_zone_known", "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, params);
    keel_result r = keel_db_check(db, res, "checking a time zone");
    if (r == KEEL_OK && PQntuples(res) == 0) {
        r = KEEL_ERR_NOT_FOUND;
    }
    PQclear(res);
    return r;
}

static keel_result merchant_tx_body(keel_db *db, void *arg)
{
    merchant_tx *tx = arg;
    char version[24];
    const char *params[5] = {tx->m->id, tx->m->name, tx->m->time_zone, tx->m->currency, version};
    PGresult *res;
    keel_result r;

    tx->duplicate = false;
    tx->applied = false;
    tx->unknown_zone = false;
    r = keel_inbox_claim(db, LEDGER_MERCHANT_EVENTS_CONSUMER, tx->event_id);
    if (r == KEEL_ERR_CONFLICT) {
        tx->duplicate = true;
        return KEEL_OK;
    }
    if (r != KEEL_OK) {
        return r;
    }
    /* A zone PostgreSQL does not know would break every statement of the merchant later. */
    r = merchants_zone_known(db, tx->m->time_zone);
    if (r == KEEL_ERR_NOT_FOUND) {
        tx->unknown_zone = true;
        return KEEL_ERR; /* rolls the claim back: the record goes to the DLQ */
    }
    if (r != KEEL_OK) {
        return r;
    }
    snprintf(version, sizeof(version), "%" PRId64, tx->m->version);
    res = keel_db_exec_prepared(db, "ledger_merchant_upsert", SQL_UPSERT, 5, params);
    r = keel_db_check(db, res, "storing a merchant");
    if (r == KEEL_OK) {
        tx->applied = strcmp(PQcmdTuples(res), "1") == 0;
    }
    PQclear(res);
    return r;
}

static bool merchants_valid(const merchant_copy *m, char *reason, size_t reason_len)
{
    size_t name_len = m->name != NULL ? strlen(m->name) : 0;
    size_t tz_len = m->time_zone != NULL ? strlen(m->time_zone) : 0;

    if (!ledger_id_valid(m->id)) {
        snprintf(reason, reason_len, "merchant_id must be 1..%d characters of [A-Za-z0-9_.-]",
                 LEDGER_ID_MAX);
        return false;
    }
    if (name_len == 0 || name_len > MERCHANTS_NAME_MAX) {
        snprintf(reason, reason_len, "name must be 1..%d bytes", MERCHANTS_NAME_MAX);
        return false;
    }
    if (tz_len == 0 || tz_len > MERCHANTS_TZ_MAX) {
        snprintf(reason, reason_len, "time_zone must name an IANA zone");
        return false;
    }
    if (keel_currency_find(m->currency) == NULL) {
        snprintf(reason, reason_len, "default_currency \"%.8s\" is not supported", m->currency);
        return false;
    }
    if (m->version < 1) {
        snprintf(reason, reason_len, "version must be >= 1 (got %" PRId64 ")", m->version);
        return false;
    }
    return true;
}

keel_handle_result ledger_merchant_events_handle(const keel_message *msg, void *ctx, char *reason,
                                                 size_t reason_len)
{
    ledger_merchants *lm = ctx;
    Keel__V1__MerchantCreated *created = NULL;
    Keel__V1__MerchantUpdated *updated = NULL;
    merchant_copy m = {0};
    merchant_tx tx = {.event_id = msg->ce.id, .m = &m};
    keel_handle_result result = KEEL_HANDLE_POISON;
    char why[200];
    keel_result r;

    if (strcmp(msg->ce.type, TYPE_CREATED) == 0) {
        created = keel__v1__merchant_created__unpack(NULL, msg->len, msg->payload);
        if (created != NULL) {
            m = (merchant_copy){created->merchant_id, created->name, created->time_zone,
                                created->default_currency, 1};
        }
    } else if (strcmp(msg->ce.type, TYPE_UPDATED) == 0) {
        updated = keel__v1__merchant_updated__unpack(NULL, msg->len, msg->payload);
        if (updated != NULL) {
            m = (merchant_copy){updated->merchant_id, updated->name, updated->time_zone,
                                updated->default_currency, updated->version};
        }
    } else {
        snprintf(reason, reason_len, "unknown ce_type \"%.100s\" on %s (expected %s or %s)",
                 msg->ce.type, msg->topic, TYPE_CREATED, TYPE_UPDATED);
        return KEEL_HANDLE_POISON;
    }
    if (created == NULL && updated == NULL) {
        snprintf(reason, reason_len, "undecodable %s payload (%zu bytes)", msg->ce.type, msg->len);
        goto done;
    }
    if (!merchants_valid(&m, why, sizeof(why))) {
        snprintf(reason, reason_len, "invalid %s: %s", msg->ce.type, why);
        goto done;
    }
    const keel_currency *cur = keel_currency_find(m.currency);
    m.currency = cur->code;
    r = keel_db_transaction(lm->db, NULL, merchant_tx_body, &tx, NULL);
    if (tx.unknown_zone) {
        snprintf(reason, reason_len, "invalid %s: time_zone \"%s\" is not an IANA zone name",
                 msg->ce.type, m.time_zone);
        goto done;
    }
    result = KEEL_HANDLE_RETRY;
    if (r != KEEL_OK) {
        keel_log_warn("storing merchant %s (event %s) failed (%s); will retry", m.id, msg->ce.id,
                      keel_result_name(r));
        goto done;
    }
    if (tx.duplicate) {
        keel_log_debug("merchant event %s was already applied", msg->ce.id);
    } else if (tx.applied) {
        keel_log_info("merchant %s is now version %" PRId64 " (time zone %s, currency %s)", m.id,
                      m.version, m.time_zone, m.currency);
    } else {
        keel_log_info("merchant event %s (version %" PRId64 ") is older than the copy of %s; "
                      "ignored",
                      msg->ce.id, m.version, m.id);
    }
    result = KEEL_HANDLE_OK;
done:
    if (result == KEEL_HANDLE_POISON) {
        keel_log_warn("merchant event %s at %s/%d/%" PRId64 " is poison: %s", msg->ce.id,
                      msg->topic, (int)msg->partition, msg->offset, reason);
    }
    keel__v1__merchant_created__free_unpacked(created, NULL);
    created = NULL;
    keel__v1__merchant_updated__free_unpacked(updated, NULL);
    updated = NULL;
    return result;
}
