/* Query parameters of the list endpoints (GET /v1/payments, GET /v1/payments/{id}/refunds)
 * and RFC 3339 / Unix-seconds timestamps: pure parsing, unit-tested and fuzzed. */
#ifndef GATEWAY_LIST_PARAMS_H
#define GATEWAY_LIST_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define GATEWAY_LIST_LIMIT_DEFAULT 10
#define GATEWAY_LIST_LIMIT_MAX 100
#define GATEWAY_LIST_MAX_PARAMS 16 /* more query parameters than this are refused outright */

typedef enum gateway_list_kind {
    GATEWAY_LIST_PAYMENTS, /* limit, starting_after, ending_before, created[gte], created[lt],
                              status; cursors are payment ids (pay_...) */
    GATEWAY_LIST_REFUNDS,  /* limit, starting_after, ending_before; cursors are re_... ids */
} gateway_list_kind;

typedef struct gateway_list_params {
    int limit;
    char starting_after[40]; /* "" when absent */
    char ending_before[40];  /* "" when absent */
    bool has_created_gte;
    int64_t created_gte_ms; /* Unix epoch milliseconds */
    bool has_created_lt;
    int64_t created_lt_ms;
    const char *status; /* a static string, or NULL for every status */
} gateway_list_params;

/* Parses n query parameters (names[i] = values[i], already URL-decoded). Refuses, with
 * status 400 and the parameter as param: an unknown or repeated parameter
 * (parameter_unknown, parameter_duplicated), more than GATEWAY_LIST_MAX_PARAMS
 * (too_many_parameters), a limit that is not an integer 1..100 (parameter_invalid_integer),
 * a cursor that is not an id of the listed kind (parameter_invalid_string), both cursors
 * (parameters_exclusive), a bad timestamp (parameter_invalid_timestamp), an unknown status
 * (parameter_invalid_string). Returns true and fills out, or false and fills err. */
bool gateway_list_params_parse(gateway_list_kind kind, const char *const *names,
                               const char *const *values, size_t n, gateway_list_params *out,
                               gateway_error *err);

/* Parses a timestamp given either as Unix seconds (1 to 12 digits, at most 253402300799) or
 * as an RFC 3339 date-time with any offset ("2025-03-30T01:30:00.5+02:00", "...Z"), read by
 * keel_clock_parse_rfc3339_ceil (keel/clock.h: years 1970..9999, 't'/'z' accepted, second
 * 60 only as a leap second at the end of a UTC month). A blank in place of the offset's
 * sign is an unencoded '+' and read as one. Fractions finer than a millisecond round up, so
 * comparisons against millisecond timestamps stay exact. Returns true with *epoch_ms set. */
bool gateway_timestamp_parse(const char *s, int64_t *epoch_ms);

/* True when s is prefix followed by 32 lowercase hex digits (keel's id format). */
bool gateway_id_valid(const char *s, const char *prefix);

#endif
