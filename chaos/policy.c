/* The chaos driver's client rules: answer classification, retry delays, id extraction. */
#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keel/retry.h"

chaos_verdict chaos_policy_classify(keel_http_failure failure, long status)
{
    switch (failure) {
    case KEEL_HTTP_OK:
        break;
    case KEEL_HTTP_NOT_SENT:
    case KEEL_HTTP_TIMEOUT_AFTER_SEND:
    case KEEL_HTTP_TRANSPORT_ERROR:
        return CHAOS_RETRY;
    case KEEL_HTTP_TOO_LARGE:
        return CHAOS_REJECTED;
    }
    if (status == 200 || status == 201 || status == 202) {
        return CHAOS_ACCEPTED;
    }
    if (status == 409 || status == 429 || (status >= 500 && status <= 599)) {
        return CHAOS_RETRY;
    }
    return CHAOS_REJECTED;
}

/* Whole seconds of a Retry-After header, capped; 0 when absent or not a number (an HTTP date
 * is not worth honouring here: the backoff covers it). */
static int64_t chaos_policy_retry_after_ms(const char *retry_after)
{
    if (retry_after == NULL || retry_after[0] == '\0') {
        return 0;
    }
    errno = 0;
    char *end = NULL;
    long s = strtol(retry_after, &end, 10);
    if (errno != 0 || end == retry_after || s <= 0) {
        return 0;
    }
    if (s > CHAOS_RETRY_AFTER_CAP_S) {
        s = CHAOS_RETRY_AFTER_CAP_S;
    }
    return (int64_t)s * 1000;
}

int64_t chaos_policy_retry_delay_ms(int attempt, const char *retry_after, uint64_t *rng)
{
    const keel_backoff b = {
        .base_ms = CHAOS_RETRY_BASE_MS, .cap_ms = CHAOS_RETRY_CAP_MS, .max_attempts = 0};
    int64_t delay = keel_backoff_delay_ms(&b, attempt < 0 ? 0 : attempt, rng);
    int64_t floor_ms = chaos_policy_retry_after_ms(retry_after);
    return delay > floor_ms ? delay : floor_ms;
}

int chaos_policy_extract_string(const char *body, const char *name, char *out, size_t out_len)
{
    int rc = -1;
    if (body == NULL || out_len == 0) {
        return -1;
    }
    json_t *doc = json_loads(body, 0, NULL);
    const char *v = json_string_value(json_object_get(doc, name));
    if (v != NULL && strlen(v) < out_len) {
        memcpy(out, v, strlen(v) + 1);
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

int chaos_policy_extract_id(const char *body, const char *prefix, char *out, size_t out_len)
{
    if (chaos_policy_extract_string(body, "id", out, out_len) != 0) {
        return -1;
    }
    if (strncmp(out, prefix, strlen(prefix)) != 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
