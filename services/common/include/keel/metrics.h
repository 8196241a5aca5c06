/* Prometheus metrics: counters, gauges and histograms in a registry rendered as text format. */
#ifndef KEEL_METRICS_H
#define KEEL_METRICS_H

#include <stddef.h>

typedef struct keel_metrics keel_metrics;
typedef struct keel_metric keel_metric; /* one series: a name plus one set of label values */

/* The process-wide registry that /metrics renders. Created on first use; thread-safe. */
keel_metrics *keel_metrics_default(void);

keel_metrics *keel_metrics_new(void);
void keel_metrics_free(keel_metrics *m);

/* Returns the series with this name and labels, creating it on first call (later calls with
 * the same name and labels return the same pointer, so callers may look it up every time
 * or keep it). labels is the inside of the braces, already formatted, e.g.
 * `topic="keel.payment-events.v1",outcome="ok"`, or NULL/"" for none. The registry owns
 * the series. Registering one name with two types aborts (a programming error). */
keel_metric *keel_metrics_counter(keel_metrics *m, const char *name, const char *help,
                                  const char *labels);
keel_metric *keel_metrics_gauge(keel_metrics *m, const char *name, const char *help,
                                const char *labels);
/* bounds: ascending upper bounds (the +Inf bucket is implicit); copied. NULL/0 uses
 * the default latency buckets in seconds (0.005 ... 10). */
keel_metric *keel_metrics_histogram(keel_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds);

/* Lock-free updates, safe from any thread. */
void keel_metric_inc(keel_metric *c);               /* counter += 1 */
void keel_metric_add(keel_metric *c, double v);     /* counter/gauge += v (v >= 0 for counters) */
void keel_metric_set(keel_metric *g, double v);     /* gauge = v */
void keel_metric_observe(keel_metric *h, double v); /* histogram sample */
double keel_metric_value(const keel_metric *c);     /* counter or gauge value, for tests */

/* Renders the registry in Prometheus text exposition format 0.0.4: # HELP and # TYPE once
 * per name, series sorted by name then labels, histograms with _bucket{le=...}, _sum and
 * _count. Returns a malloc'd NUL-terminated string; the caller frees it. */
char *keel_metrics_render(keel_metrics *m);

#endif
