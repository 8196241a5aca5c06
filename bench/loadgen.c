/* bench-loadgen: open-loop load on POST /v1/payments over keep-alive connections, with the
 * accept latency and (optionally) the POST-to-outcome latency in histograms. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "hist.h"

#define LG_BODY_MAX 4096
/* Bounds that keep one run finite whatever the options say. */
#define LG_MAX_REQUESTS 2000000
#define LG_MAX_OUTSTANDING 50000
#define LG_MAX_RATE 100000.0
#define LG_MAX_DURATION_S 600.0
#define LG_KEY_MAX 64

static const char usage_text[] =
    "usage: bench-loadgen --url URL --rate R --duration S [options]\n"
    "Sends POST /v1/payments at a constant rate R per second for S seconds, whether or not\n"
    "answers have come back (open loop: a slow answer cannot hold back the next request, so\n"
    "queueing shows in the latency). Latency is measured from the moment a request was due.\n"
    "  --url URL          the gateway's base URL; loopback addresses only\n"
    "  --rate R           requests per second (up to 100000)\n"
    "  --duration S       seconds of sending (up to 600)\n"
    "  --connections N    keep-alive connections (default 16)\n"
    "  --timeout-ms MS    per request, then it counts as an error (default 5000)\n"
    "  --drain-s S        after the last send, wait up to S seconds for answers and outcomes\n"
    "                     (default 10)\n"
    "  --e2e BROKERS      also consume the events topic and measure POST -> outcome event\n"
    "  --events-topic T   default keel.payment-events.v1\n"
    "  --hist PREFIX      write PREFIX-accept.csv (and PREFIX-e2e.csv) distributions in ms\n"
    "  --key-prefix P     Idempotency-Key prefix (default bench-<pid>-<time>-)\n"
    "  --amount N         amount in minor units (default 1999)\n"
    "The API key is read from the environment variable KEEL_API_KEY (never a command-line\n"
    "argument). Prints one line of key=value results on stdout.\n";

typedef struct lg_options {
    const char *url;
    double rate;
    double duration_s;
    int connections;
    int timeout_ms;
    double drain_s;
    const char *brokers;
    const char *events_topic;
    const char *hist_prefix;
    const char *key_prefix;
    int64_t amount;
} lg_options;

typedef struct lg_request {
    CURL *easy;
    struct curl_slist *headers;
    int64_t scheduled_ns;
    size_t body_len;
    bool truncated;
    bool in_flight;
    char body[LG_BODY_MAX];
    struct lg_request *next_free;
    struct lg_request *next_all; /* every request ever allocated, for the final clean-up */
} lg_request;

typedef struct lg_counts {
    uint64_t sent;
    uint64_t ok;
    uint64_t status_429;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t status_other;
    uint64_t timeouts;
    uint64_t transport;
    uint64_t unfinished;
    uint64_t backlog; /* due but not sent: more than LG_MAX_OUTSTANDING in flight */
    uint64_t no_id;   /* a 202 whose body held no payment id */
} lg_counts;

/* ---- POST -> outcome matching ------------------------------------------------------------ */

typedef struct lg_entry {
    char key[LG_KEY_MAX];
    int64_t sched_ns; /* 0 until the POST's answer named this payment */
    int64_t event_ns; /* 0 until its outcome event was consumed */
    bool used;
    bool done;
} lg_entry;

typedef struct lg_e2e {
    rd_kafka_t *rk;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    pthread_mutex_t mu;
    lg_entry *slots; /* open addressing, linear probing */
    size_t cap;
    size_t used;
    uint64_t matched;
    uint64_t foreign; /* events for payments this run did not create */
    bench_hist *hist;
    int partitions;
    bool *at_end; /* partitions whose end the consumer has reached once */
    atomic_int partitions_at_end;
} lg_e2e;

static uint64_t lg_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Finds or adds key; NULL when the table is too full to add. Caller holds mu. */
static lg_entry *lg_e2e_slot(lg_e2e *e, const char *key, size_t len, bool add)
{
    if (len == 0 || len >= LG_KEY_MAX) {
        return NULL;
    }
    size_t i = (size_t)lg_hash(key, len) & (e->cap - 1);
    for (;;) {
        lg_entry *s = &e->slots[i];
        if (!s->used) {
            /* Keep a quarter free so probes stay short. */
            if (!add || e->used + 1 > e->cap / 4 * 3) {
                return NULL;
            }
            s->used = true;
            memcpy(s->key, key, len);
            s->key[len] = '\0';
            e->used++;
            return s;
        }
        if (strncmp(s->key, key, len) == 0 && s->key[len] == '\0') {
            return s;
        }
        i = (i + 1) & (e->cap - 1);
    }
}

