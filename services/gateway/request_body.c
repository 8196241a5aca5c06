/* Strict JSON request bodies: media type, UTF-8 JSON, no duplicate keys, bounded depth. */
#include "request_body.h"

#include <string.h>
#include <strings.h>

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* True when the parameter list p (after the media type) names no charset or utf-8. */
static bool charset_ok(const char *p)
{
    while (*p == ';') {
        p = skip_blanks(p + 1);
        const char *name_end = p;
        while (*name_end != '\0' && *name_end != '=' && *name_end != ';') {
            name_end++;
        }
        const char *value = *name_end == '=' ? name_end + 1 : name_end;
        const char *value_end = value;
        while (*value_end != '\0' && *value_end != ';') {
            value_end++;
        }
        const char *trimmed_end = value_end;
        while (trimmed_end > value && (trimmed_end[-1] == ' ' || trimmed_end[-1] == '\t')) {
            trimmed_end--;
        }
        size_t vlen = (size_t)(trimmed_end - value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value++;
            vlen -= 2;
        }
        if ((size_t)(name_end - p) == 7 && strncasecmp(p, "charset", 7) == 0 &&
            !((vlen == 5 && strncasecmp(value, "utf-8", 5) == 0) ||
              (vlen == 4 && strncasecmp(value, "utf8", 4) == 0))) {
            return false;
        }
        p = value_end;
    }
    return *p == '\0';
}

bool gateway_content_type_is_json(const char *content_type)
{
    static const char want[] = "application/json";
    const char *p;

    if (content_type == NULL) {
        return false;
    }
    p = skip_blanks(content_type);
    if (strncasecmp(p, want, sizeof(want) - 1) != 0) {
        return false;
    }
    p = skip_blanks(p + sizeof(want) - 1);
    return charset_ok(p);
}

/* The nesting depth of doc (a scalar is 0, {} is 1). jansson caps parsing at 2048 levels,
 * so this recursion is bounded. Stops descending once limit is passed. */
static int json_depth(const json_t *doc, int limit)
{
    int max = 0;
    if (limit < 0) {
        return 0;
    }
    if (json_is_object(doc)) {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)doc, key, value)
        {
            int d = json_depth(value, limit - 1);
            max = d > max ? d : max;
            if (max > limit) {
                break;
            }
        }
        return max + 1;
    }
    if (json_is_array(doc)) {
        size_t i;
        json_t *value;
        json_array_foreach(doc, i, value)
        {
            int d = json_depth(value, limit - 1);
            max = d > max ? d : max;
            if (max > limit) {
                break;
            }
        }
        return max + 1;
    }
    return 0;
}

json_t *gateway_body_parse(const char *content_type, const char *body, size_t len,
                           gateway_error *err)
{
    json_error_t jerr;
    json_t *doc;

    if (!gateway_content_type_is_json(content_type)) {
        gateway_error_set(err, 415, "unsupported_media_type", NULL,
                          "Content-Type must be application/json (UTF-8), got '%.80s'",
                          content_type != NULL ? content_type : "(none)");
        return NULL;
    }
    if (len == 0) {
        gateway_error_set(err, 400, "invalid_json", NULL,
                          "the request body is empty; send a JSON object");
        return NULL;
    }
    /* JSON_REJECT_DUPLICATES: {"amount":1,"amount":1000000} must not mean whichever a
     * parser happens to keep. jansson also refuses invalid UTF-8 and \u0000. */
    doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        gateway_error_set(err, 400, "invalid_json", NULL,
                          "invalid JSON at line %d, column %d (byte %d): %s", jerr.line,
                          jerr.column, jerr.position, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        gateway_error_set(err, 400, "invalid_json", NULL, "the request body must be a JSON object");
        return NULL;
    }
    if (json_depth(doc, GATEWAY_JSON_MAX_DEPTH) > GATEWAY_JSON_MAX_DEPTH) {
        json_decref(doc);
        gateway_error_set(err, 400, "invalid_json", NULL,
                          "the JSON body is nested deeper than %d levels", GATEWAY_JSON_MAX_DEPTH);
        return NULL;
    }
    return doc;
}
