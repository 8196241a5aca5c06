/* keelctl merchant / apikey: merchants and their API keys in the gateway's database. Secrets
 * are printed once and stored only as SHA-256; keelctl never applies migrations. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "commands.h"
#include "keel/cloudevents.h"
#include "keel/config.h"
#include "keel/db.h"
#include "keel/id.h"
#include "keel/log.h"
#include "keel/money.h"
#include "keel/outbox.h"
#include "keel/v1/merchants.pb-c.h"

#define MERCHANTS_CONNECT_TIMEOUT_MS 10000
#define MERCHANTS_NAME_MAX 200
#define MERCHANTS_SECRET_PREFIX "sk_test_"
#define MERCHANTS_SECRET_RANDOM_BYTES 24 /* 48 hex digits */
#define MERCHANTS_KEY_PREFIX_LEN 12      /* what `apikey list` shows to tell keys apart */
#define MERCHANTS_ID_MAX 64
/* Merchant changes reach other services (the ledger) through the gateway's outbox. */
#define MERCHANTS_EVENTS_TOPIC "keel.merchant-events.v1"
#define MERCHANTS_EVENT_SOURCE "/keel/gateway"
#define MERCHANTS_TZ_MAX 64

static const keel_config_spec merchants_specs[] = {
    {"KEEL_DATABASE_URL", KEEL_CONFIG_STRING, NULL,
     "libpq URL of the gateway database (keel_gateway), without the password", false},
    {"KEEL_DATABASE_PASSWORD", KEEL_CONFIG_STRING, "",
     "password of its role (or KEEL_DATABASE_PASSWORD_FILE)", true},
};

static void merchant_usage(FILE *out)
{
    fprintf(
        out,
        "usage: keelctl merchant create --name NAME [--time-zone TZ] [--default-currency CUR]\n"
        "       keelctl merchant update --merchant MERCHANT_ID [--name NAME] [--time-zone TZ]\n"
        "                               [--default-currency CUR]\n"
        "\n"
        "create  adds a merchant and prints its id (mer_...) on stdout\n"
        "update  changes the given fields and bumps the merchant's version; with no field it\n"
        "        republishes the merchant as it is (for services that missed it)\n"
        "  --name NAME               1 to 200 characters\n"
        "  --time-zone TZ            IANA time zone of the merchant's business day (statements\n"
        "                            and settlement), default UTC\n"
        "  --default-currency CUR    ISO 4217 code, default usd\n"
        "Each change commits together with a MerchantCreated / MerchantUpdated event in the\n"
        "gateway's outbox; keel-gateway publishes it on " MERCHANTS_EVENTS_TOPIC ".\n"
        "\n"
        "Database: KEEL_DATABASE_URL and KEEL_DATABASE_PASSWORD[_FILE] of keel-gateway.\n");
}

static void apikey_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl apikey create --merchant MERCHANT_ID [--rate-limit R --burst B]\n"
            "                             [--expires-in SECONDS]\n"
            "       keelctl apikey list --merchant MERCHANT_ID\n"
            "       keelctl apikey revoke --key-id KEY_ID\n"
            "       keelctl apikey rotate --key-id KEY_ID [--grace SECONDS]\n"
            "       keelctl apikey limit --key-id KEY_ID (--rate-limit R --burst B | --default)\n"
            "\n"
            "create  makes a secret key (sk_test_...) and prints it on stdout; it is shown only\n"
            "        this once (only its SHA-256 is stored)\n"
            "list    prints a merchant's keys (id, prefix, created, expires, revoked, limit),\n"
            "        never secrets\n"
            "revoke  stops a key from authenticating, at once and for good\n"
            "rotate  makes a new key for the same merchant with the same limit and prints it;\n"
            "        the old key keeps working for --grace seconds (default 0: revoked at once)\n"
            "limit   sets the key's own token bucket: R requests per second (0 < R <= 100000)\n"
            "        with bursts of B (1 <= B <= 1000000); --default returns it to the gateway's\n"
            "        KEEL_GATEWAY_RATE_LIMIT_PER_S / _BURST. Running gateways apply it from the\n"
            "        key's next request.\n"
            "\n"
            "Database: KEEL_DATABASE_URL and KEEL_DATABASE_PASSWORD[_FILE] of keel-gateway.\n");
}

