/* The periodic ledger audit behind the keel_ledger_audit_failures gauge. */
#include "audit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"

#define AUDIT_CONNECT_TIMEOUT_MS 5000
#define AUDIT_TICK_MS 200

struct ledger_auditor {
    keel_db *db;
    int64_t interval_ms;
    pthread_t thread;
    atomic_bool stop;
    keel_metric *failures;
    keel_metric *runs_ok;
    keel_metric *runs_failures;
    keel_metric *runs_error;
};

keel_result ledger_audit_count(keel_db *db, int64_t *failures)
{
    PGresult *res = keel_db_exec(db, "SELECT count(*) FROM ledger_audit()", 0, NULL);
    keel_result r = keel_db_check(db, res, "running ledger_audit()");
    if (r == KEEL_OK) {
        *failures = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    PQclear(res);
    return r;
}

static void auditor_run_once(ledger_auditor *a)
{
    int64_t failures = 0;
    keel_result r = keel_db_connect(a->db, AUDIT_CONNECT_TIMEOUT_MS);

    if (r == KEEL_OK) {
        r = ledger_audit_count(a->db, &failures);
    }
    if (r != KEEL_OK) {
        /* The gauge keeps its last verdict: an unreachable database proves nothing. */
        keel_metric_inc(a->runs_error);
        keel_log_warn("ledger audit could not run (%s); will try again", keel_result_name(r));
        return;
    }
    keel_metric_set(a->failures, (double)failures);
    if (failures > 0) {
        keel_metric_inc(a->runs_failures);
        keel_log_error("ledger audit found %" PRId64 " violation(s); run `keelctl audit` to see "
                       "them",
                       failures);
    } else {
        keel_metric_inc(a->runs_ok);
    }
}

static void *auditor_main(void *arg)
{
    ledger_auditor *a = arg;

    while (!atomic_load(&a->stop) && !keel_shutdown_requested()) {
        auditor_run_once(a);
        /* Sleep in short ticks so a stop is noticed quickly. */
        for (int64_t waited = 0; waited < a->interval_ms && !atomic_load(&a->stop);
             waited += AUDIT_TICK_MS) {
            if (keel_shutdown_wait_ms(AUDIT_TICK_MS)) {
                return NULL;
            }
        }
    }
    return NULL;
}

ledger_auditor *ledger_auditor_start(const char *conninfo, const char *password,
                                     int64_t interval_ms)
{
    keel_metrics *m = keel_metrics_default();
    static const char runs_help[] = "Runs of the ledger audit, by result";
    ledger_auditor *a = calloc(1, sizeof(*a));

    if (a == NULL) {
        return NULL;
    }
    a->interval_ms = interval_ms;
    a->db = keel_db_new(conninfo, password, "keel-ledger-audit");
    a->failures = keel_metrics_gauge(
        m, "keel_ledger_audit_failures",
        "Violations found by the last ledger audit (unbalanced transactions, balances that "
        "differ from their lines, events not posted exactly once); 0 when the books add up",
        NULL);
    a->runs_ok =
        keel_metrics_counter(m, "keel_ledger_audit_runs_total", runs_help, "result=\"ok\"");
    a->runs_failures =
        keel_metrics_counter(m, "keel_ledger_audit_runs_total", runs_help, "result=\"failures\"");
    a->runs_error =
        keel_metrics_counter(m, "keel_ledger_audit_runs_total", runs_help, "result=\"error\"");
    atomic_init(&a->stop, false);
    if (a->db == NULL || pthread_create(&a->thread, NULL, auditor_main, a) != 0) {
        keel_db_free(a->db);
        free(a);
        return NULL;
    }
    return a;
}

void ledger_auditor_stop(ledger_auditor *a)
{
    if (a == NULL) {
        return;
    }
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    keel_db_free(a->db);
    a->db = NULL;
    free(a);
}
