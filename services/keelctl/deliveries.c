/* keelctl deliveries: webhook deliveries in keel-notifier's database. Lists them (dead ones for
 * the operator's attention), shows one with its attempt log, and replays a dead one: the same
 * event id and bytes, a new schedule of attempts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "keel/config.h"
#include "keel/db.h"

#define DELIVERIES_CONNECT_TIMEOUT_MS 10000
#define DELIVERIES_ID_MAX 64

static const keel_config_spec deliveries_specs[] = {
    {"KEEL_NOTIFIER_DATABASE_URL", KEEL_CONFIG_STRING, NULL,
     "libpq URL of the notifier database (keel_notifier), without the password", false},
    {"KEEL_NOTIFIER_DATABASE_PASSWORD", KEEL_CONFIG_STRING, "",
     "password of its role (or KEEL_NOTIFIER_DATABASE_PASSWORD_FILE)", true},
};

static void deliveries_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl deliveries list [--dead] [--endpoint WE_ID] [--limit N]\n"
            "       keelctl deliveries show DELIVERY_ID\n"
            "       keelctl deliveries replay DELIVERY_ID [--enable-endpoint]\n"
            "\n"
            "list    prints deliveries, newest first (default 50): id, event, type, endpoint,\n"
            "        status, attempts, last HTTP status, last change, last error\n"
            "  --dead          only dead ones (out of attempts, or their endpoint went away)\n"
            "show    prints one delivery and every attempt made for it\n"
            "replay  makes a dead delivery pending again: the same event id and body, sent at\n"
            "        once and then on a fresh retry schedule\n"
            "  --enable-endpoint  also re-enables its endpoint when keel disabled it (410 Gone\n"
            "                     or failing too long), once the merchant fixed it\n"
            "\n"
            "Database: KEEL_NOTIFIER_DATABASE_URL and KEEL_NOTIFIER_DATABASE_PASSWORD[_FILE].\n");
}

/* Connects to the notifier database; on failure explains and returns NULL. */
static keel_db *deliveries_connect(const char *what)
{
    char err[512];
    keel_config *cfg = keel_config_load(
        deliveries_specs, sizeof(deliveries_specs) / sizeof(deliveries_specs[0]), err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "keelctl %s: %s\n", what, err);
        return NULL;
    }
    const char *password = keel_config_string(cfg, "KEEL_NOTIFIER_DATABASE_PASSWORD");
    keel_db *db = keel_db_new(keel_config_string(cfg, "KEEL_NOTIFIER_DATABASE_URL"),
                              password[0] != '\0' ? password : NULL, "keelctl-deliveries");
    keel_config_free(cfg); /* keel_db keeps its own copies */
    cfg = NULL;
    if (keel_db_connect(db, DELIVERIES_CONNECT_TIMEOUT_MS) != KEEL_OK) {
        fprintf(stderr,
                "keelctl %s: cannot connect to the notifier database within %d s; check "
                "KEEL_NOTIFIER_DATABASE_URL, the password and that PostgreSQL is running\n",
                what, DELIVERIES_CONNECT_TIMEOUT_MS / 1000);
        keel_db_free(db);
        return NULL;
    }
    return db;
}

/* True for a successful result; otherwise explains the failure on stderr. */
static bool deliveries_ok(const char *what, const PGresult *res)
{
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return true;
    }
    if (res == NULL) {
        fprintf(stderr, "keelctl %s: lost the database connection; try again\n", what);
        return false;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "42P01") == 0) {
        fprintf(stderr,
                "keelctl %s: the notifier's tables are missing; start keel-notifier once "
                "so it applies its migrations\n",
                what);
        return false;
    }
    fprintf(stderr, "keelctl %s: database error: %s", what, PQresultErrorMessage(res));
    return false;
}

/* Prints every row of res, columns separated by tabs, after a header line. */
static void deliveries_print(const PGresult *res)
{
    int cols = PQnfields(res);
    for (int c = 0; c < cols; c++) {
        printf("%s%c", PQfname(res, c), c + 1 < cols ? '\t' : '\n');
    }
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < cols; c++) {
            const char *v = PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c);
            /* One line per row: an error text never breaks the table. */
            for (const char *p = v; *p != '\0'; p++) {
                putchar(*p == '\n' || *p == '\t' ? ' ' : *p);
            }
            putchar(c + 1 < cols ? '\t' : '\n');
        }
    }
}

