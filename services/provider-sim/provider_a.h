/* Provider A: a sandbox card processor in the shape of Stripe's charges and refunds APIs
 * (JSON bodies), with idempotency keys, test payment methods and the fault injection of
 * sim_state. */
#ifndef PROVIDER_A_H
#define PROVIDER_A_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"
#include "keel/metrics.h"
#include "sim_api.h"
#include "sim_state.h"

#define PROVIDER_A_NAME "provider_a"
#define PROVIDER_A_MAX_AMOUNT SIM_API_MAX_AMOUNT
#define PROVIDER_A_MAX_KEY_LEN 255
#define PROVIDER_A_MAX_DESCRIPTION_LEN 1000
#define PROVIDER_A_MAX_METADATA_KEYS 50
#define PROVIDER_A_MAX_METADATA_KEY_LEN 40
#define PROVIDER_A_MAX_METADATA_VALUE_LEN 500
#define PROVIDER_A_LIST_DEFAULT_LIMIT 10
#define PROVIDER_A_LIST_MAX_LIMIT 100

/* --- pure logic (unit tested) -------------------------------------------------------- */

/* What a test payment method does. */
typedef struct provider_a_outcome {
    sim_charge_status status;
    const char *failure_code;    /* charge.failure_code: NULL, "card_declined" or
                                    "insufficient_funds" */
    const char *decline_code;    /* error.decline_code on the 402 (Stripe's finer reason):
                                    "generic_decline" or "insufficient_funds" */
    const char *failure_message; /* human text, NULL when succeeded */
} provider_a_outcome;

/* pm_card_declined → card_declined, pm_card_insufficient_funds → insufficient_funds,
 * every other source (pm_card_visa, any unknown pm_ token) succeeds unless decline (the
 * decline_rate fault fired) makes it card_declined. */
provider_a_outcome provider_a_outcome_for_source(const char *source, bool decline);

/* The parameters of POST /v1/charges. Pointers borrow from the parsed body. */
typedef struct provider_a_params {
    int64_t amount;
    char currency[4]; /* lowercased ISO 4217 code */
    const char *source;
    const char *description; /* NULL when absent or null */
    const json_t *metadata;  /* NULL when absent or null */
} provider_a_params;

/* A rejected request: the Stripe-style error code, the parameter at fault, and a message. */
typedef struct provider_a_error {
    const char *code;  /* e.g. "parameter_missing", "amount_too_small" */
    const char *param; /* e.g. "amount"; may point into the body */
    char message[256];
} provider_a_error;

/* Validates a charge body: amount (integer 1..PROVIDER_A_MAX_AMOUNT), currency (three
 * letters), source (a pm_ token), description (string of at most 1000 bytes, or null),
 * metadata (object of at most 50 keys of 1..40 characters, string values of at most 500
 * characters, or null); any other field is rejected. Returns 0, or -1 and fills err. */
int provider_a_parse_charge(const json_t *body, provider_a_params *out, provider_a_error *err);

/* An Idempotency-Key is 1..255 printable ASCII characters. */
bool provider_a_key_valid(const char *key);

/* The canonical text of the parameters (sorted keys, compact; absent and null/empty
 * description and metadata are the same). malloc'd, NULL on OOM. */
char *provider_a_fingerprint(const provider_a_params *p);

/* The sim_charge_render_fn of provider A: the charge object, and the answer (200 with the
 * charge, or 402 with a card_error whose code is the charge's failure_code, so the answer
 * and a later retrieval name the same reason). */
int provider_a_render(const sim_charge *charge, json_t **object, unsigned *status, char **body,
                      void *ctx);

/* The parameters of POST /v1/refunds. Pointers borrow from the parsed body. */
typedef struct provider_a_refund_params {
    const char *charge;
    int64_t amount;         /* 0 when absent: everything not yet refunded */
    const char *reason;     /* NULL, "duplicate", "fraudulent" or "requested_by_customer" */
    const json_t *metadata; /* NULL when absent, null or empty */
} provider_a_refund_params;

/* Validates a refund body: charge (a string), amount (integer 1..PROVIDER_A_MAX_AMOUNT, or
 * absent), reason (one of the three, or null), metadata (as for charges); any other field is
 * rejected. Returns 0, or -1 and fills err. */
int provider_a_parse_refund(const json_t *body, provider_a_refund_params *out,
                            provider_a_error *err);

/* The canonical text of the refund's parameters; malloc'd, NULL on OOM. */
char *provider_a_refund_fingerprint(const provider_a_refund_params *p);

/* The sim_refund_render_fn of provider A: the refund object, answered with 200. attrs holds
 * "reason" and "metadata". */
int provider_a_refund_render(const sim_refund *refund, json_t **object, unsigned *status,
                             char **body, void *ctx);

/* --- the HTTP API ------------------------------------------------------------------ */

/* Adds POST/GET /v1/charges, GET /v1/charges/:id, POST/GET /v1/refunds and
 * GET /v1/refunds/:id to srv; ctx is a sim_api whose errors are keel_http_respond_error. Shaped as
 * a sim_listener_routes_fn so a reopened listener gets them again. */
void provider_a_routes(keel_http_server *srv, void *ctx);

/* The refund routes (provider_a_refunds.c), added by provider_a_routes. */
void provider_a_refund_routes(keel_http_server *srv, sim_api *api);

/* The start of a POST that records something: the fault prologue, the Idempotency-Key
 * header (required) and the JSON body. Returns the body (the caller owns it) with *key set,
 * or NULL after answering. */
json_t *provider_a_begin(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                         sim_fault_decision *d, const char **key);
/* Answers a 4xx invalid_request_error and counts it. */
void provider_a_invalid(sim_api *api, keel_http_response *resp, unsigned status, const char *code,
                        const char *message, const char *param);
/* GET /v1/<kind>s/:id: the resource by_id finds (200), or 404 resource_missing. */
void provider_a_retrieve_by_id(const keel_http_request *req, keel_http_response *resp, sim_api *api,
                               const char *kind, json_t *(*by_id)(sim_provider *p, const char *id));
/* An array of item (0 entries when item is NULL); takes item. NULL on OOM. */
json_t *provider_a_list_of(json_t *item);
/* Answers 200 {"object":"list","data":data,"has_more","url"} (takes data; NULL = OOM). */
void provider_a_respond_list(sim_api *api, keel_http_response *resp, json_t *data, bool has_more,
                             const char *url);
/* Reads the optional "limit" query argument (1..100, default 10); answers 400 and returns
 * false when it is malformed. */
bool provider_a_list_limit(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                           size_t *limit);
/* An amount: an integer 1..PROVIDER_A_MAX_AMOUNT. Returns 0, or -1 and fills err. */
int provider_a_parse_amount(const json_t *amount, int64_t *out, provider_a_error *err);
/* Checks that body is an object whose every field is in known (NULL-terminated). Returns 0,
 * or -1 with parameter_invalid / parameter_unknown in err. */
int provider_a_check_params(const json_t *body, const char *const *known, provider_a_error *err);
/* Validates a metadata object (see provider_a_parse_charge). */
int provider_a_parse_metadata(const json_t *md, provider_a_error *err);
/* Fills err and returns -1 (printf-style message). */
int provider_a_reject(provider_a_error *err, const char *code, const char *param, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

#endif