/* Records one side of a payment's journey; the second side completes the measurement. */
static void lg_e2e_note(lg_e2e *e, const char *key, size_t len, int64_t sched_ns, int64_t event_ns)
{
    pthread_mutex_lock(&e->mu);
    lg_entry *s = lg_e2e_slot(e, key, len, sched_ns != 0);
    if (s == NULL && event_ns != 0) {
        /* An event for a payment whose answer we have not read yet is kept, unless the
         * table is nearly full (then it is someone else's traffic). */
        s = lg_e2e_slot(e, key, len, true);
    }
    if (s != NULL && !s->done) {
        if (sched_ns != 0) {
            s->sched_ns = sched_ns;
        }
        if (event_ns != 0 && s->event_ns == 0) {
            s->event_ns = event_ns;
        }
        if (s->sched_ns != 0 && s->event_ns != 0) {
            s->done = true;
            e->matched++;
            bench_hist_record(e->hist, (s->event_ns - s->sched_ns) / 1000);
        }
    } else if (s == NULL && event_ns != 0) {
        e->foreign++;
    }
    pthread_mutex_unlock(&e->mu);
}

static uint64_t lg_e2e_matched(lg_e2e *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t n = e->matched;
    pthread_mutex_unlock(&e->mu);
    return n;
}

static void *lg_e2e_main(void *arg)
{
    lg_e2e *e = arg;
    while (!atomic_load(&e->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(e->rk, 50);
        if (m == NULL) {
            continue;
        }
        int64_t now = bench_now_ns();
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key != NULL) {
            lg_e2e_note(e, m->key, m->key_len, 0, now);
        } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* The first end-of-partition proves the fetcher of that partition runs. */
            if (m->partition >= 0 && m->partition < e->partitions && !e->at_end[m->partition]) {
                e->at_end[m->partition] = true;
                atomic_fetch_add(&e->partitions_at_end, 1);
            }
        } else {
            fprintf(stderr, "bench-loadgen: consumer: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static bool lg_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bench-loadgen: kafka setting %s=%s: %s\n", name, value, errstr);
        return false;
    }
    return true;
}

/* Starts consuming every partition of the topic from its current end, so only outcomes of
 * this run's payments arrive. The end offsets are read before any POST goes out. */
