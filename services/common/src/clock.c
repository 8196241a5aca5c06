/* Wall and monotonic clocks, interruptible sleeps, RFC 3339 rendering and strict parsing. */
#include "keel/clock.h"

#include <stdio.h>
#include <string.h>
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

/* n decimal digits at s into *out; false at the first non-digit (including the end). */
static bool clock_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool clock_date_valid(int y, int m, int d)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) {
        return false;
    }
    return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil), so parsing does not depend on timegm or the TZ variable. */
static int64_t clock_days_from_civil(int y, int m, int d)
{
    int64_t yy = m <= 2 ? y - 1 : y;
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool keel_clock_parse_date(const char *s, int *year, int *month, int *day)
{
    int y, m, d;
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !clock_digits(s, 4, &y) ||
        !clock_digits(s + 5, 2, &m) || !clock_digits(s + 8, 2, &d) || !clock_date_valid(y, m, d)) {
        return false;
    }
    *year = y;
    *month = m;
    *day = d;
    return true;
}

static bool clock_parse_rfc3339(const char *s, bool round_up, int64_t *epoch_ms)
{
    int y, mo, d, h, mi, sec, off_h = 0, off_m = 0, sign = 0;
    int64_t ms = 0;
    bool finer = false;
    const char *p;

    /* Every check reads only up to the first character that fails, so a short string stops
     * at its terminator. */
    if (s == NULL || !clock_digits(s, 4, &y) || s[4] != '-' || !clock_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !clock_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !clock_digits(s + 11, 2, &h) || s[13] != ':' || !clock_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !clock_digits(s + 17, 2, &sec)) {
        return false;
    }
    if (!clock_date_valid(y, mo, d) || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            } else if (*p != '0') {
                finer = true;
            }
            n++;
            p++;
        }
        if (n == 0 || n > 9) {
            return false;
        }
        for (; n < 3; n++) {
            ms *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (!clock_digits(p + 1, 2, &off_h) || p[3] != ':' || !clock_digits(p + 4, 2, &off_m) ||
            off_h > 23 || off_m > 59) {
            return false;
        }
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0') {
        return false;
    }
    /* A leap second is counted as second 59 and then moved on by one, once it is known to
     * fall at 23:59:60 UTC: the next second must then start a UTC day that is the first of a
     * month, which (the offset being under a day) is the first of the local month or of the
     * one after. */
    int64_t secs = clock_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                   (sec == 60 ? 59 : sec) - (int64_t)sign * (off_h * 3600 + off_m * 60);
    if (sec == 60) {
        secs++;
        int64_t day = secs / 86400;
        if (secs < 0 || secs % 86400 != 0 ||
            (day != clock_days_from_civil(y, mo, 1) &&
             day != clock_days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1))) {
            return false;
        }
    }
    if (secs < 0) {
        return false;
    }
    *epoch_ms = secs * 1000 + ms + (round_up && finer ? 1 : 0);
    return true;
}

bool keel_clock_parse_rfc3339(const char *s, int64_t *epoch_ms)
{
    return clock_parse_rfc3339(s, false, epoch_ms);
}

bool keel_clock_parse_rfc3339_ceil(const char *s, int64_t *epoch_ms)
{
    return clock_parse_rfc3339(s, true, epoch_ms);
}
