/* bench-outbox-drain: fills a service's outbox with N rows in one transaction and times its
 * running relay until the outbox is empty again (every row published and acknowledged). */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_msg.h"
#include "bench_util.h"

#define OD_MAX_ROWS 5000000
#define OD_POLL_NS (5 * 1000 * 1000)

static const char usage_text[] =
    "usage: bench-outbox-drain --topic T [--rows N] [--timeout-s S] [--csv FILE]\n"
    "Inserts N rows (default 10000) into the outbox table of the database named by the\n"
    "libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD: superuser or the\n"
    "service's own role) in one transaction, with the relay's wake-up NOTIFY, then counts the\n"
    "rows left every 5 ms until none is (or S seconds, default 120, pass). Rows carry the\n"
    "same key length, payload and CloudEvents columns the gateway writes, for topic T.\n"
    "The outbox must be empty at the start. --csv writes the drain curve (seconds,rows left).\n"
    "Prints one line of key=value results on stdout.\n";

/* What the relay needs to publish a row, as the gateway fills it: a payment id key, a packed
 * PaymentRequested, a unique ce_id, the gateway's source and type, a time and a
 * traceparent. NOTIFY wakes the relay as the gateway's commit does. */
static const char SQL_FILL[] =
    "WITH ins AS (INSERT INTO outbox (topic, message_key, payload, ce_id, ce_source, ce_type, "
    "ce_time, traceparent) "
    "SELECT $1, 'pay_' || lpad(to_hex(i), 32, '0'), $2::bytea, $3 || i, '/keel/gateway', "
    "'keel.v1.PaymentRequested', now(), "
    "'00-' || md5(i::text) || '-' || substr(md5('span' || i), 1, 16) || '-01' "
    "FROM generate_series(1, $4::int) AS i RETURNING 1) "
    "SELECT count(*), pg_notify('keel_outbox', '') FROM ins";

static long long od_count(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT count(*) FROM outbox");
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        n = atoll(PQgetvalue(res, 0, 0));
    } else {
        fprintf(stderr, "bench-outbox-drain: counting outbox rows: %s", PQerrorMessage(conn));
    }
    PQclear(res);
    return n;
}

static bool od_exec_ok(PGconn *conn, PGresult *res, ExecStatusType want, const char *what)
{
    if (PQresultStatus(res) != want) {
        fprintf(stderr, "bench-outbox-drain: %s: %s", what, PQerrorMessage(conn));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"topic", required_argument, NULL, 't'},
        {"rows", required_argument, NULL, 'n'},
        {"timeout-s", required_argument, NULL, 'T'},
        {"csv", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *topic = NULL;
    const char *csv_path = NULL;
    int64_t rows = 10000;
    int64_t timeout_s = 120;
    PGconn *conn = NULL;
    PGresult *res = NULL;
    FILE *csv = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    int exit_code = 1;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 't':
            topic = optarg;
            break;
        case 'n':
            ok = bench_parse_i64(optarg, 1, OD_MAX_ROWS, &rows);
            break;
        case 'T':
            ok = bench_parse_i64(optarg, 1, 3600, &timeout_s);
            break;
        case 'c':
            csv_path = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "bench-outbox-drain: bad value for %s\n%s", argv[optind - 1],
                    usage_text);
            return 2;
        }
    }
    if (topic == NULL || optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    /* Only this machine's databases: a host, when one is named, must be loopback or a
     * socket directory. */
    const char *host = getenv("PGHOST");
    if (host != NULL && host[0] != '\0' && host[0] != '/' &&
        !bench_host_is_loopback(host, strlen(host))) {
        fprintf(stderr, "bench-outbox-drain: PGHOST=%s is not on this machine\n", host);
        return 2;
    }
    conn = PQconnectdb("connect_timeout=10 application_name=bench-outbox-drain");
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "bench-outbox-drain: cannot connect: %s", PQerrorMessage(conn));
        goto done;
    }
    long long left = od_count(conn);
    if (left != 0) {
        if (left > 0) {
            fprintf(stderr,
                    "bench-outbox-drain: the outbox already holds %lld rows; wait until the "
                    "relay drained them (or the relay is not running)\n",
                    left);
        }
        goto done;
    }
    payload = bench_msg_payload(&payload_len);
    if (payload == NULL) {
        fprintf(stderr, "bench-outbox-drain: out of memory\n");
        goto done;
    }
    if (csv_path != NULL) {
        csv = fopen(csv_path, "w");
        if (csv == NULL) {
            perror(csv_path);
            goto done;
        }
        fprintf(csv, "seconds,rows_left\n");
    }
    char rows_text[24];
    char prefix[64];
    snprintf(rows_text, sizeof(rows_text), "%lld", (long long)rows);
    snprintf(prefix, sizeof(prefix), "bench-drain-%d-%lld-", (int)getpid(), (long long)time(NULL));
    const char *params[4] = {topic, (const char *)payload, prefix, rows_text};
    const int lengths[4] = {0, (int)payload_len, 0, 0};
    const int formats[4] = {0, 1, 0, 0};

    int64_t fill_start = bench_now_ns();
    res = PQexec(conn, "BEGIN");
    if (!od_exec_ok(conn, res, PGRES_COMMAND_OK, "BEGIN")) {
        goto done;
    }
    PQclear(res);
    res = PQexecParams(conn, SQL_FILL, 4, NULL, params, lengths, formats, 0);
    if (!od_exec_ok(conn, res, PGRES_TUPLES_OK, "filling the outbox")) {
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    if (!od_exec_ok(conn, res, PGRES_COMMAND_OK, "COMMIT")) {
        goto done;
    }
    PQclear(res);
    res = NULL;
    /* The clock starts at the commit: from then on every row is visible to the relay. */
    int64_t start = bench_now_ns();
    double fill_s = (double)(start - fill_start) / 1e9;
    int64_t deadline = start + timeout_s * 1000000000LL;
    int64_t first_gone_ns = 0;
    for (;;) {
        left = od_count(conn);
        int64_t now = bench_now_ns();
        if (left < 0) {
            goto done;
        }
        if (csv != NULL) {
            fprintf(csv, "%.4f,%lld\n", (double)(now - start) / 1e9, left);
        }
        if (first_gone_ns == 0 && left < rows) {
            first_gone_ns = now;
        }
        if (left == 0) {
            double secs = (double)(now - start) / 1e9;
            printf("rows=%lld payload_bytes=%zu fill_s=%.3f first_batch_s=%.3f drain_s=%.3f "
                   "rows_per_s=%.1f\n",
                   (long long)rows, payload_len, fill_s, (double)(first_gone_ns - start) / 1e9,
                   secs, secs > 0 ? (double)rows / secs : 0.0);
            exit_code = 0;
            break;
        }
        if (now >= deadline) {
            fprintf(stderr,
                    "bench-outbox-drain: %lld of %lld rows still in the outbox after %lld s; is "
                    "the relay running and the topic %s there?\n",
                    left, (long long)rows, (long long)timeout_s, topic);
            break;
        }
        struct timespec ts = {0, OD_POLL_NS};
        nanosleep(&ts, NULL);
    }
done:
    PQclear(res);
    res = NULL;
    if (csv != NULL && fclose(csv) != 0) {
        exit_code = 1;
    }
    csv = NULL;
    PQfinish(conn);
    conn = NULL;
    free(payload);
    payload = NULL;
    return exit_code;
}
