/* keel-chaos-driver: a careful merchant client that drives payments (and refunds, once the
 * gateway serves them) through keel's gateway during a chaos run and records every id the
 * gateway accepted, so the audit can look for each one afterwards. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "keel/clock.h"
#include "keel/http_client.h"
#include "keel/log.h"
#include "keel/retry.h"
#include "client.h"
#include "policy.h"

#define CHAOS_MAX_URLS 4
#define CHAOS_MAX_THREADS 64
#define CHAOS_ID_MAX 96
#define CHAOS_KEY_MAX 128
#define CHAOS_URL_MAX 512
#define CHAOS_REFUND_QUEUE 65536
/* A refund waits this long after the payment was accepted before its first status check. */
#define CHAOS_REFUND_FIRST_CHECK_MS 3000
#define CHAOS_REFUND_RECHECK_MS 2000
#define CHAOS_REFUND_MAX_POLLS 40
#define CHAOS_CALL_TIMEOUT_MS 8000
#define CHAOS_CONNECT_TIMEOUT_MS 1000
/* Timeline buckets beyond the load window: retries may run until their give-up deadline. */
#define CHAOS_EXTRA_BUCKETS 600

/* Set by SIGINT/SIGTERM: the first stops new work, the second abandons retries too. */
static volatile sig_atomic_t chaos_signals;

typedef struct chaos_bucket {
    atomic_long sent;      /* HTTP attempts of POSTs (first tries and retries) */
    atomic_long accepted;  /* payments accepted */
    atomic_long retried;   /* attempts after the first */
    atomic_long http_5xx;  /* 5xx answers */
    atomic_long no_answer; /* refused, timed out, reset */
    atomic_long throttled; /* 409 key in use, 429 */
    atomic_long rejected;  /* other 4xx */
    atomic_long refunds;   /* refunds accepted */
} chaos_bucket;

typedef struct chaos_refund_item {
    char payment_id[CHAOS_ID_MAX];
    char key[CHAOS_KEY_MAX];
    int64_t amount;
    int64_t due_ms; /* monotonic */
    int polls;
} chaos_refund_item;

typedef struct chaos_options {
    const char *gateways;
    const char *out_dir;
    const char *run_id;
    double rate;
    int concurrency;
    int64_t duration_s;
    int64_t count; /* 0 = no limit: the duration decides */
    int64_t give_up_s;
    uint64_t seed;
    double refund_share;
    double replay_share;
    double decline_share;
    const char *refunds_mode; /* auto, on, off */
} chaos_options;

typedef struct chaos_totals {
    atomic_long started;
    atomic_long accepted;
    atomic_long rejected;
    atomic_long abandoned;
    atomic_long replays;
    atomic_long replay_mismatches;
    atomic_long refunds_requested;
    atomic_long refunds_accepted;
    atomic_long refunds_rejected;
    atomic_long refunds_abandoned;
    atomic_long refunds_skipped;
} chaos_totals;

typedef struct chaos_driver {
    chaos_options opt;
    char *urls_buf;
    const char *urls[CHAOS_MAX_URLS];
    size_t nurls;
    char auth_header[512];
    bool refunds_available;

    pthread_mutex_t out_mu;
    FILE *accepted;
    FILE *refunds;
    FILE *abandoned;
    FILE *rejected;
    FILE *violations;

    pthread_mutex_t rate_mu;
    int64_t next_slot_ms;

    atomic_long seq;
    int64_t start_mono_ms;
    int64_t start_wall_ms;
    int64_t end_mono_ms; /* no new payment starts after this */

    chaos_bucket *buckets;
    size_t nbuckets;
    atomic_bool workers_done;

    pthread_mutex_t q_mu;
    chaos_refund_item *queue;
    size_t q_head, q_len;

    chaos_totals t;
} chaos_driver;

typedef struct chaos_worker {
    chaos_driver *d;
    int index;
    uint64_t rng;
    chaos_client *http; /* this thread's kept-alive connections */
} chaos_worker;

typedef enum chaos_outcome {
    CHAOS_OUT_ACCEPTED,
    CHAOS_OUT_REJECTED,
    CHAOS_OUT_ABANDONED,
} chaos_outcome;

static void chaos_on_signal(int sig)
{
    (void)sig;
    if (chaos_signals < 2) {
        chaos_signals++;
    }
}

static bool chaos_stopping(const chaos_driver *d)
{
    return chaos_signals > 0 || keel_clock_monotonic_ms() >= d->end_mono_ms;
}

static chaos_bucket *chaos_bucket_now(chaos_driver *d)
{
    int64_t s = (keel_clock_monotonic_ms() - d->start_mono_ms) / 1000;
    if (s < 0) {
        s = 0;
    }
    if ((size_t)s >= d->nbuckets) {
        s = (int64_t)d->nbuckets - 1;
    }
    return &d->buckets[s];
}

