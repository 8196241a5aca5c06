/* Webhook signatures: Keel-Signature "t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>",
 * one v1 per valid secret, and the whsec_ secrets themselves. */
#ifndef NOTIFIER_SIGNATURE_H
#define NOTIFIER_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFIER_SECRET_PREFIX "whsec_"
#define NOTIFIER_SECRET_LEN 71     /* "whsec_" + 64 hex digits + NUL */
#define NOTIFIER_HMAC_HEX_LEN 65   /* 64 hex digits + NUL */
#define NOTIFIER_SIGNATURE_LEN 192 /* "t=" 20 digits and two ",v1=" 64-hex entries, with room */

/* A new secret: "whsec_" and 32 random bytes from getrandom(2) in hex. False when the kernel
 * gave no randomness (then out is empty). */
bool notifier_secret_new(char out[NOTIFIER_SECRET_LEN]);

/* Writes the lowercase hex HMAC-SHA256 of "<t>.<body>" under key secret (its bytes as
 * they are, prefix included) into out. False when OpenSSL failed. */
bool notifier_hmac_hex(const char *secret, int64_t t, const char *body, size_t len,
                       char out[NOTIFIER_HMAC_HEX_LEN]);

/* The Keel-Signature value for body at time t: "t=<t>,v1=<current>" and, while a rotation's
 * overlap lasts (previous not NULL), ",v1=<previous>". False when signing failed. */
bool notifier_signature_header(int64_t t, const char *body, size_t len, const char *secret,
                               const char *previous, char out[NOTIFIER_SIGNATURE_LEN]);

#endif
