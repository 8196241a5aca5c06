/* bench-print-sql: prints the statements one POST /v1/payments runs as a pgbench script,
 * taken from the gateway's and libkeel's own SQL constants (payment_sql.h, keel/outbox.h),
 * so the database yardstick of bench/run.sh cannot drift from what the gateway runs. */
#include <ctype.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_msg.h"
#include "keel/clock.h"
#include "keel/outbox.h"
#include "payment_sql.h"

/* pgbench's rows are told apart from real ones by these, and removed after the run. */
#define PS_MERCHANT "mer_00000000000000000000000000bench0"
#define PS_SOURCE "/bench/pgbench"
#define PS_TOPIC "bench.relay.v1"

static const char usage_text[] =
    "usage: bench-print-sql --pgbench [--pipeline]\n"
    "       bench-print-sql --pgbench-vars [--response-file FILE]\n"
    "       bench-print-sql --pgbench-cleanup\n"
    "       bench-print-sql --list\n"
    "--pgbench          the pgbench script of one new payment: the gateway's statements in\n"
    "                   its order, $n parameters as pgbench variables (use -M prepared)\n"
    "--pipeline         the same inside \\startpipeline ... \\endpipeline (pgbench >= 14)\n"
    "--pgbench-vars     name=value lines for pgbench -D: the values the statements take\n"
    "                   (the API key hash from KEEL_API_KEY, the recorded answer from FILE)\n"
    "--pgbench-cleanup  SQL that deletes the rows the pgbench script wrote\n"
    "--list             every statement, as the gateway sends it\n";

/* One step of the request: a statement with the pgbench variable of each $n, or a literal
 * command (BEGIN/COMMIT come from keel_db_transaction, not from a statement constant).
 * sync: the gateway waits for this step's result before the next one goes out in a separate
 * transaction, so a pipelined script ends its pipeline (one Sync, one commit) here. */
typedef struct ps_step {
    const char *what;
    const char *sql;
    const char *vars[12]; /* vars[i] is $<i+1>; NULL-terminated */
    bool sync;
} ps_step;

/* The statements of a POST that creates a payment, in the order payment_sql.h documents:
 * the key lookup and the idempotency claim each commit on their own; then one READ
 * COMMITTED transaction (keel_db_transaction's BEGIN) holds the payment, the outbox row and
 * the recorded answer. The lock token of the claim is the same fresh value as the key. */
static const ps_step steps[] = {
    {"auth.c: the API key", GATEWAY_SQL_AUTH_LOOKUP, {"keyhash", NULL}, false},
    {"idempotency.c: claim the key (commits at once)",
     GATEWAY_SQL_IDEM_CLAIM,
     {"merchant", "k", "reqhash", "method", "path", "params", "k", "lease", NULL},
     true},
    {"keel_db_transaction", "BEGIN ISOLATION LEVEL READ COMMITTED", {NULL}, false},
    {"payment_store.c: the payment",
     GATEWAY_SQL_PAYMENT_INSERT,
     {"k", "merchant", "amount", "currency", "description", "metadata", "pm", NULL},
     false},
    {"outbox.c: the PaymentRequested row",
     KEEL_OUTBOX_INSERT_SQL,
     {"topic", "k", "payload", "k", "source", "cetype", "cetime", "traceparent", NULL},
     false},
    {"idempotency.c: record the answer",
     GATEWAY_SQL_IDEM_COMPLETE,
     {"merchant", "k", "k", "status", "body", NULL},
     false},
    {"keel_db_transaction", "COMMIT", {NULL}, true},
};
#define PS_STEPS (sizeof(steps) / sizeof(steps[0]))

/* Writes sql with each $n replaced by :<vars[n-1]>. False (with a message) when a $n has no
 * variable or a variable is never used: the statement changed and this table must follow. */
static bool ps_convert(const ps_step *st, FILE *out)
{
    size_t nvars = 0;
    bool used[12] = {false};
    while (nvars < 12 && st->vars[nvars] != NULL) {
        nvars++;
    }
    for (const char *p = st->sql; *p != '\0'; p++) {
        if (*p == '$' && isdigit((unsigned char)p[1])) {
            char *end = NULL;
            long n = strtol(p + 1, &end, 10);
            if (n < 1 || (size_t)n > nvars) {
                fprintf(stderr,
                        "bench-print-sql: %s uses $%ld but the benchmark knows %zu parameters; "
                        "the statement changed: update the table in bench/print_sql.c\n",
                        st->what, n, nvars);
                return false;
            }
            used[n - 1] = true;
            fprintf(out, ":%s", st->vars[n - 1]);
            p = end - 1;
            continue;
        }
        fputc(*p, out);
    }
    for (size_t i = 0; i < nvars; i++) {
        if (!used[i]) {
            fprintf(stderr,
                    "bench-print-sql: %s no longer uses $%zu; the statement changed: update "
                    "the table in bench/print_sql.c\n",
                    st->what, i + 1);
            return false;
        }
    }
    fputs(";\n", out);
    return true;
}

