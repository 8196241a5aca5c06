/* The configurable policies of keel-payments, parsed from their one-line settings: which
 * providers to try per currency (KEEL_PAYMENTS_ROUTES) and the local risk rules used when the
 * risk API cannot answer (KEEL_PAYMENTS_LOCAL_RISK_LIMITS). Pure. */
#ifndef PAYMENTS_POLICY_H
#define PAYMENTS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAYMENTS_MAX_PROVIDERS 4
#define PAYMENTS_MAX_POLICY_ENTRIES 64
/* The key of the entry that applies to every currency without its own. */
#define PAYMENTS_POLICY_DEFAULT "default"

/* Providers in the order they are tried: the primary first, then the fallbacks. Each entry
 * is an index into the names the routes were parsed against. */
typedef struct payments_route {
    char currency[8]; /* a lowercase ISO 4217 code, or "default" */
    int n;
    int providers[PAYMENTS_MAX_PROVIDERS];
} payments_route;

typedef struct payments_routes {
    int n;
    payments_route routes[PAYMENTS_MAX_POLICY_ENTRIES];
} payments_routes;

/* Parses "default=provider_a,provider_b;ngn=provider_b,provider_a" (spaces around items are
 * ignored). Every name must be one of names[0..n_names); a route names a provider at most
 * once; each currency (a code keel knows) or "default" appears once; "default" is required.
 * Returns 0, or -1 with a message naming the bad part in err. */
int payments_routes_parse(const char *text, const char *const *names, int n_names,
                          payments_routes *out, char *err, size_t err_len);

/* The route for this currency (case-insensitive), else the default one. Never NULL on
 * routes that parsed. */
const payments_route *payments_routes_for(const payments_routes *r, const char *currency);

/* The largest amount, per currency, that local rules approve without the risk API. */
typedef struct payments_risk_limit {
    char currency[8]; /* a lowercase ISO 4217 code, or "default" */
    int64_t max_amount;
} payments_risk_limit;

typedef struct payments_risk_limits {
    int n;
    payments_risk_limit limits[PAYMENTS_MAX_POLICY_ENTRIES];
} payments_risk_limits;

/* Parses "usd=500000;default=1000000" (minor units, > 0). "default" is required. Returns 0,
 * or -1 with a message in err. */
int payments_risk_limits_parse(const char *text, payments_risk_limits *out, char *err,
                               size_t err_len);

/* The limit for this currency (case-insensitive), else the default. */
int64_t payments_risk_limit_for(const payments_risk_limits *l, const char *currency);

#endif
