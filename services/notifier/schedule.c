/* Retry schedule of webhook deliveries: parsing, jittered delays, Retry-After, verdicts. */
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/retry.h"

#define SCHEDULE_MAX_STEPS 100
#define SCHEDULE_MAX_STEP_MS (7LL * 24 * 3600 * 1000)

bool notifier_duration_parse(const char *text, int64_t *ms)
{
    char *end = NULL;
    if (text == NULL || !isdigit((unsigned char)text[0])) {
        return false;
    }
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || v <= 0 || v > 1000000000LL) {
        return false;
    }
    int64_t unit;
    if (strcmp(end, "ms") == 0) {
        unit = 1;
    } else if (strcmp(end, "s") == 0) {
        unit = 1000;
    } else if (strcmp(end, "m") == 0) {
        unit = 60 * 1000;
    } else if (strcmp(end, "h") == 0) {
        unit = 3600 * 1000;
    } else if (strcmp(end, "d") == 0) {
        unit = 24LL * 3600 * 1000;
    } else {
        return false;
    }
    if (v > INT64_MAX / unit) {
        return false;
    }
    *ms = (int64_t)v * unit;
    return true;
}

bool notifier_schedule_parse(const char *text, int jitter_pct, notifier_schedule *out, char *err,
                             size_t err_len)
{
    memset(out, 0, sizeof(*out));
    if (jitter_pct < 0 || jitter_pct > 100) {
        snprintf(err, err_len, "the jitter must be 0..100 percent, not %d", jitter_pct);
        return false;
    }
    out->jitter_pct = jitter_pct;
    out->delays_ms = calloc(SCHEDULE_MAX_STEPS, sizeof(*out->delays_ms));
    if (out->delays_ms == NULL) {
        snprintf(err, err_len, "out of memory parsing the retry schedule");
        return false;
    }
    const char *p = text != NULL ? text : "";
    while (*p != '\0') {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        if (n == 0) {
            continue;
        }
        char item[32];
        int64_t ms = 0;
        if (n >= sizeof(item)) {
            snprintf(err, err_len, "retry schedule entry \"%.20s...\" is too long", p);
            goto fail;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (!notifier_duration_parse(item, &ms) || ms > SCHEDULE_MAX_STEP_MS) {
            snprintf(err, err_len,
                     "retry schedule entry \"%s\" is not a duration up to 7d such as 250ms, "
                     "30s, 2m, 1h or 1d",
                     item);
            goto fail;
        }
        if (out->count == SCHEDULE_MAX_STEPS) {
            snprintf(err, err_len, "the retry schedule has more than %d entries",
                     SCHEDULE_MAX_STEPS);
            goto fail;
        }
        out->delays_ms[out->count++] = ms;
        p += n;
    }
    if (out->count == 0) {
        snprintf(err, err_len, "the retry schedule is empty; give at least one delay, e.g. 30s");
        goto fail;
    }
    return true;
fail:
    notifier_schedule_clear(out);
    return false;
}

void notifier_schedule_clear(notifier_schedule *s)
{
    if (s == NULL) {
        return;
    }
    free(s->delays_ms);
    s->delays_ms = NULL;
    s->count = 0;
}

int notifier_schedule_max_attempts(const notifier_schedule *s)
{
    return s->count + 1;
}

int64_t notifier_schedule_longest_ms(const notifier_schedule *s)
{
    int64_t longest = 0;
    for (int i = 0; i < s->count; i++) {
        longest = s->delays_ms[i] > longest ? s->delays_ms[i] : longest;
    }
    return longest;
}

int64_t notifier_schedule_next_ms(const notifier_schedule *s, int attempts_made,
                                  int64_t retry_after_ms, uint64_t *rng)
{
    static _Thread_local uint64_t local_rng;
    if (attempts_made < 1 || attempts_made > s->count) {
        return -1;
    }
    int64_t base = s->delays_ms[attempts_made - 1];
    int64_t delay = base;
    int64_t spread = base / 100 * s->jitter_pct + base % 100 * s->jitter_pct / 100;
    if (spread > 0) {
        if (rng == NULL) {
            if (local_rng == 0) {
                local_rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&local_rng;
                local_rng |= 1u;
            }
            rng = &local_rng;
        }
        /* Upward only: the schedule is a floor, so no attempt ever comes early, and
         * endpoints recovering at the same moment are not hit by every retry at once. */
        delay += (int64_t)(keel_rand_next(rng) % (uint64_t)(spread + 1));
    }
    if (retry_after_ms >= 0) {
        int64_t cap = notifier_schedule_longest_ms(s);
        int64_t honoured = retry_after_ms < cap ? retry_after_ms : cap;
        delay = delay > honoured ? delay : honoured;
    }
    return delay;
}

int64_t notifier_retry_after_ms(const char *value, int64_t now_ms)
{
    if (value == NULL || value[0] == '\0') {
        return -1;
    }
    if (isdigit((unsigned char)value[0])) {
        char *end = NULL;
        errno = 0;
        long long secs = strtoll(value, &end, 10);
        while (end != NULL && (*end == ' ' || *end == '\t')) {
            end++;
        }
        if (errno != 0 || end == NULL || *end != '\0' || secs < 0) {
            return -1;
        }
        if (secs > 365LL * 24 * 3600) {
            secs = 365LL * 24 * 3600;
        }
        return (int64_t)secs * 1000;
    }
    /* IMF-fixdate, the only HTTP-date form senders may generate (RFC 9110). */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0') {
        return -1;
    }
    time_t at = timegm(&tm);
    if (at == (time_t)-1) {
        return -1;
    }
    int64_t delta = (int64_t)at * 1000 - now_ms;
    return delta > 0 ? delta : 0;
}

notifier_verdict notifier_decide(long status, int attempts_made, int max_attempts)
{
    if (status >= 200 && status <= 299) {
        return NOTIFIER_VERDICT_SUCCEEDED;
    }
    if (status == 410) {
        return NOTIFIER_VERDICT_GONE;
    }
    return attempts_made < max_attempts ? NOTIFIER_VERDICT_RETRY : NOTIFIER_VERDICT_DEAD;
}

const char *notifier_verdict_name(notifier_verdict v)
{
    switch (v) {
    case NOTIFIER_VERDICT_SUCCEEDED:
        return "succeeded";
    case NOTIFIER_VERDICT_RETRY:
        return "retry";
    case NOTIFIER_VERDICT_DEAD:
        return "dead";
    case NOTIFIER_VERDICT_GONE:
        return "gone";
    }
    return "dead";
}
