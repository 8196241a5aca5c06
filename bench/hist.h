/* A log-linear latency histogram in the style of HdrHistogram: fixed memory, < 0.8 % error. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Values below 2^BENCH_HIST_SUB_BITS are kept exactly; above, each power of two is split
 * into 2^(BENCH_HIST_SUB_BITS - 1) equal buckets, so a bucket is never wider than 1/128 of
 * its lower bound. Values of BENCH_HIST_MAX_VALUE and above land in the last bucket (the
 * exact maximum is kept on the side). Units are the caller's; keel's benchmarks use µs. */
#define BENCH_HIST_SUB_BITS 8
#define BENCH_HIST_MAX_BITS 40
#define BENCH_HIST_MAX_VALUE ((int64_t)1 << BENCH_HIST_MAX_BITS)
#define BENCH_HIST_HALF (1 << (BENCH_HIST_SUB_BITS - 1))
#define BENCH_HIST_BUCKETS                                                                         \
    ((1 << BENCH_HIST_SUB_BITS) + (BENCH_HIST_MAX_BITS - BENCH_HIST_SUB_BITS) * BENCH_HIST_HALF)

typedef struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
    int64_t min; /* exact; meaningful only when total > 0 */
    int64_t max; /* exact */
    double sum;  /* for the mean */
} bench_hist;

/* Empties h (about 36 KiB: embed it or allocate it, no hidden allocation). */
void bench_hist_reset(bench_hist *h);

/* Records value (negative values count as 0) n times. */
void bench_hist_record_n(bench_hist *h, int64_t value, uint64_t n);
void bench_hist_record(bench_hist *h, int64_t value);

/* Adds every value of src to dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

/* The bucket a value falls in, and the range [lowest, highest] of values sharing it. */
int bench_hist_index(int64_t value);
int64_t bench_hist_lowest(int index);
int64_t bench_hist_highest(int index);

/* The value at percentile pct (0..100]: the highest value of the bucket holding the
 * ceil(pct/100 * total)-th smallest value, never above the exact maximum. 0 when empty;
 * pct >= 100 gives the exact maximum. */
int64_t bench_hist_percentile(const bench_hist *h, double pct);
double bench_hist_mean(const bench_hist *h);

/* Writes the distribution as CSV for plotting, one line per non-empty bucket:
 * "value,count,cumulative_fraction,inverse_tail" where value is the bucket's highest
 * value divided by divisor (e.g. 1000 for µs → ms) and inverse_tail = 1/(1 - fraction)
 * (the x axis of a percentile plot; capped at the total count for the last line).
 * Writes the header line first. Returns false on a write error. */
bool bench_hist_write_csv(const bench_hist *h, FILE *out, double divisor);

#endif
