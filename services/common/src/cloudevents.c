/* CloudEvents 1.0 attributes carried as Kafka headers (binary content mode) and W3C
 * traceparent values. */
#include "keel/cloudevents.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "keel/clock.h"
#include "keel/id.h"
#include "keel/retry.h"

#define CE_SPECVERSION "1.0"
#define CE_CONTENT_TYPE "application/protobuf"
#define TP_VERSION_00_LEN 55 /* "00-" 32 "-" 16 "-" 2 */
#define TP_TRACE_OFF 3
#define TP_SPAN_OFF 36
#define TP_FLAGS_OFF 53

static const char ce_hex[] = "0123456789abcdef";

/* Fills buf with random bytes from getrandom(2); if that fails (it should not), falls back to
 * the retry module's generator so ids are still unpredictable enough to not collide. */
static void ce_random(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    uint64_t state = (uint64_t)keel_clock_now_us() ^ (uint64_t)(uintptr_t)buf;
    while (got < len) {
        uint64_t v = keel_rand_next(&state);
        for (size_t i = 0; i < sizeof v && got < len; i++) {
            buf[got++] = (unsigned char)(v >> (8 * i));
        }
    }
}

/* Writes len random bytes as 2*len lowercase hex digits, never all zero (W3C forbids an
 * all-zero trace or span id). */
static void ce_random_hex(char *out, size_t len)
{
    unsigned char bytes[16];
    bool zero = true;
    do {
        ce_random(bytes, len);
        for (size_t i = 0; i < len; i++) {
            if (bytes[i] != 0) {
                zero = false;
            }
        }
    } while (zero);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = ce_hex[bytes[i] >> 4];
        out[2 * i + 1] = ce_hex[bytes[i] & 0x0f];
    }
}

static bool ce_is_lower_hex(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
        if (ch != '0') {
            nonzero = true;
        }
    }
    return nonzero;
}

/* W3C Trace Context: version 00 is exactly 55 characters; a later version may append fields
 * after another dash, and "ff" is never valid. Trace and parent ids must not be all zero. */
static bool ce_traceparent_valid(const char *tp)
{
    if (tp == NULL) {
        return false;
    }
    size_t len = strlen(tp);
    if (len < TP_VERSION_00_LEN || tp[2] != '-' || tp[TP_SPAN_OFF - 1] != '-' ||
        tp[TP_FLAGS_OFF - 1] != '-') {
        return false;
    }
    char version[3] = {tp[0], tp[1], '\0'};
    const char *hex = ce_hex;
    if (strspn(version, hex) != 2 || strcmp(version, "ff") == 0) {
        return false;
    }
    if (strcmp(version, "00") == 0 ? len != TP_VERSION_00_LEN
                                   : (len > TP_VERSION_00_LEN && tp[TP_VERSION_00_LEN] != '-')) {
        return false;
    }
    if (!ce_is_lower_hex(tp + TP_TRACE_OFF, 32) || !ce_is_lower_hex(tp + TP_SPAN_OFF, 16)) {
        return false;
    }
    return strspn(tp + TP_FLAGS_OFF, hex) >= 2;
}

void keel_traceparent_new(char out[KEEL_TRACEPARENT_LEN])
{
    memcpy(out, "00-", 3);
    ce_random_hex(out + TP_TRACE_OFF, 16);
    out[TP_SPAN_OFF - 1] = '-';
    ce_random_hex(out + TP_SPAN_OFF, 8);
    memcpy(out + TP_FLAGS_OFF - 1, "-01", 4);
}

void keel_traceparent_child(const char *parent, char out[KEEL_TRACEPARENT_LEN])
{
    if (!ce_traceparent_valid(parent)) {
        keel_traceparent_new(out);
        return;
    }
    /* Same trace and sampling decision, a new span; we speak version 00. */
    memcpy(out, "00-", 3);
    memcpy(out + TP_TRACE_OFF, parent + TP_TRACE_OFF, 32);
    out[TP_SPAN_OFF - 1] = '-';
    ce_random_hex(out + TP_SPAN_OFF, 8);
    out[TP_FLAGS_OFF - 1] = '-';
    out[TP_FLAGS_OFF] = parent[TP_FLAGS_OFF];
    out[TP_FLAGS_OFF + 1] = parent[TP_FLAGS_OFF + 1];
    out[TP_VERSION_00_LEN] = '\0';
}