static bool merchants_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

/* One accepted option of a command: its name and where its value goes. */
typedef struct merchants_opt {
    const char *name;
    const char **value;
} merchants_opt;

/* Reads "--name value" and "--name=value" options from argv[2..]; returns 0, or 2 after
 * explaining a usage error on stderr. */
static int merchants_parse(int argc, char **argv, const char *what, merchants_opt *opts,
                           size_t nopts)
{
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        bool matched = false;

        for (size_t k = 0; k < nopts && !matched; k++) {
            size_t n = strlen(opts[k].name);
            if (strncmp(arg, opts[k].name, n) != 0 || (arg[n] != '\0' && arg[n] != '=')) {
                continue;
            }
            matched = true;
            if (arg[n] == '=') {
                *opts[k].value = arg + n + 1;
            } else if (i + 1 < argc) {
                *opts[k].value = argv[++i];
            } else {
                fprintf(stderr, "keelctl %s: %s needs a value\n", what, opts[k].name);
                return 2;
            }
        }
        if (!matched) {
            fprintf(stderr, "keelctl %s: unknown option '%s' (see --help)\n", what, arg);
            return 2;
        }
    }
    return 0;
}

/* An id option must be present and short; the database says whether it exists. */
static bool merchants_require(const char *what, const char *option, const char *value)
{
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "keelctl %s: %s is required (see --help)\n", what, option);
        return false;
    }
    if (strlen(value) > MERCHANTS_ID_MAX) {
        fprintf(stderr, "keelctl %s: %s is longer than %d characters; no such id exists\n", what,
                option, MERCHANTS_ID_MAX);
        return false;
    }
    return true;
}

/* Loads the database settings and connects; on failure explains and returns NULL. */
static keel_db *merchants_connect(const char *what)
{
    char err[512];
    keel_config *cfg = keel_config_load(
        merchants_specs, sizeof(merchants_specs) / sizeof(merchants_specs[0]), err, sizeof(err));
    keel_db *db = NULL;
    keel_result r;

    if (cfg == NULL) {
        fprintf(stderr, "keelctl %s: %s\n", what, err);
        return NULL;
    }
    const char *password = keel_config_string(cfg, "KEEL_DATABASE_PASSWORD");
    db = keel_db_new(keel_config_string(cfg, "KEEL_DATABASE_URL"),
                     password[0] != '\0' ? password : NULL, "keelctl");
    keel_config_free(cfg); /* keel_db keeps its own copies */
    cfg = NULL;
    r = keel_db_connect(db, MERCHANTS_CONNECT_TIMEOUT_MS);
    if (r != KEEL_OK) {
        fprintf(stderr,
                "keelctl %s: cannot connect to the gateway database within %d s (%s); check "
                "KEEL_DATABASE_URL, the password and that PostgreSQL is running\n",
                what, MERCHANTS_CONNECT_TIMEOUT_MS / 1000, keel_result_name(r));
        keel_db_free(db);
        return NULL;
    }
    return db;
}

/* True for a successful result; otherwise explains the failure on stderr. */
static bool merchants_ok(const char *what, const PGresult *res)
{
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return true;
    }
    if (res == NULL) {
        fprintf(stderr, "keelctl %s: lost the database connection; try again\n", what);
        return false;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "42P01") == 0) {
        fprintf(stderr,
                "keelctl %s: the gateway's tables are missing; start keel-gateway once "
                "so it applies its migrations\n",
                what);
        return false;
    }
    fprintf(stderr, "keelctl %s: database error: %s", what, PQresultErrorMessage(res));
    return false;
}

static bool merchants_time_zone_known(const char *what, keel_db *db, const char *tz)
{
    const char *params[1] = {tz};
    PGresult *res = keel_db_exec(db, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, params);
    bool known = merchants_ok(what, res) && PQntuples(res) > 0;

    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && !known) {
        fprintf(stderr,
                "keelctl %s: '%s' is not an IANA time zone name (e.g. UTC, Europe/Berlin, "
                "America/New_York)\n",
                what, tz);
    }
    PQclear(res);
    return known;
}

