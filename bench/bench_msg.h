/* The sample message the relay benchmarks send: a real PaymentRequested, payment-id keys. */
#ifndef BENCH_MSG_H
#define BENCH_MSG_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MSG_KEY_LEN 37 /* "pay_" + 32 hex digits + NUL: the length of a real id */

/* Writes the key of message i: "pay_" and i in 32 hex digits. */
void bench_msg_key(uint64_t i, char out[BENCH_MSG_KEY_LEN]);

/* A packed keel.v1.PaymentRequested as the gateway writes it for a typical request
 * (malloc'd; the caller frees it). NULL when out of memory. */
uint8_t *bench_msg_payload(size_t *len);

#endif
