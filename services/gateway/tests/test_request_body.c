/* Unit tests of strict request-body parsing (media type, JSON, depth) and of the error object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "request_body.h"

static void expect_refused(const char *ct, const char *body, size_t len, unsigned status,
                           const char *code)
{
    gateway_error err;
    json_t *doc = gateway_body_parse(ct, body, len, &err);
    if (doc != NULL) {
        json_decref(doc);
        fail_msg("accepted body '%.*s' with Content-Type %s", (int)len, body, ct ? ct : "(none)");
    }
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
    assert_string_equal(err.param, "");
    assert_true(strlen(err.message) > 0);
}

static void expect_ok(const char *ct, const char *body)
{
    gateway_error err;
    json_t *doc = gateway_body_parse(ct, body, strlen(body), &err);
    if (doc == NULL) {
        fail_msg("refused '%s' (%s): %s", body, ct, err.message);
    }
    json_decref(doc);
}

static void test_media_type(void **state)
{
    (void)state;
    assert_true(gateway_content_type_is_json("application/json"));
    assert_true(gateway_content_type_is_json(" Application/JSON "));
    assert_true(gateway_content_type_is_json("application/json; charset=utf-8"));
    assert_true(gateway_content_type_is_json("application/json;charset=\"UTF-8\""));
    assert_true(gateway_content_type_is_json("application/json; foo=bar; charset=utf8"));
    assert_false(gateway_content_type_is_json(NULL));
    assert_false(gateway_content_type_is_json(""));
    assert_false(gateway_content_type_is_json("text/plain"));
    assert_false(gateway_content_type_is_json("application/jsonx"));
    assert_false(gateway_content_type_is_json("application/json; charset=latin1"));
    assert_false(gateway_content_type_is_json("application/x-www-form-urlencoded"));
    expect_refused(NULL, "{}", 2, 415, "unsupported_media_type");
    expect_refused("text/plain", "{}", 2, 415, "unsupported_media_type");
}

static void test_json_rules(void **state)
{
    /* Eight levels: GATEWAY_JSON_MAX_DEPTH. */
    static const char nested_ok[] = "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}";
    /* Nine levels: one more than GATEWAY_JSON_MAX_DEPTH. */
    static const char nested_deep[] =
        "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}";
    static const char nul_byte[] = "{\"a\":\"x\0y\"}";
    char *deep = malloc(20001);

    (void)state;
    expect_ok("application/json", "{}");
    expect_ok("application/json", "{\"amount\":1,\"metadata\":{\"k\":\"v\"}}");
    expect_ok("application/json", nested_ok);
    expect_refused("application/json", "", 0, 400, "invalid_json");
    expect_refused("application/json", "{", 1, 400, "invalid_json");
    expect_refused("application/json", "[]", 2, 400, "invalid_json");
    expect_refused("application/json", "\"s\"", 3, 400, "invalid_json");
    expect_refused("application/json", "{\"a\":1,\"a\":2}", 13, 400, "invalid_json");
    expect_refused("application/json", "{\"a\":\"\\u0000\"}", 14, 400, "invalid_json");
    expect_refused("application/json", "{\"a\":\"\xff\"}", 8, 400, "invalid_json");
    expect_refused("application/json", nul_byte, sizeof(nul_byte) - 1, 400, "invalid_json");
    expect_refused("application/json", "{} {}", 5, 400, "invalid_json");
    expect_refused("application/json", "{\"a\":1e999999}", 14, 400, "invalid_json");
    expect_refused("application/json", nested_deep, strlen(nested_deep), 400, "invalid_json");
    /* Ten thousand levels: refused without exhausting the stack. */
    for (int i = 0; i < 10000; i++) {
        deep[i] = '[';
        deep[10000 + i] = ']';
    }
    deep[0] = '{';
    deep[20000] = '\0';
    expect_refused("application/json", deep, 20000, 400, "invalid_json");
    free(deep);
}

static void test_error_object(void **state)
{
    char *text;
    gateway_error err;

    (void)state;
    text = gateway_error_render(400, "parameter_missing", "amount is required", "amount");
    assert_string_equal(text, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                              "\"parameter_missing\",\"message\":\"amount is required\","
                              "\"param\":\"amount\"}}");
    free(text);
    text = gateway_error_render(503, "service_unavailable", "busy", NULL);
    assert_non_null(strstr(text, "\"type\":\"api_error\""));
    assert_non_null(strstr(text, "\"param\":null"));
    free(text);
    assert_string_equal(gateway_error_type(401, "invalid_api_key"), "authentication_error");
    assert_string_equal(gateway_error_type(429, "rate_limited"), "rate_limit_error");
    assert_string_equal(gateway_error_type(422, "idempotency_key_reused"), "idempotency_error");
    assert_string_equal(gateway_error_type(409, "idempotency_key_in_use"), "idempotency_error");
    assert_string_equal(gateway_error_type(404, "resource_missing"), "invalid_request_error");
    /* A message quoting input cut inside a UTF-8 sequence still renders, as ASCII. */
    text = gateway_error_render(400, "parameter_unknown", "unknown field \"caf\xc3\"", "caf\xc3");
    assert_non_null(text);
    assert_non_null(strstr(text, "caf?"));
    free(text);
    assert_false(gateway_error_set(&err, 413, "body_too_large", NULL, "over %d", 5));
    assert_int_equal(err.status, 413);
    assert_string_equal(err.param, "");
    assert_string_equal(err.message, "over 5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_json_rules),
        cmocka_unit_test(test_error_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