/* A merchant as the outbox event carries it (the whole record, after the change). */
typedef struct merchant_write {
    bool create;
    const char *id;
    const char *name;     /* NULL: unchanged (update) */
    const char *tz;       /* NULL: unchanged (update) */
    const char *currency; /* NULL: unchanged (update) */
    bool missing;         /* update: no merchant with this id */
} merchant_write;

/* Packs MerchantCreated or MerchantUpdated from the row RETURNING gave (name, time_zone,
 * default_currency, version, time) and inserts it into the outbox, in db's transaction. */
static keel_result merchant_publish(keel_db *db, const merchant_write *w, const PGresult *row)
{
    keel_cloudevent ce;
    uint8_t *buf = NULL;
    size_t len;
    keel_result r;

    if (w->create) {
        Keel__V1__MerchantCreated m = KEEL__V1__MERCHANT_CREATED__INIT;
        m.merchant_id = (char *)w->id;
        m.name = PQgetvalue(row, 0, 0);
        m.time_zone = PQgetvalue(row, 0, 1);
        m.default_currency = PQgetvalue(row, 0, 2);
        m.created_at = PQgetvalue(row, 0, 4);
        len = keel__v1__merchant_created__get_packed_size(&m);
        buf = malloc(len > 0 ? len : 1);
        if (buf == NULL) {
            return KEEL_ERR;
        }
        keel__v1__merchant_created__pack(&m, buf);
        keel_cloudevent_init(&ce, MERCHANTS_EVENT_SOURCE, "keel.v1.MerchantCreated", NULL);
    } else {
        Keel__V1__MerchantUpdated m = KEEL__V1__MERCHANT_UPDATED__INIT;
        m.merchant_id = (char *)w->id;
        m.name = PQgetvalue(row, 0, 0);
        m.time_zone = PQgetvalue(row, 0, 1);
        m.default_currency = PQgetvalue(row, 0, 2);
        m.version = strtoll(PQgetvalue(row, 0, 3), NULL, 10);
        m.updated_at = PQgetvalue(row, 0, 4);
        len = keel__v1__merchant_updated__get_packed_size(&m);
        buf = malloc(len > 0 ? len : 1);
        if (buf == NULL) {
            return KEEL_ERR;
        }
        keel__v1__merchant_updated__pack(&m, buf);
        keel_cloudevent_init(&ce, MERCHANTS_EVENT_SOURCE, "keel.v1.MerchantUpdated", NULL);
    }
    keel_outbox_message msg = {
        .topic = MERCHANTS_EVENTS_TOPIC,
        .key = w->id,
        .payload = buf,
        .payload_len = len,
        .ce = &ce,
    };
    r = keel_outbox_insert(db, &msg);
    free(buf);
    buf = NULL;
    return r;
}

#define MERCHANTS_RETURNING                                                                        \
    " RETURNING name, time_zone, default_currency, version, to_char(%s AT TIME ZONE 'UTC', "       \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The change and its event in one transaction: both commit or neither does. */
static keel_result merchant_write_body(keel_db *db, void *arg)
{
    merchant_write *w = arg;
    char sql[512];
    PGresult *res;
    keel_result r;

    w->missing = false;
    if (w->create) {
        const char *params[4] = {w->id, w->name, w->tz, w->currency};
        snprintf(sql, sizeof(sql),
                 "INSERT INTO merchants (id, name, time_zone, default_currency) "
                 "VALUES ($1, $2, $3, $4)" MERCHANTS_RETURNING,
                 "created_at");
        res = keel_db_exec(db, sql, 4, params);
    } else {
        const char *params[4] = {w->id, w->name, w->tz, w->currency};
        snprintf(sql, sizeof(sql),
                 "UPDATE merchants SET name = coalesce($2, name), "
                 "time_zone = coalesce($3, time_zone), "
                 "default_currency = coalesce($4, default_currency), version = version + 1, "
                 "updated_at = now() WHERE id = $1" MERCHANTS_RETURNING,
                 "updated_at");
        res = keel_db_exec(db, sql, 4, params);
    }
    r = keel_db_check(db, res, w->create ? "inserting the merchant" : "updating the merchant");
    if (r == KEEL_OK && PQntuples(res) != 1) {
        w->missing = true;
        r = KEEL_ERR_NOT_FOUND;
    }
    if (r == KEEL_OK) {
        r = merchant_publish(db, w, res);
    }
    PQclear(res);
    return r;
}

