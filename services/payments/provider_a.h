/* The adapter for provider A (Stripe-shaped, served by keel-provider-sim in dev and tests). */
#ifndef PAYMENTS_PROVIDER_A_H
#define PAYMENTS_PROVIDER_A_H

#include <stddef.h>

#include "keel/http_client.h"
#include "provider.h"
#include "provider_http.h"

typedef struct payments_provider_a_options {
    const char *base_url; /* e.g. "http://127.0.0.1:18101"; a trailing '/' is ignored */
    const char *api_key;  /* sent as "Authorization: Bearer <api_key>" */
    long timeout_ms;      /* total per call, connect included */
    long connect_timeout_ms;
} payments_provider_a_options;

/* A provider whose name is "provider_a". Copies the options. NULL with err filled when the
 * options are unusable (empty URL or key, non-positive timeouts). */
payments_provider *payments_provider_a_new(const payments_provider_a_options *opts, char *err,
                                           size_t err_len);

/* Pure mappings from one HTTP result to a meaning, exposed for unit tests. They read only r. */
void payments_provider_a_map_charge(const keel_http_result *r, payments_charge_outcome *out);
payments_lookup_status payments_provider_a_map_lookup(const keel_http_result *r,
                                                      payments_charge_outcome *out);
void payments_provider_a_map_refund(const keel_http_result *r, payments_charge_outcome *out);
payments_lookup_status payments_provider_a_map_refund_lookup(const keel_http_result *r,
                                                             payments_charge_outcome *out);

#endif
