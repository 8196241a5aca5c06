/* Prometheus registry: lock-free atomic series updates, mutex-guarded registration, text render. */
#include "keel/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
} metric_type;

static const char *const metric_type_names[] = {"counter", "gauge", "histogram"};

static const double metric_default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1.0,  2.5,   5.0,  10.0};

typedef struct metric_family metric_family;

struct keel_metric {
    metric_family *family;
    char *labels; /* inside of the braces, "" for none */
    /* A double's bit pattern: C11 has no portable atomic double add, so updates CAS. */
    _Atomic uint64_t value_bits;
    /* Histograms: one non-cumulative count per bound plus +Inf; cumulated when rendered. */
    _Atomic uint64_t *buckets;
    _Atomic uint64_t sum_bits;
};

struct metric_family {
    char *name;
    char *help;
    metric_type type;
    double *bounds; /* histograms: ascending, copied from the first registration */
    size_t nbounds;
    keel_metric **series;
    size_t nseries;
    size_t cap_series;
};

struct keel_metrics {
    pthread_mutex_t lock; /* guards the family and series arrays, never the values */
    metric_family **families;
    size_t nfamilies;
    size_t cap_families;
};

static _Noreturn void metric_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void metric_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("keel_metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static uint64_t metric_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double metric_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void metric_atomic_add(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    for (;;) {
        uint64_t next = metric_bits(metric_double(old) + v);
        if (atomic_compare_exchange_weak_explicit(bits, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return;
        }
    }
}

static void *metric_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        metric_die("out of memory");
    }
    return p;
}

static char *metric_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        metric_die("out of memory");
    }
    return p;
}

/* Returns arr (elements of size elem) grown to hold at least one more than n. */
static void *metric_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return arr;
    }
    size_t next = *cap == 0 ? 8 : *cap * 2;
    void *grown = realloc(arr, next * elem);
    if (grown == NULL) {
        metric_die("out of memory");
    }
    *cap = next;
    return grown;
}

