/* keelctl audit: checks the ledger's books (ledger_audit() in keel_ledger) and exits non-zero
 * when they do not add up. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "keel/config.h"
#include "keel/db.h"

#define AUDIT_CONNECT_TIMEOUT_MS 10000

static const keel_config_spec audit_specs[] = {
    {"KEEL_LEDGER_DATABASE_URL", KEEL_CONFIG_STRING, NULL,
     "libpq URL of the ledger database (keel_ledger), without the password", false},
    {"KEEL_LEDGER_DATABASE_PASSWORD", KEEL_CONFIG_STRING, "",
     "password of its role (or KEEL_LEDGER_DATABASE_PASSWORD_FILE)", true},
};

static void audit_usage(FILE *out)
{
    fprintf(out,
            "usage: keelctl audit\n"
            "\n"
            "Checks the ledger's books and prints every violation:\n"
            "  - the lines of each journal transaction sum to zero per currency, and so do all\n"
            "    lines together;\n"
            "  - each account's balance equals the sum of its lines;\n"
            "  - each payment or refund event was posted exactly once (never twice, and every\n"
            "    event the ledger claimed was posted or recorded as a duplicate).\n"
            "Exit status: 0 when the books add up, 1 on any violation or error, 2 usage error.\n"
            "\n"
            "Database: KEEL_LEDGER_DATABASE_URL and KEEL_LEDGER_DATABASE_PASSWORD[_FILE].\n");
}

/* Prints what the journal holds, so "ok" visibly covered something. */
static void audit_print_totals(keel_db *db)
{
    PGresult *res = keel_db_exec(db,
                                 "SELECT (SELECT count(*) FROM journal_transactions), "
                                 "(SELECT count(*) FROM journal_lines), "
                                 "(SELECT count(*) FROM accounts)",
                                 0, NULL);
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        printf("checked %s journal transactions, %s lines, %s accounts\n", PQgetvalue(res, 0, 0),
               PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    }
    PQclear(res);
}

static int audit_run(void)
{
    char err[512];
    keel_config *cfg = keel_config_load(audit_specs, sizeof(audit_specs) / sizeof(audit_specs[0]),
                                        err, sizeof(err));
    keel_db *db = NULL;
    PGresult *res = NULL;
    int rc = 1;

    if (cfg == NULL) {
        fprintf(stderr, "keelctl audit: %s\n", err);
        return 2;
    }
    const char *password = keel_config_string(cfg, "KEEL_LEDGER_DATABASE_PASSWORD");
    db = keel_db_new(keel_config_string(cfg, "KEEL_LEDGER_DATABASE_URL"),
                     password[0] != '\0' ? password : NULL, "keelctl-audit");
    keel_config_free(cfg); /* keel_db keeps its own copies */
    cfg = NULL;
    if (keel_db_connect(db, AUDIT_CONNECT_TIMEOUT_MS) != KEEL_OK) {
        fprintf(stderr,
                "keelctl audit: cannot connect to the ledger database within %d s; check "
                "KEEL_LEDGER_DATABASE_URL, the password and that PostgreSQL is running\n",
                AUDIT_CONNECT_TIMEOUT_MS / 1000);
        goto done;
    }
    /* One snapshot for every check, so postings arriving meanwhile cannot fake a mismatch. */
    res = keel_db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
    PQclear(res);
    res = keel_db_exec(db,
                       "SELECT check_name, subject, detail FROM ledger_audit() "
                       "ORDER BY check_name, subject",
                       0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state != NULL && strcmp(state, "42883") == 0) {
            fprintf(stderr, "keelctl audit: the ledger's tables are missing; start keel-ledger "
                            "once so it applies its migrations\n");
        } else {
            fprintf(stderr, "keelctl audit: %s",
                    res != NULL ? PQresultErrorMessage(res) : "lost the database connection\n");
        }
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        printf("FAIL %-26s %s: %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2));
    }
    audit_print_totals(db);
    if (PQntuples(res) > 0) {
        printf("ledger audit: %d violation(s)\n", PQntuples(res));
        goto done;
    }
    printf("ledger audit: ok\n");
    rc = 0;
done:
    PQclear(res);
    keel_db_free(db);
    db = NULL;
    return rc;
}

int keelctl_audit_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
                      strcmp(argv[1], "help") == 0)) {
        audit_usage(stdout);
        return 0;
    }
    if (argc >= 2) {
        fprintf(stderr, "keelctl audit: unexpected argument '%s'\n\n", argv[1]);
        audit_usage(stderr);
        return 2;
    }
    return audit_run();
}
