/* Unit tests of CloudEvents headers and W3C traceparent values (no broker needed). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "keel/cloudevents.h"
#include "keel/id.h"

static const char parent_tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void assert_header(const rd_kafka_headers_t *h, const char *name, const char *want)
{
    const void *value = NULL;
    size_t size = 0;
    assert_int_equal(rd_kafka_header_get_last(h, name, &value, &size), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(size, strlen(want));
    assert_memory_equal(value, want, size);
}

/* Headers with every required attribute, for tests that then break one of them. */
static rd_kafka_headers_t *valid_headers(void)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "ce_specversion", -1, "1.0", -1);
    rd_kafka_header_add(h, "ce_id", -1, "0193aa00-0000-7000-8000-000000000001", -1);
    rd_kafka_header_add(h, "ce_source", -1, "/keel/test", -1);
    rd_kafka_header_add(h, "ce_type", -1, "keel.v1.Test", -1);
    return h;
}

static void test_round_trip(void **state)
{
    (void)state;
    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/gateway", "keel.v1.PaymentRequested", parent_tp);
    assert_true(keel_uuid_is_valid(ce.id));
    assert_int_equal(strlen(ce.time), 24); /* 2026-11-30T16:36:58.123Z */
    assert_int_equal(ce.time[23], 'Z');

    rd_kafka_headers_t *h = keel_cloudevent_to_headers(&ce);
    assert_header(h, "ce_specversion", "1.0");
    assert_header(h, "content-type", "application/protobuf");
    assert_header(h, "ce_id", ce.id);
    assert_header(h, "ce_type", "keel.v1.PaymentRequested");

    keel_cloudevent back;
    char err[256] = "";
    assert_int_equal(keel_cloudevent_from_headers(h, &back, err, sizeof err), KEEL_OK);
    assert_string_equal(back.id, ce.id);
    assert_string_equal(back.source, "/keel/gateway");
    assert_string_equal(back.type, "keel.v1.PaymentRequested");
    assert_string_equal(back.time, ce.time);
    assert_string_equal(back.traceparent, ce.traceparent);
    rd_kafka_headers_destroy(h);
}

static void test_missing_specversion(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = valid_headers();
    rd_kafka_header_remove(h, "ce_specversion");
    keel_cloudevent ce;
    char err[256] = "";
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_specversion"));
    rd_kafka_headers_destroy(h);

    /* No headers at all is the same failure, not a crash. */
    err[0] = '\0';
    assert_int_equal(keel_cloudevent_from_headers(NULL, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_specversion"));
}

static void test_invalid_specversion(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = valid_headers();
    rd_kafka_header_remove(h, "ce_specversion");
    rd_kafka_header_add(h, "ce_specversion", -1, "0.3", -1);
    keel_cloudevent ce;
    char err[256] = "";
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_specversion"));
    rd_kafka_headers_destroy(h);
}

static void test_missing_or_bad_required(void **state)
{
    (void)state;
    keel_cloudevent ce;
    char err[256] = "";

    rd_kafka_headers_t *h = valid_headers();
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_OK);
    rd_kafka_header_remove(h, "ce_type");
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_type"));
    rd_kafka_headers_destroy(h);

    /* Longer than the 128-byte field. */
    char long_source[200];
    memset(long_source, 's', sizeof long_source);
    h = valid_headers();
    rd_kafka_header_remove(h, "ce_source");
    rd_kafka_header_add(h, "ce_source", -1, long_source, sizeof long_source);
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_source"));
    rd_kafka_headers_destroy(h);

    /* An embedded NUL would make the C string lie about the value. */
    h = valid_headers();
    rd_kafka_header_remove(h, "ce_id");
    rd_kafka_header_add(h, "ce_id", -1, "ab\0cd", 5);
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_ERR);
    assert_non_null(strstr(err, "ce_id"));
    rd_kafka_headers_destroy(h);
}

static void test_optional_attributes(void **state)
{
    (void)state;
    keel_cloudevent ce;
    char err[256] = "";
    rd_kafka_headers_t *h = valid_headers();
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_OK);
    assert_string_equal(ce.traceparent, "");
    assert_string_equal(ce.time, "");
    assert_string_equal(ce.source, "/keel/test");

    /* A malformed traceparent is dropped, not fatal (W3C: ignore and start a new trace). */
    rd_kafka_header_add(h, "traceparent", -1, "00-nothex-01", -1);
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_OK);
    assert_string_equal(ce.traceparent, "");
    rd_kafka_header_remove(h, "traceparent");
    rd_kafka_header_add(h, "traceparent", -1, parent_tp, -1);
    assert_int_equal(keel_cloudevent_from_headers(h, &ce, err, sizeof err), KEEL_OK);
    assert_string_equal(ce.traceparent, parent_tp);
    rd_kafka_headers_destroy(h);
}

static void test_traceparent_child_keeps_trace_id(void **state)
{
    (void)state;
    char child[KEEL_TRACEPARENT_LEN];
    keel_traceparent_child(parent_tp, child);
    assert_int_equal(strlen(child), 55);
    char parent_id[33];
    char child_id[33];
    keel_traceparent_trace_id(parent_tp, parent_id);
    keel_traceparent_trace_id(child, child_id);
    assert_string_equal(parent_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(child_id, parent_id);
    /* A new span of the same trace. */
    assert_memory_not_equal(child + 36, parent_tp + 36, 16);
    assert_memory_equal(child, "00-", 3);

    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", parent_tp);
    keel_traceparent_trace_id(ce.traceparent, child_id);
    assert_string_equal(child_id, parent_id);
}

static void test_traceparent_new_and_invalid(void **state)
{
    (void)state;
    char a[KEEL_TRACEPARENT_LEN];
    char b[KEEL_TRACEPARENT_LEN];
    char id_a[33];
    char id_b[33];
    keel_traceparent_new(a);
    keel_traceparent_new(b);
    assert_int_equal(strlen(a), 55);
    assert_memory_equal(a + 52, "-01", 3);
    keel_traceparent_trace_id(a, id_a);
    keel_traceparent_trace_id(b, id_b);
    assert_int_equal(strlen(id_a), 32);
    assert_string_not_equal(id_a, id_b);

    /* An invalid parent gives a fresh, valid traceparent. */
    keel_traceparent_child("garbage", a);
    keel_traceparent_trace_id(a, id_a);
    assert_int_equal(strlen(id_a), 32);

    char id[33] = "x";
    keel_traceparent_trace_id("garbage", id);
    assert_string_equal(id, "");
    keel_traceparent_trace_id(NULL, id);
    assert_string_equal(id, "");
    /* All-zero trace ids, uppercase hex and version ff are invalid. */
    keel_traceparent_trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01", id);
    assert_string_equal(id, "");
    keel_traceparent_trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", id);
    assert_string_equal(id, "");
    keel_traceparent_trace_id("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id);
    assert_string_equal(id, "");
    keel_traceparent_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", id);
    assert_string_equal(id, "");

    keel_cloudevent ce;
    keel_cloudevent_init(&ce, "/keel/test", "keel.v1.Test", NULL);
    keel_traceparent_trace_id(ce.traceparent, id);
    assert_int_equal(strlen(id), 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_missing_specversion),
        cmocka_unit_test(test_invalid_specversion),
        cmocka_unit_test(test_missing_or_bad_required),
        cmocka_unit_test(test_optional_attributes),
        cmocka_unit_test(test_traceparent_child_keeps_trace_id),
        cmocka_unit_test(test_traceparent_new_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
