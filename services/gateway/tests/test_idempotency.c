/* Unit tests of the Idempotency-Key header rules and of the request fingerprint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static void test_request_hash_known_value(void **state)
{
    char hash[GATEWAY_SHA256_HEX_LEN];
    const char *body = "{\"amount\":1}";

    (void)state;
    /* sha256("POST\n/v1/payments\n{\"amount\":1}") computed independently. */
    gateway_idempotency_request_hash("POST", "/v1/payments", body, strlen(body), hash);
    assert_string_equal(hash, "5800105f383758c8d91b8aeb63cbb4bde2e8cda0265dd71f167c7dececab96ed");
}

static void test_request_hash_covers_every_part(void **state)
{
    char base[GATEWAY_SHA256_HEX_LEN];
    char other[GATEWAY_SHA256_HEX_LEN];
    const char *body = "{\"amount\":1,\"currency\":\"usd\"}";

    (void)state;
    gateway_idempotency_request_hash("POST", "/v1/payments", body, strlen(body), base);
    gateway_idempotency_request_hash("POST", "/v1/payments", body, strlen(body), other);
    assert_string_equal(base, other);

    /* A single byte of the body differs: whitespace counts, the raw bytes are hashed. */
    const char *spaced = "{\"amount\":1, \"currency\":\"usd\"}";
    gateway_idempotency_request_hash("POST", "/v1/payments", spaced, strlen(spaced), other);
    assert_string_not_equal(base, other);
    gateway_idempotency_request_hash("PUT", "/v1/payments", body, strlen(body), other);
    assert_string_not_equal(base, other);
    gateway_idempotency_request_hash("POST", "/v1/refunds", body, strlen(body), other);
    assert_string_not_equal(base, other);
    /* The separator keeps parts apart: moving a byte from method to path changes the hash. */
    gateway_idempotency_request_hash("POS", "T/v1/payments", body, strlen(body), other);
    assert_string_not_equal(base, other);
    /* Bytes after a NUL in the body are hashed too. */
    gateway_idempotency_request_hash("POST", "/v1/payments", "a\0b", 3, base);
    gateway_idempotency_request_hash("POST", "/v1/payments", "a\0c", 3, other);
    assert_string_not_equal(base, other);
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
        cmocka_unit_test(test_request_hash_known_value),
        cmocka_unit_test(test_request_hash_covers_every_part),
        cmocka_unit_test(test_sha256_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
