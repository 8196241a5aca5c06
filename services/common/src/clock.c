/* Wall and monotonic clocks, interruptible sleeps and RFC 3339 rendering of UTC times. */
#include "keel/clock.h"

#include <stdio.h>
#include <time.h>

static int64_t clock_read_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

int64_t keel_clock_now_ms(void)
{
    return clock_read_ns(CLOCK_REALTIME) / 1000000LL;
}

int64_t keel_clock_now_us(void)
{
    return clock_read_ns(CLOCK_REALTIME) / 1000LL;
}

int64_t keel_clock_monotonic_ms(void)
{
    return clock_read_ns(CLOCK_MONOTONIC) / 1000000LL;
}

void keel_clock_sleep_ms(int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec req = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    /* A signal ends the sleep early on purpose: shutdown must not wait out a long backoff. */
    (void)nanosleep(&req, NULL);
}

char *keel_clock_format_rfc3339(int64_t epoch_ms, char *out)
{
    /* Floor division so times before 1970 still render the right second and millisecond. */
    int64_t secs = epoch_ms / 1000;
    int64_t millis = epoch_ms % 1000;
    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, KEEL_RFC3339_LEN, "1970-01-01T00:00:00.000Z");
        return out;
    }
    /* RFC 3339 allows years 0000-9999 only; the modulo also lets the compiler see that
     * every field fits the buffer. */
    unsigned year = (unsigned)(tm.tm_year + 1900);
    snprintf(out, KEEL_RFC3339_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", year % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)millis % 1000u);
    return out;
}
