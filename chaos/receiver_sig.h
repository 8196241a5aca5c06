/* Webhook signature checking for the chaos receiver, written apart from keel-notifier's
 * signer so that a bug in one is not mirrored by the other. */
#ifndef CHAOS_RECEIVER_SIG_H
#define CHAOS_RECEIVER_SIG_H

#include <stdbool.h>
#include <stddef.h>

/* True when header ("t=<unix>,v1=<hex>[,v1=<hex>...]") carries a v1 equal to the lowercase
 * hex HMAC-SHA256 under secret of "<t>.<body>". Any malformed header is false. The age of t
 * is not checked: a chaos run delays deliveries on purpose. */
bool chaos_signature_valid(const char *secret, const char *header, const char *body, size_t len);

#endif
