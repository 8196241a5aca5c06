/* Provider A: a sandbox card processor in the shape of Stripe's charges API (JSON bodies),
 * with idempotency keys, test payment methods and the fault injection of sim_state. */
#ifndef PROVIDER_A_H
#define PROVIDER_A_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"
#include "keel/metrics.h"
#include "sim_state.h"

#define PROVIDER_A_NAME "provider_a"
/* The largest amount keel itself accepts in any currency (keel/money.h), so the sandbox never
 * refuses a payment the gateway took. */
#define PROVIDER_A_MAX_AMOUNT INT64_C(99999999999)
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
 * every other source (pm_card_visa, any unknown pm_ token) succeeds. */
provider_a_outcome provider_a_outcome_for_source(const char *source);

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

/* True when no key is configured, or the header is exactly "Bearer <key>" (compared in
 * constant time). */
bool provider_a_authorized(const char *api_key, const char *authorization);

/* The sim_charge_render_fn of provider A: the charge object, and the answer (200 with the
 * charge, or 402 with a card_error whose code is the charge's failure_code, so the answer
 * and a later retrieval name the same reason). */
int provider_a_render(const sim_charge *charge, json_t **object, unsigned *status, char **body,
                      void *ctx);

/* --- the HTTP API ------------------------------------------------------------------ */

typedef struct provider_a provider_a;

typedef struct provider_a_options {
    sim_provider *provider; /* the state's "provider_a" */
    const char *api_key;    /* "" = no authentication; copied */
    keel_metrics *metrics;  /* where sim_charges_total and sim_requests_total go */
} provider_a_options;

provider_a *provider_a_new(const provider_a_options *opts);
void provider_a_free(provider_a *pa);

/* Adds POST /v1/charges, GET /v1/charges and GET /v1/charges/:id to srv; ctx is the
 * provider_a. Shaped as a sim_listener_routes_fn so a reopened listener gets them again. */
void provider_a_routes(keel_http_server *srv, void *ctx);

#endif