static bool lg_e2e_start(lg_e2e *e, const lg_options *o, size_t expected)
{
    char errstr[512];
    char group[96];
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    bool ok = false;

    pthread_mutex_init(&e->mu, NULL);
    atomic_init(&e->stop, false);
    e->cap = 1024;
    while (e->cap < expected * 2 + 1024) {
        e->cap *= 2;
    }
    e->slots = calloc(e->cap, sizeof(*e->slots));
    e->hist = calloc(1, sizeof(*e->hist));
    if (e->slots == NULL || e->hist == NULL) {
        fprintf(stderr, "bench-loadgen: out of memory for %zu payments\n", expected);
        return false;
    }
    snprintf(group, sizeof(group), "bench-loadgen-%d-%lld", (int)getpid(), (long long)time(NULL));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!lg_conf(conf, "bootstrap.servers", o->brokers) || !lg_conf(conf, "group.id", group) ||
        !lg_conf(conf, "client.id", "bench-loadgen") ||
        !lg_conf(conf, "enable.auto.commit", "false") ||
        /* The end of each partition is reported, so we know when fetching has begun. */
        !lg_conf(conf, "enable.partition.eof", "true") ||
        /* Read what a consumer of keel would read: only committed records. */
        !lg_conf(conf, "isolation.level", "read_committed") ||
        !lg_conf(conf, "fetch.wait.max.ms", "10")) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    e->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (e->rk == NULL) {
        fprintf(stderr, "bench-loadgen: cannot create the consumer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rkt = rd_kafka_topic_new(e->rk, o->events_topic, NULL);
    if (rkt == NULL || rd_kafka_metadata(e->rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt <= 0) {
        fprintf(stderr, "bench-loadgen: no metadata for topic %s on %s (does it exist?)\n",
                o->events_topic, o->brokers);
        goto done;
    }
    e->partitions = md->topics[0].partition_cnt;
    e->at_end = calloc((size_t)e->partitions + 1, sizeof(*e->at_end));
    atomic_init(&e->partitions_at_end, 0);
    if (e->at_end == NULL) {
        fprintf(stderr, "bench-loadgen: out of memory\n");
        goto done;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(e->rk, o->events_topic, p, &lo, &hi, 10000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bench-loadgen: end offset of %s[%d]: %s\n", o->events_topic, p,
                    rd_kafka_err2str(err));
            goto done;
        }
        rd_kafka_topic_partition_list_add(parts, o->events_topic, p)->offset = hi;
    }
    if (rd_kafka_assign(e->rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "bench-loadgen: cannot assign the partitions of %s\n", o->events_topic);
        goto done;
    }
    if (pthread_create(&e->thread, NULL, lg_e2e_main, e) != 0) {
        fprintf(stderr, "bench-loadgen: cannot start the consumer thread\n");
        goto done;
    }
    e->thread_started = true;
    /* Wait until every partition is being fetched: otherwise the first outcomes would wait
     * for the consumer's start-up and show as latency of the system. */
    int64_t deadline = bench_now_ns() + 15LL * 1000000000LL;
    while (atomic_load(&e->partitions_at_end) < e->partitions && bench_now_ns() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&e->partitions_at_end) < e->partitions) {
        fprintf(stderr,
                "bench-loadgen: the consumer did not reach the end of every partition of %s "
                "within 15 s\n",
                o->events_topic);
        goto done;
    }
    ok = true;
done:
    if (parts != NULL) {
        rd_kafka_topic_partition_list_destroy(parts);
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    if (rkt != NULL) {
        rd_kafka_topic_destroy(rkt);
    }
    return ok;
}

static void lg_e2e_free(lg_e2e *e)
{
    if (e->thread_started) {
        atomic_store(&e->stop, true);
        pthread_join(e->thread, NULL);
        e->thread_started = false;
    }
    if (e->rk != NULL) {
        rd_kafka_consumer_close(e->rk);
        rd_kafka_destroy(e->rk);
        e->rk = NULL;
    }
    free(e->slots);
    e->slots = NULL;
    free(e->hist);
    e->hist = NULL;
    free(e->at_end);
    e->at_end = NULL;
    pthread_mutex_destroy(&e->mu);
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static size_t lg_on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    lg_request *r = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof(r->body) - 1 - r->body_len;
    if (n > room) {
        r->truncated = true;
    }
    size_t take = n < room ? n : room;
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return n;
}

typedef struct lg_http {
    CURLM *multi;
    char url[512];
    char auth[600];
    char body[256];
    lg_request *free_list;
    lg_request *all;
    size_t outstanding;
} lg_http;

static lg_request *lg_request_get(lg_http *h)
{
    lg_request *r = h->free_list;
    if (r != NULL) {
        h->free_list = r->next_free;
        return r;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        free(r);
        return NULL;
    }
    r->next_all = h->all;
    h->all = r;
    return r;
}

static void lg_request_put(lg_http *h, lg_request *r)
{
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->next_free = h->free_list;
    h->free_list = r;
}

static bool lg_send(lg_http *h, const lg_options *o, uint64_t seq, int64_t due_ns)
{
    char key_header[160];
    lg_request *r = lg_request_get(h);
    if (r == NULL) {
        return false;
    }
    r->scheduled_ns = due_ns;
    r->body_len = 0;
    r->truncated = false;
    r->body[0] = '\0';
    snprintf(key_header, sizeof(key_header), "Idempotency-Key: %s%llu", o->key_prefix,
             (unsigned long long)seq);
    struct curl_slist *hs = curl_slist_append(NULL, h->auth);
    hs = hs != NULL ? curl_slist_append(hs, "Content-Type: application/json") : NULL;
    hs = hs != NULL ? curl_slist_append(hs, key_header) : NULL;
    /* A small body never needs "Expect: 100-continue"; say so to save a round trip. */
    hs = hs != NULL ? curl_slist_append(hs, "Expect:") : NULL;
    if (hs == NULL) {
        lg_request_put(h, r);
        return false;
    }
    r->headers = hs;
    CURL *c = r->easy;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(h->body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, lg_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    if (curl_multi_add_handle(h->multi, c) != CURLM_OK) {
        lg_request_put(h, r);
        return false;
    }
    r->in_flight = true;
    h->outstanding++;
    return true;
}

/* The payment id of a 202 body, copied into out. */
static bool lg_payment_id(const char *body, size_t len, char *out, size_t out_len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    const char *id = json_string_value(json_object_get(doc, "id"));
    bool ok = id != NULL && strlen(id) < out_len;
    if (ok) {
        snprintf(out, out_len, "%s", id);
    }
    json_decref(doc);
    return ok;
}

static void lg_collect(lg_http *h, lg_counts *c, bench_hist *accept, lg_e2e *e2e,
                       int64_t *last_done_ns)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        int64_t now = bench_now_ns();
        lg_request *r = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(h->multi, m->easy_handle);
        r->in_flight = false;
        h->outstanding--;
        *last_done_ns = now;
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            c->timeouts++;
        } else if (rc != CURLE_OK) {
            c->transport++;
        } else if (status == 202 || status == 201 || status == 200) {
            c->ok++;
            bench_hist_record(accept, (now - r->scheduled_ns) / 1000);
            if (e2e != NULL) {
                char id[LG_KEY_MAX];
                if (!r->truncated && lg_payment_id(r->body, r->body_len, id, sizeof(id))) {
                    lg_e2e_note(e2e, id, strlen(id), r->scheduled_ns, 0);
                } else {
                    c->no_id++;
                }
            }
        } else if (status == 429) {
            c->status_429++;
        } else if (status >= 400 && status < 500) {
            c->status_4xx++;
        } else if (status >= 500) {
            c->status_5xx++;
        } else {
            c->status_other++;
        }
        lg_request_put(h, r);
    }
}