/* Checks the optional fields of create/update; NULL stays NULL. Returns 0 or 2. */
static int merchant_check_fields(const char *what, const char *name, const char *tz,
                                 const char **currency)
{
    if (name != NULL && (name[0] == '\0' || strlen(name) > MERCHANTS_NAME_MAX)) {
        fprintf(stderr, "keelctl %s: --name must be 1 to %d characters\n", what,
                MERCHANTS_NAME_MAX);
        return 2;
    }
    if (tz != NULL && (tz[0] == '\0' || strlen(tz) > MERCHANTS_TZ_MAX)) {
        fprintf(stderr,
                "keelctl %s: --time-zone must be an IANA zone name such as UTC or "
                "Europe/Berlin\n",
                what);
        return 2;
    }
    if (*currency != NULL) {
        const keel_currency *cur = keel_currency_find(*currency);
        if (cur == NULL) {
            fprintf(stderr,
                    "keelctl %s: --default-currency '%s' is not a currency keel supports (use "
                    "an ISO 4217 code such as usd or eur)\n",
                    what, *currency);
            return 2;
        }
        *currency = cur->code;
    }
    return 0;
}

/* Connects, checks the zone and runs the write; prints the error. Returns 0 or 1. */
static int merchant_write_run(const char *what, merchant_write *w)
{
    keel_db *db = merchants_connect(what);
    int rc = 1;
    keel_result r;

    if (db == NULL || (w->tz != NULL && !merchants_time_zone_known(what, db, w->tz))) {
        goto done;
    }
    r = keel_db_transaction(db, NULL, merchant_write_body, w, NULL);
    if (w->missing) {
        fprintf(stderr, "keelctl %s: no merchant with id '%s'\n", what, w->id);
    } else if (r != KEEL_OK) {
        fprintf(stderr,
                "keelctl %s: the change was not saved (%s; the log above says why). Nothing was "
                "written; if the gateway's tables are missing, start keel-gateway once so it "
                "applies its migrations\n",
                what, keel_result_name(r));
    } else {
        rc = 0;
    }
done:
    keel_db_free(db);
    db = NULL;
    return rc;
}

static int merchant_create(int argc, char **argv)
{
    const char *what = "merchant create";
    const char *name = NULL;
    const char *tz = "UTC";
    const char *currency = "usd";
    merchants_opt opts[] = {
        {"--name", &name}, {"--time-zone", &tz}, {"--default-currency", &currency}};
    char id[48];
    merchant_write w = {.create = true};
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    if (rc != 0) {
        return rc;
    }
    if (name == NULL) {
        fprintf(stderr, "keelctl %s: --name is required, 1 to %d characters\n", what,
                MERCHANTS_NAME_MAX);
        return 2;
    }
    rc = merchant_check_fields(what, name, tz, &currency);
    if (rc != 0) {
        return rc;
    }
    keel_id_new("mer_", id, sizeof(id));
    w.id = id;
    w.name = name;
    w.tz = tz;
    w.currency = currency;
    rc = merchant_write_run(what, &w);
    if (rc == 0) {
        printf("%s\n", id);
    }
    return rc;
}

static int merchant_update(int argc, char **argv)
{
    const char *what = "merchant update";
    const char *id = NULL;
    const char *name = NULL;
    const char *tz = NULL;
    const char *currency = NULL;
    merchants_opt opts[] = {{"--merchant", &id},
                            {"--name", &name},
                            {"--time-zone", &tz},
                            {"--default-currency", &currency}};
    merchant_write w = {.create = false};
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    if (rc != 0) {
        return rc;
    }
    if (!merchants_require(what, "--merchant", id)) {
        return 2;
    }
    rc = merchant_check_fields(what, name, tz, &currency);
    if (rc != 0) {
        return rc;
    }
    w.id = id;
    w.name = name;
    w.tz = tz;
    w.currency = currency;
    rc = merchant_write_run(what, &w);
    if (rc == 0) {
        printf("updated %s\n", id);
    }
    return rc;
}