static int ps_pgbench(bool pipeline)
{
    printf("-- One POST /v1/payments that creates a payment, as keel-gateway runs it.\n"
           "-- Generated by bench-print-sql from services/gateway/payment_sql.h and\n"
           "-- keel/outbox.h; run with pgbench -M prepared and the -D values of --pgbench-vars.\n");
    /* A fresh key per transaction: the payment id, Idempotency-Key and event id. */
    printf("\\set k random(1, 4000000000000000000)\n");
    bool open = false;
    for (size_t i = 0; i < PS_STEPS; i++) {
        if (pipeline && !open) {
            printf("\\startpipeline\n");
            open = true;
        }
        printf("-- %s\n", steps[i].what);
        if (!ps_convert(&steps[i], stdout)) {
            return 1;
        }
        if (pipeline && steps[i].sync) {
            printf("\\endpipeline\n");
            open = false;
        }
    }
    if (open) {
        printf("\\endpipeline\n");
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static int ps_list(void)
{
    for (size_t i = 0; i < PS_STEPS; i++) {
        printf("-- %s\n%s;\n", steps[i].what, steps[i].sql);
    }
    return 0;
}

/* Reads the first line of a file (the recorded JSON answer is one line). */
static bool ps_read_line(const char *path, char *out, size_t out_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return false;
    }
    bool ok = fgets(out, (int)out_len, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] != '\0';
}

static int ps_vars(const char *response_file)
{
    char body[8192] = "{\"id\":\"pay_bench\",\"object\":\"payment\",\"status\":\"pending\"}";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char created_at[KEEL_RFC3339_LEN];
    size_t payload_len = 0;
    const char *key = getenv("KEEL_API_KEY");

    if (key == NULL || key[0] == '\0') {
        fprintf(stderr, "bench-print-sql: set KEEL_API_KEY (the lookup uses its hash)\n");
        return 1;
    }
    if (response_file != NULL && !ps_read_line(response_file, body, sizeof(body))) {
        fprintf(stderr, "bench-print-sql: %s holds no answer\n", response_file);
        return 1;
    }
    if (EVP_Digest(key, strlen(key), md, &md_len, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "bench-print-sql: no SHA-256 in libcrypto\n");
        return 1;
    }
    uint8_t *payload = bench_msg_payload(&payload_len);
    if (payload == NULL) {
        fprintf(stderr, "bench-print-sql: out of memory\n");
        return 1;
    }
    printf("keyhash=");
    for (unsigned i = 0; i < md_len; i++) {
        printf("%02x", md[i]);
    }
    printf("\nmerchant=%s\n", PS_MERCHANT);
    /* A request fingerprint has the length of a SHA-256 in hex. */
    printf("reqhash=%064d\n", 0);
    printf("amount=1999\ncurrency=usd\ndescription=bench\nmetadata={}\npm=pm_card_visa\n");
    /* The claim: the request as the load generator sends it, and the gateway's default lease. */
    printf("method=POST\npath=/v1/payments\nlease=30000\n");
    printf("params={\"amount\":1999,\"currency\":\"usd\",\"description\":\"bench\","
           "\"payment_method\":\"pm_card_visa\"}\n");
    printf("topic=%s\nsource=%s\ncetype=keel.v1.PaymentRequested\n", PS_TOPIC, PS_SOURCE);
    printf("cetime=%s\n", keel_clock_format_rfc3339(keel_clock_now_ms(), created_at));
    printf("traceparent=00-%032d-%016d-01\n", 1, 1);
    printf("status=202\nbody=%s\n", body);
    /* The gateway sends the payload in binary; pgbench sends text, so bytea's hex form. */
    printf("payload=\\x");
    for (size_t i = 0; i < payload_len; i++) {
        printf("%02x", payload[i]);
    }
    printf("\n");
    free(payload);
    payload = NULL;
    return fflush(stdout) == 0 ? 0 : 1;
}

static int ps_cleanup(void)
{
    printf("DELETE FROM outbox WHERE ce_source = '%s';\n", PS_SOURCE);
    printf("DELETE FROM payments WHERE merchant_id = '%s';\n", PS_MERCHANT);
    printf("DELETE FROM idempotency_keys WHERE merchant_id = '%s';\n", PS_MERCHANT);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"pgbench", no_argument, NULL, 'p'},
        {"pipeline", no_argument, NULL, 'P'},
        {"pgbench-vars", no_argument, NULL, 'v'},
        {"response-file", required_argument, NULL, 'r'},
        {"pgbench-cleanup", no_argument, NULL, 'c'},
        {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int mode = 0;
    bool pipeline = false;
    const char *response_file = NULL;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'p':
        case 'v':
        case 'c':
        case 'l':
            mode = ch;
            break;
        case 'P':
            pipeline = true;
            break;
        case 'r':
            response_file = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    switch (mode) {
    case 'p':
        return ps_pgbench(pipeline);
    case 'v':
        return ps_vars(response_file);
    case 'c':
        return ps_cleanup();
    case 'l':
        return ps_list();
    default:
        fputs(usage_text, stderr);
        return 2;
    }
}