static bool lg_write_hist(const char *prefix, const char *what, const bench_hist *h)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s-%s.csv", prefix, what);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return false;
    }
    bool ok = bench_hist_write_csv(h, f, 1000.0);
    if (fclose(f) != 0) {
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "bench-loadgen: writing %s failed\n", path);
    }
    return ok;
}

static void lg_print_hist(const char *name, const bench_hist *h)
{
    printf(" %s_count=%llu %s_p50_ms=%.3f %s_p90_ms=%.3f %s_p99_ms=%.3f %s_p999_ms=%.3f "
           "%s_max_ms=%.3f %s_mean_ms=%.3f",
           name, (unsigned long long)h->total, name, bench_hist_percentile(h, 50.0) / 1000.0, name,
           bench_hist_percentile(h, 90.0) / 1000.0, name, bench_hist_percentile(h, 99.0) / 1000.0,
           name, bench_hist_percentile(h, 99.9) / 1000.0, name,
           bench_hist_percentile(h, 100.0) / 1000.0, name, bench_hist_mean(h) / 1000.0);
}

/* When the run started and ended, for the rates it reports. */
typedef struct lg_timing {
    int64_t start;
    int64_t drain_end;    /* the last moment answers and outcomes are waited for */
    int64_t last_done;    /* the last answer */
    int64_t sending_done; /* every request answered, or the drain ran out */
} lg_timing;

/* Sends total requests on their schedule and collects the answers until all are in or the
 * drain deadline passed; what is still open then counts as unfinished. */
static void lg_run_load(lg_http *h, const lg_options *o, uint64_t total, lg_counts *c,
                        bench_hist *accept, lg_e2e *e2e, lg_timing *t)
{
    const double interval_ns = 1e9 / o->rate;
    t->start = bench_now_ns();
    t->drain_end = t->start + (int64_t)((o->duration_s + o->drain_s) * 1e9);
    t->last_done = t->start;
    uint64_t next = 0;
    for (;;) {
        int64_t now = bench_now_ns();
        while (next < total) {
            int64_t due = t->start + (int64_t)((double)next * interval_ns);
            if (due > now) {
                break;
            }
            if (h->outstanding >= LG_MAX_OUTSTANDING || !lg_send(h, o, next, due)) {
                c->backlog++;
            } else {
                c->sent++;
            }
            next++;
        }
        int running = 0;
        curl_multi_perform(h->multi, &running);
        lg_collect(h, c, accept, e2e, &t->last_done);
        now = bench_now_ns();
        if ((next >= total && h->outstanding == 0) || now >= t->drain_end) {
            break;
        }
        int wait_ms = 50;
        if (next < total) {
            int64_t due = t->start + (int64_t)((double)next * interval_ns);
            int64_t gap_ms = (due - now + 999999) / 1000000;
            wait_ms = gap_ms < 0 ? 0 : (gap_ms < 50 ? (int)gap_ms : 50);
        }
        curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL);
    }
    t->sending_done = bench_now_ns();
    c->unfinished = h->outstanding;
}

