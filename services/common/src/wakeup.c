/* Sleeping worker threads woken by kicks, due times, timeouts or a stop. */
#include "keel/wakeup.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "keel/clock.h"
#include "keel/shutdown.h"

struct keel_wakeup {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t kicks;
    int64_t due_at_ms; /* monotonic; 0 = none known */
    bool stopping;
};

keel_wakeup *keel_wakeup_new(void)
{
    keel_wakeup *w = calloc(1, sizeof(*w));
    pthread_condattr_t attr;
    if (w == NULL) {
        return NULL;
    }
    if (pthread_condattr_init(&attr) != 0) {
        free(w);
        return NULL;
    }
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
              pthread_mutex_init(&w->mu, NULL) == 0;
    if (ok && pthread_cond_init(&w->cond, &attr) != 0) {
        pthread_mutex_destroy(&w->mu);
        ok = false;
    }
    pthread_condattr_destroy(&attr);
    if (!ok) {
        free(w);
        return NULL;
    }
    return w;
}

void keel_wakeup_free(keel_wakeup *w)
{
    if (w == NULL) {
        return;
    }
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

uint64_t keel_wakeup_seen(keel_wakeup *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t k = w->kicks;
    pthread_mutex_unlock(&w->mu);
    return k;
}

void keel_wakeup_kick(keel_wakeup *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->kicks++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void keel_wakeup_due_in(keel_wakeup *w, int64_t delay_ms)
{
    int64_t at = keel_clock_monotonic_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&w->mu);
    if (w->due_at_ms == 0 || at < w->due_at_ms) {
        w->due_at_ms = at;
    }
    pthread_cond_broadcast(&w->cond); /* sleepers recompute their deadline */
    pthread_mutex_unlock(&w->mu);
}

void keel_wakeup_stop(keel_wakeup *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

bool keel_wakeup_stopped(keel_wakeup *w)
{
    pthread_mutex_lock(&w->mu);
    bool stop = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stop || keel_shutdown_requested();
}

void keel_wakeup_sleep(keel_wakeup *w, uint64_t seen, int64_t ms)
{
    int64_t until = keel_clock_monotonic_ms() + (ms > 0 ? ms : 0);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        int64_t now = keel_clock_monotonic_ms();
        if (w->stopping || w->kicks != seen || keel_shutdown_requested() || now >= until) {
            break;
        }
        if (w->due_at_ms != 0 && w->due_at_ms <= now) {
            w->due_at_ms = 0; /* this thread looks; the others sleep on */
            break;
        }
        int64_t wake = w->due_at_ms != 0 && w->due_at_ms < until ? w->due_at_ms : until;
        /* A shutdown signal cannot broadcast the condition: look again at least every 200 ms. */
        if (wake - now > 200) {
            wake = now + 200;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (wake - now) * 1000000LL;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        (void)pthread_cond_timedwait(&w->cond, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
}
