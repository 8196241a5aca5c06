/* libFuzzer target: the header parsers, each given the input as a header value (as
 * libmicrohttpd hands it over: NUL-terminated, any other byte possible): Authorization
 * (Bearer), Idempotency-Key and Content-Type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "idempotency.h"
#include "request_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    const char *secret = NULL;
    size_t secret_len = 0;

    if (value == NULL) {
        return 0;
    }
    memcpy(value, data, size);
    value[size] = '\0';
    if (gateway_auth_parse_bearer(value, &secret, &secret_len)) {
        /* The secret is inside the header, of the advertised length, visible ASCII only. */
        if (secret < value || secret + secret_len > value + strlen(value) || secret_len == 0 ||
            secret_len > GATEWAY_API_KEY_MAX_LEN) {
            abort();
        }
        for (size_t i = 0; i < secret_len; i++) {
            if ((unsigned char)secret[i] <= 0x20 || (unsigned char)secret[i] >= 0x7f) {
                abort();
            }
        }
    }
    if (gateway_idempotency_key_check(value) == GATEWAY_IDEM_KEY_OK &&
        strlen(value) > GATEWAY_IDEMPOTENCY_KEY_MAX) {
        abort();
    }
    (void)gateway_content_type_is_json(value);
    free(value);
    return 0;
}
