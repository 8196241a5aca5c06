/* Unit tests for keel/id.h: UUIDv7 layout, in-process monotonicity and parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/id.h"

static void test_uuid7_layout(void **state)
{
    (void)state;
    char id[KEEL_UUID_STR_LEN];
    int64_t before = keel_clock_now_ms();
    assert_ptr_equal(keel_uuid7_new(id), id);
    int64_t after = keel_clock_now_ms();

    assert_int_equal(strlen(id), 36);
    assert_true(keel_uuid_is_valid(id));
    assert_int_equal(id[14], '7');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* RFC 9562 variant */
    for (int i = 0; i < 36; i++) {
        assert_false(isupper((unsigned char)id[i]));
    }
    int64_t ts = keel_uuid7_timestamp_ms(id);
    /* The counter may borrow a millisecond or two ahead, never more. */
    assert_true(ts >= before && ts <= after + 2);
}

static void test_uuid7_sorts_in_call_order(void **state)
{
    (void)state;
    /* Far more ids than one millisecond's counter holds, so the borrow path runs too. */
    enum { N = 20000 };
    char prev[KEEL_UUID_STR_LEN];
    char cur[KEEL_UUID_STR_LEN];
    keel_uuid7_new(prev);
    for (int i = 0; i < N; i++) {
        keel_uuid7_new(cur);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof cur);
    }
}

enum { THREADS = 4, PER_THREAD = 5000 };
static char thread_ids[THREADS * PER_THREAD][KEEL_UUID_STR_LEN];

static void *make_ids(void *arg)
{
    int t = *(int *)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        keel_uuid7_new(thread_ids[t * PER_THREAD + i]);
    }
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid7_unique_and_ordered_across_threads(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    int idx[THREADS];
    for (int t = 0; t < THREADS; t++) {
        idx[t] = t;
        assert_int_equal(pthread_create(&threads[t], NULL, make_ids, &idx[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    /* Each thread's own ids still increase. */
    for (int t = 0; t < THREADS; t++) {
        for (int i = 1; i < PER_THREAD; i++) {
            assert_true(strcmp(thread_ids[t * PER_THREAD + i - 1], thread_ids[t * PER_THREAD + i]) <
                        0);
        }
    }
    qsort(thread_ids, THREADS * PER_THREAD, KEEL_UUID_STR_LEN, cmp_ids);
    for (int i = 1; i < THREADS * PER_THREAD; i++) {
        assert_true(strcmp(thread_ids[i - 1], thread_ids[i]) != 0);
    }
}

static void test_id_new_prefix(void **state)
{
    (void)state;
    char out[64];
    assert_ptr_equal(keel_id_new("pay_", out, sizeof out), out);
    assert_int_equal(strlen(out), 4 + 32);
    assert_memory_equal(out, "pay_", 4);
    for (int i = 4; i < 36; i++) {
        assert_non_null(strchr("0123456789abcdef", out[i]));
    }
    assert_int_equal(out[4 + 12], '7'); /* the version nibble, dashes removed */

    char a[40];
    char b[40];
    keel_id_new("", a, sizeof a);
    keel_id_new("", b, sizeof b);
    assert_int_equal(strlen(a), 32);
    assert_true(strcmp(a, b) < 0);

    /* Exactly big enough works; one byte short yields an empty string, never a cut id. */
    char exact[4 + 33];
    keel_id_new("evt_", exact, sizeof exact);
    assert_int_equal(strlen(exact), 36);
    char small[4 + 32];
    memset(small, 'x', sizeof small);
    keel_id_new("evt_", small, sizeof small);
    assert_string_equal(small, "");
}

static void test_uuid_is_valid(void **state)
{
    (void)state;
    assert_true(keel_uuid_is_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"));
    assert_true(keel_uuid_is_valid("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"));
    assert_true(keel_uuid_is_valid("f47ac10b-58cc-4372-a567-0e02b2c3d479")); /* v4 */
    assert_false(keel_uuid_is_valid(NULL));
    assert_false(keel_uuid_is_valid(""));
    assert_false(keel_uuid_is_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398"));   /* short */
    assert_false(keel_uuid_is_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398f0")); /* long */
    assert_false(keel_uuid_is_valid("017f22e279b0-7cc3-98c4-dc0c0c07398f0"));  /* dash moved */
    assert_false(keel_uuid_is_valid("017f22e2-79b0-7cc3-98c4-dc0c0c07398g"));  /* not hex */
    assert_false(keel_uuid_is_valid("017f22e2_79b0_7cc3_98c4_dc0c0c07398f"));
}

static void test_uuid7_timestamp(void **state)
{
    (void)state;
    /* The example UUIDv7 of RFC 9562 appendix A.6: 2022-02-22 19:22:22 UTC. */
    assert_int_equal(keel_uuid7_timestamp_ms("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"),
                     1645557742000LL);
    assert_int_equal(keel_uuid7_timestamp_ms("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"),
                     1645557742000LL);
    /* Other versions and variants carry no timestamp. */
    assert_int_equal(keel_uuid7_timestamp_ms("f47ac10b-58cc-4372-a567-0e02b2c3d479"), -1);
    assert_int_equal(keel_uuid7_timestamp_ms("017f22e2-79b0-7cc3-08c4-dc0c0c07398f"), -1);
    assert_int_equal(keel_uuid7_timestamp_ms("not a uuid"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_layout),
        cmocka_unit_test(test_uuid7_sorts_in_call_order),
        cmocka_unit_test(test_uuid7_unique_and_ordered_across_threads),
        cmocka_unit_test(test_id_new_prefix),
        cmocka_unit_test(test_uuid_is_valid),
        cmocka_unit_test(test_uuid7_timestamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
