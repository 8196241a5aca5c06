/* Unit tests of the Authorization header parsing and of the stored key hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "digest.h"

static void expect_secret(const char *header, const char *want)
{
    const char *secret = NULL;
    size_t len = 0;

    assert_true(gateway_auth_parse_bearer(header, &secret, &len));
    assert_int_equal(len, strlen(want));
    assert_memory_equal(secret, want, len);
}

static void expect_refused(const char *header)
{
    const char *secret = "x";
    size_t len = 1;

    if (gateway_auth_parse_bearer(header, &secret, &len)) {
        fail_msg("accepted Authorization \"%s\"", header != NULL ? header : "(null)");
    }
    assert_null(secret);
    assert_int_equal(len, 0);
}

static void test_bearer_accepted(void **state)
{
    (void)state;
    expect_secret("Bearer sk_test_abc", "sk_test_abc");
    expect_secret("bearer sk_test_abc", "sk_test_abc"); /* the scheme is case-insensitive */
    expect_secret("Bearer   sk_test_abc", "sk_test_abc");
}

static void test_bearer_refused(void **state)
{
    char long_header[300];

    (void)state;
    expect_refused(NULL);
    expect_refused("");
    expect_refused("Bearer");
    expect_refused("Bearer ");
    expect_refused("Basic dXNlcjpwYXNz");
    expect_refused("Bearersk_test_abc");
    expect_refused("Bearer sk_test abc"); /* a second token */
    expect_refused("Bearer sk_test_\x01");
    expect_refused("Bearer sk_t\xc3\xa9st");
    memcpy(long_header, "Bearer ", 7);
    memset(long_header + 7, 'k', GATEWAY_API_KEY_MAX_LEN + 1);
    long_header[7 + GATEWAY_API_KEY_MAX_LEN + 1] = '\0';
    expect_refused(long_header);
    long_header[7 + GATEWAY_API_KEY_MAX_LEN] = '\0';
    expect_secret(long_header, long_header + 7);
}

static void test_key_hash_matches_keelctl_format(void **state)
{
    char hash[GATEWAY_SHA256_HEX_LEN];

    (void)state;
    /* keelctl stores sha256 hex of the whole secret; the gateway must compute the same. */
    gateway_sha256_hex("sk_test_abc", strlen("sk_test_abc"), hash);
    assert_string_equal(hash, "4b4090ccee1e713c3d411b96a4226b90bd0f0deb34e02d19475a951316fd04ee");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer_accepted),
        cmocka_unit_test(test_bearer_refused),
        cmocka_unit_test(test_key_hash_matches_keelctl_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
