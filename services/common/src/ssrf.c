/* SSRF guard: address classes from fixed prefix tables, a CIDR allow-list, and name resolution
 * with a timeout that checks every address a name resolves to. */
#include "keel/ssrf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/clock.h"

/* ---- addresses -------------------------------------------------------------------------- */

bool keel_ip_parse(const char *text, keel_ip *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL) {
        return false;
    }
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = AF_INET6;
        return true;
    }
    memset(out, 0, sizeof(*out));
    return false;
}

bool keel_ip_from_sockaddr(const struct sockaddr *sa, keel_ip *out)
{
    memset(out, 0, sizeof(*out));
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        out->family = AF_INET;
        memcpy(out->bytes, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        out->family = AF_INET6;
        memcpy(out->bytes, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

char *keel_ip_format(const keel_ip *ip, char *out)
{
    if (inet_ntop(ip->family, ip->bytes, out, KEEL_IP_STR_LEN) == NULL) {
        snprintf(out, KEEL_IP_STR_LEN, "?");
    }
    return out;
}

/* ---- classes ---------------------------------------------------------------------------- */

/* One row of a prefix table: the first row that covers an address decides its class. */
typedef struct ssrf_prefix {
    uint8_t bytes[16];
    int len; /* prefix length in bits */
    keel_ssrf_class cls;
} ssrf_prefix;

/* Order matters: the specific metadata hosts come before the ranges that hold them. */
static const ssrf_prefix ssrf_v4_table[] = {
    {{169, 254, 169, 254}, 32, KEEL_SSRF_METADATA}, /* AWS, GCP, Azure, OpenStack, ... */
    {{169, 254, 170, 2}, 32, KEEL_SSRF_METADATA},   /* AWS ECS task metadata */
    {{168, 63, 129, 16}, 32, KEEL_SSRF_METADATA},   /* Azure wire server */
    {{100, 100, 100, 200}, 32, KEEL_SSRF_METADATA}, /* Alibaba Cloud */
    {{0, 0, 0, 0}, 8, KEEL_SSRF_UNSPECIFIED},
    {{10, 0, 0, 0}, 8, KEEL_SSRF_PRIVATE},
    {{100, 64, 0, 0}, 10, KEEL_SSRF_CGNAT},
    {{127, 0, 0, 0}, 8, KEEL_SSRF_LOOPBACK},
    {{169, 254, 0, 0}, 16, KEEL_SSRF_LINK_LOCAL},
    {{172, 16, 0, 0}, 12, KEEL_SSRF_PRIVATE},
    {{192, 0, 0, 0}, 24, KEEL_SSRF_RESERVED},   /* IETF protocol assignments */
    {{192, 0, 2, 0}, 24, KEEL_SSRF_RESERVED},   /* TEST-NET-1 */
    {{192, 88, 99, 0}, 24, KEEL_SSRF_RESERVED}, /* deprecated 6to4 relays */
    {{192, 168, 0, 0}, 16, KEEL_SSRF_PRIVATE},
    {{198, 18, 0, 0}, 15, KEEL_SSRF_RESERVED},   /* benchmarking */
    {{198, 51, 100, 0}, 24, KEEL_SSRF_RESERVED}, /* TEST-NET-2 */
    {{203, 0, 113, 0}, 24, KEEL_SSRF_RESERVED},  /* TEST-NET-3 */
    {{224, 0, 0, 0}, 4, KEEL_SSRF_MULTICAST},
    {{240, 0, 0, 0}, 4, KEEL_SSRF_RESERVED}, /* future use and 255.255.255.255 */
};

static const ssrf_prefix ssrf_v6_table[] = {
    {{0}, 128, KEEL_SSRF_UNSPECIFIED},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, KEEL_SSRF_LOOPBACK},
    {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128, KEEL_SSRF_METADATA},
    {{0}, 96, KEEL_SSRF_RESERVED}, /* deprecated IPv4-compatible ::a.b.c.d */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, KEEL_SSRF_PRIVATE}, /* local-use NAT64 */
    {{0x01, 0x00}, 64, KEEL_SSRF_RESERVED},                        /* discard-only */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, KEEL_SSRF_RESERVED},            /* documentation */
    {{0x20, 0x01, 0x00, 0x00}, 23, KEEL_SSRF_RESERVED}, /* IETF assignments incl. Teredo */
    {{0x3f, 0xff}, 20, KEEL_SSRF_RESERVED},             /* documentation (RFC 9637) */
    {{0xfc, 0x00}, 7, KEEL_SSRF_PRIVATE},               /* unique local */
    {{0xfe, 0x80}, 10, KEEL_SSRF_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, KEEL_SSRF_PRIVATE}, /* deprecated site-local */
    {{0xff, 0x00}, 8, KEEL_SSRF_MULTICAST},
};

