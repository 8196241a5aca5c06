/* SHA-256 as lowercase hex: the form API keys and request hashes are stored in. */
#ifndef GATEWAY_DIGEST_H
#define GATEWAY_DIGEST_H

#include <stddef.h>

#define GATEWAY_SHA256_HEX_LEN 65 /* 64 hex digits and the terminating NUL */

/* Incremental SHA-256, so a hash can cover several buffers without copying them. */
typedef struct gateway_sha256 gateway_sha256;

/* Starts a digest. Aborts when libcrypto cannot allocate one (out of memory). */
gateway_sha256 *gateway_sha256_new(void);
void gateway_sha256_update(gateway_sha256 *h, const void *data, size_t len);
/* Writes the 64 hex digits and NUL into out and frees h. */
void gateway_sha256_final_hex(gateway_sha256 *h, char out[GATEWAY_SHA256_HEX_LEN]);

/* One-shot form of the three calls above. */
void gateway_sha256_hex(const void *data, size_t len, char out[GATEWAY_SHA256_HEX_LEN]);

#endif