/* Fills buf with n random bytes from getrandom(2), which blocks only until the kernel's pool
 * is first seeded at boot. */
static bool merchants_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    int interrupted = 0;

    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR && ++interrupted < 10) {
                continue;
            }
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static bool merchants_sha256_hex(const char *s, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_Digest(s, strlen(s), md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        return false;
    }
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[64] = '\0';
    return true;
}

/* A new key: the secret to print once, its SHA-256 (the only form stored), the prefix that
 * `apikey list` shows, and its id. */
typedef struct apikey_new {
    char secret[sizeof(MERCHANTS_SECRET_PREFIX) + 2 * MERCHANTS_SECRET_RANDOM_BYTES];
    char hash[65];
    char prefix[MERCHANTS_KEY_PREFIX_LEN + 1];
    char id[48];
} apikey_new;

static bool apikey_generate(const char *what, apikey_new *k)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char random[MERCHANTS_SECRET_RANDOM_BYTES];
    size_t off = sizeof(MERCHANTS_SECRET_PREFIX) - 1;
    bool ok = false;

    if (!merchants_random(random, sizeof(random))) {
        fprintf(stderr, "keelctl %s: getrandom failed: %s\n", what, strerror(errno));
        goto done;
    }
    memcpy(k->secret, MERCHANTS_SECRET_PREFIX, off);
    for (size_t i = 0; i < sizeof(random); i++) {
        k->secret[off + 2 * i] = hex[random[i] >> 4];
        k->secret[off + 2 * i + 1] = hex[random[i] & 0x0f];
    }
    k->secret[off + 2 * sizeof(random)] = '\0';
    if (!merchants_sha256_hex(k->secret, k->hash)) {
        fprintf(stderr, "keelctl %s: SHA-256 failed inside libcrypto\n", what);
        goto done;
    }
    memcpy(k->prefix, k->secret, MERCHANTS_KEY_PREFIX_LEN);
    k->prefix[MERCHANTS_KEY_PREFIX_LEN] = '\0';
    keel_id_new("key_", k->id, sizeof(k->id));
    ok = true;
done:
    OPENSSL_cleanse(random, sizeof(random));
    return ok;
}

/* Reads a decimal number option within [min, max]; NULL (absent) is fine. Returns 0 or 2. */
static int apikey_number(const char *what, const char *option, const char *text, double min,
                         double max, double *out)
{
    char *end = NULL;
    double v;

    if (text == NULL) {
        return 0;
    }
    errno = 0;
    v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "keelctl %s: %s must be a number from %g to %g, got '%s'\n", what, option,
                min, max, text);
        return 2;
    }
    *out = v;
    return 0;
}

/* --rate-limit and --burst go together; checks both. Returns 0 or 2. */
static int apikey_limit_options(const char *what, const char *rate_text, const char *burst_text,
                                double *rate, double *burst)
{
    if ((rate_text == NULL) != (burst_text == NULL)) {
        fprintf(stderr, "keelctl %s: give --rate-limit and --burst together\n", what);
        return 2;
    }
    if (apikey_number(what, "--rate-limit", rate_text, 0.001, 100000, rate) != 0 ||
        apikey_number(what, "--burst", burst_text, 1, 1000000, burst) != 0) {
        return 2;
    }
    return 0;
}

/* Prints the secret, the only time it is ever shown, and where it belongs. */
static void apikey_announce(const char *what, const apikey_new *k, const char *merchant)
{
    printf("%s\n", k->secret);
    fflush(stdout);
    fprintf(stderr,
            "keelctl %s: API key %s (prefix %s) for %s; the secret above is not stored and is "
            "shown only this once\n",
            what, k->id, k->prefix, merchant);
}

