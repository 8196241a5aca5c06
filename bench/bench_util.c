/* Small helpers the benchmark tools share (see bench_util.h). */
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A dotted quad a.b.c.d with a == 127 and every part 0..255. */
static bool host_is_127(const char *host, size_t len)
{
    char buf[16];
    unsigned parts[4];
    char tail;

    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, host, len);
    buf[len] = '\0';
    if (sscanf(buf, "%u.%u.%u.%u%c", &parts[0], &parts[1], &parts[2], &parts[3], &tail) != 4) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (parts[i] > 255) {
            return false;
        }
    }
    return parts[0] == 127;
}

bool bench_host_is_loopback(const char *host, size_t len)
{
    if (host == NULL) {
        return false;
    }
    if (len == 9 && strncasecmp(host, "localhost", 9) == 0) {
        return true;
    }
    if ((len == 3 && memcmp(host, "::1", 3) == 0) || (len == 5 && memcmp(host, "[::1]", 5) == 0)) {
        return true;
    }
    return host_is_127(host, len);
}

/* The host part of "host:port" or "[v6]:port": start and length. */
static bool split_host(const char *hostport, size_t len, size_t *host_len)
{
    if (len > 0 && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', len);
        if (close == NULL) {
            return false;
        }
        *host_len = (size_t)(close - hostport) + 1;
        return true;
    }
    const char *colon = memchr(hostport, ':', len);
    *host_len = colon != NULL ? (size_t)(colon - hostport) : len;
    return true;
}

bool bench_url_is_loopback(const char *url, char *err, size_t err_len)
{
    static const char scheme[] = "http://";
    if (url == NULL || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, err_len, "'%s' is not an http:// URL", url != NULL ? url : "(none)");
        return false;
    }
    const char *hp = url + sizeof(scheme) - 1;
    size_t hp_len = strcspn(hp, "/?#");
    size_t host_len = 0;
    if (memchr(hp, '@', hp_len) != NULL || !split_host(hp, hp_len, &host_len) ||
        !bench_host_is_loopback(hp, host_len)) {
        snprintf(err, err_len,
                 "'%s' is not on this machine: the benchmark sends traffic only to loopback "
                 "addresses (127.0.0.0/8, localhost, [::1])",
                 url);
        return false;
    }
    return true;
}

bool bench_brokers_are_loopback(const char *brokers, char *err, size_t err_len)
{
    if (brokers == NULL || brokers[0] == '\0') {
        snprintf(err, err_len, "no Kafka brokers given");
        return false;
    }
    const char *p = brokers;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *entry = p;
        size_t host_len = 0;
        /* librdkafka accepts an optional "PLAINTEXT://" in front of each entry. */
        const char *sep = len > 3 ? strstr(entry, "://") : NULL;
        if (sep != NULL && sep < entry + len) {
            len -= (size_t)(sep + 3 - entry);
            entry = sep + 3;
        }
        if (len == 0 || !split_host(entry, len, &host_len) ||
            !bench_host_is_loopback(entry, host_len)) {
            snprintf(err, err_len,
                     "Kafka broker '%.*s' is not on this machine: the benchmark talks only to "
                     "loopback addresses",
                     (int)len, entry);
            return false;
        }
        p = entry + len;
        if (*p == ',') {
            p++;
        }
    }
    return true;
}

bool bench_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool bench_parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}
