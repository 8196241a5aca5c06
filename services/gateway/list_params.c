/* List query parameters and timestamps (see list_params.h for the rules). */
#include "list_params.h"

#include <stdio.h>
#include <string.h>

#include "keel/clock.h"

/* 9999-12-31T23:59:59Z: the largest Unix-seconds value accepted. */
#define UNIX_SECONDS_MAX INT64_C(253402300799)

bool gateway_id_valid(const char *s, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (strncmp(s, prefix, plen) != 0 || strlen(s) != plen + 32) {
        return false;
    }
    for (const char *p = s + plen; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool unix_seconds(const char *s, int64_t *epoch_ms)
{
    int64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 12) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > UNIX_SECONDS_MAX) {
        return false;
    }
    *epoch_ms = v * 1000;
    return true;
}

bool gateway_timestamp_parse(const char *s, int64_t *epoch_ms)
{
    char mended[48];
    size_t n;

    if (s == NULL) {
        return false;
    }
    if (unix_seconds(s, epoch_ms)) {
        return true;
    }
    /* A '+' sent unencoded in a query string arrives as a blank; only the offset's sign
     * ("...20 02:00") is read back as '+', nothing else. No RFC 3339 time is longer than
     * 35 characters, so a longer value is refused by the parser as it is. */
    n = strlen(s);
    if (n >= 6 && n < sizeof(mended) && s[n - 6] == ' ') {
        memcpy(mended, s, n + 1);
        mended[n - 6] = '+';
        s = mended;
    }
    /* Rounding up keeps the bounds exact against created_at, stored in whole milliseconds. */
    return keel_clock_parse_rfc3339_ceil(s, epoch_ms);
}

typedef enum list_field {
    FIELD_LIMIT,
    FIELD_STARTING_AFTER,
    FIELD_ENDING_BEFORE,
    FIELD_CREATED_GTE,
    FIELD_CREATED_LT,
    FIELD_STATUS,
    FIELD_COUNT,
} list_field;

static const char *const field_names[FIELD_COUNT] = {
    "limit", "starting_after", "ending_before", "created[gte]", "created[lt]", "status",
};

static bool field_allowed(gateway_list_kind kind, list_field f)
{
    return kind == GATEWAY_LIST_PAYMENTS || f <= FIELD_ENDING_BEFORE;
}

static bool parse_limit(const char *v, int *out)
{
    int n = 0;
    size_t len = strlen(v);
    if (len == 0 || len > 3) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        n = n * 10 + (v[i] - '0');
    }
    if (n < 1 || n > GATEWAY_LIST_LIMIT_MAX) {
        return false;
    }
    *out = n;
    return true;
}

static const char *parse_status(const char *v)
{
    static const char *const statuses[] = {"pending", "succeeded", "failed", "requires_review"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(v, statuses[i]) == 0) {
            return statuses[i];
        }
    }
    return NULL;
}

static bool parse_field(gateway_list_kind kind, list_field f, const char *v,
                        gateway_list_params *out, gateway_error *err)
{
    const char *name = field_names[f];
    const char *id_prefix = kind == GATEWAY_LIST_PAYMENTS ? "pay_" : "re_";

    switch (f) {
    case FIELD_LIMIT:
        if (!parse_limit(v, &out->limit)) {
            return gateway_error_set(err, 400, "parameter_invalid_integer", name,
                                     "limit must be an integer from 1 to %d",
                                     GATEWAY_LIST_LIMIT_MAX);
        }
        return true;
    case FIELD_STARTING_AFTER:
    case FIELD_ENDING_BEFORE:
        if (!gateway_id_valid(v, id_prefix)) {
            return gateway_error_set(err, 400, "parameter_invalid_string", name,
                                     "%s must be the id of an object in the list (%s followed "
                                     "by 32 hex digits)",
                                     name, id_prefix);
        }
        snprintf(f == FIELD_STARTING_AFTER ? out->starting_after : out->ending_before,
                 sizeof(out->starting_after), "%s", v);
        return true;
    case FIELD_CREATED_GTE:
    case FIELD_CREATED_LT: {
        int64_t ms;
        if (!gateway_timestamp_parse(v, &ms)) {
            return gateway_error_set(err, 400, "parameter_invalid_timestamp", name,
                                     "%s must be Unix seconds or an RFC 3339 date-time with an "
                                     "offset, e.g. 2025-01-31T09:00:00Z or "
                                     "2025-01-31T10:00:00%%2B01:00",
                                     name);
        }
        if (f == FIELD_CREATED_GTE) {
            out->has_created_gte = true;
            out->created_gte_ms = ms;
        } else {
            out->has_created_lt = true;
            out->created_lt_ms = ms;
        }
        return true;
    }
    case FIELD_STATUS:
        out->status = parse_status(v);
        if (out->status == NULL) {
            return gateway_error_set(err, 400, "parameter_invalid_string", name,
                                     "status must be one of pending, succeeded, failed, "
                                     "requires_review");
        }
        return true;
    case FIELD_COUNT:
        break;
    }
    return gateway_error_set(err, 400, "parameter_unknown", name, "unknown parameter");
}

bool gateway_list_params_parse(gateway_list_kind kind, const char *const *names,
                               const char *const *values, size_t n, gateway_list_params *out,
                               gateway_error *err)
{
    bool seen[FIELD_COUNT] = {false};

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    out->limit = GATEWAY_LIST_LIMIT_DEFAULT;
    if (n > GATEWAY_LIST_MAX_PARAMS) {
        return gateway_error_set(err, 400, "too_many_parameters", NULL,
                                 "at most %d query parameters are allowed, got %zu",
                                 GATEWAY_LIST_MAX_PARAMS, n);
    }
    for (size_t i = 0; i < n; i++) {
        list_field f = FIELD_COUNT;
        for (int k = 0; k < FIELD_COUNT; k++) {
            if (strcmp(names[i], field_names[k]) == 0 && field_allowed(kind, (list_field)k)) {
                f = (list_field)k;
                break;
            }
        }
        if (f == FIELD_COUNT) {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", names[i]);
            return gateway_error_set(
                err, 400, "parameter_unknown", names[i],
                "unknown query parameter \"%s\"; allowed: %s", shown,
                kind == GATEWAY_LIST_PAYMENTS
                    ? "limit, starting_after, ending_before, created[gte], created[lt], status"
                    : "limit, starting_after, ending_before");
        }
        if (seen[f]) {
            return gateway_error_set(err, 400, "parameter_duplicated", names[i],
                                     "%s is given more than once", field_names[f]);
        }
        seen[f] = true;
        if (values[i] == NULL || !parse_field(kind, f, values[i], out, err)) {
            if (values[i] == NULL) {
                return gateway_error_set(err, 400, "parameter_invalid_string", field_names[f],
                                         "%s needs a value", field_names[f]);
            }
            return false;
        }
    }
    if (out->starting_after[0] != '\0' && out->ending_before[0] != '\0') {
        return gateway_error_set(err, 400, "parameters_exclusive", "ending_before",
                                 "starting_after and ending_before cannot be used together");
    }
    return true;
}