/* The one line of key=value results on stdout. */
static void lg_print_results(const lg_options *o, const lg_counts *c, const lg_timing *t,
                             const bench_hist *accept, lg_e2e *e2e)
{
    double window_s = (double)(t->last_done - t->start) / 1e9;
    uint64_t errors = c->status_429 + c->status_4xx + c->status_5xx + c->status_other +
                      c->timeouts + c->transport + c->unfinished + c->backlog;
    printf("rate=%.1f duration_s=%.1f connections=%d sent=%llu ok=%llu errors=%llu "
           "err_429=%llu err_4xx=%llu err_5xx=%llu err_other=%llu err_timeout=%llu "
           "err_transport=%llu err_unfinished=%llu err_backlog=%llu achieved_rps=%.1f "
           "elapsed_s=%.3f",
           o->rate, o->duration_s, o->connections, (unsigned long long)c->sent,
           (unsigned long long)c->ok, (unsigned long long)errors, (unsigned long long)c->status_429,
           (unsigned long long)c->status_4xx, (unsigned long long)c->status_5xx,
           (unsigned long long)c->status_other, (unsigned long long)c->timeouts,
           (unsigned long long)c->transport, (unsigned long long)c->unfinished,
           (unsigned long long)c->backlog, window_s > 0 ? (double)c->ok / window_s : 0.0,
           (double)(t->sending_done - t->start) / 1e9);
    lg_print_hist("accept", accept);
    if (e2e != NULL) {
        uint64_t matched = lg_e2e_matched(e2e);
        uint64_t expected = c->ok - c->no_id;
        printf(" e2e_missing=%llu e2e_no_id=%llu e2e_foreign=%llu",
               (unsigned long long)(expected > matched ? expected - matched : 0),
               (unsigned long long)c->no_id, (unsigned long long)e2e->foreign);
        lg_print_hist("e2e", e2e->hist);
    }
    printf("\n");
    fflush(stdout);
}

