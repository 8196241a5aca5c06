/* The sample message the relay benchmarks send (see bench_msg.h). */
#include "bench_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "keel/clock.h"
#include "keel/v1/payments.pb-c.h"

void bench_msg_key(uint64_t i, char out[BENCH_MSG_KEY_LEN])
{
    snprintf(out, BENCH_MSG_KEY_LEN, "pay_%016" PRIx64 "%016" PRIx64, (uint64_t)0, i);
}

uint8_t *bench_msg_payload(size_t *len)
{
    Keel__V1__PaymentRequested msg = KEEL__V1__PAYMENT_REQUESTED__INIT;
    char key[BENCH_MSG_KEY_LEN];
    char created_at[KEEL_RFC3339_LEN];

    /* The fields the load generator's requests carry, at their real lengths. */
    bench_msg_key(1, key);
    keel_clock_format_rfc3339(keel_clock_now_ms(), created_at);
    msg.payment_id = key;
    msg.merchant_id = "mer_0192f0c1a2b34c5d8e9f0a1b2c3d4e5f";
    msg.amount = 1999;
    msg.currency = "usd";
    msg.description = "bench";
    msg.payment_method = "pm_card_visa";
    msg.created_at = created_at;
    *len = keel__v1__payment_requested__get_packed_size(&msg);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    if (buf != NULL) {
        keel__v1__payment_requested__pack(&msg, buf);
    }
    return buf;
}