static int apikey_create(int argc, char **argv)
{
    const char *what = "apikey create";
    const char *merchant = NULL;
    const char *rate_text = NULL;
    const char *burst_text = NULL;
    const char *expires_text = NULL;
    merchants_opt opts[] = {{"--merchant", &merchant},
                            {"--rate-limit", &rate_text},
                            {"--burst", &burst_text},
                            {"--expires-in", &expires_text}};
    double rate = 0;
    double burst = 0;
    double expires_in = 0;
    char rate_s[32] = "";
    char burst_s[32] = "";
    char expires_s[32] = "";
    apikey_new k;
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    memset(&k, 0, sizeof(k));
    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (!merchants_require(what, "--merchant", merchant) ||
        apikey_limit_options(what, rate_text, burst_text, &rate, &burst) != 0 ||
        apikey_number(what, "--expires-in", expires_text, 1, 315360000, &expires_in) != 0) {
        goto done;
    }
    rc = 1;
    if (!apikey_generate(what, &k)) {
        goto done;
    }
    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    if (rate_text != NULL) {
        snprintf(rate_s, sizeof(rate_s), "%.17g", rate);
        snprintf(burst_s, sizeof(burst_s), "%.17g", burst);
    }
    if (expires_text != NULL) {
        snprintf(expires_s, sizeof(expires_s), "%.0f", expires_in);
    }
    const char *params[7] = {k.id,
                             merchant,
                             k.hash,
                             k.prefix,
                             rate_text != NULL ? rate_s : NULL,
                             rate_text != NULL ? burst_s : NULL,
                             expires_text != NULL ? expires_s : NULL};
    res = keel_db_exec(db,
                       "INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix, "
                       "rate_limit_per_s, rate_limit_burst, expires_at) VALUES ($1, $2, $3, $4, "
                       "$5::float8, $6::float8, now() + $7::bigint * interval '1 second')",
                       7, params);
    if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR &&
        PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL &&
        strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23503") == 0) {
        fprintf(stderr,
                "keelctl %s: no merchant with id '%s' (create one with `keelctl "
                "merchant create`)\n",
                what, merchant);
        goto done;
    }
    if (!merchants_ok(what, res)) {
        goto done;
    }
    apikey_announce(what, &k, merchant);
    rc = 0;
done:
    OPENSSL_cleanse(&k, sizeof(k));
    PQclear(res);
    keel_db_free(db);
    db = NULL;
    return rc;
}