static double chaos_uniform(uint64_t *rng)
{
    return (double)(keel_rand_next(rng) >> 11) / (double)(1ULL << 53);
}

/* Sleeps ms in short steps; returns false early when a second signal asks to abandon. */
static bool chaos_sleep(int64_t ms)
{
    int64_t until = keel_clock_monotonic_ms() + ms;
    for (;;) {
        if (chaos_signals >= 2) {
            return false;
        }
        int64_t left = until - keel_clock_monotonic_ms();
        if (left <= 0) {
            return true;
        }
        keel_clock_sleep_ms(left < 200 ? left : 200);
    }
}

/* Takes the next start slot of the rate limiter and waits for it. A slot is never earlier
 * than now, so after an outage the load resumes at the set rate instead of in a burst.
 * Returns false when the load window closed meanwhile. */
static bool chaos_wait_slot(chaos_driver *d)
{
    pthread_mutex_lock(&d->rate_mu);
    int64_t now = keel_clock_monotonic_ms();
    int64_t slot = d->next_slot_ms > now ? d->next_slot_ms : now;
    d->next_slot_ms = slot + (int64_t)(1000.0 / d->opt.rate);
    pthread_mutex_unlock(&d->rate_mu);
    while (keel_clock_monotonic_ms() < slot) {
        if (chaos_stopping(d)) {
            return false;
        }
        int64_t left = slot - keel_clock_monotonic_ms();
        keel_clock_sleep_ms(left < 100 ? left : 100);
    }
    return !chaos_stopping(d);
}

/* One line to one of the record files, flushed at once: a driver killed mid-run still leaves
 * every id it was given on disk. */
static void chaos_record(chaos_driver *d, FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void chaos_record(chaos_driver *d, FILE *f, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&d->out_mu);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
    pthread_mutex_unlock(&d->out_mu);
}

