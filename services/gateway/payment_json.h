/* The public JSON shape of a payment, shared by POST (and its replays) and GET. */
#ifndef GATEWAY_PAYMENT_JSON_H
#define GATEWAY_PAYMENT_JSON_H

#include <jansson.h>
#include <stdint.h>

/* A payment as the API shows it. Strings are borrowed; NULL renders as JSON null
 * (description, payment_method, failure_code, failure_message, provider). */
typedef struct gateway_payment {
    const char *id;
    int64_t amount;
    const char *currency;
    const char *status;
    const char *description;
    json_t *metadata; /* borrowed; NULL renders as {} */
    const char *payment_method;
    const char *failure_code;
    const char *failure_message;
    const char *provider;
    int64_t created_at_ms; /* Unix epoch milliseconds, rendered RFC 3339 UTC */
    int64_t updated_at_ms;
} gateway_payment;

/* {"id","object":"payment","amount","currency","status","description","metadata",
 *  "payment_method","failure_code","failure_message","provider","created_at","updated_at"}
 * in that order. Returns a new reference, or NULL when out of memory. */
json_t *gateway_payment_to_json(const gateway_payment *p);

/* The compact text of gateway_payment_to_json (malloc'd; NULL when out of memory). This is
 * the exact body an idempotent replay repeats. */
char *gateway_payment_render(const gateway_payment *p);

#endif