static bool ssrf_prefix_covers(const uint8_t *prefix, int len, const uint8_t *addr)
{
    int full = len / 8;
    int rest = len % 8;
    if (memcmp(prefix, addr, (size_t)full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (prefix[full] & mask) == (addr[full] & mask);
}

/* The IPv4 address an IPv6 address carries, when it is one of the forms that reach an IPv4
 * host: v4-mapped ::ffff:a.b.c.d, SIIT ::ffff:0:a.b.c.d, NAT64 64:ff9b::a.b.c.d and 6to4
 * 2002:aabb:ccdd::/48. */
static bool ssrf_embedded_v4(const keel_ip *ip, keel_ip *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t *src = NULL;

    if (ip->family != AF_INET6) {
        return false;
    }
    if (memcmp(ip->bytes, mapped, 12) == 0 || memcmp(ip->bytes, siit, 12) == 0 ||
        memcmp(ip->bytes, nat64, 12) == 0) {
        src = ip->bytes + 12;
    } else if (ip->bytes[0] == 0x20 && ip->bytes[1] == 0x02) {
        src = ip->bytes + 2;
    } else {
        return false;
    }
    memset(v4, 0, sizeof(*v4));
    v4->family = AF_INET;
    memcpy(v4->bytes, src, 4);
    return true;
}

static keel_ssrf_class ssrf_table_class(const ssrf_prefix *table, size_t n, const uint8_t *addr,
                                        keel_ssrf_class otherwise)
{
    for (size_t i = 0; i < n; i++) {
        if (ssrf_prefix_covers(table[i].bytes, table[i].len, addr)) {
            return table[i].cls;
        }
    }
    return otherwise;
}

keel_ssrf_class keel_ssrf_classify(const keel_ip *ip)
{
    keel_ip v4;
    if (ip->family == AF_INET) {
        return ssrf_table_class(ssrf_v4_table, sizeof(ssrf_v4_table) / sizeof(ssrf_v4_table[0]),
                                ip->bytes, KEEL_SSRF_PUBLIC);
    }
    if (ip->family != AF_INET6) {
        return KEEL_SSRF_RESERVED;
    }
    if (ssrf_embedded_v4(ip, &v4)) {
        return keel_ssrf_classify(&v4);
    }
    /* Only 2000::/3 is global unicast; anything else not in the table is unassigned. */
    keel_ssrf_class otherwise =
        (ip->bytes[0] & 0xe0) == 0x20 ? KEEL_SSRF_PUBLIC : KEEL_SSRF_RESERVED;
    return ssrf_table_class(ssrf_v6_table, sizeof(ssrf_v6_table) / sizeof(ssrf_v6_table[0]),
                            ip->bytes, otherwise);
}

const char *keel_ssrf_class_name(keel_ssrf_class c)
{
    switch (c) {
    case KEEL_SSRF_PUBLIC:
        return "public";
    case KEEL_SSRF_LOOPBACK:
        return "loopback";
    case KEEL_SSRF_PRIVATE:
        return "private";
    case KEEL_SSRF_LINK_LOCAL:
        return "link-local";
    case KEEL_SSRF_MULTICAST:
        return "multicast";
    case KEEL_SSRF_UNSPECIFIED:
        return "unspecified";
    case KEEL_SSRF_CGNAT:
        return "carrier-grade NAT";
    case KEEL_SSRF_METADATA:
        return "cloud metadata";
    case KEEL_SSRF_RESERVED:
        return "reserved";
    }
    return "reserved";
}

/* ---- the allow-list --------------------------------------------------------------------- */

typedef struct ssrf_cidr {
    keel_ip net;
    int len;
} ssrf_cidr;

struct keel_ssrf_allowlist {
    ssrf_cidr *entries;
    size_t count;
};

/* Parses "addr" or "addr/len" of n bytes at text. */
static bool ssrf_cidr_parse(const char *text, size_t n, ssrf_cidr *out)
{
    char buf[80];
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    int len = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end = NULL;
        errno = 0;
        long v = strtol(slash + 1, &end, 10);
        if (errno != 0 || end == slash + 1 || *end != '\0' || v < 0 || v > 128) {
            return false;
        }
        len = (int)v;
    }
    if (!keel_ip_parse(buf, &out->net)) {
        return false;
    }
    int max = out->net.family == AF_INET ? 32 : 128;
    if (len < 0) {
        len = max;
    }
    if (len > max) {
        return false;
    }
    out->len = len;
    return true;
}

keel_ssrf_allowlist *keel_ssrf_allowlist_parse(const char *cidrs, char *err, size_t err_len)
{
    keel_ssrf_allowlist *list = calloc(1, sizeof(*list));
    size_t cap = 0;
    if (list == NULL) {
        snprintf(err, err_len, "out of memory parsing the allow-list");
        return NULL;
    }
    const char *p = cidrs != NULL ? cidrs : "";
    while (*p != '\0') {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == 0) {
            continue;
        }
        ssrf_cidr c;
        if (!ssrf_cidr_parse(p, n, &c)) {
            snprintf(err, err_len,
                     "allow-list entry \"%.*s\" is not an address or CIDR (e.g. 127.0.0.0/8, "
                     "::1/128)",
                     (int)(n > 80 ? 80 : n), p);
            goto fail;
        }
        if (list->count == cap) {
            size_t grown_cap = cap == 0 ? 4 : cap * 2;
            ssrf_cidr *grown = realloc(list->entries, grown_cap * sizeof(*grown));
            if (grown == NULL) {
                snprintf(err, err_len, "out of memory parsing the allow-list");
                goto fail;
            }
            list->entries = grown;
            cap = grown_cap;
        }
        list->entries[list->count++] = c;
        p += n;
    }
    return list;
fail:
    keel_ssrf_allowlist_free(list);
    return NULL;
}