/* A short, single-line excerpt of an answer body for the record files. */
static void chaos_excerpt(const char *body, char *out, size_t out_len)
{
    size_t j = 0;
    for (size_t i = 0; body != NULL && body[i] != '\0' && j + 1 < out_len; i++) {
        char c = body[i];
        out[j++] = (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
    }
    out[j] = '\0';
}

typedef struct chaos_post {
    const char *path;
    const char *key;
    const char *body;
    const char *id_prefix;
    long route_hint; /* spreads first attempts over the gateway instances */
    char id[CHAOS_ID_MAX];
    int attempts;
    char reason[320];
} chaos_post;

/* Sends one POST until the gateway accepts or rejects it, retrying under the same
 * Idempotency-Key after anything else, alternating between gateway instances, until the
 * give-up deadline. */
static chaos_outcome chaos_post_send(chaos_driver *d, chaos_worker *w, chaos_post *p)
{
    char url[CHAOS_URL_MAX];
    char idem[CHAOS_KEY_MAX + 32];
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", p->key);
    const char *headers[] = {d->auth_header, idem, "Content-Type: application/json", NULL};
    int64_t deadline = keel_clock_monotonic_ms() + d->opt.give_up_s * 1000;

    p->id[0] = '\0';
    p->reason[0] = '\0';
    for (p->attempts = 0;; p->attempts++) {
        const char *base = d->urls[(size_t)(p->route_hint + p->attempts) % d->nurls];
        snprintf(url, sizeof(url), "%s%s", base, p->path);
        keel_http_call call = {
            .method = "POST",
            .url = url,
            .headers = headers,
            .body = p->body,
            .body_len = strlen(p->body),
            .connect_timeout_ms = CHAOS_CONNECT_TIMEOUT_MS,
            .total_timeout_ms = CHAOS_CALL_TIMEOUT_MS,
            .max_response_bytes = 65536,
        };
        keel_http_result res;
        chaos_bucket *b = chaos_bucket_now(d);
        atomic_fetch_add(&b->sent, 1);
        if (p->attempts > 0) {
            atomic_fetch_add(&b->retried, 1);
        }
        chaos_client_do(w->http, &call, &res);
        chaos_verdict v = chaos_policy_classify(res.failure, res.status);
        b = chaos_bucket_now(d);
        char excerpt[200];
        chaos_excerpt(res.body, excerpt, sizeof(excerpt));
        if (v == CHAOS_ACCEPTED) {
            if (chaos_policy_extract_id(res.body, p->id_prefix, p->id, sizeof(p->id)) == 0) {
                keel_http_result_clear(&res);
                p->attempts++;
                return CHAOS_OUT_ACCEPTED;
            }
            snprintf(p->reason, sizeof(p->reason), "HTTP %ld without an id starting %s: %s",
                     res.status, p->id_prefix, excerpt);
        } else if (v == CHAOS_REJECTED) {
            snprintf(p->reason, sizeof(p->reason), "HTTP %ld %s", res.status, excerpt);
        }
        if (v != CHAOS_RETRY) {
            atomic_fetch_add(&b->rejected, 1);
            keel_http_result_clear(&res);
            p->attempts++;
            return CHAOS_OUT_REJECTED;
        }
        if (res.failure != KEEL_HTTP_OK) {
            atomic_fetch_add(&b->no_answer, 1);
            snprintf(p->reason, sizeof(p->reason), "no answer: %s", res.error);
        } else if (res.status >= 500) {
            atomic_fetch_add(&b->http_5xx, 1);
            snprintf(p->reason, sizeof(p->reason), "HTTP %ld %s", res.status, excerpt);
        } else {
            atomic_fetch_add(&b->throttled, 1);
            snprintf(p->reason, sizeof(p->reason), "HTTP %ld %s", res.status, excerpt);
        }
        int64_t delay = chaos_policy_retry_delay_ms(p->attempts, res.retry_after, &w->rng);
        keel_http_result_clear(&res);
        if (keel_clock_monotonic_ms() + delay > deadline || !chaos_sleep(delay)) {
            p->attempts++;
            return CHAOS_OUT_ABANDONED;
        }
    }
}

static const char *chaos_pick_method(chaos_driver *d, chaos_worker *w)
{
    double u = chaos_uniform(&w->rng);
    if (u < d->opt.decline_share * 0.7) {
        return "pm_card_declined";
    }
    if (u < d->opt.decline_share) {
        return "pm_card_insufficient_funds";
    }
    return "pm_card_visa";
}

static void chaos_refund_enqueue(chaos_driver *d, const char *payment_id, const char *key,
                                 int64_t amount, int64_t due_ms, int polls)
{
    pthread_mutex_lock(&d->q_mu);
    if (d->q_len == CHAOS_REFUND_QUEUE) {
        pthread_mutex_unlock(&d->q_mu);
        atomic_fetch_add(&d->t.refunds_skipped, 1);
        return;
    }
    chaos_refund_item *it = &d->queue[(d->q_head + d->q_len) % CHAOS_REFUND_QUEUE];
    snprintf(it->payment_id, sizeof(it->payment_id), "%s", payment_id);
    snprintf(it->key, sizeof(it->key), "%s", key);
    it->amount = amount;
    it->due_ms = due_ms;
    it->polls = polls;
    d->q_len++;
    pthread_mutex_unlock(&d->q_mu);
}

/* Takes the oldest queued refund if it is due. */
static bool chaos_refund_pop_due(chaos_driver *d, chaos_refund_item *out)
{
    bool got = false;
    pthread_mutex_lock(&d->q_mu);
    if (d->q_len > 0 && d->queue[d->q_head].due_ms <= keel_clock_monotonic_ms()) {
        *out = d->queue[d->q_head];
        d->q_head = (d->q_head + 1) % CHAOS_REFUND_QUEUE;
        d->q_len--;
        got = true;
    }
    pthread_mutex_unlock(&d->q_mu);
    return got;
}

/* The payment's status as the gateway reports it, or "" when the read failed. */
static void chaos_payment_status(chaos_driver *d, chaos_worker *w, const char *payment_id,
                                 char *out, size_t out_len)
{
    char url[CHAOS_URL_MAX];
    const char *headers[] = {d->auth_header, NULL};
    snprintf(url, sizeof(url), "%s/v1/payments/%s", d->urls[(size_t)w->index % d->nurls],
             payment_id);
    keel_http_call call = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .connect_timeout_ms = CHAOS_CONNECT_TIMEOUT_MS,
        .total_timeout_ms = CHAOS_CALL_TIMEOUT_MS,
        .max_response_bytes = 65536,
    };
    keel_http_result res;
    out[0] = '\0';
    if (chaos_client_do(w->http, &call, &res) == KEEL_HTTP_OK && res.status == 200) {
        if (chaos_policy_extract_string(res.body, "status", out, out_len) != 0) {
            out[0] = '\0';
        }
    }
    keel_http_result_clear(&res);
}

/* Asks for a refund of a payment once the gateway says it succeeded: half the refunds are
 * partial, so the ledger and the providers see both shapes. */
