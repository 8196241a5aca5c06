/* The log-linear latency histogram of keel's benchmarks (see hist.h). */
#include "hist.h"

#include <math.h>
#include <string.h>

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
}

int bench_hist_index(int64_t value)
{
    if (value < 0) {
        value = 0;
    }
    if (value >= BENCH_HIST_MAX_VALUE) {
        value = BENCH_HIST_MAX_VALUE - 1;
    }
    if (value < (1 << BENCH_HIST_SUB_BITS)) {
        return (int)value;
    }
    /* The highest set bit decides the group; the next SUB_BITS - 1 bits pick the bucket. */
    int msb = 63 - __builtin_clzll((unsigned long long)value);
    int shift = msb - (BENCH_HIST_SUB_BITS - 1);
    int top = (int)(value >> shift); /* in [HALF, 2 * HALF) */
    return (1 << BENCH_HIST_SUB_BITS) + (shift - 1) * BENCH_HIST_HALF + (top - BENCH_HIST_HALF);
}

int64_t bench_hist_lowest(int index)
{
    if (index < (1 << BENCH_HIST_SUB_BITS)) {
        return index;
    }
    int rel = index - (1 << BENCH_HIST_SUB_BITS);
    int shift = rel / BENCH_HIST_HALF + 1;
    int64_t top = BENCH_HIST_HALF + rel % BENCH_HIST_HALF;
    return top << shift;
}

int64_t bench_hist_highest(int index)
{
    if (index < (1 << BENCH_HIST_SUB_BITS)) {
        return index;
    }
    int rel = index - (1 << BENCH_HIST_SUB_BITS);
    int shift = rel / BENCH_HIST_HALF + 1;
    int64_t top = BENCH_HIST_HALF + rel % BENCH_HIST_HALF;
    return ((top + 1) << shift) - 1;
}

void bench_hist_record_n(bench_hist *h, int64_t value, uint64_t n)
{
    if (n == 0) {
        return;
    }
    if (value < 0) {
        value = 0;
    }
    h->counts[bench_hist_index(value)] += n;
    if (h->total == 0 || value < h->min) {
        h->min = value;
    }
    if (h->total == 0 || value > h->max) {
        h->max = value;
    }
    h->total += n;
    h->sum += (double)value * (double)n;
}

void bench_hist_record(bench_hist *h, int64_t value)
{
    bench_hist_record_n(h, value, 1);
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    if (src->total == 0) {
        return;
    }
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
        dst->counts[i] += src->counts[i];
    }
    if (dst->total == 0 || src->min < dst->min) {
        dst->min = src->min;
    }
    if (dst->total == 0 || src->max > dst->max) {
        dst->max = src->max;
    }
    dst->total += src->total;
    dst->sum += src->sum;
}

int64_t bench_hist_percentile(const bench_hist *h, double pct)
{
    if (h->total == 0) {
        return 0;
    }
    if (pct >= 100.0) {
        return h->max;
    }
    if (pct < 0.0) {
        pct = 0.0;
    }
    /* The rank of the value asked for, counted from 1; percentile 0 is the minimum. */
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->total);
    if (rank == 0) {
        return h->min;
    }
    uint64_t seen = 0;
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t v = bench_hist_highest(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->total > 0 ? h->sum / (double)h->total : 0.0;
}

bool bench_hist_write_csv(const bench_hist *h, FILE *out, double divisor)
{
    uint64_t seen = 0;

    if (divisor <= 0.0) {
        divisor = 1.0;
    }
    if (fprintf(out, "value,count,cumulative_fraction,inverse_tail\n") < 0) {
        return false;
    }
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
        if (h->counts[i] == 0) {
            continue;
        }
        seen += h->counts[i];
        int64_t v = bench_hist_highest(i);
        if (v > h->max) {
            v = h->max;
        }
        double frac = (double)seen / (double)h->total;
        /* The last value would sit at infinity on a 1/(1-p) axis: put it one step past the
         * resolution the sample size allows. */
        double inv = seen < h->total ? 1.0 / (1.0 - frac) : (double)h->total;
        if (fprintf(out, "%.3f,%llu,%.6f,%.3f\n", (double)v / divisor,
                    (unsigned long long)h->counts[i], frac, inv) < 0) {
            return false;
        }
    }
    return true;
}
