/* RFC 3339 timestamps and calendar dates, parsed strictly with the calendar checked. */
#include "timeparse.h"

#include <string.h>

/* n decimal digits at s into *out. */
static bool tp_digits(const char *s, int n, int *out)
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

static bool tp_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool tp_date_valid(int y, int m, int d)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) {
        return false;
    }
    return d <= days[m - 1] + (m == 2 && tp_leap(y) ? 1 : 0);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's TZ dependence. */
static int64_t tp_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool ledger_date_parse(const char *s, int *year, int *month, int *day)
{
    int y, m, d;
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !tp_digits(s, 4, &y) ||
        !tp_digits(s + 5, 2, &m) || !tp_digits(s + 8, 2, &d) || !tp_date_valid(y, m, d)) {
        return false;
    }
    *year = y;
    *month = m;
    *day = d;
    return true;
}

bool ledger_time_parse_rfc3339(const char *s, int64_t *epoch_ms)
{
    int y, mo, d, h, mi, sec, ms = 0, off_h = 0, off_m = 0, sign = 0;
    const char *p;

    if (s == NULL || strlen(s) < 20) {
        return false;
    }
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || !tp_digits(s, 4, &y) || !tp_digits(s + 5, 2, &mo) ||
        !tp_digits(s + 8, 2, &d) || !tp_digits(s + 11, 2, &h) || !tp_digits(s + 14, 2, &mi) ||
        !tp_digits(s + 17, 2, &sec)) {
        return false;
    }
    if (!tp_date_valid(y, mo, d) || h > 23 || mi > 59 || sec > 59) {
        return false;
    }
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
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
        if (strlen(p) != 6 || p[3] != ':' || !tp_digits(p + 1, 2, &off_h) ||
            !tp_digits(p + 4, 2, &off_m) || off_h > 23 || off_m > 59) {
            return false;
        }
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0') {
        return false;
    }
    int64_t secs = tp_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    secs -= (int64_t)sign * (off_h * 3600 + off_m * 60);
    if (secs < 0) {
        return false;
    }
    *epoch_ms = secs * 1000 + ms;
    return true;
}