static void chaos_refund_work(chaos_driver *d, chaos_worker *w, chaos_refund_item *it)
{
    char status[32];
    chaos_payment_status(d, w, it->payment_id, status, sizeof(status));
    if (strcmp(status, "failed") == 0) {
        atomic_fetch_add(&d->t.refunds_skipped, 1);
        return;
    }
    if (strcmp(status, "succeeded") != 0) {
        if (it->polls + 1 >= CHAOS_REFUND_MAX_POLLS) {
            atomic_fetch_add(&d->t.refunds_skipped, 1);
            return;
        }
        /* Doubling waits, so a stalled pipeline is not polled hard. */
        int64_t wait = CHAOS_REFUND_RECHECK_MS << (it->polls < 3 ? it->polls : 3);
        chaos_refund_enqueue(d, it->payment_id, it->key, it->amount,
                             keel_clock_monotonic_ms() + wait, it->polls + 1);
        return;
    }
    int64_t amount = chaos_uniform(&w->rng) < 0.5 ? it->amount : (it->amount + 1) / 2;
    char path[CHAOS_ID_MAX + 32];
    char key[CHAOS_KEY_MAX + 8];
    char body[128];
    snprintf(path, sizeof(path), "/v1/payments/%s/refunds", it->payment_id);
    snprintf(key, sizeof(key), "rf-%s", it->key);
    snprintf(body, sizeof(body), "{\"amount\":%" PRId64 "}", amount);
    chaos_post p = {
        .path = path, .key = key, .body = body, .id_prefix = "re_", .route_hint = w->index};
    atomic_fetch_add(&d->t.refunds_requested, 1);
    switch (chaos_post_send(d, w, &p)) {
    case CHAOS_OUT_ACCEPTED:
        atomic_fetch_add(&d->t.refunds_accepted, 1);
        atomic_fetch_add(&chaos_bucket_now(d)->refunds, 1);
        chaos_record(d, d->refunds, "%s\t%s\t%s\t%" PRId64 "\t%" PRId64 "\t%d\n", p.id,
                     it->payment_id, key, amount, keel_clock_now_ms(), p.attempts);
        break;
    case CHAOS_OUT_REJECTED:
        atomic_fetch_add(&d->t.refunds_rejected, 1);
        chaos_record(d, d->rejected, "refund\t%s\t%s\t%s\n", it->payment_id, key, p.reason);
        break;
    case CHAOS_OUT_ABANDONED:
        atomic_fetch_add(&d->t.refunds_abandoned, 1);
        chaos_record(d, d->abandoned, "refund\t%s\t%s\t%d\t%s\n", it->payment_id, key, p.attempts,
                     p.reason);
        break;
    }
}

/* Sends the same request again under the same key: the gateway must answer with the same
 * payment id. A different id is a duplicate payment, recorded as a violation. */
static void chaos_replay_check(chaos_driver *d, chaos_worker *w, chaos_post *first)
{
    chaos_post again = {.path = first->path,
                        .key = first->key,
                        .body = first->body,
                        .id_prefix = first->id_prefix,
                        .route_hint = first->route_hint + 1};
    atomic_fetch_add(&d->t.replays, 1);
    if (chaos_post_send(d, w, &again) != CHAOS_OUT_ACCEPTED) {
        return;
    }
    if (strcmp(again.id, first->id) != 0) {
        atomic_fetch_add(&d->t.replay_mismatches, 1);
        chaos_record(d, d->violations, "replay_mismatch\t%s\t%s\t%s\n", first->key, first->id,
                     again.id);
    }
}

static void chaos_payment_work(chaos_driver *d, chaos_worker *w, long n)
{
    char key[CHAOS_KEY_MAX];
    char body[512];
    int64_t amount = 100 + (int64_t)(keel_rand_next(&w->rng) % 9900);
    const char *method = chaos_pick_method(d, w);
    snprintf(key, sizeof(key), "%s-%ld", d->opt.run_id, n);
    snprintf(body, sizeof(body),
             "{\"amount\":%" PRId64 ",\"currency\":\"usd\",\"description\":\"chaos run %s\","
             "\"payment_method\":\"%s\",\"metadata\":{\"chaos_run\":\"%s\"}}",
             amount, d->opt.run_id, method, d->opt.run_id);
    chaos_post p = {
        .path = "/v1/payments", .key = key, .body = body, .id_prefix = "pay_", .route_hint = n};
    atomic_fetch_add(&d->t.started, 1);
    switch (chaos_post_send(d, w, &p)) {
    case CHAOS_OUT_ACCEPTED:
        atomic_fetch_add(&d->t.accepted, 1);
        atomic_fetch_add(&chaos_bucket_now(d)->accepted, 1);
        chaos_record(d, d->accepted, "%s\t%s\t%" PRId64 "\t%s\t%" PRId64 "\t%d\n", p.id, key,
                     amount, method, keel_clock_now_ms(), p.attempts);
        if (d->refunds_available && chaos_uniform(&w->rng) < d->opt.refund_share) {
            chaos_refund_enqueue(d, p.id, key, amount,
                                 keel_clock_monotonic_ms() + CHAOS_REFUND_FIRST_CHECK_MS, 0);
        }
        if (chaos_uniform(&w->rng) < d->opt.replay_share) {
            chaos_replay_check(d, w, &p);
        }
        break;
    case CHAOS_OUT_REJECTED:
        atomic_fetch_add(&d->t.rejected, 1);
        chaos_record(d, d->rejected, "payment\t-\t%s\t%s\n", key, p.reason);
        break;
    case CHAOS_OUT_ABANDONED:
        atomic_fetch_add(&d->t.abandoned, 1);
        chaos_record(d, d->abandoned, "payment\t-\t%s\t%d\t%s\n", key, p.attempts, p.reason);
        break;
    }
}

