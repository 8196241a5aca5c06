/* Unit tests of the Idempotency-Key header rules, the canonical request, its fingerprint and
 * the description of a mismatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idempotency.h"

static void test_key_rules(void **state)
{
    char key[300];

    (void)state;
    assert_int_equal(gateway_idempotency_key_check(NULL), GATEWAY_IDEM_KEY_MISSING);
    assert_int_equal(gateway_idempotency_key_check(""), GATEWAY_IDEM_KEY_MISSING);
    assert_int_equal(gateway_idempotency_key_check("a"), GATEWAY_IDEM_KEY_OK);
    assert_int_equal(gateway_idempotency_key_check("order 42/retry~1"), GATEWAY_IDEM_KEY_OK);
    memset(key, 'k', 255);
    key[255] = '\0';
    assert_int_equal(gateway_idempotency_key_check(key), GATEWAY_IDEM_KEY_OK);
    memset(key, 'k', 256);
    key[256] = '\0';
    assert_int_equal(gateway_idempotency_key_check(key), GATEWAY_IDEM_KEY_INVALID);
    assert_int_equal(gateway_idempotency_key_check("tab\there"), GATEWAY_IDEM_KEY_INVALID);
    assert_int_equal(gateway_idempotency_key_check("del\x7f"), GATEWAY_IDEM_KEY_INVALID);
    assert_int_equal(gateway_idempotency_key_check("caf\xc3\xa9"), GATEWAY_IDEM_KEY_INVALID);
}

static void test_fingerprint_known_value(void **state)
{
    char hash[GATEWAY_SHA256_HEX_LEN];

    (void)state;
    /* sha256("POST\n/v1/payments\n{\"amount\":1}") computed independently. */
    gateway_idempotency_fingerprint("POST", "/v1/payments", "{\"amount\":1}", hash);
    assert_string_equal(hash, "5800105f383758c8d91b8aeb63cbb4bde2e8cda0265dd71f167c7dececab96ed");
}

static char *canonical_of(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    char *c;
    assert_non_null(doc);
    c = gateway_idempotency_canonical(doc);
    json_decref(doc);
    assert_non_null(c);
    return c;
}

static void test_canonical_form(void **state)
{
    char *a;
    char *b;

    (void)state;
    /* Key order, whitespace and explicit nulls do not make a different request. */
    a = canonical_of("{\"currency\":\"usd\", \"amount\":1, \"description\":null, "
                     "\"metadata\":{\"b\":\"2\",\"a\":\"1\"}}");
    b = canonical_of("{\"amount\":1,\"metadata\":{\"a\":\"1\",\"b\":\"2\"},\"currency\":\"usd\"}");
    assert_string_equal(a, b);
    assert_string_equal(
        a, "{\"amount\":1,\"currency\":\"usd\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    free(b);
    /* A value that differs does. */
    b = canonical_of("{\"amount\":2,\"currency\":\"usd\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    a = gateway_idempotency_canonical(NULL);
    assert_string_equal(a, "{}");
    free(a);
}

static void test_fingerprint_covers_every_part(void **state)
{
    char base[GATEWAY_SHA256_HEX_LEN];
    char other[GATEWAY_SHA256_HEX_LEN];
    const char *params = "{\"amount\":1,\"currency\":\"usd\"}";

    (void)state;
    gateway_idempotency_fingerprint("POST", "/v1/payments", params, base);
    gateway_idempotency_fingerprint("POST", "/v1/payments", params, other);
    assert_string_equal(base, other);
    gateway_idempotency_fingerprint("POST", "/v1/payments", "{\"amount\":2,\"currency\":\"usd\"}",
                                    other);
    assert_string_not_equal(base, other);
    gateway_idempotency_fingerprint("PUT", "/v1/payments", params, other);
    assert_string_not_equal(base, other);
    gateway_idempotency_fingerprint("POST", "/v1/payments/pay_1/refunds", params, other);
    assert_string_not_equal(base, other);
    /* The separator keeps parts apart: moving a byte from method to path changes the hash. */
    gateway_idempotency_fingerprint("POS", "T/v1/payments", params, other);
    assert_string_not_equal(base, other);
}

static void test_describe_mismatch(void **state)
{
    char out[200];

    (void)state;
    gateway_idempotency_describe_mismatch(
        "POST", "/v1/payments", "{\"amount\":1,\"currency\":\"usd\"}", "POST", "/v1/payments",
        "{\"amount\":2,\"currency\":\"usd\"}", out, sizeof(out));
    assert_string_equal(out, "with different parameters: amount");
    /* Added, removed and changed members, sorted by name. */
    gateway_idempotency_describe_mismatch(
        "POST", "/v1/payments", "{\"amount\":1,\"currency\":\"usd\",\"description\":\"x\"}", "POST",
        "/v1/payments", "{\"amount\":1,\"currency\":\"eur\",\"metadata\":{}}", out, sizeof(out));
    assert_string_equal(out, "with different parameters: currency, description, metadata");
    gateway_idempotency_describe_mismatch("POST", "/v1/payments",
                                          "{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1}",
                                          "POST", "/v1/payments", "{}", out, sizeof(out));
    assert_string_equal(out, "with different parameters: a, b, c, d and 2 more");
    gateway_idempotency_describe_mismatch("POST", "/v1/payments", "{}", "POST",
                                          "/v1/payments/pay_1/refunds", "{}", out, sizeof(out));
    assert_string_equal(out, "for another endpoint (POST /v1/payments)");
    /* Stored parameters that do not parse still give a sentence. */
    gateway_idempotency_describe_mismatch("POST", "/v1/payments", "not json", "POST",
                                          "/v1/payments", "{}", out, sizeof(out));
    assert_string_equal(out, "with a different request body");
}

static void test_sha256_hex(void **state)
{
    char hash[GATEWAY_SHA256_HEX_LEN];

    (void)state;
    gateway_sha256_hex("abc", 3, hash);
    assert_string_equal(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(strlen(hash), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_fingerprint_known_value),
        cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_fingerprint_covers_every_part),
        cmocka_unit_test(test_describe_mismatch),
        cmocka_unit_test(test_sha256_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
