/* Parsing of the routing and local-risk settings: "key=value;key=value" lists keyed by
 * currency, with a required default. */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/money.h"

/* The longest setting we parse; longer ones are refused rather than cut. */
#define POLICY_MAX_TEXT 4096

/* Trims spaces at both ends of s in place and returns it. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

/* Checks and lowercases an entry's key into out: "default" or a currency keel knows. */
static int policy_key(const char *key, const char *what, char out[8], char *err, size_t err_len)
{
    if (strcasecmp(key, PAYMENTS_POLICY_DEFAULT) == 0) {
        snprintf(out, 8, "%s", PAYMENTS_POLICY_DEFAULT);
        return 0;
    }
    const keel_currency *cur = keel_currency_find(key);
    if (cur == NULL) {
        snprintf(err, err_len,
                 "%s: \"%s\" is neither \"default\" nor a currency keel supports (e.g. usd, ngn)",
                 what, key);
        return -1;
    }
    snprintf(out, 8, "%s", cur->code);
    return 0;
}

/* Calls entry(key, value) for each "key=value" between ';' of text. Returns 0, or -1 with
 * err filled by this function or by entry. */
typedef int (*policy_entry_fn)(const char *key, char *value, void *ctx, char *err, size_t err_len);

static int policy_each(const char *text, const char *what, policy_entry_fn entry, void *ctx,
                       char *err, size_t err_len)
{
    if (text == NULL || strlen(text) >= POLICY_MAX_TEXT) {
        snprintf(err, err_len, "%s is missing or longer than %d characters", what,
                 POLICY_MAX_TEXT - 1);
        return -1;
    }
    char buf[POLICY_MAX_TEXT];
    snprintf(buf, sizeof(buf), "%s", text);
    char *save = NULL;
    for (char *item = strtok_r(buf, ";", &save); item != NULL; item = strtok_r(NULL, ";", &save)) {
        item = trim(item);
        if (item[0] == '\0') {
            continue; /* a trailing ';' */
        }
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            snprintf(err, err_len, "%s: \"%s\" is not key=value", what, item);
            return -1;
        }
        *eq = '\0';
        if (entry(trim(item), trim(eq + 1), ctx, err, err_len) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- routes ---------------------------------------------------------------------------- */

typedef struct routes_ctx {
    payments_routes *out;
    const char *const *names;
    int n_names;
} routes_ctx;

static int route_entry(const char *key, char *value, void *arg, char *err, size_t err_len)
{
    routes_ctx *c = arg;
    payments_routes *rs = c->out;
    if (rs->n == PAYMENTS_MAX_POLICY_ENTRIES) {
        snprintf(err, err_len, "KEEL_PAYMENTS_ROUTES has more than %d entries",
                 PAYMENTS_MAX_POLICY_ENTRIES);
        return -1;
    }
    payments_route *r = &rs->routes[rs->n];
    memset(r, 0, sizeof(*r));
    if (policy_key(key, "KEEL_PAYMENTS_ROUTES", r->currency, err, err_len) != 0) {
        return -1;
    }
    for (int i = 0; i < rs->n; i++) {
        if (strcmp(rs->routes[i].currency, r->currency) == 0) {
            snprintf(err, err_len, "KEEL_PAYMENTS_ROUTES names %s twice", r->currency);
            return -1;
        }
    }
    char *save = NULL;
    for (char *name = strtok_r(value, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        name = trim(name);
        int idx = -1;
        for (int i = 0; i < c->n_names; i++) {
            if (strcmp(c->names[i], name) == 0) {
                idx = i;
            }
        }
        if (idx < 0) {
            snprintf(err, err_len,
                     "KEEL_PAYMENTS_ROUTES: %s routes to \"%s\", which is not a "
                     "configured provider (provider_a or provider_b)",
                     r->currency, name);
            return -1;
        }
        for (int i = 0; i < r->n; i++) {
            if (r->providers[i] == idx) {
                snprintf(err, err_len, "KEEL_PAYMENTS_ROUTES: %s names %s twice", r->currency,
                         name);
                return -1;
            }
        }
        if (r->n == PAYMENTS_MAX_PROVIDERS) {
            snprintf(err, err_len, "KEEL_PAYMENTS_ROUTES: %s names more than %d providers",
                     r->currency, PAYMENTS_MAX_PROVIDERS);
            return -1;
        }
        r->providers[r->n++] = idx;
    }
    if (r->n == 0) {
        snprintf(err, err_len, "KEEL_PAYMENTS_ROUTES: %s names no provider", r->currency);
        return -1;
    }
    rs->n++;
    return 0;
}

int payments_routes_parse(const char *text, const char *const *names, int n_names,
                          payments_routes *out, char *err, size_t err_len)
{
    routes_ctx c = {.out = out, .names = names, .n_names = n_names};
    memset(out, 0, sizeof(*out));
    if (policy_each(text, "KEEL_PAYMENTS_ROUTES", route_entry, &c, err, err_len) != 0) {
        return -1;
    }
    for (int i = 0; i < out->n; i++) {
        if (strcmp(out->routes[i].currency, PAYMENTS_POLICY_DEFAULT) == 0) {
            return 0;
        }
    }
    snprintf(err, err_len,
             "KEEL_PAYMENTS_ROUTES needs a default route, e.g. default=provider_a,provider_b");
    return -1;
}

const payments_route *payments_routes_for(const payments_routes *r, const char *currency)
{
    const payments_route *def = NULL;
    for (int i = 0; i < r->n; i++) {
        if (currency != NULL && strcasecmp(r->routes[i].currency, currency) == 0) {
            return &r->routes[i];
        }
        if (strcmp(r->routes[i].currency, PAYMENTS_POLICY_DEFAULT) == 0) {
            def = &r->routes[i];
        }
    }
    return def;
}

/* ---- local risk limits ----------------------------------------------------------------- */

static int limit_entry(const char *key, char *value, void *arg, char *err, size_t err_len)
{
    payments_risk_limits *ls = arg;
    if (ls->n == PAYMENTS_MAX_POLICY_ENTRIES) {
        snprintf(err, err_len, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS has more than %d entries",
                 PAYMENTS_MAX_POLICY_ENTRIES);
        return -1;
    }
    payments_risk_limit *l = &ls->limits[ls->n];
    if (policy_key(key, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS", l->currency, err, err_len) != 0) {
        return -1;
    }
    for (int i = 0; i < ls->n; i++) {
        if (strcmp(ls->limits[i].currency, l->currency) == 0) {
            snprintf(err, err_len, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS names %s twice", l->currency);
            return -1;
        }
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (value[0] == '\0' || *end != '\0' || errno != 0 || v <= 0) {
        snprintf(err, err_len,
                 "KEEL_PAYMENTS_LOCAL_RISK_LIMITS: %s=\"%s\" must be a positive amount in minor "
                 "units",
                 l->currency, value);
        return -1;
    }
    l->max_amount = (int64_t)v;
    ls->n++;
    return 0;
}

int payments_risk_limits_parse(const char *text, payments_risk_limits *out, char *err,
                               size_t err_len)
{
    memset(out, 0, sizeof(*out));
    if (policy_each(text, "KEEL_PAYMENTS_LOCAL_RISK_LIMITS", limit_entry, out, err, err_len) != 0) {
        return -1;
    }
    for (int i = 0; i < out->n; i++) {
        if (strcmp(out->limits[i].currency, PAYMENTS_POLICY_DEFAULT) == 0) {
            return 0;
        }
    }
    snprintf(err, err_len,
             "KEEL_PAYMENTS_LOCAL_RISK_LIMITS needs a default limit, e.g. default=1000000");
    return -1;
}

int64_t payments_risk_limit_for(const payments_risk_limits *l, const char *currency)
{
    int64_t def = 0;
    for (int i = 0; i < l->n; i++) {
        if (currency != NULL && strcasecmp(l->limits[i].currency, currency) == 0) {
            return l->limits[i].max_amount;
        }
        if (strcmp(l->limits[i].currency, PAYMENTS_POLICY_DEFAULT) == 0) {
            def = l->limits[i].max_amount;
        }
    }
    return def;
}