static void *chaos_worker_main(void *arg)
{
    chaos_worker *w = arg;
    chaos_driver *d = w->d;
    w->http = chaos_client_new();
    if (w->http == NULL) {
        fprintf(stderr, "chaos-driver: thread %d has no HTTP client (out of memory?)\n", w->index);
        return NULL;
    }
    while (!chaos_stopping(d)) {
        chaos_refund_item it;
        if (d->refunds_available && chaos_refund_pop_due(d, &it)) {
            chaos_refund_work(d, w, &it);
            continue;
        }
        long n = atomic_fetch_add(&d->seq, 1);
        if (d->opt.count > 0 && n >= d->opt.count) {
            break;
        }
        if (!chaos_wait_slot(d)) {
            break;
        }
        chaos_payment_work(d, w, n);
    }
    /* The load is over; refunds already promised to payments still go out (each is bounded
     * by its status polls and the give-up deadline), unless a signal says stop. */
    while (d->refunds_available && chaos_signals == 0) {
        chaos_refund_item it;
        if (chaos_refund_pop_due(d, &it)) {
            chaos_refund_work(d, w, &it);
            continue;
        }
        pthread_mutex_lock(&d->q_mu);
        size_t left = d->q_len;
        pthread_mutex_unlock(&d->q_mu);
        if (left == 0) {
            break;
        }
        keel_clock_sleep_ms(100);
    }
    chaos_client_free(w->http);
    w->http = NULL;
    return NULL;
}

/* Writes every finished second of the timeline as it completes, and a progress line every
 * ten seconds, until the workers are done; then the rest. */
static void *chaos_timeline_main(void *arg)
{
    chaos_driver *d = arg;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/timeline.csv", d->opt.out_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "chaos-driver: cannot write %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fprintf(f, "second,unix_ms,sent,accepted,retried,http_5xx,no_answer,throttled,rejected,"
               "refunds\n");
    size_t written = 0;
    for (;;) {
        bool done = atomic_load(&d->workers_done);
        size_t upto = (size_t)((keel_clock_monotonic_ms() - d->start_mono_ms) / 1000);
        if (done) {
            upto++;
        }
        if (upto > d->nbuckets) {
            upto = d->nbuckets;
        }
        for (; written < upto; written++) {
            chaos_bucket *b = &d->buckets[written];
            fprintf(f, "%zu,%" PRId64 ",%ld,%ld,%ld,%ld,%ld,%ld,%ld,%ld\n", written,
                    d->start_wall_ms + (int64_t)written * 1000, atomic_load(&b->sent),
                    atomic_load(&b->accepted), atomic_load(&b->retried), atomic_load(&b->http_5xx),
                    atomic_load(&b->no_answer), atomic_load(&b->throttled),
                    atomic_load(&b->rejected), atomic_load(&b->refunds));
            if (written > 0 && written % 10 == 0) {
                fprintf(stderr,
                        "chaos-driver: t=%zus accepted=%ld abandoned=%ld rejected=%ld "
                        "refunds=%ld\n",
                        written, atomic_load(&d->t.accepted), atomic_load(&d->t.abandoned),
                        atomic_load(&d->t.rejected), atomic_load(&d->t.refunds_accepted));
            }
        }
        fflush(f);
        if (done) {
            break;
        }
        keel_clock_sleep_ms(250);
    }
    fclose(f);
    return NULL;
}

/* Does the gateway serve POST /v1/payments/{id}/refunds? An unknown payment answers 404
 * resource_missing (or 400) when the route exists and 404 route_not_found when it does not. */
static bool chaos_refunds_probe(chaos_driver *d)
{
    char url[CHAOS_URL_MAX];
    char idem[CHAOS_KEY_MAX + 32];
    snprintf(url, sizeof(url), "%s/v1/payments/pay_00000000000000000000000000000000/refunds",
             d->urls[0]);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s-probe", d->opt.run_id);
    const char *headers[] = {d->auth_header, idem, "Content-Type: application/json", NULL};
    for (int attempt = 0; attempt < 10; attempt++) {
        keel_http_call call = {.method = "POST",
                               .url = url,
                               .headers = headers,
                               .body = "{\"amount\":1}",
                               .body_len = 12,
                               .total_timeout_ms = CHAOS_CALL_TIMEOUT_MS};
        keel_http_result res;
        if (keel_http_client_do(&call, &res) == KEEL_HTTP_OK && res.status < 500) {
            char code[64] = "";
            bool missing = false;
            if (res.status == 404 && res.body != NULL) {
                json_t *doc = json_loads(res.body, 0, NULL);
                const char *c =
                    json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
                snprintf(code, sizeof(code), "%s", c != NULL ? c : "");
                json_decref(doc);
                missing = strcmp(code, "route_not_found") == 0;
            }
            keel_http_result_clear(&res);
            return !missing;
        }
        keel_http_result_clear(&res);
        keel_clock_sleep_ms(500);
    }
    fprintf(stderr, "chaos-driver: the gateway did not answer the refunds probe; refunds off\n");
    return false;
}

