/* The consumer thread of a keel service: consumer, DLQ producer and keel_consume_run. */
#include "keel/consume_thread.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/kafka.h"

struct keel_consume_thread {
    keel_consume_options opts;
    keel_consumer *consumer;
    keel_producer *dlq;
    char *name;
    pthread_t tid;
    bool started;
};

static void *consume_thread_main(void *arg)
{
    keel_consume_thread *t = arg;
    keel_consume_run(&t->opts);
    return NULL;
}

keel_consume_thread *keel_consume_thread_start(const keel_consume_thread_options *opts, char *err,
                                               size_t err_len)
{
    char why[512];
    keel_consume_thread *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->name = strdup(opts->name != NULL ? opts->name : "consumer")) == NULL) {
        snprintf(err, err_len, "out of memory starting a consumer thread");
        goto fail;
    }
    const char *topics[] = {opts->topic};
    keel_consumer_options c_opts = {
        .brokers = opts->brokers,
        .group_id = opts->group_id,
        .client_id = opts->client_id,
        .topics = topics,
        .topic_count = 1,
    };
    t->consumer = keel_consumer_new(&c_opts, why, sizeof(why));
    if (t->consumer == NULL) {
        snprintf(err, err_len, "cannot create the %s consumer of %s: %s", t->name, opts->topic,
                 why);
        goto fail;
    }
    keel_producer_options p_opts = {.brokers = opts->brokers, .client_id = opts->client_id};
    t->dlq = keel_producer_new(&p_opts, why, sizeof(why));
    if (t->dlq == NULL) {
        snprintf(err, err_len, "cannot create the dead-letter producer of %s: %s", t->name, why);
        goto fail;
    }
    t->opts = (keel_consume_options){
        .consumer = t->consumer,
        .dlq_producer = t->dlq,
        .handler = opts->handler,
        .ctx = opts->ctx,
        .name = t->name,
    };
    if (pthread_create(&t->tid, NULL, consume_thread_main, t) != 0) {
        snprintf(err, err_len, "cannot start the %s consumer thread", t->name);
        goto fail;
    }
    t->started = true;
    return t;
fail:
    keel_consume_thread_stop(t);
    return NULL;
}

void keel_consume_thread_stop(keel_consume_thread *t)
{
    if (t == NULL) {
        return;
    }
    if (t->started) {
        pthread_join(t->tid, NULL);
        t->started = false;
    }
    keel_consumer_free(t->consumer);
    t->consumer = NULL;
    keel_producer_free(t->dlq);
    t->dlq = NULL;
    free(t->name);
    t->name = NULL;
    free(t);
}