static bool metric_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (p != name && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

keel_metrics *keel_metrics_new(void)
{
    keel_metrics *m = metric_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void metric_series_free(keel_metric *s)
{
    free(s->labels);
    s->labels = NULL;
    free((void *)s->buckets);
    s->buckets = NULL;
    free(s);
}

void keel_metrics_free(keel_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->nfamilies; i++) {
        metric_family *f = m->families[i];
        for (size_t j = 0; j < f->nseries; j++) {
            metric_series_free(f->series[j]);
            f->series[j] = NULL;
        }
        free(f->series);
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
        m->families[i] = NULL;
    }
    free(m->families);
    m->families = NULL;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static pthread_once_t metric_default_once = PTHREAD_ONCE_INIT;
static keel_metrics *metric_default_registry;

static void metric_default_create(void)
{
    metric_default_registry = keel_metrics_new();
}

keel_metrics *keel_metrics_default(void)
{
    pthread_once(&metric_default_once, metric_default_create);
    return metric_default_registry;
}

/* Finds or creates the series; the caller holds no lock. */
static keel_metric *metric_register(keel_metrics *m, metric_type type, const char *name,
                                    const char *help, const char *labels, const double *bounds,
                                    size_t nbounds)
{
    if (!metric_name_valid(name)) {
        metric_die("invalid metric name \"%s\"", name != NULL ? name : "(null)");
    }
    if (labels == NULL) {
        labels = "";
    }
    pthread_mutex_lock(&m->lock);
    metric_family *fam = NULL;
    for (size_t i = 0; i < m->nfamilies; i++) {
        if (strcmp(m->families[i]->name, name) == 0) {
            fam = m->families[i];
            break;
        }
    }
    if (fam != NULL && fam->type != type) {
        metric_die("%s registered as a %s and as a %s", name, metric_type_names[fam->type],
                   metric_type_names[type]);
    }
    if (fam == NULL) {
        fam = metric_xcalloc(1, sizeof *fam);
        fam->name = metric_xstrdup(name);
        fam->help = metric_xstrdup(help != NULL ? help : "");
        fam->type = type;
        if (type == METRIC_HISTOGRAM) {
            if (bounds == NULL || nbounds == 0) {
                bounds = metric_default_bounds;
                nbounds = sizeof metric_default_bounds / sizeof metric_default_bounds[0];
            }
            for (size_t i = 1; i < nbounds; i++) {
                if (!(bounds[i] > bounds[i - 1])) {
                    metric_die("histogram %s: bucket bounds must be strictly ascending", name);
                }
            }
            fam->bounds = metric_xcalloc(nbounds, sizeof *fam->bounds);
            memcpy(fam->bounds, bounds, nbounds * sizeof *bounds);
            fam->nbounds = nbounds;
        }
        m->families = metric_grow(m->families, &m->cap_families, m->nfamilies, sizeof *m->families);
        m->families[m->nfamilies++] = fam;
    }
    keel_metric *series = NULL;
    for (size_t i = 0; i < fam->nseries; i++) {
        if (strcmp(fam->series[i]->labels, labels) == 0) {
            series = fam->series[i];
            break;
        }
    }
    if (series == NULL) {
        series = metric_xcalloc(1, sizeof *series);
        series->family = fam;
        series->labels = metric_xstrdup(labels);
        atomic_init(&series->value_bits, metric_bits(0.0));
        atomic_init(&series->sum_bits, metric_bits(0.0));
        if (type == METRIC_HISTOGRAM) {
            series->buckets = metric_xcalloc(fam->nbounds + 1, sizeof *series->buckets);
            for (size_t i = 0; i <= fam->nbounds; i++) {
                atomic_init(&series->buckets[i], 0);
            }
        }
        fam->series = metric_grow(fam->series, &fam->cap_series, fam->nseries, sizeof *fam->series);
        fam->series[fam->nseries++] = series;
    }
    pthread_mutex_unlock(&m->lock);
    return series;
}

keel_metric *keel_metrics_counter(keel_metrics *m, const char *name, const char *help,
                                  const char *labels)
{
    return metric_register(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

keel_metric *keel_metrics_gauge(keel_metrics *m, const char *name, const char *help,
                                const char *labels)
{
    return metric_register(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

keel_metric *keel_metrics_histogram(keel_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds)
{
    return metric_register(m, METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

void keel_metric_inc(keel_metric *c)
{
    keel_metric_add(c, 1.0);
}

void keel_metric_add(keel_metric *c, double v)
{
    if (c->family->type == METRIC_HISTOGRAM) {
        metric_die("%s is a histogram: use keel_metric_observe", c->family->name);
    }
    /* A counter that goes down reads as a process restart to Prometheus' rate(); drop it. */
    if (c->family->type == METRIC_COUNTER && !(v >= 0)) {
        return;
    }
    metric_atomic_add(&c->value_bits, v);
}

void keel_metric_set(keel_metric *g, double v)
{
    if (g->family->type != METRIC_GAUGE) {
        metric_die("%s is a %s: only gauges can be set", g->family->name,
                   metric_type_names[g->family->type]);
    }
    atomic_store_explicit(&g->value_bits, metric_bits(v), memory_order_relaxed);
}

void keel_metric_observe(keel_metric *h, double v)
{
    const metric_family *f = h->family;
    if (f->type != METRIC_HISTOGRAM) {
        metric_die("%s is a %s: only histograms observe", f->name, metric_type_names[f->type]);
    }
    size_t i = 0;
    while (i < f->nbounds && !(v <= f->bounds[i])) {
        i++;
    }
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    metric_atomic_add(&h->sum_bits, v);
}

double keel_metric_value(const keel_metric *c)
{
    /* For a histogram: the number of observations. */
    if (c->family->type == METRIC_HISTOGRAM) {
        uint64_t n = 0;
        for (size_t i = 0; i <= c->family->nbounds; i++) {
            n += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
        }
        return (double)n;
    }
    return metric_double(
        atomic_load_explicit((_Atomic uint64_t *)&c->value_bits, memory_order_relaxed));
}

/* ---- rendering ------------------------------------------------------------------- */

typedef struct metric_buf {
    char *data;
    size_t len;
    size_t cap;
} metric_buf;

static void metric_buf_put(metric_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 1024 : b->cap;
        while (b->len + n + 1 > cap) {
            cap *= 2;
        }
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            metric_die("out of memory rendering metrics");
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void metric_buf_puts(metric_buf *b, const char *s)
{
    metric_buf_put(b, s, strlen(s));
}

/* Prometheus' float format, as its Go client writes it with strconv.FormatFloat(v, 'g', -1,
 * 64): the fewest significant digits that read back as the same double, in exponent form
 * when the decimal exponent is below -4 or at least 6 ("0.005", "10", "400000", "1e+06"). */
static void metric_format_double(double v, char *out, size_t out_len)
{
    if (isnan(v)) {
        snprintf(out, out_len, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, out_len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int digits = 17;
    for (int p = 1; p <= 17; p++) {
        snprintf(out, out_len, "%.*e", p - 1, v);
        if (strtod(out, NULL) == v) {
            digits = p;
            break;
        }
    }
    snprintf(out, out_len, "%.*e", digits - 1, v);
    const char *e = strchr(out, 'e');
    int exp = e != NULL ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6) {
        return; /* C's %e already writes Go's form: mantissa, "e", sign, two or more digits */
    }
    int decimals = digits - 1 - exp;
    snprintf(out, out_len, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void metric_render_help(metric_buf *b, const metric_family *f)
{
    metric_buf_puts(b, "# HELP ");
    metric_buf_puts(b, f->name);
    metric_buf_puts(b, " ");
    /* Text format 0.0.4: in HELP only backslash and line feed are escaped. */
    for (const char *p = f->help; *p != '\0'; p++) {
        if (*p == '\\') {
            metric_buf_puts(b, "\\\\");
        } else if (*p == '\n') {
            metric_buf_puts(b, "\\n");
        } else {
            metric_buf_put(b, p, 1);
        }
    }
    metric_buf_puts(b, "\n# TYPE ");
    metric_buf_puts(b, f->name);
    metric_buf_puts(b, " ");
    metric_buf_puts(b, metric_type_names[f->type]);
    metric_buf_puts(b, "\n");
}

/* Writes "name[suffix]{labels[,extra]} value\n". */
static void metric_render_line(metric_buf *b, const char *name, const char *suffix,
                               const char *labels, const char *extra, const char *value)
{
    metric_buf_puts(b, name);
    metric_buf_puts(b, suffix);
    bool has_labels = labels[0] != '\0';
    if (has_labels || extra != NULL) {
        metric_buf_puts(b, "{");
        metric_buf_puts(b, labels);
        if (has_labels && extra != NULL) {
            metric_buf_puts(b, ",");
        }
        if (extra != NULL) {
            metric_buf_puts(b, extra);
        }
        metric_buf_puts(b, "}");
    }
    metric_buf_puts(b, " ");
    metric_buf_puts(b, value);
    metric_buf_puts(b, "\n");
}

static void metric_render_series(metric_buf *b, const metric_family *f, const keel_metric *s)
{
    char num[64];
    if (f->type != METRIC_HISTOGRAM) {
        metric_format_double(keel_metric_value(s), num, sizeof num);
        metric_render_line(b, f->name, "", s->labels, NULL, num);
        return;
    }
    char le[96];
    char bound[64];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < f->nbounds) {
            metric_format_double(f->bounds[i], bound, sizeof bound);
        } else {
            snprintf(bound, sizeof bound, "+Inf");
        }
        snprintf(le, sizeof le, "le=\"%s\"", bound);
        snprintf(num, sizeof num, "%llu", (unsigned long long)cumulative);
        metric_render_line(b, f->name, "_bucket", s->labels, le, num);
    }
    metric_format_double(
        metric_double(atomic_load_explicit((_Atomic uint64_t *)&s->sum_bits, memory_order_relaxed)),
        num, sizeof num);
    metric_render_line(b, f->name, "_sum", s->labels, NULL, num);
    /* _count from the same bucket reads, so it always equals the +Inf bucket. */
    snprintf(num, sizeof num, "%llu", (unsigned long long)cumulative);
    metric_render_line(b, f->name, "_count", s->labels, NULL, num);
}

static int metric_family_cmp(const void *a, const void *b)
{
    const metric_family *fa = *(const metric_family *const *)a;
    const metric_family *fb = *(const metric_family *const *)b;
    return strcmp(fa->name, fb->name);
}

static int metric_series_cmp(const void *a, const void *b)
{
    const keel_metric *sa = *(const keel_metric *const *)a;
    const keel_metric *sb = *(const keel_metric *const *)b;
    return strcmp(sa->labels, sb->labels);
}

char *keel_metrics_render(keel_metrics *m)
{
    metric_buf b = {NULL, 0, 0};
    metric_buf_put(&b, "", 0);
    pthread_mutex_lock(&m->lock);
    /* Sorting in place under the lock is safe: registration also holds it, and the arrays'
     * order carries no meaning. */
    if (m->nfamilies > 1) {
        qsort(m->families, m->nfamilies, sizeof *m->families, metric_family_cmp);
    }
    for (size_t i = 0; i < m->nfamilies; i++) {
        metric_family *f = m->families[i];
        if (f->nseries == 0) {
            continue;
        }
        if (f->nseries > 1) {
            qsort(f->series, f->nseries, sizeof *f->series, metric_series_cmp);
        }
        metric_render_help(&b, f);
        for (size_t j = 0; j < f->nseries; j++) {
            metric_render_series(&b, f, f->series[j]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return b.data;
}