static FILE *chaos_open(const chaos_driver *d, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", d->opt.out_dir, name);
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        fprintf(stderr, "chaos-driver: cannot open %s: %s\n", path, strerror(errno));
    }
    return f;
}

static void chaos_usage(FILE *out)
{
    fprintf(out,
            "usage: keel-chaos-driver --gateway URL[,URL] --out DIR [options]\n"
            "Drives payments through keel's gateway like a careful merchant: an Idempotency-Key\n"
            "on every POST, retries under the same key after timeouts, 409, 429 and 5xx with\n"
            "capped full-jitter backoff, alternating between the gateway URLs.\n"
            "\n"
            "  --duration S       seconds of load (default 60)\n"
            "  --count N          stop after N payments instead (0 = duration only)\n"
            "  --rate R           new payments per second (default 20)\n"
            "  --concurrency C    client threads (default 8, at most %d)\n"
            "  --give-up S        seconds one request keeps retrying (default 180)\n"
            "  --seed N           seed of the client's choices (default 1)\n"
            "  --run-id ID        prefix of every Idempotency-Key (default chaos-<seed>-<time>)\n"
            "  --refunds MODE     auto (probe the route), on, off (default auto)\n"
            "  --refund-share F   share of accepted payments refunded (default 0.2)\n"
            "  --replay-share F   share re-sent under the same key to check the id (0.02)\n"
            "  --decline-share F  share paid with a card the provider declines (0.1)\n"
            "\n"
            "Environment: CHAOS_API_KEY or KEEL_API_KEY (the merchant's key).\n"
            "Writes to DIR: accepted.tsv (payment_id key amount method unix_ms attempts),\n"
            "refunds.tsv (refund_id payment_id key amount unix_ms attempts), abandoned.tsv,\n"
            "rejected.tsv, violations.tsv, timeline.csv, driver.json.\n"
            "Exit status: 0 done, 1 failure, 2 usage error.\n",
            CHAOS_MAX_THREADS);
}

