/* Unit tests for keel/ssrf.h: address classes (IPv4, IPv6, v4-mapped and other embeddings),
 * the allow-list, and resolution that refuses names pointing at internal addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "keel/ssrf.h"

static keel_ssrf_class class_of(const char *text)
{
    keel_ip ip;
    if (!keel_ip_parse(text, &ip)) {
        fail_msg("%s did not parse", text);
    }
    return keel_ssrf_classify(&ip);
}

typedef struct class_case {
    const char *addr;
    keel_ssrf_class cls;
} class_case;

static void check_cases(const class_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        keel_ssrf_class got = class_of(cases[i].addr);
        if (got != cases[i].cls) {
            fail_msg("%s: got %s, want %s", cases[i].addr, keel_ssrf_class_name(got),
                     keel_ssrf_class_name(cases[i].cls));
        }
    }
}

static void test_ipv4_classes(void **state)
{
    (void)state;
    static const class_case cases[] = {
        {"8.8.8.8", KEEL_SSRF_PUBLIC},           {"93.184.216.34", KEEL_SSRF_PUBLIC},
        {"127.0.0.1", KEEL_SSRF_LOOPBACK},       {"127.255.255.254", KEEL_SSRF_LOOPBACK},
        {"10.0.0.1", KEEL_SSRF_PRIVATE},         {"172.16.0.1", KEEL_SSRF_PRIVATE},
        {"172.31.255.255", KEEL_SSRF_PRIVATE},   {"172.32.0.1", KEEL_SSRF_PUBLIC},
        {"192.168.1.1", KEEL_SSRF_PRIVATE},      {"169.254.1.1", KEEL_SSRF_LINK_LOCAL},
        {"169.254.169.254", KEEL_SSRF_METADATA}, {"168.63.129.16", KEEL_SSRF_METADATA},
        {"100.100.100.200", KEEL_SSRF_METADATA}, {"100.64.0.1", KEEL_SSRF_CGNAT},
        {"100.127.255.255", KEEL_SSRF_CGNAT},    {"100.128.0.1", KEEL_SSRF_PUBLIC},
        {"0.0.0.0", KEEL_SSRF_UNSPECIFIED},      {"0.1.2.3", KEEL_SSRF_UNSPECIFIED},
        {"224.0.0.1", KEEL_SSRF_MULTICAST},      {"239.255.255.250", KEEL_SSRF_MULTICAST},
        {"255.255.255.255", KEEL_SSRF_RESERVED}, {"240.0.0.1", KEEL_SSRF_RESERVED},
        {"192.0.2.10", KEEL_SSRF_RESERVED},      {"198.18.0.1", KEEL_SSRF_RESERVED},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_ipv6_classes(void **state)
{
    (void)state;
    static const class_case cases[] = {
        {"2606:4700:4700::1111", KEEL_SSRF_PUBLIC},
        {"::", KEEL_SSRF_UNSPECIFIED},
        {"::1", KEEL_SSRF_LOOPBACK},
        {"fe80::1", KEEL_SSRF_LINK_LOCAL},
        {"fc00::1", KEEL_SSRF_PRIVATE},
        {"fd12:3456::1", KEEL_SSRF_PRIVATE},
        {"fd00:ec2::254", KEEL_SSRF_METADATA},
        {"fec0::1", KEEL_SSRF_PRIVATE},
        {"ff02::1", KEEL_SSRF_MULTICAST},
        {"2001:db8::1", KEEL_SSRF_RESERVED},
        {"2001:0:4136:e378::1", KEEL_SSRF_RESERVED}, /* Teredo */
        {"::7f00:1", KEEL_SSRF_RESERVED},            /* IPv4-compatible ::127.0.0.1 */
        {"4000::1", KEEL_SSRF_RESERVED},             /* outside 2000::/3 */
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* An IPv6 address that carries an IPv4 one is as dangerous as the IPv4 address. */
static void test_embedded_ipv4(void **state)
{
    (void)state;
    static const class_case cases[] = {
        {"::ffff:127.0.0.1", KEEL_SSRF_LOOPBACK},
        {"::ffff:7f00:1", KEEL_SSRF_LOOPBACK},
        {"::ffff:10.0.0.1", KEEL_SSRF_PRIVATE},
        {"::ffff:169.254.169.254", KEEL_SSRF_METADATA},
        {"::ffff:8.8.8.8", KEEL_SSRF_PUBLIC},
        {"::ffff:0:127.0.0.1", KEEL_SSRF_LOOPBACK}, /* SIIT */
        {"64:ff9b::10.1.2.3", KEEL_SSRF_PRIVATE},   /* NAT64 */
        {"64:ff9b::8.8.4.4", KEEL_SSRF_PUBLIC},
        {"2002:7f00:1::", KEEL_SSRF_LOOPBACK}, /* 6to4 of 127.0.0.1 */
        {"2002:a9fe:a9fe::1", KEEL_SSRF_METADATA},
        {"2002:0808:0808::1", KEEL_SSRF_PUBLIC},
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_is_strict(void **state)
{
    (void)state;
    keel_ip ip;
    assert_false(keel_ip_parse("localhost", &ip));
    assert_false(keel_ip_parse("127.1", &ip));
    assert_false(keel_ip_parse("[::1]", &ip));
    assert_false(keel_ip_parse("", &ip));
    assert_false(keel_ip_parse(NULL, &ip));
    assert_true(keel_ip_parse("::ffff:127.0.0.1", &ip));
    assert_int_equal(ip.family, AF_INET6);
    char text[KEEL_IP_STR_LEN];
    assert_string_equal(keel_ip_format(&ip, text), "::ffff:127.0.0.1");
}

static bool permitted(const keel_ssrf_allowlist *list, const char *addr)
{
    keel_ip ip;
    assert_true(keel_ip_parse(addr, &ip));
    return keel_ssrf_permitted(list, &ip, NULL);
}

static void test_allowlist(void **state)
{
    (void)state;
    char err[256];
    keel_ssrf_allowlist *list = keel_ssrf_allowlist_parse("127.0.0.0/8, ::1/128", err, sizeof(err));
    assert_non_null(list);
    assert_int_equal(keel_ssrf_allowlist_count(list), 2);
    assert_true(permitted(list, "127.0.0.1"));
    assert_true(permitted(list, "127.9.9.9"));
    assert_true(permitted(list, "::1"));
    assert_true(permitted(list, "::ffff:127.0.0.1")); /* the v4 entry covers its mapped form */
    assert_true(permitted(list, "8.8.8.8"));          /* public needs no entry */
    assert_false(permitted(list, "10.0.0.1"));
    assert_false(permitted(list, "169.254.169.254"));
    assert_false(permitted(list, "fe80::1"));
    keel_ssrf_allowlist_free(list);

    list = keel_ssrf_allowlist_parse(NULL, err, sizeof(err));
    assert_non_null(list);
    assert_int_equal(keel_ssrf_allowlist_count(list), 0);
    assert_false(permitted(list, "127.0.0.1"));
    assert_false(permitted(NULL, "::ffff:127.0.0.1"));
    assert_false(permitted(NULL, "::1"));
    keel_ssrf_allowlist_free(list);
}

/* A broad range never opens the metadata service; naming the host exactly does. */
static void test_metadata_needs_exact_entry(void **state)
{
    (void)state;
    char err[256];
    keel_ssrf_allowlist *broad =
        keel_ssrf_allowlist_parse("0.0.0.0/0,::/0,169.254.0.0/16", err, sizeof(err));
    assert_non_null(broad);
    assert_true(permitted(broad, "169.254.1.1"));
    assert_true(permitted(broad, "10.0.0.1"));
    assert_false(permitted(broad, "169.254.169.254"));
    assert_false(permitted(broad, "fd00:ec2::254"));
    assert_false(permitted(broad, "::ffff:169.254.169.254"));
    keel_ssrf_allowlist_free(broad);

    keel_ssrf_allowlist *exact = keel_ssrf_allowlist_parse("169.254.169.254", err, sizeof(err));
    assert_non_null(exact);
    assert_true(permitted(exact, "169.254.169.254"));
    keel_ssrf_allowlist_free(exact);
}

static void test_allowlist_rejects_garbage(void **state)
{
    (void)state;
    char err[256];
    static const char *const bad[] = {"127.0.0.0/33", "::1/129",    "localhost",
                                      "10.0.0.0/",    "10.0.0.0/x", "1.2.3.4/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        keel_ssrf_allowlist *list = keel_ssrf_allowlist_parse(bad[i], err, sizeof(err));
        if (list != NULL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_non_null(strstr(err, "allow-list entry"));
    }
}

/* Literals and /etc/hosts names resolve without any network traffic. */
static void test_resolve_refuses_internal(void **state)
{
    (void)state;
    char err[256];
    keel_ip ip;
    static const char *const refused[] = {"127.0.0.1", "10.0.0.1",         "169.254.169.254",
                                          "::1",       "::ffff:127.0.0.1", "localhost"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        err[0] = '\0';
        keel_result r = keel_ssrf_resolve(refused[i], NULL, 2000, &ip, err, sizeof(err));
        if (r != KEEL_ERR) {
            fail_msg("%s: got %d (%s), want refused", refused[i], (int)r, err);
        }
        assert_non_null(strstr(err, "keel calls only public addresses"));
        assert_int_equal(ip.family, 0);
    }
    /* The message names the address a name resolved to, and the class. */
    assert_int_equal(keel_ssrf_resolve("localhost", NULL, 2000, &ip, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "localhost resolves to "));
    assert_non_null(strstr(err, "a loopback address"));
    assert_int_equal(keel_ssrf_resolve("0.0.0.0", NULL, 2000, &ip, err, sizeof(err)), KEEL_ERR);
    assert_non_null(strstr(err, "0.0.0.0 is an unspecified address"));
}

static void test_resolve_allowlisted_and_public(void **state)
{
    (void)state;
    char err[256];
    keel_ip ip;
    char text[KEEL_IP_STR_LEN];
    keel_ssrf_allowlist *list = keel_ssrf_allowlist_parse("127.0.0.0/8", err, sizeof(err));
    assert_non_null(list);
    assert_int_equal(keel_ssrf_resolve("127.0.0.1", list, 2000, &ip, err, sizeof(err)), KEEL_OK);
    assert_string_equal(keel_ip_format(&ip, text), "127.0.0.1");
    /* ::1 is not covered by an IPv4 entry. */
    assert_int_equal(keel_ssrf_resolve("::1", list, 2000, &ip, err, sizeof(err)), KEEL_ERR);
    keel_ssrf_allowlist_free(list);
    /* A public literal passes with an empty list and is its own pinned address. */
    assert_int_equal(keel_ssrf_resolve("8.8.8.8", NULL, 2000, &ip, err, sizeof(err)), KEEL_OK);
    assert_string_equal(keel_ip_format(&ip, text), "8.8.8.8");
}

static void test_resolve_bad_names(void **state)
{
    (void)state;
    char err[256];
    keel_ip ip;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(keel_ssrf_resolve("", NULL, 2000, &ip, err, sizeof(err)), KEEL_ERR_NOT_FOUND);
    assert_int_equal(keel_ssrf_resolve(longname, NULL, 2000, &ip, err, sizeof(err)),
                     KEEL_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_classes),
        cmocka_unit_test(test_ipv6_classes),
        cmocka_unit_test(test_embedded_ipv4),
        cmocka_unit_test(test_parse_is_strict),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_metadata_needs_exact_entry),
        cmocka_unit_test(test_allowlist_rejects_garbage),
        cmocka_unit_test(test_resolve_refuses_internal),
        cmocka_unit_test(test_resolve_allowlisted_and_public),
        cmocka_unit_test(test_resolve_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
