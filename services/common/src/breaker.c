/* Circuit breaker over a sliding window of calls, and a token-bucket retry budget. */
#include "keel/breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/metrics.h"

#define BREAKER_DEFAULT_WINDOW 20
#define BREAKER_DEFAULT_MIN_CALLS 10
#define BREAKER_DEFAULT_FAILURE_RATE 0.5
#define BREAKER_DEFAULT_SLOW_RATE 1.0
#define BREAKER_DEFAULT_SLOW_CALL_MS 2000
#define BREAKER_DEFAULT_OPEN_MS 5000
#define BREAKER_DEFAULT_PROBES 3
/* A window larger than this would only cost memory: verdicts over 10 000 calls react to an
 * outage far too slowly to protect anything. */
#define BREAKER_MAX_WINDOW 10000

/* One judged call in the window. */
#define CALL_FAILED 0x1u
#define CALL_SLOW 0x2u

struct keel_breaker {
    pthread_mutex_t mu;
    char *name;
    int window_size;
    int min_calls;
    double failure_rate;
    double slow_rate;
    int64_t slow_call_ms;
    int64_t open_ms;
    int half_open_probes;
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;

    keel_breaker_state state;
    unsigned char *calls; /* ring of CALL_* flags, window_size long */
    int count;            /* calls in the window (<= window_size) */
    int next;             /* where the next call goes */
    int failures;         /* failed calls in the window */
    int slows;            /* slow calls in the window */
    int64_t opened_at;    /* when it last turned open */
    int probes_issued;    /* permits given in this half-open episode */
    int probes_in_flight; /* of those, not yet recorded */
    int probes_ok;        /* of those, recorded as healthy */

    keel_metric *m_state;
    keel_metric *m_to[3]; /* transitions, indexed by the state entered */
    keel_metric *m_rejected;
};

const char *keel_breaker_state_name(keel_breaker_state s)
{
    switch (s) {
    case KEEL_BREAKER_CLOSED:
        return "closed";
    case KEEL_BREAKER_OPEN:
        return "open";
    case KEEL_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "invalid";
}

static int64_t breaker_default_now(void *ctx)
{
    (void)ctx;
    return keel_clock_monotonic_ms();
}

static int64_t breaker_now(const keel_breaker *b)
{
    return b->now_ms(b->clock_ctx);
}

static void breaker_window_clear(keel_breaker *b)
{
    memset(b->calls, 0, (size_t)b->window_size);
    b->count = 0;
    b->next = 0;
    b->failures = 0;
    b->slows = 0;
}

/* Caller holds mu. */
static void breaker_enter(keel_breaker *b, keel_breaker_state to)
{
    b->state = to;
    b->probes_issued = 0;
    b->probes_in_flight = 0;
    b->probes_ok = 0;
    if (to == KEEL_BREAKER_OPEN) {
        b->opened_at = breaker_now(b);
    }
    /* Every state starts judging afresh: calls from before an outage say nothing about the
     * dependency after it. */
    breaker_window_clear(b);
    keel_metric_set(b->m_state, (double)to);
    keel_metric_inc(b->m_to[to]);
}

/* Open long enough: the next caller may probe. Caller holds mu. */
static void breaker_tick(keel_breaker *b)
{
    if (b->state == KEEL_BREAKER_OPEN && breaker_now(b) - b->opened_at >= b->open_ms) {
        breaker_enter(b, KEEL_BREAKER_HALF_OPEN);
    }
}

keel_breaker *keel_breaker_new(const keel_breaker_options *opts)
{
    keel_breaker *b = calloc(1, sizeof(*b));
    char labels[256];
    if (b == NULL) {
        return NULL;
    }
    b->name = strdup(opts->name != NULL && opts->name[0] != '\0' ? opts->name : "unnamed");
    b->window_size = opts->window_size > 0 ? opts->window_size : BREAKER_DEFAULT_WINDOW;
    if (b->window_size > BREAKER_MAX_WINDOW) {
        b->window_size = BREAKER_MAX_WINDOW;
    }
    b->min_calls = opts->min_calls > 0 ? opts->min_calls : BREAKER_DEFAULT_MIN_CALLS;
    if (b->min_calls > b->window_size) {
        /* Otherwise no verdict could ever be reached. */
        b->min_calls = b->window_size;
    }
    b->failure_rate = opts->failure_rate > 0 ? opts->failure_rate : BREAKER_DEFAULT_FAILURE_RATE;
    b->slow_rate = opts->slow_rate > 0 ? opts->slow_rate : BREAKER_DEFAULT_SLOW_RATE;
    b->slow_call_ms = opts->slow_call_ms > 0 ? opts->slow_call_ms : BREAKER_DEFAULT_SLOW_CALL_MS;
    b->open_ms = opts->open_ms > 0 ? opts->open_ms : BREAKER_DEFAULT_OPEN_MS;
    b->half_open_probes =
        opts->half_open_probes > 0 ? opts->half_open_probes : BREAKER_DEFAULT_PROBES;
    b->now_ms = opts->now_ms != NULL ? opts->now_ms : breaker_default_now;
    b->clock_ctx = opts->clock_ctx;
    b->calls = calloc((size_t)b->window_size, 1);
    if (b->name == NULL || b->calls == NULL || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->calls);
        free(b->name);
        free(b);
        return NULL;
    }
    b->state = KEEL_BREAKER_CLOSED;

    keel_metrics *m = keel_metrics_default();
    snprintf(labels, sizeof(labels), "breaker=\"%s\"", b->name);
    b->m_state = keel_metrics_gauge(m, "keel_breaker_state",
                                    "Circuit breaker state: 0 closed, 1 open, 2 half-open", labels);
    b->m_rejected = keel_metrics_counter(m, "keel_breaker_rejected_total",
                                         "Calls a circuit breaker refused to let through", labels);
    for (int s = KEEL_BREAKER_CLOSED; s <= KEEL_BREAKER_HALF_OPEN; s++) {
        snprintf(labels, sizeof(labels), "breaker=\"%s\",to=\"%s\"", b->name,
                 keel_breaker_state_name((keel_breaker_state)s));
        b->m_to[s] =
            keel_metrics_counter(m, "keel_breaker_transitions_total",
                                 "Circuit breaker state changes, by the state entered", labels);
    }
    keel_metric_set(b->m_state, (double)KEEL_BREAKER_CLOSED);
    return b;
}

