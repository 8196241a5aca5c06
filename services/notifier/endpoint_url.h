/* A merchant's webhook URL: parsed and checked before it is stored, and again before every
 * delivery, together with the address it resolves to (see keel/ssrf.h). */
#ifndef NOTIFIER_ENDPOINT_URL_H
#define NOTIFIER_ENDPOINT_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/error.h"
#include "keel/ssrf.h"

#define NOTIFIER_URL_MAX 2048

typedef struct notifier_url {
    bool https;
    char host[256]; /* a DNS name or an address literal without brackets */
    int port;
} notifier_url;

/* Checks url as a merchant gave it: absolute http(s) (http only when allow_http), a host,
 * no user name or password (they would end up in logs), no fragment, at most
 * NOTIFIER_URL_MAX bytes. False with a message for the merchant in err. */
bool notifier_url_parse(const char *url, bool allow_http, notifier_url *out, char *err,
                        size_t err_len);

/* Parses url (as notifier_url_parse) and resolves its host through the SSRF guard: on KEEL_OK
 * *addr is the checked address to connect to. Errors as keel_ssrf_resolve, plus KEEL_ERR for
 * an unusable URL; err says why in words a merchant can act on. */
keel_result notifier_url_check(const char *url, bool allow_http, const keel_ssrf_allowlist *allow,
                               int64_t timeout_ms, keel_ip *addr, char *err, size_t err_len);

#endif
