/* Unit tests for endpoint_url.h: which URLs a merchant may register, and that the SSRF guard
 * refuses internal targets in every spelling (literals, v4-mapped, names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "endpoint_url.h"

static void test_good_urls(void **state)
{
    (void)state;
    notifier_url u;
    char err[256];
    assert_true(notifier_url_parse("https://example.com/hooks?x=1", false, &u, err, sizeof(err)));
    assert_true(u.https);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 443);
    assert_true(notifier_url_parse("http://127.0.0.1:8080/h", true, &u, err, sizeof(err)));
    assert_false(u.https);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_true(notifier_url_parse("https://[::ffff:127.0.0.1]:9/", false, &u, err, sizeof(err)));
    assert_string_equal(u.host, "::ffff:127.0.0.1");
    assert_int_equal(u.port, 9);
}

static void test_bad_urls(void **state)
{
    (void)state;
    notifier_url u;
    char err[256];
    static const struct {
        const char *url;
        const char *why;
    } cases[] = {
        {"", "required"},
        {"example.com/hook", "absolute"},
        {"ftp://example.com/", "https://"},
        {"file:///etc/passwd", "https://"},
        {"http://example.com/", "https://"}, /* plain http refused by default */
        {"https://user:pw@example.com/", "user name"},
        {"https://example.com/#frag", "fragment"},
        {"https://exa mple.com/", "ASCII"},
        {"https://example.com:0/", "port"},
        {"https://example.com:70000/", "absolute"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        if (notifier_url_parse(cases[i].url, false, &u, err, sizeof(err))) {
            fail_msg("\"%s\" was accepted", cases[i].url);
        }
        if (strstr(err, cases[i].why) == NULL) {
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].url, err, cases[i].why);
        }
    }
    char long_url[NOTIFIER_URL_MAX + 32];
    memcpy(long_url, "https://example.com/", 20);
    memset(long_url + 20, 'a', sizeof(long_url) - 21);
    long_url[sizeof(long_url) - 1] = '\0';
    assert_false(notifier_url_parse(long_url, false, &u, err, sizeof(err)));
}

/* The targets of the issue: refused without an allow-list, with no traffic sent (literals and
 * /etc/hosts only). */
static void test_internal_targets_refused(void **state)
{
    (void)state;
    static const char *const urls[] = {"http://127.0.0.1:9/hook",         "http://10.0.0.1/hook",
                                       "http://169.254.169.254/latest/",  "http://[::1]:9/hook",
                                       "http://[::ffff:127.0.0.1]:9/x",   "http://localhost:9/hook",
                                       "http://[fd00:ec2::254]/latest/",  "http://0.0.0.0:9/",
                                       "http://[::ffff:169.254.169.254]/"};
    keel_ip addr;
    char err[512];
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        err[0] = '\0';
        keel_result r = notifier_url_check(urls[i], true, NULL, 2000, &addr, err, sizeof(err));
        if (r != KEEL_ERR) {
            fail_msg("%s: got %d (%s), want refused", urls[i], (int)r, err);
        }
        assert_non_null(strstr(err, "address"));
    }
}

static void test_allowlisted_loopback_passes(void **state)
{
    (void)state;
    char err[512];
    keel_ip addr;
    char text[KEEL_IP_STR_LEN];
    keel_ssrf_allowlist *allow = keel_ssrf_allowlist_parse("127.0.0.0/8,::1/128", err, sizeof(err));
    assert_non_null(allow);
    assert_int_equal(
        notifier_url_check("http://127.0.0.1:9/hook", true, allow, 2000, &addr, err, sizeof(err)),
        KEEL_OK);
    assert_string_equal(keel_ip_format(&addr, text), "127.0.0.1");
    assert_int_equal(
        notifier_url_check("http://[::1]:9/hook", true, allow, 2000, &addr, err, sizeof(err)),
        KEEL_OK);
    /* Still refused: another range, and plain http when it is not allowed. */
    assert_int_equal(
        notifier_url_check("http://10.0.0.1/hook", true, allow, 2000, &addr, err, sizeof(err)),
        KEEL_ERR);
    assert_int_equal(
        notifier_url_check("http://127.0.0.1:9/hook", false, allow, 2000, &addr, err, sizeof(err)),
        KEEL_ERR);
    keel_ssrf_allowlist_free(allow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_internal_targets_refused),
        cmocka_unit_test(test_allowlisted_loopback_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