void keel_breaker_free(keel_breaker *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_destroy(&b->mu);
    free(b->calls);
    b->calls = NULL;
    free(b->name);
    b->name = NULL;
    free(b);
}

bool keel_breaker_allow(keel_breaker *b)
{
    bool ok = false;
    pthread_mutex_lock(&b->mu);
    breaker_tick(b);
    switch (b->state) {
    case KEEL_BREAKER_CLOSED:
        ok = true;
        break;
    case KEEL_BREAKER_OPEN:
        ok = false;
        break;
    case KEEL_BREAKER_HALF_OPEN:
        /* A fixed number of probes per episode: once they are out, everybody else waits for
         * their verdict instead of piling onto a dependency that may still be sick. */
        if (b->probes_issued < b->half_open_probes) {
            b->probes_issued++;
            b->probes_in_flight++;
            ok = true;
        }
        break;
    }
    if (!ok) {
        keel_metric_inc(b->m_rejected);
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

/* Adds one call to the closed window and opens when a rate reaches its threshold. Caller
 * holds mu. */
static void breaker_judge(keel_breaker *b, bool failed, bool slow)
{
    if (b->count == b->window_size) {
        unsigned char old = b->calls[b->next];
        b->failures -= (old & CALL_FAILED) != 0;
        b->slows -= (old & CALL_SLOW) != 0;
        b->count--;
    }
    b->calls[b->next] = (unsigned char)((failed ? CALL_FAILED : 0u) | (slow ? CALL_SLOW : 0u));
    b->failures += failed;
    b->slows += slow;
    b->count++;
    b->next = (b->next + 1) % b->window_size;
    if (b->count < b->min_calls) {
        return;
    }
    double n = (double)b->count;
    if ((double)b->failures / n >= b->failure_rate || (double)b->slows / n >= b->slow_rate) {
        breaker_enter(b, KEEL_BREAKER_OPEN);
    }
}

void keel_breaker_record(keel_breaker *b, bool success, int64_t duration_ms)
{
    bool slow = duration_ms >= b->slow_call_ms;
    pthread_mutex_lock(&b->mu);
    switch (b->state) {
    case KEEL_BREAKER_CLOSED:
        breaker_judge(b, !success, slow);
        break;
    case KEEL_BREAKER_OPEN:
        /* A call let through before the breaker opened, finishing late: the verdict is
         * already in. */
        break;
    case KEEL_BREAKER_HALF_OPEN:
        if (b->probes_in_flight == 0) {
            break; /* a straggler from the closed state, not one of our probes */
        }
        b->probes_in_flight--;
        /* A probe must show the dependency healthy: a slow answer is no better than none. */
        if (!success || slow) {
            breaker_enter(b, KEEL_BREAKER_OPEN);
        } else if (++b->probes_ok >= b->half_open_probes) {
            breaker_enter(b, KEEL_BREAKER_CLOSED);
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
}

void keel_breaker_release(keel_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->state == KEEL_BREAKER_HALF_OPEN && b->probes_in_flight > 0) {
        b->probes_in_flight--;
        b->probes_issued--;
    }
    pthread_mutex_unlock(&b->mu);
}

keel_breaker_state keel_breaker_state_now(keel_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    breaker_tick(b);
    keel_breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

/* ---- retry budget -------------------------------------------------------------------- */

/* Deposits are kept for about this many first attempts: a long healthy spell must not save
 * up a burst of retries big enough to hammer a dependency that just fell over. */
#define RETRY_BUDGET_MEMORY_CALLS 100.0
/* Deposits of 0.1 ten times add up to 0.999...: a token is whole within this margin. */
#define RETRY_BUDGET_EPSILON 1e-9

struct keel_retry_budget {
    pthread_mutex_t mu;
    double ratio;
    double max_tokens; /* cap on deposited tokens */
    double tokens;     /* deposited by first attempts */
    double min_per_second;
    double min_cap;    /* cap on the time-based allowance */
    double min_tokens; /* refilled with time at min_per_second */
    int64_t refilled_at;
    keel_metric *m_exhausted;
};

keel_retry_budget *keel_retry_budget_new(const char *name, double ratio, double min_per_second)
{
    keel_retry_budget *b = calloc(1, sizeof(*b));
    char labels[256];
    if (b == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return NULL;
    }
    b->ratio = ratio > 0 ? ratio : 0;
    b->max_tokens = b->ratio > 0 ? b->ratio * RETRY_BUDGET_MEMORY_CALLS : 0;
    if (b->ratio > 0 && b->max_tokens < 1.0) {
        b->max_tokens = 1.0; /* else a tiny ratio could never add up to one retry */
    }
    b->min_per_second = min_per_second > 0 ? min_per_second : 0;
    b->min_cap = b->min_per_second > 0 && b->min_per_second < 1.0 ? 1.0 : b->min_per_second;
    /* One second's allowance from the start, so a service that starts into an outage can
     * still retry a little. */
    b->min_tokens = b->min_cap;
    b->refilled_at = keel_clock_monotonic_ms();
    snprintf(labels, sizeof(labels), "budget=\"%s\"",
             name != NULL && name[0] != '\0' ? name : "unnamed");
    b->m_exhausted =
        keel_metrics_counter(keel_metrics_default(), "keel_retry_budget_exhausted_total",
                             "Retries refused because the retry budget was spent", labels);
    return b;
}

void keel_retry_budget_free(keel_retry_budget *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void keel_retry_budget_deposit(keel_retry_budget *b)
{
    pthread_mutex_lock(&b->mu);
    b->tokens += b->ratio;
    if (b->tokens > b->max_tokens) {
        b->tokens = b->max_tokens;
    }
    pthread_mutex_unlock(&b->mu);
}

bool keel_retry_budget_withdraw(keel_retry_budget *b)
{
    bool ok = false;
    pthread_mutex_lock(&b->mu);
    int64_t now = keel_clock_monotonic_ms();
    if (b->min_per_second > 0 && now > b->refilled_at) {
        b->min_tokens += (double)(now - b->refilled_at) / 1000.0 * b->min_per_second;
        if (b->min_tokens > b->min_cap) {
            b->min_tokens = b->min_cap;
        }
    }
    b->refilled_at = now;
    if (b->tokens >= 1.0 - RETRY_BUDGET_EPSILON) {
        b->tokens = b->tokens > 1.0 ? b->tokens - 1.0 : 0.0;
        ok = true;
    } else if (b->min_tokens >= 1.0 - RETRY_BUDGET_EPSILON) {
        b->min_tokens = b->min_tokens > 1.0 ? b->min_tokens - 1.0 : 0.0;
        ok = true;
    }
    pthread_mutex_unlock(&b->mu);
    if (!ok) {
        keel_metric_inc(b->m_exhausted);
    }
    return ok;
}
