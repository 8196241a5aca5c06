/* CloudEvents 1.0 binary content mode over Kafka headers, and W3C traceparent values. */
#ifndef KEEL_CLOUDEVENTS_H
#define KEEL_CLOUDEVENTS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "keel/clock.h"
#include "keel/error.h"

#define KEEL_TRACEPARENT_LEN 56 /* "00-" 32 hex "-" 16 hex "-01" and NUL */

typedef struct keel_cloudevent {
    char id[64];                            /* ce_id: a UUIDv7, unique per event */
    char source[128];                       /* ce_source, e.g. "/keel/gateway" */
    char type[128];                         /* ce_type, e.g. "keel.v1.PaymentRequested" */
    char time[KEEL_RFC3339_LEN];            /* ce_time, RFC 3339 UTC */
    char traceparent[KEEL_TRACEPARENT_LEN]; /* W3C traceparent; "" when absent */
} keel_cloudevent;

/* Fills ce with a new id and the current time, the given source and type, and traceparent
 * (a new one when parent is NULL or invalid; else a child of parent: same trace id). */
void keel_cloudevent_init(keel_cloudevent *ce, const char *source, const char *type,
                          const char *parent_traceparent);

/* Builds ce_specversion=1.0, ce_id, ce_source, ce_type, ce_time,
 * content-type=application/protobuf and traceparent headers. Caller owns the result. */
rd_kafka_headers_t *keel_cloudevent_to_headers(const keel_cloudevent *ce);

/* Reads the attributes back. KEEL_ERR with the missing or invalid header named in err when
 * ce_specversion is not "1.0", or ce_id/ce_source/ce_type is missing or too long.
 * traceparent and ce_time are optional. */
keel_result keel_cloudevent_from_headers(const rd_kafka_headers_t *headers, keel_cloudevent *ce,
                                         char *err, size_t err_len);

/* Writes a new random traceparent "00-<trace>-<span>-01". */
void keel_traceparent_new(char out[KEEL_TRACEPARENT_LEN]);
/* Writes a child of parent (same trace id, new span id); a new one if parent is invalid. */
void keel_traceparent_child(const char *parent, char out[KEEL_TRACEPARENT_LEN]);
/* Copies the 32-hex trace id of tp into out[33]; "" when tp is invalid. */
void keel_traceparent_trace_id(const char *tp, char out[33]);

#endif
