/* UUIDv7 identifiers (RFC 9562): time-ordered, so ids sort by creation. */
#ifndef KEEL_ID_H
#define KEEL_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEEL_UUID_STR_LEN 37 /* 36 characters and the terminating NUL */

/* Writes a new UUIDv7 in canonical lowercase form ("0193...-....") into out.
 * Monotonic within a process: two calls in the same millisecond still sort in call order.
 * Thread-safe. Random bits come from getrandom(2). Returns out. */
char *keel_uuid7_new(char out[KEEL_UUID_STR_LEN]);

/* Writes prefix + the 32 hex digits of a new UUIDv7 (no dashes), e.g. "pay_0193ab...".
 * out must hold strlen(prefix) + 33 bytes. Returns out. */
char *keel_id_new(const char *prefix, char *out, size_t out_len);

/* True if s is a canonical UUID string (any version, lowercase or uppercase hex). */
bool keel_uuid_is_valid(const char *s);

/* The millisecond timestamp carried by a UUIDv7 string, or -1 if s is not one. */
int64_t keel_uuid7_timestamp_ms(const char *s);

#endif
