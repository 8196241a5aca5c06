/* The adapter for provider B (Paystack-shaped, served by keel-provider-sim in dev and tests). */
#ifndef PAYMENTS_PROVIDER_B_H
#define PAYMENTS_PROVIDER_B_H

#include <stddef.h>

#include "keel/http_client.h"
#include "provider.h"
#include "provider_http.h"

/* keel's API takes no customer e-mail, which provider B requires on every charge: each charge
 * names "customer+<payment id>@" this domain, so a repeated charge sends the same e-mail. */
#define PAYMENTS_PROVIDER_B_EMAIL_DOMAIN "customers.keel.invalid"

typedef struct payments_provider_b_options {
    const char *base_url; /* e.g. "http://127.0.0.1:18102"; a trailing '/' is ignored */
    const char *api_key;  /* sent as "Authorization: Bearer <api_key>" (Paystack's secret key) */
    long timeout_ms;      /* total per call, connect included */
    long connect_timeout_ms;
} payments_provider_b_options;

/* A provider whose name is "provider_b". Copies the options. NULL with err filled when the
 * options are unusable. */
payments_provider *payments_provider_b_new(const payments_provider_b_options *opts, char *err,
                                           size_t err_len);

/* Pure mappings from one HTTP result to a meaning, exposed for unit tests. They read only r
 * (and, for the refund lookup, the refund id to look for). */
void payments_provider_b_map_charge(const keel_http_result *r, payments_charge_outcome *out);
payments_lookup_status payments_provider_b_map_lookup(const keel_http_result *r,
                                                      payments_charge_outcome *out);
void payments_provider_b_map_refund(const keel_http_result *r, payments_charge_outcome *out);
payments_lookup_status payments_provider_b_map_refund_lookup(const keel_http_result *r,
                                                             const char *refund_id,
                                                             payments_charge_outcome *out);

#endif