void keel_ssrf_allowlist_free(keel_ssrf_allowlist *list)
{
    if (list == NULL) {
        return;
    }
    free(list->entries);
    list->entries = NULL;
    free(list);
}

size_t keel_ssrf_allowlist_count(const keel_ssrf_allowlist *list)
{
    return list != NULL ? list->count : 0;
}

/* True when an entry covers ip (exact: only host entries equal to ip). */
static bool ssrf_list_covers(const keel_ssrf_allowlist *list, const keel_ip *ip, bool exact)
{
    for (size_t i = 0; list != NULL && i < list->count; i++) {
        const ssrf_cidr *c = &list->entries[i];
        int max = c->net.family == AF_INET ? 32 : 128;
        if (c->net.family != ip->family || (exact && c->len != max)) {
            continue;
        }
        if (ssrf_prefix_covers(c->net.bytes, c->len, ip->bytes)) {
            return true;
        }
    }
    return false;
}

bool keel_ssrf_permitted(const keel_ssrf_allowlist *list, const keel_ip *ip, keel_ssrf_class *cls)
{
    keel_ssrf_class c = keel_ssrf_classify(ip);
    if (cls != NULL) {
        *cls = c;
    }
    if (c == KEEL_SSRF_PUBLIC) {
        return true;
    }
    bool exact = c == KEEL_SSRF_METADATA;
    keel_ip v4;
    return ssrf_list_covers(list, ip, exact) ||
           (ssrf_embedded_v4(ip, &v4) && ssrf_list_covers(list, &v4, exact));
}

/* ---- resolution with a timeout ---------------------------------------------------------- */

/* getaddrinfo has no timeout of its own, so it runs on a detached helper thread. The job is
 * shared by the caller and the helper and freed by whichever lets go last, so a caller that
 * gave up never waits and a late answer is still freed. */
typedef struct ssrf_job {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs;
    bool done;
    int rc;
    struct addrinfo *res;
    char host[256];
} ssrf_job;

static void ssrf_job_release(ssrf_job *job)
{
    pthread_mutex_lock(&job->mu);
    int left = --job->refs;
    pthread_mutex_unlock(&job->mu);
    if (left > 0) {
        return;
    }
    if (job->res != NULL) {
        freeaddrinfo(job->res);
        job->res = NULL;
    }
    pthread_cond_destroy(&job->cond);
    pthread_mutex_destroy(&job->mu);
    free(job);
}

static void *ssrf_job_main(void *arg)
{
    ssrf_job *job = arg;
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(job->host, NULL, &hints, &res);
    pthread_mutex_lock(&job->mu);
    job->rc = rc;
    job->res = rc == 0 ? res : NULL;
    job->done = true;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->mu);
    ssrf_job_release(job);
    return NULL;
}

