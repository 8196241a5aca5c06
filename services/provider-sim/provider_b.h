/* Provider B: a sandbox card processor in the shape of Paystack's API (JSON envelopes
 * {"status","message","data"}, amounts in the minor unit, integer ids, the merchant's
 * reference as the idempotency key), with refunds and the fault injection of sim_state. */
#ifndef PROVIDER_B_H
#define PROVIDER_B_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"
#include "keel/metrics.h"
#include "sim_api.h"
#include "sim_state.h"

#define PROVIDER_B_NAME "provider_b"
#define PROVIDER_B_MAX_REFERENCE_LEN 255
#define PROVIDER_B_MAX_EMAIL_LEN 254
#define PROVIDER_B_MAX_NOTE_LEN 1000
#define PROVIDER_B_LIST_LIMIT 50

/* --- pure logic (unit tested) -------------------------------------------------------- */

/* A rejected request: the machine code (Paystack itself only sends the message) and a
 * message naming the field. */
typedef struct provider_b_error {
    const char *code;
    char message[256];
} provider_b_error;

/* The parameters of POST /transaction/charge. Pointers borrow from the parsed body. */
typedef struct provider_b_charge_params {
    int64_t amount;
    char currency[4]; /* uppercased ISO 4217 code */
    const char *email;
    const char *reference;
    const char *authorization_code;
    const json_t *metadata; /* NULL when absent or null */
} provider_b_charge_params;

/* Validates a charge body: amount (integer, or a string of digits, 1..SIM_API_MAX_AMOUNT),
 * currency (three letters, any case), email (a string with '@'), reference (see
 * provider_b_reference_valid), authorization_code (a pm_ token), metadata (object or null).
 * Other fields are ignored, as Paystack does. Returns 0, or -1 and fills err. */
int provider_b_parse_charge(const json_t *body, provider_b_charge_params *out,
                            provider_b_error *err);

/* A reference is 1..255 printable ASCII characters without spaces or / ? # % \ (so it
 * fits in the verify URL). */
bool provider_b_reference_valid(const char *reference);

/* The canonical text of what a repeated reference must match: amount, currency, email and
 * authorization_code. malloc'd, NULL on OOM. */
char *provider_b_fingerprint(const provider_b_charge_params *p);

/* "Approved" when failure_code is NULL, "Insufficient Funds" for insufficient_funds,
 * otherwise "Declined". */
const char *provider_b_gateway_response(const char *failure_code);

/* Unix seconds as "2025-01-01T00:00:00.000Z" into out (at least 32 bytes). */
void provider_b_iso8601(int64_t unix_s, char *out, size_t out_len);

/* The sim_charge_render_fn of provider B: the transaction (what verify returns as data) and
 * the answer 200 {"status":true,"message":"Charge attempted","data":transaction} for either
 * outcome. attrs holds "email" and "metadata". */
int provider_b_render(const sim_charge *charge, json_t **object, unsigned *status, char **body,
                      void *ctx);

/* The parameters of POST /refund. */
typedef struct provider_b_refund_params {
    const char *transaction; /* a reference, or an id as decimal digits */
    char id_text[24];        /* holds an integer transaction id as text */
    int64_t amount;          /* 0 when absent: everything not yet refunded */
    const char *merchant_note;
    const char *customer_note;
} provider_b_refund_params;

/* Validates a refund body: transaction (a non-empty string, or a positive integer id),
 * amount (as for charges, or absent), currency (ignored), merchant_note / customer_note
 * (strings of at most 1000 bytes, or null). Other fields are ignored. Returns 0, or -1 and
 * fills err. */
int provider_b_parse_refund(const json_t *body, provider_b_refund_params *out,
                            provider_b_error *err);

/* {"merchant_note":..,"customer_note":..}: the refund's attrs; NULL on OOM. */
json_t *provider_b_refund_attrs(const provider_b_refund_params *p);

/* The canonical text of the refund's parameters; malloc'd, NULL on OOM. */
char *provider_b_refund_fingerprint(const provider_b_refund_params *p);

/* The sim_refund_render_fn of provider B: the refund (data) and the answer
 * 200 {"status":true,"message":"Refund processed","data":refund}. */
int provider_b_refund_render(const sim_refund *refund, json_t **object, unsigned *status,
                             char **body, void *ctx);

/* Writes Paystack's error envelope {"status":false,"message":..,"code":..} (type and param
 * are not part of it). A sim_api_error_fn. */
void provider_b_respond_error(keel_http_response *resp, unsigned status, const char *type,
                              const char *code, const char *message, const char *param);

/* --- the HTTP API ------------------------------------------------------------------ */

/* Adds POST /transaction/charge, GET /transaction/verify/:reference, POST /refund,
 * GET /refund and GET /refund/:id to srv; ctx is a sim_api whose errors are
 * provider_b_respond_error (a sim_listener_routes_fn). */
void provider_b_routes(keel_http_server *srv, void *ctx);

#endif
