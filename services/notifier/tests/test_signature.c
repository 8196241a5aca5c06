/* Unit tests for signature.h: HMAC-SHA256 against vectors from `openssl dgst -sha256 -hmac`,
 * the header with one and two secrets, and fresh secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "signature.h"

/* printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test */
#define VECTOR_TEST "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
/* the same with -hmac whsec_old */
#define VECTOR_OLD "b9d801502bb535e960ee9aeee7a294b082bda5089d79c7db610b85116ce6faa6"
/* printf '1700000000.' | openssl dgst -sha256 -hmac whsec_test (an empty body) */
#define VECTOR_EMPTY "5967f3c560522fa40cf2876ebc3c3a08551dd6959aaade3b413460591895bdcc"

static void test_hmac_matches_openssl(void **state)
{
    (void)state;
    char hex[NOTIFIER_HMAC_HEX_LEN];
    const char body[] = "{\"a\":1}";
    assert_true(notifier_hmac_hex("whsec_test", 1700000000, body, strlen(body), hex));
    assert_string_equal(hex, VECTOR_TEST);
    assert_true(notifier_hmac_hex("whsec_test", 1700000000, "", 0, hex));
    assert_string_equal(hex, VECTOR_EMPTY);
    /* A changed body, time or secret changes the signature. */
    assert_true(notifier_hmac_hex("whsec_test", 1700000000, "{\"a\":2}", 7, hex));
    assert_string_not_equal(hex, VECTOR_TEST);
    assert_true(notifier_hmac_hex("whsec_test", 1700000001, body, strlen(body), hex));
    assert_string_not_equal(hex, VECTOR_TEST);
    assert_true(notifier_hmac_hex("whsec_tesT", 1700000000, body, strlen(body), hex));
    assert_string_not_equal(hex, VECTOR_TEST);
}

/* The signed bytes are exactly the body given, NULs and all. */
static void test_hmac_covers_length_not_string(void **state)
{
    (void)state;
    char a[NOTIFIER_HMAC_HEX_LEN];
    char b[NOTIFIER_HMAC_HEX_LEN];
    const char body[] = "{\"a\":1}trailing";
    assert_true(notifier_hmac_hex("whsec_test", 1700000000, body, 7, a));
    assert_string_equal(a, VECTOR_TEST);
    assert_true(notifier_hmac_hex("whsec_test", 1700000000, body, sizeof(body) - 1, b));
    assert_string_not_equal(a, b);
}

static void test_header_one_and_two_secrets(void **state)
{
    (void)state;
    char header[NOTIFIER_SIGNATURE_LEN];
    const char body[] = "{\"a\":1}";
    assert_true(
        notifier_signature_header(1700000000, body, strlen(body), "whsec_test", NULL, header));
    assert_string_equal(header, "t=1700000000,v1=" VECTOR_TEST);
    assert_true(
        notifier_signature_header(1700000000, body, strlen(body), "whsec_test", "", header));
    assert_string_equal(header, "t=1700000000,v1=" VECTOR_TEST);
    assert_true(notifier_signature_header(1700000000, body, strlen(body), "whsec_test", "whsec_old",
                                          header));
    assert_string_equal(header, "t=1700000000,v1=" VECTOR_TEST ",v1=" VECTOR_OLD);
}

static void test_secret_new(void **state)
{
    (void)state;
    char a[NOTIFIER_SECRET_LEN];
    char b[NOTIFIER_SECRET_LEN];
    assert_true(notifier_secret_new(a));
    assert_true(notifier_secret_new(b));
    assert_int_equal(strlen(a), NOTIFIER_SECRET_LEN - 1);
    assert_memory_equal(a, "whsec_", 6);
    for (size_t i = 6; i < strlen(a); i++) {
        assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_matches_openssl),
        cmocka_unit_test(test_hmac_covers_length_not_string),
        cmocka_unit_test(test_header_one_and_two_secrets),
        cmocka_unit_test(test_secret_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