static int apikey_revoke(int argc, char **argv)
{
    const char *what = "apikey revoke";
    const char *key_id = NULL;
    merchants_opt opts[] = {{"--key-id", &key_id}};
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (!merchants_require(what, "--key-id", key_id)) {
        goto done;
    }
    rc = 1;
    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    const char *params[1] = {key_id};
    res = keel_db_exec(db,
                       "UPDATE api_keys SET revoked_at = now() "
                       "WHERE id = $1 AND revoked_at IS NULL",
                       1, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    if (strcmp(PQcmdTuples(res), "1") == 0) {
        printf("revoked %s\n", key_id);
        rc = 0;
        goto done;
    }
    PQclear(res);
    res = keel_db_exec(db, "SELECT 1 FROM api_keys WHERE id = $1", 1, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        fprintf(stderr, "keelctl %s: no API key with id '%s' (see `keelctl apikey list`)\n", what,
                key_id);
        goto done;
    }
    /* Revoking twice is what an operator retrying a command does: not an error. */
    printf("revoked %s (it was revoked already)\n", key_id);
    rc = 0;
done:
    PQclear(res);
    keel_db_free(db);
    db = NULL;
    return rc;
}

/* The rotation in one transaction: the old key (locked) must still be usable; the new one
 * inherits its merchant and limit; the old one ends now or after the grace period. */
typedef struct apikey_rotation {
    const char *old_id;
    const char *grace;
    const apikey_new *k;
    char merchant[MERCHANTS_ID_MAX + 1];
    bool unusable;
} apikey_rotation;

static keel_result apikey_rotate_body(keel_db *db, void *arg)
{
    apikey_rotation *rot = arg;
    const char *old_params[1] = {rot->old_id};
    PGresult *res;
    keel_result r;

    rot->unusable = false;
    res = keel_db_exec(db,
                       "SELECT merchant_id FROM api_keys WHERE id = $1 AND revoked_at IS NULL "
                       "AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE",
                       1, old_params);
    r = keel_db_check(db, res, "locking the key to rotate");
    if (r == KEEL_OK && PQntuples(res) != 1) {
        rot->unusable = true;
        r = KEEL_ERR_NOT_FOUND;
    }
    if (r == KEEL_OK) {
        snprintf(rot->merchant, sizeof(rot->merchant), "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    if (r != KEEL_OK) {
        return r;
    }
    const char *new_params[4] = {rot->k->id, rot->k->hash, rot->k->prefix, rot->old_id};
    res = keel_db_exec(db,
                       "INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix, "
                       "rate_limit_per_s, rate_limit_burst) SELECT $1, merchant_id, $2, $3, "
                       "rate_limit_per_s, rate_limit_burst FROM api_keys WHERE id = $4",
                       4, new_params);
    r = keel_db_check(db, res, "inserting the new key");
    PQclear(res);
    if (r != KEEL_OK) {
        return r;
    }
    /* A grace of 0 revokes at once; otherwise the old key expires when the grace ends. */
    const char *end_params[3] = {rot->old_id, rot->grace, rot->k->id};
    res = keel_db_exec(db,
                       "UPDATE api_keys SET replaced_by = $3, "
                       "revoked_at = CASE WHEN $2::bigint = 0 THEN now() END, "
                       "expires_at = CASE WHEN $2::bigint > 0 "
                       "THEN now() + $2::bigint * interval '1 second' END WHERE id = $1",
                       3, end_params);
    r = keel_db_check(db, res, "ending the old key");
    PQclear(res);
    return r;
}

static int apikey_rotate(int argc, char **argv)
{
    const char *what = "apikey rotate";
    const char *key_id = NULL;
    const char *grace_text = NULL;
    merchants_opt opts[] = {{"--key-id", &key_id}, {"--grace", &grace_text}};
    double grace = 0;
    char grace_s[32];
    apikey_new k;
    apikey_rotation rot;
    keel_db *db = NULL;
    keel_result r;
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    memset(&k, 0, sizeof(k));
    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (!merchants_require(what, "--key-id", key_id) ||
        apikey_number(what, "--grace", grace_text, 0, 31536000, &grace) != 0) {
        goto done;
    }
    rc = 1;
    if (!apikey_generate(what, &k)) {
        goto done;
    }
    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    snprintf(grace_s, sizeof(grace_s), "%.0f", grace);
    memset(&rot, 0, sizeof(rot));
    rot.old_id = key_id;
    rot.grace = grace_s;
    rot.k = &k;
    r = keel_db_transaction(db, NULL, apikey_rotate_body, &rot, NULL);
    if (rot.unusable) {
        fprintf(stderr,
                "keelctl %s: no usable API key with id '%s' (it does not exist, is revoked or "
                "has expired; create a new one with `keelctl apikey create`)\n",
                what, key_id);
        goto done;
    }
    if (r != KEEL_OK) {
        fprintf(stderr,
                "keelctl %s: the rotation was not saved (%s; see the log above); both "
                "keys are as they were\n",
                what, keel_result_name(r));
        goto done;
    }
    apikey_announce(what, &k, rot.merchant);
    if (grace > 0) {
        fprintf(stderr, "keelctl %s: %s keeps working for %s seconds, then expires\n", what, key_id,
                grace_s);
    } else {
        fprintf(stderr, "keelctl %s: %s is revoked\n", what, key_id);
    }
    rc = 0;
done:
    OPENSSL_cleanse(&k, sizeof(k));
    keel_db_free(db);
    db = NULL;
    return rc;
}

static int apikey_limit(int argc, char **argv)
{
    const char *what = "apikey limit";
    const char *key_id = NULL;
    const char *rate_text = NULL;
    const char *burst_text = NULL;
    const char *default_flag = NULL;
    merchants_opt opts[] = {{"--key-id", &key_id},
                            {"--rate-limit", &rate_text},
                            {"--burst", &burst_text},
                            {"--default", &default_flag}};
    double rate = 0;
    double burst = 0;
    char rate_s[32];
    char burst_s[32];
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc;

    /* --default takes no value: give the parser one to keep its "--name value" rule. */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--default") == 0) {
            argv[i] = (char *)"--default=yes";
        }
    }
    rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));
    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (!merchants_require(what, "--key-id", key_id) ||
        apikey_limit_options(what, rate_text, burst_text, &rate, &burst) != 0) {
        goto done;
    }
    if ((rate_text == NULL) == (default_flag == NULL)) {
        fprintf(stderr, "keelctl %s: give either --rate-limit R --burst B or --default\n", what);
        goto done;
    }
    rc = 1;
    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    snprintf(rate_s, sizeof(rate_s), "%.17g", rate);
    snprintf(burst_s, sizeof(burst_s), "%.17g", burst);
    const char *params[3] = {key_id, rate_text != NULL ? rate_s : NULL,
                             rate_text != NULL ? burst_s : NULL};
    res = keel_db_exec(db,
                       "UPDATE api_keys SET rate_limit_per_s = $2::float8, "
                       "rate_limit_burst = $3::float8 WHERE id = $1",
                       3, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr, "keelctl %s: no API key with id '%s' (see `keelctl apikey list`)\n", what,
                key_id);
        goto done;
    }
    if (rate_text != NULL) {
        printf("%s: %s requests per second, bursts of %s\n", key_id, rate_s, burst_s);
    } else {
        printf("%s: the gateway's default limit\n", key_id);
    }
    rc = 0;