static bool deliveries_id_ok(const char *what, const char *id)
{
    if (id == NULL || id[0] == '\0' || id[0] == '-') {
        fprintf(stderr, "keelctl %s: a delivery id (whd_...) is required (see --help)\n", what);
        return false;
    }
    if (strlen(id) > DELIVERIES_ID_MAX) {
        fprintf(stderr, "keelctl %s: '%.20s...' is longer than %d characters; no such delivery\n",
                what, id, DELIVERIES_ID_MAX);
        return false;
    }
    return true;
}

static int deliveries_list(int argc, char **argv)
{
    const char *what = "deliveries list";
    bool dead = false;
    const char *endpoint = NULL;
    long limit = 50;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dead") == 0) {
            dead = true;
        } else if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
            endpoint = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end = NULL;
            limit = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0' || limit < 1 || limit > 10000) {
                fprintf(stderr, "keelctl %s: --limit must be 1..10000\n", what);
                return 2;
            }
        } else {
            fprintf(stderr, "keelctl %s: unknown option or missing value '%s' (see --help)\n", what,
                    argv[i]);
            return 2;
        }
    }
    keel_db *db = deliveries_connect(what);
    if (db == NULL) {
        return 1;
    }
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    const char *params[] = {dead ? "dead" : NULL, endpoint, limit_text};
    PGresult *res = keel_db_exec(
        db,
        "SELECT d.id AS delivery, d.event_id AS event, e.type, d.endpoint_id AS endpoint, "
        "  d.status, d.attempts_total AS attempts, d.last_status, "
        "  to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated, "
        "  d.last_error "
        "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
        "WHERE ($1::text IS NULL OR d.status = $1) AND ($2::text IS NULL OR d.endpoint_id = $2) "
        "ORDER BY d.updated_at DESC, d.id LIMIT $3::integer",
        3, params);
    int rc = 1;
    if (deliveries_ok(what, res)) {
        deliveries_print(res);
        rc = 0;
    }
    PQclear(res);
    keel_db_free(db);
    return rc;
}

static int deliveries_show(int argc, char **argv)
{
    const char *what = "deliveries show";
    const char *id = argc >= 3 ? argv[2] : NULL;
    if (!deliveries_id_ok(what, id)) {
        return 2;
    }
    if (argc > 3) {
        fprintf(stderr, "keelctl %s: unexpected argument '%s' (see --help)\n", what, argv[3]);
        return 2;
    }
    keel_db *db = deliveries_connect(what);
    if (db == NULL) {
        return 1;
    }
    const char *params[] = {id};
    int rc = 1;
    PGresult *res = keel_db_exec(
        db,
        "SELECT d.id AS delivery, d.event_id AS event, e.type, d.endpoint_id AS endpoint, "
        "  ep.url, ep.status AS endpoint_status, d.status, d.attempts_total AS attempts, "
        "  d.replays, d.next_attempt_at, d.last_error "
        "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
        "  JOIN webhook_endpoints ep ON ep.id = d.endpoint_id WHERE d.id = $1",
        1, params);
    if (!deliveries_ok(what, res)) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        fprintf(stderr, "keelctl %s: no delivery %s\n", what, id);
        goto done;
    }
    deliveries_print(res);
    PQclear(res);
    res = keel_db_exec(db,
                       "SELECT attempt, started_at, duration_ms, address, http_status, outcome, "
                       "  error FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
                       1, params);
    if (deliveries_ok(what, res)) {
        printf("\n");
        deliveries_print(res);
        rc = 0;
    }
done:
    PQclear(res);
    keel_db_free(db);
    return rc;
}

/* What a replay found and did, for the message. */
typedef struct replay_tx {
    const char *id;
    bool enable_endpoint;
    char problem[400]; /* set when the replay must not happen */
    char event[64];
    char endpoint[64];
} replay_tx;

