/* keel-chaos-receiver: the merchant's webhook endpoint during a chaos run. It checks every
 * delivery's Keel-Signature against the endpoint's secret on its own (it does not trust the
 * notifier's code), records each one for the audit, and fails a seeded share on purpose so
 * the notifier's retries are exercised too. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "keel/clock.h"
#include "keel/http_server.h"
#include "keel/log.h"
#include "keel/retry.h"
#include "receiver_sig.h"

static volatile sig_atomic_t receiver_stop;

typedef struct receiver {
    const char *secret_file;
    double fail_share;
    pthread_mutex_t mu; /* guards out and rng */
    FILE *out;
    uint64_t rng;
    atomic_long received;
    atomic_long invalid;
} receiver;

static void receiver_on_signal(int sig)
{
    (void)sig;
    receiver_stop = 1;
}

/* The endpoint's secret, read fresh each time: run.sh writes the file once the endpoint is
 * created, which may be after this process started. "" when not there yet. */
static void receiver_secret(const receiver *r, char *out, size_t out_len)
{
    out[0] = '\0';
    FILE *f = fopen(r->secret_file, "r");
    if (f == NULL) {
        return;
    }
    if (fgets(out, (int)out_len, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* One delivery: check the signature, record it, answer 200 (or 500 for the seeded share). */
static void receiver_handle(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    receiver *r = ctx;
    size_t len = 0;
    const char *body = keel_http_request_body(req, &len);
    const char *sig = keel_http_request_header(req, "Keel-Signature");
    char secret[256];
    receiver_secret(r, secret, sizeof(secret));
    bool valid = secret[0] != '\0' && sig != NULL && chaos_signature_valid(secret, sig, body, len);

    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *evt = json_string_value(json_object_get(doc, "id"));
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *object = json_string_value(
        json_object_get(json_object_get(json_object_get(doc, "data"), "object"), "id"));

    pthread_mutex_lock(&r->mu);
    double u = (double)(keel_rand_next(&r->rng) >> 11) / (double)(1ULL << 53);
    unsigned status = u < r->fail_share ? 500 : 200;
    fprintf(r->out, "%s\t%s\t%s\t%d\t%" PRId64 "\t%u\n", evt != NULL ? evt : "-",
            type != NULL ? type : "-", object != NULL ? object : "-", valid ? 1 : 0,
            keel_clock_now_ms(), status);
    fflush(r->out);
    pthread_mutex_unlock(&r->mu);
    json_decref(doc);
    atomic_fetch_add(&r->received, 1);
    if (!valid) {
        atomic_fetch_add(&r->invalid, 1);
    }
    if (status == 500) {
        keel_http_respond_error(resp, 500, "api_error", "chaos_refused",
                                "the chaos receiver refuses a share of deliveries on purpose",
                                NULL);
        return;
    }
    keel_http_respond_raw(resp, 200, "application/json", "{\"received\":true}", 17);
}

static void receiver_usage(FILE *out)
{
    fprintf(out, "usage: keel-chaos-receiver --out FILE --secret-file FILE --port-file FILE\n"
                 "                           [--port P] [--fail-share F] [--seed N]\n"
                 "Listens on 127.0.0.1 (port P, default any free one, written to --port-file) for\n"
                 "POST /hooks, checks Keel-Signature (t=<unix>,v1=<hex HMAC-SHA256(secret,\n"
                 "\"<t>.<body>\")>) against the secret in --secret-file, and appends one line per\n"
                 "delivery to --out: event_id type object_id signature_ok(1|0) unix_ms status.\n"
                 "A share F (default 0.05) is answered 500 on purpose. Runs until SIGTERM.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"secret-file", required_argument, NULL, 's'},
                                             {"port-file", required_argument, NULL, 'p'},
                                             {"port", required_argument, NULL, 'P'},
                                             {"fail-share", required_argument, NULL, 'f'},
                                             {"seed", required_argument, NULL, 'S'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    receiver r;
    const char *out_path = NULL;
    const char *port_file = NULL;
    long port = 0;
    keel_http_server *srv = NULL;
    int rc = 1;
    int c;

    memset(&r, 0, sizeof(r));
    r.fail_share = 0.05;
    r.rng = 0x2545F4914F6CDD1DULL;
    keel_log_init("chaos-receiver", KEEL_LOG_WARN);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_path = optarg;
            break;
        case 's':
            r.secret_file = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'P':
            port = strtol(optarg, NULL, 10);
            break;
        case 'f':
            r.fail_share = strtod(optarg, NULL);
            break;
        case 'S':
            r.rng ^= strtoull(optarg, NULL, 10) * 0x9E3779B97F4A7C15ULL;
            break;
        case 'h':
            receiver_usage(stdout);
            return 0;
        default:
            receiver_usage(stderr);
            return 2;
        }
    }
    if (out_path == NULL || r.secret_file == NULL || port_file == NULL || port < 0 ||
        port > 65535 || r.fail_share < 0 || r.fail_share > 1 || optind != argc) {
        receiver_usage(stderr);
        return 2;
    }
    if (r.rng == 0) {
        r.rng = 1;
    }
    r.out = fopen(out_path, "a");
    if (r.out == NULL) {
        fprintf(stderr, "chaos-receiver: cannot open %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    pthread_mutex_init(&r.mu, NULL);
    keel_http_server_options opts = {.address = "127.0.0.1", .port = (uint16_t)port, .threads = 4};
    srv = keel_http_server_new(&opts);
    if (srv == NULL) {
        fprintf(stderr, "chaos-receiver: could not create the HTTP server\n");
        goto done;
    }
    keel_http_server_route(srv, "POST", "/hooks", receiver_handle, &r);
    char err[256];
    if (keel_http_server_start(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "chaos-receiver: %s\n", err);
        goto done;
    }
    FILE *pf = fopen(port_file, "w");
    if (pf == NULL) {
        fprintf(stderr, "chaos-receiver: cannot write %s: %s\n", port_file, strerror(errno));
        goto done;
    }
    fprintf(pf, "%u\n", (unsigned)keel_http_server_port(srv));
    fclose(pf);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = receiver_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!receiver_stop) {
        keel_clock_sleep_ms(200);
    }
    fprintf(stderr, "chaos-receiver: %ld deliveries, %ld with a bad signature\n",
            atomic_load(&r.received), atomic_load(&r.invalid));
    rc = 0;
done:
    keel_http_server_free(srv);
    srv = NULL;
    pthread_mutex_destroy(&r.mu);
    fclose(r.out);
    r.out = NULL;
    return rc;
}
