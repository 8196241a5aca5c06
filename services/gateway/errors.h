/* The gateway's one error shape, as a value pure code can fill (validators, parsers) and as
 * the JSON text an answer or an idempotency record carries. */
#ifndef GATEWAY_ERRORS_H
#define GATEWAY_ERRORS_H

#include <stdbool.h>

/* Why a request was refused: the HTTP status, an API error code, a message for the
 * merchant's developer and the parameter at fault ("" when the request as a whole is). */
typedef struct gateway_error {
    unsigned status;
    const char *code;
    char param[192];
    char message[256];
} gateway_error;

/* Fills e (param may be NULL) and returns false, so a validator can `return
 * gateway_error_set(...)`. */
bool gateway_error_set(gateway_error *e, unsigned status, const char *code, const char *param,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The type that belongs to an error: 401 authentication_error, 429 rate_limit_error, 5xx
 * api_error, a code starting "idempotency_" idempotency_error, else invalid_request_error. */
const char *gateway_error_type(unsigned status, const char *code);

/* {"error":{"type","code","message","param"}} as compact JSON text (malloc'd; NULL when
 * out of memory). param NULL or "" renders as JSON null. */
char *gateway_error_render(unsigned status, const char *code, const char *message,
                           const char *param);

#endif