static keel_result replay_body(keel_db *db, void *arg)
{
    replay_tx *tx = arg;
    const char *params[] = {tx->id};
    keel_result rc;
    tx->problem[0] = '\0';
    PGresult *res = keel_db_exec(
        db,
        "SELECT d.status, d.event_id, d.endpoint_id, ep.status, ep.deleted_at IS NOT NULL, "
        "  coalesce(ep.disabled_reason, '') "
        "FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id "
        "WHERE d.id = $1 FOR UPDATE OF d, ep",
        1, params);
    rc = keel_db_check(db, res, "reading the delivery to replay");
    if (rc != KEEL_OK) {
        goto done;
    }
    if (PQntuples(res) == 0) {
        snprintf(tx->problem, sizeof(tx->problem), "no delivery %s", tx->id);
        goto done;
    }
    snprintf(tx->event, sizeof(tx->event), "%s", PQgetvalue(res, 0, 1));
    snprintf(tx->endpoint, sizeof(tx->endpoint), "%s", PQgetvalue(res, 0, 2));
    if (strcmp(PQgetvalue(res, 0, 0), "dead") != 0) {
        snprintf(tx->problem, sizeof(tx->problem),
                 "delivery %s is %s; only dead deliveries are replayed", tx->id,
                 PQgetvalue(res, 0, 0));
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 4), "t") == 0) {
        snprintf(tx->problem, sizeof(tx->problem),
                 "endpoint %s was deleted by its merchant; there is nowhere to send it",
                 tx->endpoint);
        goto done;
    }
    bool disabled = strcmp(PQgetvalue(res, 0, 3), "enabled") != 0;
    if (disabled && !tx->enable_endpoint) {
        snprintf(tx->problem, sizeof(tx->problem),
                 "endpoint %s is disabled (%.200s); once the merchant fixed it, replay with "
                 "--enable-endpoint",
                 tx->endpoint, PQgetvalue(res, 0, 5));
        goto done;
    }
    PQclear(res);
    res = NULL;
    if (disabled) {
        const char *ep_params[] = {tx->endpoint};
        res = keel_db_exec(db,
                           "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = "
                           "NULL, disabled_at = NULL, failing_since = NULL, updated_at = now() "
                           "WHERE id = $1",
                           1, ep_params);
        rc = keel_db_check(db, res, "re-enabling the endpoint");
        PQclear(res);
        res = NULL;
        if (rc != KEEL_OK) {
            goto done;
        }
    }
    res = keel_db_exec(db,
                       "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                       "  replays = replays + 1, next_attempt_at = now(), lease_owner = NULL, "
                       "  lease_until = NULL, completed_at = NULL, updated_at = now(), "
                       "  last_error = 'replayed by an operator after: ' || "
                       "    coalesce(last_error, 'no error') "
                       "WHERE id = $1 AND status = 'dead'",
                       1, params);
    rc = keel_db_check(db, res, "making the delivery pending again");
done:
    PQclear(res);
    return rc;
}

static int deliveries_replay(int argc, char **argv)
{
    const char *what = "deliveries replay";
    replay_tx tx = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--enable-endpoint") == 0) {
            tx.enable_endpoint = true;
        } else if (tx.id == NULL && argv[i][0] != '-') {
            tx.id = argv[i];
        } else {
            fprintf(stderr, "keelctl %s: unexpected argument '%s' (see --help)\n", what, argv[i]);
            return 2;
        }
    }
    if (!deliveries_id_ok(what, tx.id)) {
        return 2;
    }
    keel_db *db = deliveries_connect(what);
    if (db == NULL) {
        return 1;
    }
    keel_result r = keel_db_transaction(db, NULL, replay_body, &tx, NULL);
    keel_db_free(db);
    if (r != KEEL_OK) {
        fprintf(stderr, "keelctl %s: the database failed (%s); nothing changed, try again\n", what,
                keel_result_name(r));
        return 1;
    }
    if (tx.problem[0] != '\0') {
        fprintf(stderr, "keelctl %s: %s\n", what, tx.problem);
        return 1;
    }
    printf("delivery %s (event %s) to endpoint %s is pending again%s; keel-notifier sends it "
           "within its poll interval\n",
           tx.id, tx.event, tx.endpoint, tx.enable_endpoint ? " (endpoint enabled)" : "");
    return 0;
}

int keelctl_deliveries_main(int argc, char **argv)
{
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    if (cmd == NULL) {
        deliveries_usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            deliveries_usage(stdout);
            return 0;
        }
    }
    if (strcmp(cmd, "list") == 0) {
        return deliveries_list(argc, argv);
    }
    if (strcmp(cmd, "show") == 0) {
        return deliveries_show(argc, argv);
    }
    if (strcmp(cmd, "replay") == 0) {
        return deliveries_replay(argc, argv);
    }
    fprintf(stderr, "keelctl deliveries: unknown command '%s'\n\n", cmd);
    deliveries_usage(stderr);
    return 2;
}