static bool chaos_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static bool chaos_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* Reads argv into d->opt; returns 0, or 2 after printing what is wrong. */
static int chaos_parse_args(int argc, char **argv, chaos_driver *d)
{
    static const struct option longopts[] = {{"gateway", required_argument, NULL, 'g'},
                                             {"out", required_argument, NULL, 'o'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"concurrency", required_argument, NULL, 'c'},
                                             {"give-up", required_argument, NULL, 'G'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"run-id", required_argument, NULL, 'i'},
                                             {"refunds", required_argument, NULL, 'R'},
                                             {"refund-share", required_argument, NULL, 'f'},
                                             {"replay-share", required_argument, NULL, 'p'},
                                             {"decline-share", required_argument, NULL, 'x'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    chaos_options *o = &d->opt;
    int64_t v;
    *o = (chaos_options){.rate = 20,
                         .concurrency = 8,
                         .duration_s = 60,
                         .give_up_s = 180,
                         .seed = 1,
                         .refund_share = 0.2,
                         .replay_share = 0.02,
                         .decline_share = 0.1,
                         .refunds_mode = "auto"};
    int c;
    int which = 0;
    bool ok = true;
    while (ok && (c = getopt_long(argc, argv, "h", longopts, &which)) != -1) {
        switch (c) {
        case 'g':
            o->gateways = optarg;
            break;
        case 'o':
            o->out_dir = optarg;
            break;
        case 'd':
            ok = chaos_parse_int(optarg, 1, 86400, &o->duration_s);
            break;
        case 'n':
            ok = chaos_parse_int(optarg, 0, 100000000, &o->count);
            break;
        case 'r':
            ok = chaos_parse_double(optarg, 0.1, 10000, &o->rate);
            break;
        case 'c':
            ok = chaos_parse_int(optarg, 1, CHAOS_MAX_THREADS, &v);
            o->concurrency = (int)v;
            break;
        case 'G':
            ok = chaos_parse_int(optarg, 1, 3600, &o->give_up_s);
            break;
        case 's':
            ok = chaos_parse_int(optarg, 0, INT64_MAX, &v);
            o->seed = (uint64_t)v;
            break;
        case 'i':
            o->run_id = optarg;
            break;
        case 'R':
            o->refunds_mode = optarg;
            ok = strcmp(optarg, "auto") == 0 || strcmp(optarg, "on") == 0 ||
                 strcmp(optarg, "off") == 0;
            break;
        case 'f':
            ok = chaos_parse_double(optarg, 0, 1, &o->refund_share);
            break;
        case 'p':
            ok = chaos_parse_double(optarg, 0, 1, &o->replay_share);
            break;
        case 'x':
            ok = chaos_parse_double(optarg, 0, 1, &o->decline_share);
            break;
        case 'h':
            chaos_usage(stdout);
            exit(0);
        default:
            ok = false;
            break;
        }
        if (!ok && c != '?') {
            fprintf(stderr, "chaos-driver: invalid value '%s' for --%s\n", optarg,
                    longopts[which].name);
        }
    }
    if (!ok || optind != argc) {
        chaos_usage(stderr);
        return 2;
    }
    if (o->gateways == NULL || o->out_dir == NULL) {
        fprintf(stderr, "chaos-driver: --gateway and --out are required\n");
        chaos_usage(stderr);
        return 2;
    }
    return 0;
}

static int chaos_setup(chaos_driver *d)
{
    static char run_id_buf[64];
    const char *key = getenv("CHAOS_API_KEY");
    if (key == NULL || key[0] == '\0') {
        key = getenv("KEEL_API_KEY");
    }
    if (key == NULL || key[0] == '\0') {
        fprintf(stderr, "chaos-driver: set CHAOS_API_KEY (or KEEL_API_KEY) to the merchant's "
                        "API key; stack.env has KEEL_API_KEY\n");
        return 2;
    }
    snprintf(d->auth_header, sizeof(d->auth_header), "Authorization: Bearer %s", key);
    if (d->opt.run_id == NULL) {
        /* The time too: a key reused by a later run with other amounts would be refused. */
        snprintf(run_id_buf, sizeof(run_id_buf), "chaos-%" PRIu64 "-%" PRId64, d->opt.seed,
                 keel_clock_now_ms() / 1000);
        d->opt.run_id = run_id_buf;
    }
    d->urls_buf = strdup(d->opt.gateways);
    if (d->urls_buf == NULL) {
        return 1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(d->urls_buf, ",", &save); tok != NULL && d->nurls < CHAOS_MAX_URLS;
         tok = strtok_r(NULL, ",", &save)) {
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == '/') {
            tok[--len] = '\0';
        }
        if (len > 0) {
            d->urls[d->nurls++] = tok;
        }
    }
    if (d->nurls == 0) {
        fprintf(stderr, "chaos-driver: --gateway '%s' names no URL\n", d->opt.gateways);
        return 2;
    }
    if (mkdir(d->opt.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "chaos-driver: cannot create %s: %s\n", d->opt.out_dir, strerror(errno));
        return 1;
    }
    d->accepted = chaos_open(d, "accepted.tsv");
    d->refunds = chaos_open(d, "refunds.tsv");
    d->abandoned = chaos_open(d, "abandoned.tsv");
    d->rejected = chaos_open(d, "rejected.tsv");
    d->violations = chaos_open(d, "violations.tsv");
    if (!d->accepted || !d->refunds || !d->abandoned || !d->rejected || !d->violations) {
        return 1;
    }
    int64_t span = d->opt.count > 0 ? 86400 : d->opt.duration_s;
    d->nbuckets = (size_t)(span + d->opt.give_up_s + CHAOS_EXTRA_BUCKETS);
    d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
    d->queue = calloc(CHAOS_REFUND_QUEUE, sizeof(*d->queue));
    if (d->buckets == NULL || d->queue == NULL) {
        fprintf(stderr, "chaos-driver: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&d->out_mu, NULL);
    pthread_mutex_init(&d->rate_mu, NULL);
    pthread_mutex_init(&d->q_mu, NULL);
    return 0;
}

static void chaos_write_summary(chaos_driver *d, int64_t end_wall_ms)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/driver.json", d->opt.out_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "chaos-driver: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    long sent = 0, retried = 0, http_5xx = 0, no_answer = 0, throttled = 0;
    for (size_t i = 0; i < d->nbuckets; i++) {
        sent += atomic_load(&d->buckets[i].sent);
        retried += atomic_load(&d->buckets[i].retried);
        http_5xx += atomic_load(&d->buckets[i].http_5xx);
        no_answer += atomic_load(&d->buckets[i].no_answer);
        throttled += atomic_load(&d->buckets[i].throttled);
    }
    fprintf(f,
            "{\"run_id\":\"%s\",\"started_ms\":%" PRId64 ",\"ended_ms\":%" PRId64
            ",\"rate\":%g,\"concurrency\":%d,\"seed\":%" PRIu64 ",\"refunds_available\":%s,"
            "\"payments_started\":%ld,\"accepted\":%ld,\"rejected\":%ld,\"abandoned\":%ld,"
            "\"replays\":%ld,\"replay_mismatches\":%ld,\"refunds_requested\":%ld,"
            "\"refunds_accepted\":%ld,\"refunds_rejected\":%ld,\"refunds_abandoned\":%ld,"
            "\"refunds_skipped\":%ld,\"attempts\":%ld,\"retries\":%ld,\"http_5xx\":%ld,"
            "\"no_answer\":%ld,\"throttled\":%ld}\n",
            d->opt.run_id, d->start_wall_ms, end_wall_ms, d->opt.rate, d->opt.concurrency,
            d->opt.seed, d->refunds_available ? "true" : "false", atomic_load(&d->t.started),
            atomic_load(&d->t.accepted), atomic_load(&d->t.rejected), atomic_load(&d->t.abandoned),
            atomic_load(&d->t.replays), atomic_load(&d->t.replay_mismatches),
            atomic_load(&d->t.refunds_requested), atomic_load(&d->t.refunds_accepted),
            atomic_load(&d->t.refunds_rejected), atomic_load(&d->t.refunds_abandoned),
            atomic_load(&d->t.refunds_skipped), sent, retried, http_5xx, no_answer, throttled);
    fclose(f);
}

static void chaos_close(FILE **f)
{
    if (*f != NULL) {
        fclose(*f);
        *f = NULL;
    }
}

int main(int argc, char **argv)
{
    chaos_driver d;
    chaos_worker workers[CHAOS_MAX_THREADS];
    pthread_t threads[CHAOS_MAX_THREADS];
    pthread_t timeline;
    int started = 0;
    bool timeline_started = false;
    int rc;

    memset(&d, 0, sizeof(d));
    keel_log_init("chaos-driver", KEEL_LOG_ERROR);
    rc = chaos_parse_args(argc, argv, &d);
    if (rc != 0) {
        return rc;
    }
    rc = chaos_setup(&d);
    if (rc != 0) {
        goto done;
    }
    keel_http_client_global_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = chaos_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (strcmp(d.opt.refunds_mode, "auto") == 0) {
        d.refunds_available = chaos_refunds_probe(&d);
    } else {
        d.refunds_available = strcmp(d.opt.refunds_mode, "on") == 0;
    }
    fprintf(stderr, "chaos-driver: run %s, %g payments/s, %d threads, %s, refunds %s\n",
            d.opt.run_id, d.opt.rate, d.opt.concurrency,
            d.opt.count > 0 ? "until a count" : "for a duration",
            d.refunds_available ? "on" : "not available");

    d.start_mono_ms = keel_clock_monotonic_ms();
    d.start_wall_ms = keel_clock_now_ms();
    d.end_mono_ms = d.opt.count > 0 ? d.start_mono_ms + (int64_t)86400 * 1000
                                    : d.start_mono_ms + d.opt.duration_s * 1000;
    d.next_slot_ms = d.start_mono_ms;
    timeline_started = pthread_create(&timeline, NULL, chaos_timeline_main, &d) == 0;
    for (int i = 0; i < d.opt.concurrency; i++) {
        workers[i] = (chaos_worker){.d = &d, .index = i};
        workers[i].rng = (d.opt.seed + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)i + 1);
        if (workers[i].rng == 0) {
            workers[i].rng = 1;
        }
        if (pthread_create(&threads[i], NULL, chaos_worker_main, &workers[i]) != 0) {
            fprintf(stderr, "chaos-driver: could not start thread %d\n", i);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    atomic_store(&d.workers_done, true);
    if (timeline_started) {
        pthread_join(timeline, NULL);
    }
    chaos_write_summary(&d, keel_clock_now_ms());
    fprintf(stderr,
            "chaos-driver: done: %ld started, %ld accepted, %ld rejected, %ld abandoned, %ld "
            "refunds accepted, %ld replay mismatches\n",
            atomic_load(&d.t.started), atomic_load(&d.t.accepted), atomic_load(&d.t.rejected),
            atomic_load(&d.t.abandoned), atomic_load(&d.t.refunds_accepted),
            atomic_load(&d.t.replay_mismatches));
    rc = started == d.opt.concurrency ? 0 : 1;
    pthread_mutex_destroy(&d.out_mu);
    pthread_mutex_destroy(&d.rate_mu);
    pthread_mutex_destroy(&d.q_mu);
done:
    chaos_close(&d.accepted);
    chaos_close(&d.refunds);
    chaos_close(&d.abandoned);
    chaos_close(&d.rejected);
    chaos_close(&d.violations);
    free(d.buckets);
    d.buckets = NULL;
    free(d.queue);
    d.queue = NULL;
    free(d.urls_buf);
    d.urls_buf = NULL;
    return rc;
}