static ssrf_job *ssrf_job_new(const char *host)
{
    ssrf_job *job = calloc(1, sizeof(*job));
    pthread_condattr_t attr;
    if (job == NULL) {
        return NULL;
    }
    snprintf(job->host, sizeof(job->host), "%s", host);
    job->refs = 2; /* the caller and the helper */
    if (pthread_condattr_init(&attr) != 0) {
        free(job);
        return NULL;
    }
    /* Timed waits on the monotonic clock: a wall-clock jump neither stalls nor ends them. */
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
              pthread_mutex_init(&job->mu, NULL) == 0;
    if (ok && pthread_cond_init(&job->cond, &attr) != 0) {
        pthread_mutex_destroy(&job->mu);
        ok = false;
    }
    pthread_condattr_destroy(&attr);
    if (!ok) {
        free(job);
        return NULL;
    }
    return job;
}

/* Runs getaddrinfo for host, waiting up to timeout_ms. On KEEL_OK *res is the caller's. */
static keel_result ssrf_lookup(const char *host, int64_t timeout_ms, struct addrinfo **res,
                               int *gai_rc)
{
    ssrf_job *job = ssrf_job_new(host);
    pthread_t tid;
    pthread_attr_t attr;
    keel_result r = KEEL_ERR_TIMEOUT;
    *res = NULL;
    *gai_rc = 0;
    if (job == NULL) {
        return KEEL_ERR_TRANSIENT;
    }
    bool started = false;
    if (pthread_attr_init(&attr) == 0) {
        started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&tid, &attr, ssrf_job_main, job) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        job->refs = 1;
        ssrf_job_release(job);
        return KEEL_ERR_TRANSIENT;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        if (pthread_cond_timedwait(&job->cond, &job->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    if (job->done) {
        *gai_rc = job->rc;
        *res = job->res;
        job->res = NULL;
        r = job->rc == 0 ? KEEL_OK : KEEL_ERR;
    }
    pthread_mutex_unlock(&job->mu);
    ssrf_job_release(job);
    return r;
}

keel_result keel_ssrf_resolve(const char *host, const keel_ssrf_allowlist *list, int64_t timeout_ms,
                              keel_ip *out, char *err, size_t err_len)
{
    struct addrinfo *res = NULL;
    int gai_rc = 0;
    keel_result r;
    bool found = false;

    memset(out, 0, sizeof(*out));
    if (host == NULL || host[0] == '\0' || strlen(host) > 253) {
        snprintf(err, err_len, "the host name is empty or longer than 253 characters");
        return KEEL_ERR_NOT_FOUND;
    }
    r = ssrf_lookup(host, timeout_ms > 0 ? timeout_ms : 2000, &res, &gai_rc);
    if (r == KEEL_ERR_TIMEOUT) {
        snprintf(err, err_len, "resolving %.200s took longer than %lld ms", host,
                 (long long)timeout_ms);
        return r;
    }
    if (r == KEEL_ERR_TRANSIENT) {
        snprintf(err, err_len, "cannot start resolving %.200s (out of threads or memory)", host);
        return r;
    }
    if (r != KEEL_OK) {
        bool temporary = gai_rc == EAI_AGAIN || gai_rc == EAI_SYSTEM || gai_rc == EAI_MEMORY;
        snprintf(err, err_len, "cannot resolve %.200s: %s", host, gai_strerror(gai_rc));
        return temporary ? KEEL_ERR_TRANSIENT : KEEL_ERR_NOT_FOUND;
    }
    r = KEEL_OK;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        keel_ip ip;
        keel_ssrf_class cls;
        char text[KEEL_IP_STR_LEN];
        if (!keel_ip_from_sockaddr(ai->ai_addr, &ip)) {
            continue;
        }
        if (!keel_ssrf_permitted(list, &ip, &cls)) {
            const char *name = keel_ssrf_class_name(cls);
            const char *article = strchr("aeiou", name[0]) != NULL ? "an" : "a";
            keel_ip literal;
            if (keel_ip_parse(host, &literal)) {
                snprintf(err, err_len,
                         "%.200s is %s %s address; keel calls only public addresses (an "
                         "operator may allow-list a range)",
                         host, article, name);
            } else {
                snprintf(err, err_len,
                         "%.200s resolves to %s, %s %s address; keel calls only public "
                         "addresses (an operator may allow-list a range)",
                         host, keel_ip_format(&ip, text), article, name);
            }
            r = KEEL_ERR;
            break;
        }
        if (!found) {
            *out = ip;
            found = true;
        }
    }
    freeaddrinfo(res);
    res = NULL;
    if (r == KEEL_OK && !found) {
        snprintf(err, err_len, "%.200s has no IPv4 or IPv6 address", host);
        r = KEEL_ERR_NOT_FOUND;
    }
    if (r != KEEL_OK) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}