done:
    PQclear(res);
    keel_db_free(db);
    db = NULL;
    return rc;
}

static int apikey_list(int argc, char **argv)
{
    const char *what = "apikey list";
    const char *merchant = NULL;
    merchants_opt opts[] = {{"--merchant", &merchant}};
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (!merchants_require(what, "--merchant", merchant)) {
        goto done;
    }
    rc = 1;
    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    const char *params[1] = {merchant};
    res = keel_db_exec(db, "SELECT 1 FROM merchants WHERE id = $1", 1, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        fprintf(stderr, "keelctl %s: no merchant with id '%s'\n", what, merchant);
        goto done;
    }
    PQclear(res);
    /* The secret is never selected: the table does not hold it. */
    res = keel_db_exec(
        db,
        "SELECT id, key_prefix, "
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
        "coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), "
        "coalesce(rate_limit_per_s || '/s burst ' || rate_limit_burst, 'default') "
        "FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id",
        1, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    printf("%-36s  %-12s  %-20s  %-20s  %-20s  %s\n", "KEY ID", "PREFIX", "CREATED", "EXPIRES",
           "REVOKED", "RATE LIMIT");
    for (int i = 0; i < PQntuples(res); i++) {
        printf("%-36s  %-12s  %-20s  %-20s  %-20s  %s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
    }
    rc = 0;
done:
    PQclear(res);
    keel_db_free(db);
    db = NULL;
    return rc;
}

int keelctl_merchant_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        merchant_usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "create") == 0 || strcmp(argv[1], "update") == 0)) {
        if (merchants_wants_help(argc, argv)) {
            merchant_usage(stdout);
            return 0;
        }
        return strcmp(argv[1], "create") == 0 ? merchant_create(argc, argv)
                                              : merchant_update(argc, argv);
    }
    if (argc >= 2) {
        fprintf(stderr, "keelctl merchant: unknown command '%s'\n\n", argv[1]);
    }
    merchant_usage(stderr);
    return 2;
}

int keelctl_apikey_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {{"create", apikey_create},
                    {"revoke", apikey_revoke},
                    {"list", apikey_list},
                    {"rotate", apikey_rotate},
                    {"limit", apikey_limit}};

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        apikey_usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (merchants_wants_help(argc, argv)) {
                apikey_usage(stdout);
                return 0;
            }
            return commands[i].run(argc, argv);
        }
    }
    if (argc >= 2) {
        fprintf(stderr, "keelctl apikey: unknown command '%s'\n\n", argv[1]);
    }
    apikey_usage(stderr);
    return 2;
}
