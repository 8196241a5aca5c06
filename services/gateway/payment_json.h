/* The public JSON shapes of a payment and a refund, shared by POST (and its replays), GET and
 * the lists. */
#ifndef GATEWAY_PAYMENT_JSON_H
#define GATEWAY_PAYMENT_JSON_H

#include <jansson.h>
#include <stdint.h>

/* A payment as the API shows it. Strings are borrowed; NULL renders as JSON null
 * (description, payment_method, failure_code, failure_message, provider). */
typedef struct gateway_payment {
    const char *id;
    int64_t amount;
    int64_t amount_refunded; /* sum of its succeeded refunds */
    const char *currency;
    const char *status;
    const char *description;
    json_t *metadata; /* borrowed; NULL renders as {} */
    const char *payment_method;
    const char *failure_code;
    const char *failure_message;
    const char *provider;
    json_t *refunds;       /* borrowed array of refund objects; NULL renders as [] */
    int64_t created_at_ms; /* Unix epoch milliseconds, rendered RFC 3339 UTC */
    int64_t updated_at_ms;
} gateway_payment;

/* {"id","object":"payment","amount","amount_refunded","currency","status","description",
 *  "metadata","payment_method","failure_code","failure_message","provider","refunds",
 *  "created_at","updated_at"} in that order. Returns a new reference, or NULL when out of
 * memory. */
json_t *gateway_payment_to_json(const gateway_payment *p);

/* The compact text of gateway_payment_to_json (malloc'd; NULL when out of memory). This is
 * the exact body an idempotent replay repeats. */
char *gateway_payment_render(const gateway_payment *p);

/* A refund as the API shows it; strings borrowed, NULL renders as JSON null (reason,
 * failure_code, failure_message). */
typedef struct gateway_refund {
    const char *id;
    const char *payment_id;
    int64_t amount;
    const char *currency;
    const char *status; /* pending, succeeded, failed */
    const char *reason;
    const char *failure_code;
    const char *failure_message;
    int64_t created_at_ms;
    int64_t updated_at_ms;
} gateway_refund;

/* {"id","object":"refund","payment_id","amount","currency","status","reason",
 *  "failure_code","failure_message","created_at","updated_at"}; new reference or NULL. */
json_t *gateway_refund_to_json(const gateway_refund *r);

/* {"object":"list","url":url,"has_more":has_more,"data":data}; takes the data reference
 * (also on failure). Returns the compact text (malloc'd) or NULL when out of memory. */
char *gateway_list_render(const char *url, json_t *data, int has_more);

#endif