static bool lg_parse(int argc, char **argv, lg_options *o)
{
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"connections", required_argument, NULL, 'c'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"drain-s", required_argument, NULL, 'D'},
        {"e2e", required_argument, NULL, 'e'},
        {"events-topic", required_argument, NULL, 'T'},
        {"hist", required_argument, NULL, 'H'},
        {"key-prefix", required_argument, NULL, 'k'},
        {"amount", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t n = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 'r':
            ok = bench_parse_double(optarg, 0.1, LG_MAX_RATE, &o->rate);
            break;
        case 'd':
            ok = bench_parse_double(optarg, 0.1, LG_MAX_DURATION_S, &o->duration_s);
            break;
        case 'c':
            ok = bench_parse_i64(optarg, 1, 1000, &n);
            o->connections = (int)n;
            break;
        case 't':
            ok = bench_parse_i64(optarg, 10, 120000, &n);
            o->timeout_ms = (int)n;
            break;
        case 'D':
            ok = bench_parse_double(optarg, 0.0, 300.0, &o->drain_s);
            break;
        case 'e':
            o->brokers = optarg;
            break;
        case 'T':
            o->events_topic = optarg;
            break;
        case 'H':
            o->hist_prefix = optarg;
            break;
        case 'k':
            o->key_prefix = optarg;
            ok = strlen(optarg) < 100;
            break;
        case 'a':
            ok = bench_parse_i64(optarg, 1, 100000000, &o->amount);
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        default:
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "bench-loadgen: bad value for option %s\n%s", argv[optind - 1],
                    usage_text);
            return false;
        }
    }
    if (o->url == NULL || o->rate <= 0.0 || o->duration_s <= 0.0 || optind != argc) {
        fputs(usage_text, stderr);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    lg_options o = {
        .connections = 16,
        .timeout_ms = 5000,
        .drain_s = 10.0,
        .events_topic = "keel.payment-events.v1",
        .amount = 1999,
    };
    char err[512];
    char default_prefix[96];
    lg_http h;
    lg_e2e e2e;
    lg_counts c;
    bench_hist *accept = NULL;
    int exit_code = 1;
    bool e2e_on = false;

    memset(&h, 0, sizeof(h));
    memset(&e2e, 0, sizeof(e2e));
    memset(&c, 0, sizeof(c));
    signal(SIGPIPE, SIG_IGN);
    if (!lg_parse(argc, argv, &o)) {
        return 2;
    }
    if (!bench_url_is_loopback(o.url, err, sizeof(err)) ||
        (o.brokers != NULL && !bench_brokers_are_loopback(o.brokers, err, sizeof(err)))) {
        fprintf(stderr, "bench-loadgen: %s\n", err);
        return 2;
    }
    const char *api_key = getenv("KEEL_API_KEY");
    if (api_key == NULL || api_key[0] == '\0' || strlen(api_key) > 500) {
        fprintf(stderr, "bench-loadgen: set KEEL_API_KEY to the merchant's API key (the stack's "
                        "stack.env has it)\n");
        return 2;
    }
    double total_d = o.rate * o.duration_s;
    if (total_d < 1.0 || total_d > LG_MAX_REQUESTS) {
        fprintf(stderr, "bench-loadgen: rate x duration must be 1..%d requests\n", LG_MAX_REQUESTS);
        return 2;
    }
    uint64_t total = (uint64_t)(total_d + 0.5);
    if (o.key_prefix == NULL) {
        snprintf(default_prefix, sizeof(default_prefix), "bench-%d-%lld-", (int)getpid(),
                 (long long)time(NULL));
        o.key_prefix = default_prefix;
    }

    accept = calloc(1, sizeof(*accept));
    if (accept == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench-loadgen: cannot initialise (out of memory?)\n");
        free(accept);
        return 1;
    }
    size_t base_len = strlen(o.url);
    while (base_len > 0 && o.url[base_len - 1] == '/') {
        base_len--;
    }
    snprintf(h.url, sizeof(h.url), "%.*s/v1/payments", (int)base_len, o.url);
    snprintf(h.auth, sizeof(h.auth), "Authorization: Bearer %s", api_key);
    snprintf(h.body, sizeof(h.body),
             "{\"amount\":%lld,\"currency\":\"usd\",\"description\":\"bench\","
             "\"payment_method\":\"pm_card_visa\"}",
             (long long)o.amount);
    h.multi = curl_multi_init();
    if (h.multi == NULL) {
        fprintf(stderr, "bench-loadgen: curl_multi_init failed\n");
        goto done;
    }
    /* A fixed set of keep-alive connections: requests beyond them wait in curl's queue, and
     * that wait counts in their latency (it is queueing the server caused). */
    curl_multi_setopt(h.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o.connections);
    curl_multi_setopt(h.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o.connections);
    curl_multi_setopt(h.multi, CURLMOPT_MAXCONNECTS, (long)o.connections);
    curl_multi_setopt(h.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);

    if (o.brokers != NULL) {
        if (!lg_e2e_start(&e2e, &o, (size_t)total)) {
            goto done;
        }
        e2e_on = true;
    }

    lg_timing t;
    lg_run_load(&h, &o, total, &c, accept, e2e_on ? &e2e : NULL, &t);

    /* Outcomes still on their way: wait for them within the same drain budget. */
    if (e2e_on) {
        while (lg_e2e_matched(&e2e) < c.ok - c.no_id && bench_now_ns() < t.drain_end) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        atomic_store(&e2e.stop, true);
        pthread_join(e2e.thread, NULL);
        e2e.thread_started = false;
    }

    lg_print_results(&o, &c, &t, accept, e2e_on ? &e2e : NULL);
    exit_code = 0;
    if (o.hist_prefix != NULL) {
        if (!lg_write_hist(o.hist_prefix, "accept", accept) ||
            (e2e_on && !lg_write_hist(o.hist_prefix, "e2e", e2e.hist))) {
            exit_code = 1;
        }
    }

done:
    if (e2e_on || e2e.rk != NULL || e2e.slots != NULL || e2e.hist != NULL) {
        lg_e2e_free(&e2e);
    }
    /* Requests still in flight after the drain are detached before anything is freed. */
    while (h.all != NULL) {
        lg_request *r = h.all;
        h.all = r->next_all;
        if (r->in_flight && h.multi != NULL) {
            curl_multi_remove_handle(h.multi, r->easy);
        }
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r);
    }
    h.free_list = NULL;
    if (h.multi != NULL) {
        curl_multi_cleanup(h.multi);
        h.multi = NULL;
    }
    free(accept);
    accept = NULL;
    curl_global_cleanup();
    return exit_code;
}
