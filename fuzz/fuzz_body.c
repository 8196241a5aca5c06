/* libFuzzer target: a request body through everything the gateway does with it before the
 * database: strict JSON parsing, the payment and refund validators, the canonical form and
 * fingerprint of the Idempotency-Key, the mismatch description and the error object. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "idempotency.h"
#include "payment_json.h"
#include "payment_validate.h"
#include "request_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Renders what a valid payment would look like, as POST answers it. */
static void render_payment(const gateway_payment_input *in)
{
    gateway_payment p = {
        .id = "pay_0193aaaabbbbccccddddeeeeffff0000",
        .amount = in->amount,
        .currency = in->currency->code,
        .status = "pending",
        .description = in->description,
        .metadata = in->metadata,
        .payment_method = in->payment_method,
    };
    char *text = gateway_payment_render(&p);
    if (text == NULL) {
        abort(); /* a validated payment must always render */
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gateway_error err;
    gateway_payment_input pay;
    gateway_refund_input refund;
    gateway_validation_error verr;
    char hash[GATEWAY_SHA256_HEX_LEN];
    char mismatch[200];
    json_t *doc = gateway_body_parse("application/json", (const char *)data, size, &err);
    char *text;

    if (doc == NULL) {
        /* Every refusal is a 400 or 415 whose error object renders. */
        if (err.status != 400 && err.status != 415) {
            abort();
        }
        text = gateway_error_render(err.status, err.code, err.message, err.param);
        if (text == NULL) {
            abort();
        }
        free(text);
        return 0;
    }
    if (gateway_payment_validate(doc, &pay, &verr)) {
        if (pay.amount <= 0 || pay.amount > pay.currency->max_amount) {
            abort(); /* an amount the rules forbid got through */
        }
        render_payment(&pay);
    } else {
        text = gateway_error_render(400, verr.code, verr.message, verr.param);
        if (text == NULL || verr.param[0] == '\0') {
            abort(); /* every field error names its parameter */
        }
        free(text);
    }
    if (gateway_refund_validate(doc, &refund, &verr) && refund.amount < 0) {
        abort();
    }
    text = gateway_idempotency_canonical(doc);
    if (text == NULL) {
        abort();
    }
    gateway_idempotency_fingerprint("POST", "/v1/payments", text, hash);
    gateway_idempotency_describe_mismatch("POST", "/v1/payments", "{\"amount\":1}", "POST",
                                          "/v1/payments", text, mismatch, sizeof(mismatch));
    free(text);
    json_decref(doc);
    return 0;
}
