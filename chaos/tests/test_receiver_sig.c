/* Unit tests of the chaos receiver's signature check, against an HMAC computed with the
 * openssl command line (printf '<t>.<body>' | openssl dgst -sha256 -hmac <secret>). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "receiver_sig.h"

#define SECRET "whsec_0123456789abcdef"
#define BODY "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\"}"
#define MAC "77d2d3c0ea5ae44a763336b7fc20735a9617091b46b726df19a7c715368a8fc4"
#define OTHER "0000000000000000000000000000000000000000000000000000000000000000"

static bool check(const char *secret, const char *header, const char *body)
{
    return chaos_signature_valid(secret, header, body, strlen(body));
}

static void test_accepts_the_right_signature(void **state)
{
    (void)state;
    assert_true(check(SECRET, "t=1700000000,v1=" MAC, BODY));
    /* During a secret rotation the current signature may come second. */
    assert_true(check(SECRET, "t=1700000000,v1=" OTHER ",v1=" MAC, BODY));
}

static void test_rejects_tampering(void **state)
{
    (void)state;
    assert_false(check(SECRET, "t=1700000000,v1=" MAC, "{\"id\":\"evt_2\"}"));
    assert_false(check(SECRET, "t=1700000001,v1=" MAC, BODY));
    assert_false(check("whsec_other", "t=1700000000,v1=" MAC, BODY));
    assert_false(check(SECRET, "t=1700000000,v1=" OTHER, BODY));
}

static void test_rejects_malformed_headers(void **state)
{
    (void)state;
    assert_false(check(SECRET, "", BODY));
    assert_false(check(SECRET, "v1=" MAC, BODY));
    assert_false(check(SECRET, "t=,v1=" MAC, BODY));
    assert_false(check(SECRET, "t=17x,v1=" MAC, BODY));
    assert_false(check(SECRET, "t=1700000000", BODY));
    assert_false(check(SECRET, "t=1700000000,v1=77d2d3", BODY));
    assert_false(check(SECRET, "t=1700000000,v0=" MAC, BODY));
    assert_false(check("", "t=1700000000,v1=" MAC, BODY));
    assert_false(chaos_signature_valid(SECRET, NULL, BODY, strlen(BODY)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_the_right_signature),
        cmocka_unit_test(test_rejects_tampering),
        cmocka_unit_test(test_rejects_malformed_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
