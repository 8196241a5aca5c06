/* The chaos driver's client rules: what a careful merchant does with each answer, and how long
 * it waits before trying again with the same Idempotency-Key. */
#ifndef CHAOS_POLICY_H
#define CHAOS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "keel/http_client.h"

typedef enum chaos_verdict {
    CHAOS_ACCEPTED, /* the gateway took the request: record the id and move on */
    CHAOS_RETRY,    /* nothing known or a passing refusal: send it again under the same key */
    CHAOS_REJECTED, /* the request itself is wrong: retrying cannot help */
} chaos_verdict;

/* The first delay ceiling and the cap of the client's full-jitter backoff. */
#define CHAOS_RETRY_BASE_MS 200
#define CHAOS_RETRY_CAP_MS 5000
/* A server's Retry-After is honoured up to this many seconds. */
#define CHAOS_RETRY_AFTER_CAP_S 30

/* Sorts one attempt at a POST. An answer that never arrived (refused, timed out, reset) is
 * retried: the gateway may or may not have acted, and the same key makes that safe. 409
 * (key still in use), 429 and 5xx are retried; 200/201/202 are accepted; any other status is
 * a rejection. */
chaos_verdict chaos_policy_classify(keel_http_failure failure, long status);

/* Milliseconds to wait before attempt `attempt` + 1 (attempt counts from 0): full jitter
 * within [0, min(cap, base * 2^attempt)], but never less than the server's Retry-After (whole
 * seconds, capped at CHAOS_RETRY_AFTER_CAP_S; "" or unparsable means none). rng is a nonzero
 * xorshift state the caller owns. */
int64_t chaos_policy_retry_delay_ms(int attempt, const char *retry_after, uint64_t *rng);

/* Copies the top-level string "id" of a JSON object into out (size out_len) when it starts
 * with prefix (e.g. "pay_"). Returns 0, or -1 when the body is not such an object. */
int chaos_policy_extract_id(const char *body, const char *prefix, char *out, size_t out_len);

/* Copies the top-level string field `name` of a JSON object into out, or returns -1. */
int chaos_policy_extract_string(const char *body, const char *name, char *out, size_t out_len);

#endif
