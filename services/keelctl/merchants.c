/* keelctl merchant / apikey: merchants and their API keys in the gateway's database. Secrets
 * are printed once and stored only as SHA-256; keelctl never applies migrations. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "commands.h"
#include "keel/config.h"
#include "keel/db.h"
#include "keel/id.h"
#include "keel/log.h"

#define MERCHANTS_CONNECT_TIMEOUT_MS 10000
#define MERCHANTS_NAME_MAX 200
#define MERCHANTS_SECRET_PREFIX "sk_test_"
#define MERCHANTS_SECRET_RANDOM_BYTES 24 /* 48 hex digits */
#define MERCHANTS_KEY_PREFIX_LEN 12      /* what `apikey list` shows to tell keys apart */
#define MERCHANTS_ID_MAX 64

static const keel_config_spec merchants_specs[] = {
    {"KEEL_DATABASE_URL", KEEL_CONFIG_STRING, NULL,
     "libpq URL of the gateway database (keel_gateway), without the password", false},
    {"KEEL_DATABASE_PASSWORD", KEEL_CONFIG_STRING, "",
     "password of its role (or KEEL_DATABASE_PASSWORD_FILE)", true},
};

static void merchant_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl merchant create --name NAME [--time-zone TZ]\n"
            "\n"
            "create  adds a merchant and prints its id (mer_...) on stdout\n"
            "  --name NAME       1 to 200 characters\n"
            "  --time-zone TZ    IANA time zone of the merchant's business day, default UTC\n"
            "\n"
            "Database: KEEL_DATABASE_URL and KEEL_DATABASE_PASSWORD[_FILE] of keel-gateway.\n");
}

static void apikey_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl apikey create --merchant MERCHANT_ID\n"
            "       keelctl apikey revoke --key-id KEY_ID\n"
            "       keelctl apikey list --merchant MERCHANT_ID\n"
            "\n"
            "create  makes a secret key and prints it on stdout; it is shown only this once\n"
            "        (only its SHA-256 is stored)\n"
            "revoke  stops a key from authenticating, at once and for good\n"
            "list    prints a merchant's keys (id, prefix, created, revoked), never secrets\n"
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

static int merchant_create(int argc, char **argv)
{
    const char *what = "merchant create";
    const char *name = NULL;
    const char *tz = "UTC";
    merchants_opt opts[] = {{"--name", &name}, {"--time-zone", &tz}};
    char id[48];
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc = merchants_parse(argc, argv, what, opts, sizeof(opts) / sizeof(opts[0]));

    if (rc != 0) {
        goto done;
    }
    rc = 2;
    if (name == NULL || name[0] == '\0' || strlen(name) > MERCHANTS_NAME_MAX) {
        fprintf(stderr, "keelctl %s: --name is required, 1 to %d characters\n", what,
                MERCHANTS_NAME_MAX);
        goto done;
    }
    if (tz[0] == '\0') {
        fprintf(stderr, "keelctl %s: --time-zone must not be empty\n", what);
        goto done;
    }
    rc = 1;
    db = merchants_connect(what);
    if (db == NULL || !merchants_time_zone_known(what, db, tz)) {
        goto done;
    }
    keel_id_new("mer_", id, sizeof(id));
    const char *params[3] = {id, name, tz};
    res = keel_db_exec(db, "INSERT INTO merchants (id, name, time_zone) VALUES ($1, $2, $3)", 3,
                       params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    printf("%s\n", id);
    rc = 0;
done:
    PQclear(res);
    keel_db_free(db);
    db = NULL;
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

static int apikey_create(int argc, char **argv)
{
    static const char hex[] = "0123456789abcdef";
    const char *what = "apikey create";
    const char *merchant = NULL;
    merchants_opt opts[] = {{"--merchant", &merchant}};
    unsigned char random[MERCHANTS_SECRET_RANDOM_BYTES];
    char secret[sizeof(MERCHANTS_SECRET_PREFIX) + 2 * MERCHANTS_SECRET_RANDOM_BYTES];
    char hash[65];
    char prefix[MERCHANTS_KEY_PREFIX_LEN + 1];
    char key_id[48];
    size_t off = sizeof(MERCHANTS_SECRET_PREFIX) - 1;
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
    if (!merchants_random(random, sizeof(random))) {
        fprintf(stderr, "keelctl %s: getrandom failed: %s\n", what, strerror(errno));
        goto done;
    }
    memcpy(secret, MERCHANTS_SECRET_PREFIX, off);
    for (size_t i = 0; i < sizeof(random); i++) {
        secret[off + 2 * i] = hex[random[i] >> 4];
        secret[off + 2 * i + 1] = hex[random[i] & 0x0f];
    }
    secret[off + 2 * sizeof(random)] = '\0';
    if (!merchants_sha256_hex(secret, hash)) {
        fprintf(stderr, "keelctl %s: SHA-256 failed inside libcrypto\n", what);
        goto done;
    }
    memcpy(prefix, secret, MERCHANTS_KEY_PREFIX_LEN);
    prefix[MERCHANTS_KEY_PREFIX_LEN] = '\0';
    keel_id_new("key_", key_id, sizeof(key_id));

    db = merchants_connect(what);
    if (db == NULL) {
        goto done;
    }
    const char *params[4] = {key_id, merchant, hash, prefix};
    res = keel_db_exec(db,
                       "INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix) "
                       "VALUES ($1, $2, $3, $4)",
                       4, params);
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
    printf("%s\n", secret);
    fflush(stdout);
    fprintf(stderr,
            "created API key %s (prefix %s) for %s; the secret above is not stored "
            "and is shown only this once\n",
            key_id, prefix, merchant);
    rc = 0;
done:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(random, sizeof(random));
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
        "coalesce(to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-') "
        "FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id",
        1, params);
    if (!merchants_ok(what, res)) {
        goto done;
    }
    printf("%-36s  %-12s  %-20s  %s\n", "KEY ID", "PREFIX", "CREATED", "REVOKED");
    for (int i = 0; i < PQntuples(res); i++) {
        printf("%-36s  %-12s  %-20s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
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
    if (argc >= 2 && strcmp(argv[1], "create") == 0) {
        if (merchants_wants_help(argc, argv)) {
            merchant_usage(stdout);
            return 0;
        }
        return merchant_create(argc, argv);
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
    } commands[] = {{"create", apikey_create}, {"revoke", apikey_revoke}, {"list", apikey_list}};

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
