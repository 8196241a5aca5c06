/* Unit tests of the benchmark's latency histogram: bucket layout, percentiles, merge, CSV. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A fixed pseudo-random sequence, so a failure can be reproduced. */
static uint64_t lcg_next(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 11;
}

static bench_hist *hist_new(void)
{
    bench_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    bench_hist_reset(h);
    return h;
}

static void test_buckets_tile_the_range(void **state)
{
    (void)state;
    assert_int_equal(bench_hist_lowest(0), 0);
    for (int i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
        /* No gap and no overlap between neighbours. */
        assert_int_equal(bench_hist_highest(i) + 1, bench_hist_lowest(i + 1));
        assert_int_equal(bench_hist_index(bench_hist_lowest(i)), i);
        assert_int_equal(bench_hist_index(bench_hist_highest(i)), i);
    }
    assert_int_equal(bench_hist_highest(BENCH_HIST_BUCKETS - 1), BENCH_HIST_MAX_VALUE - 1);
}

static void test_bucket_width_is_under_one_percent(void **state)
{
    (void)state;
    for (int i = 1 << BENCH_HIST_SUB_BITS; i < BENCH_HIST_BUCKETS; i++) {
        int64_t lo = bench_hist_lowest(i);
        int64_t width = bench_hist_highest(i) - lo + 1;
        assert_true((double)width / (double)lo <= 1.0 / 128.0);
    }
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    bench_hist *h = hist_new();
    for (int64_t v = 1; v <= 200; v++) {
        bench_hist_record(h, v);
    }
    assert_int_equal(h->total, 200);
    assert_int_equal(bench_hist_percentile(h, 50.0), 100);
    assert_int_equal(bench_hist_percentile(h, 90.0), 180);
    assert_int_equal(bench_hist_percentile(h, 99.0), 198);
    assert_int_equal(bench_hist_percentile(h, 99.9), 200);
    assert_int_equal(bench_hist_percentile(h, 100.0), 200);
    assert_int_equal(bench_hist_percentile(h, 0.0), 1);
    assert_true(bench_hist_mean(h) > 100.49 && bench_hist_mean(h) < 100.51);
    free(h);
}

static void test_percentiles_match_sorted_samples(void **state)
{
    (void)state;
    enum { N = 100000 };
    int64_t *values = malloc(N * sizeof(*values));
    bench_hist *h = hist_new();
    uint64_t seed = 42;
    assert_non_null(values);
    for (int i = 0; i < N; i++) {
        /* Latency-like: mostly 0.5-5 ms, a tail up to several seconds. */
        uint64_t r = lcg_next(&seed);
        int64_t v = 500 + (int64_t)(r % 4500);
        if (r % 100 == 0) {
            v = 5000 + (int64_t)(lcg_next(&seed) % 5000000);
        }
        values[i] = v;
        bench_hist_record(h, v);
    }
    qsort(values, N, sizeof(*values), compare_i64);
    const double pcts[] = {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99};
    for (size_t k = 0; k < sizeof(pcts) / sizeof(pcts[0]); k++) {
        int64_t exact = values[(size_t)((pcts[k] / 100.0) * N + 0.999999) - 1];
        int64_t got = bench_hist_percentile(h, pcts[k]);
        /* The bucket's highest value: never below the exact one, at most 1/128 above. */
        assert_true(got >= exact);
        assert_true((double)(got - exact) <= (double)exact / 128.0 + 1.0);
    }
    assert_int_equal(bench_hist_percentile(h, 100.0), values[N - 1]);
    assert_int_equal(h->min, values[0]);
    free(values);
    free(h);
}

static void test_merge_equals_one_histogram(void **state)
{
    (void)state;
    bench_hist *a = hist_new();
    bench_hist *b = hist_new();
    bench_hist *all = hist_new();
    uint64_t seed = 7;
    for (int i = 0; i < 5000; i++) {
        int64_t v = (int64_t)(lcg_next(&seed) % 1000000);
        bench_hist_record(i % 3 == 0 ? a : b, v);
        bench_hist_record(all, v);
    }
    bench_hist_merge(a, b);
    assert_int_equal(a->total, all->total);
    assert_int_equal(a->min, all->min);
    assert_int_equal(a->max, all->max);
    assert_memory_equal(a->counts, all->counts, sizeof(a->counts));
    assert_int_equal(bench_hist_percentile(a, 99.0), bench_hist_percentile(all, 99.0));
    free(a);
    free(b);
    free(all);
}

static void test_edges(void **state)
{
    (void)state;
    bench_hist *h = hist_new();
    assert_int_equal(bench_hist_percentile(h, 50.0), 0);
    assert_true(bench_hist_mean(h) == 0.0);
    bench_hist_record(h, -5);
    assert_int_equal(h->min, 0);
    assert_int_equal(bench_hist_percentile(h, 50.0), 0);
    /* Beyond the range: counted in the last bucket, the exact maximum still reported. */
    bench_hist_record(h, BENCH_HIST_MAX_VALUE * 4);
    assert_int_equal(h->counts[BENCH_HIST_BUCKETS - 1], 1);
    assert_int_equal(bench_hist_percentile(h, 100.0), BENCH_HIST_MAX_VALUE * 4);
    assert_int_equal(bench_hist_percentile(h, 75.0), BENCH_HIST_MAX_VALUE - 1);
    bench_hist_record_n(h, 1000, 0);
    assert_int_equal(h->total, 2);
    bench_hist_record_n(h, 1000, 8);
    assert_int_equal(h->total, 10);
    /* Reported as the highest value of 1000's bucket (1000..1003). */
    assert_int_equal(bench_hist_percentile(h, 50.0), bench_hist_highest(bench_hist_index(1000)));
    assert_int_equal(bench_hist_percentile(h, 50.0), 1003);
    free(h);
}

static void test_csv_lists_non_empty_buckets(void **state)
{
    (void)state;
    bench_hist *h = hist_new();
    char line[256];
    int lines = 0;
    char last[256] = "";
    FILE *f = tmpfile();
    assert_non_null(f);
    bench_hist_record_n(h, 1000, 90);
    bench_hist_record_n(h, 5000, 9);
    bench_hist_record_n(h, 20000, 1);
    assert_true(bench_hist_write_csv(h, f, 1000.0));
    rewind(f);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "value,count,cumulative_fraction,inverse_tail\n");
    while (fgets(line, sizeof(line), f) != NULL) {
        lines++;
        snprintf(last, sizeof(last), "%s", line);
        if (lines == 1) {
            /* 1000 µs is reported as its bucket's highest value, 1003 µs. */
            assert_string_equal(line, "1.003,90,0.900000,10.000\n");
        }
    }
    assert_int_equal(lines, 3);
    /* The maximum is exact and the last line's x is the sample count. */
    assert_string_equal(last, "20.000,1,1.000000,100.000\n");
    fclose(f);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_tile_the_range),
        cmocka_unit_test(test_bucket_width_is_under_one_percent),
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_percentiles_match_sorted_samples),
        cmocka_unit_test(test_merge_equals_one_histogram),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_csv_lists_non_empty_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