void keel_traceparent_trace_id(const char *tp, char out[33])
{
    if (!ce_traceparent_valid(tp)) {
        out[0] = '\0';
        return;
    }
    memcpy(out, tp + TP_TRACE_OFF, 32);
    out[32] = '\0';
}

void keel_cloudevent_init(keel_cloudevent *ce, const char *source, const char *type,
                          const char *parent_traceparent)
{
    memset(ce, 0, sizeof *ce);
    char uuid[KEEL_UUID_STR_LEN];
    snprintf(ce->id, sizeof ce->id, "%s", keel_uuid7_new(uuid));
    snprintf(ce->source, sizeof ce->source, "%s", source != NULL ? source : "");
    snprintf(ce->type, sizeof ce->type, "%s", type != NULL ? type : "");
    keel_clock_format_rfc3339(keel_clock_now_ms(), ce->time);
    keel_traceparent_child(parent_traceparent, ce->traceparent);
}

rd_kafka_headers_t *keel_cloudevent_to_headers(const keel_cloudevent *ce)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "ce_specversion", -1, CE_SPECVERSION, -1);
    rd_kafka_header_add(h, "ce_id", -1, ce->id, -1);
    rd_kafka_header_add(h, "ce_source", -1, ce->source, -1);
    rd_kafka_header_add(h, "ce_type", -1, ce->type, -1);
    if (ce->time[0] != '\0') {
        rd_kafka_header_add(h, "ce_time", -1, ce->time, -1);
    }
    rd_kafka_header_add(h, "content-type", -1, CE_CONTENT_TYPE, -1);
    if (ce->traceparent[0] != '\0') {
        rd_kafka_header_add(h, "traceparent", -1, ce->traceparent, -1);
    }
    return h;
}

typedef enum ce_read {
    CE_READ_OK,
    CE_READ_MISSING,
    CE_READ_INVALID, /* too long, or holds a NUL byte */
} ce_read;

/* Copies the last value of header name into out as a C string. Header values are bytes
 * with a length, so a value with an embedded NUL or one that does not fit is invalid. */
static ce_read ce_read_header(const rd_kafka_headers_t *headers, const char *name, char *out,
                              size_t out_len)
{
    out[0] = '\0';
    const void *value = NULL;
    size_t size = 0;
    if (headers == NULL ||
        rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        value == NULL || size == 0) {
        return CE_READ_MISSING;
    }
    if (size >= out_len || memchr(value, '\0', size) != NULL) {
        return CE_READ_INVALID;
    }
    memcpy(out, value, size);
    out[size] = '\0';
    return CE_READ_OK;
}

keel_result keel_cloudevent_from_headers(const rd_kafka_headers_t *headers, keel_cloudevent *ce,
                                         char *err, size_t err_len)
{
    memset(ce, 0, sizeof *ce);
    char specversion[16];
    ce_read rs = ce_read_header(headers, "ce_specversion", specversion, sizeof specversion);
    if (rs == CE_READ_MISSING) {
        snprintf(err, err_len, "header ce_specversion is missing");
        return KEEL_ERR;
    }
    if (rs != CE_READ_OK || strcmp(specversion, CE_SPECVERSION) != 0) {
        snprintf(err, err_len, "header ce_specversion is not \"%s\"", CE_SPECVERSION);
        return KEEL_ERR;
    }

    struct {
        const char *name;
        char *out;
        size_t len;
    } required[] = {
        {"ce_id", ce->id, sizeof ce->id},
        {"ce_source", ce->source, sizeof ce->source},
        {"ce_type", ce->type, sizeof ce->type},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        ce_read r = ce_read_header(headers, required[i].name, required[i].out, required[i].len);
        if (r == CE_READ_MISSING) {
            snprintf(err, err_len, "header %s is missing or empty", required[i].name);
            return KEEL_ERR;
        }
        if (r == CE_READ_INVALID) {
            snprintf(err, err_len, "header %s is longer than %zu bytes or holds a NUL byte",
                     required[i].name, required[i].len - 1);
            return KEEL_ERR;
        }
    }

    /* Optional attributes: a malformed one is dropped rather than making the event poison,
     * as W3C asks for traceparent; ce_time is informational only. */
    if (ce_read_header(headers, "ce_time", ce->time, sizeof ce->time) != CE_READ_OK) {
        ce->time[0] = '\0';
    }
    if (ce_read_header(headers, "traceparent", ce->traceparent, sizeof ce->traceparent) !=
            CE_READ_OK ||
        !ce_traceparent_valid(ce->traceparent)) {
        ce->traceparent[0] = '\0';
    }
    return KEEL_OK;
}
