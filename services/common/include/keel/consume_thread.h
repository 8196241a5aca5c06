/* A service's Kafka consumer on a thread of its own: creates the consumer and the producer its
 * dead letters go through, runs keel_consume_run (keel/consume.h) until shutdown, and tears
 * both down. The wiring every consuming service repeats, in one place. */
#ifndef KEEL_CONSUME_THREAD_H
#define KEEL_CONSUME_THREAD_H

#include <stddef.h>

#include "keel/consume.h"

typedef struct keel_consume_thread_options {
    const char *brokers;
    const char *group_id;
    const char *client_id; /* e.g. the instance id */
    const char *topic;     /* one topic; its <topic>.dlq twin must exist */
    const char *name;      /* the consumer's name in logs and metrics labels */
    keel_message_handler handler;
    void *ctx; /* handed to handler; must outlive the thread */
} keel_consume_thread_options;

typedef struct keel_consume_thread keel_consume_thread;

/* Creates the consumer (subscribed) and the DLQ producer and starts the loop. NULL with err
 * filled (what failed and why) when any of it fails; nothing is left running then. */
keel_consume_thread *keel_consume_thread_start(const keel_consume_thread_options *opts, char *err,
                                               size_t err_len);
/* Waits for the loop to end, which it does once shutdown was requested (keel/shutdown.h:
 * request it first), then leaves the group and frees everything. NULL is fine. */
void keel_consume_thread_stop(keel_consume_thread *t);

#endif
