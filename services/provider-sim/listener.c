/* A provider listener that can be closed for a simulated outage and reopened on its port. */
#include "listener.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/retry.h"

/* Reopening right after a close can briefly find the port still held; a short, capped
 * backoff rides that out without hiding a port that another process really took. */
static const keel_backoff sim_listener_backoff = {.base_ms = 50, .cap_ms = 1000, .max_attempts = 6};

struct sim_listener {
    pthread_mutex_t mu; /* serialises open/close; never held by request handlers */
    char *name;
    char *address;
    uint16_t port;
    unsigned threads;
    sim_listener_routes_fn routes;
    void *routes_ctx;
    keel_http_server *srv; /* NULL while closed */
};

sim_listener *sim_listener_new(const sim_listener_options *opts)
{
    sim_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->name = strdup(opts->name != NULL ? opts->name : "provider");
    l->address = strdup(opts->address != NULL ? opts->address : "127.0.0.1");
    if (l->name == NULL || l->address == NULL || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l->name);
        free(l->address);
        free(l);
        return NULL;
    }
    l->port = opts->port;
    l->threads = opts->threads;
    l->routes = opts->routes;
    l->routes_ctx = opts->routes_ctx;
    return l;
}

/* One attempt to create, route and start the server. Caller holds l->mu. */
static int sim_listener_open_once(sim_listener *l, char *err, size_t err_len)
{
    keel_http_server_options o = {
        .address = l->address,
        .port = l->port,
        .threads = l->threads,
    };
    keel_http_server *srv = keel_http_server_new(&o);
    if (srv == NULL) {
        snprintf(err, err_len, "%s: cannot create the HTTP server (out of memory)", l->name);
        return -1;
    }
    l->routes(srv, l->routes_ctx);
    if (keel_http_server_start(srv, err, err_len) != 0) {
        keel_http_server_free(srv);
        return -1;
    }
    l->port = keel_http_server_port(srv);
    l->srv = srv;
    return 0;
}

int sim_listener_set_open(sim_listener *l, bool open, char *err, size_t err_len)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    if (!open) {
        if (l->srv != NULL) {
            keel_http_server_free(l->srv);
            l->srv = NULL;
            keel_log_info("%s: listener on port %u closed (simulated outage)", l->name,
                          (unsigned)l->port);
        }
        goto done;
    }
    if (l->srv != NULL)
        goto done;
    for (int attempt = 0;; attempt++) {
        rc = sim_listener_open_once(l, err, err_len);
        if (rc == 0 || !keel_backoff_should_retry(&sim_listener_backoff, attempt + 1))
            break;
        keel_clock_sleep_ms(keel_backoff_delay_ms(&sim_listener_backoff, attempt, NULL));
    }
    if (rc == 0)
        keel_log_info("%s: listening on %s port %u", l->name, l->address, (unsigned)l->port);
done:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

bool sim_listener_is_open(sim_listener *l)
{
    pthread_mutex_lock(&l->mu);
    bool open = l->srv != NULL;
    pthread_mutex_unlock(&l->mu);
    return open;
}

uint16_t sim_listener_port(sim_listener *l)
{
    pthread_mutex_lock(&l->mu);
    uint16_t port = l->port;
    pthread_mutex_unlock(&l->mu);
    return port;
}

void sim_listener_free(sim_listener *l)
{
    if (l == NULL)
        return;
    keel_http_server_free(l->srv);
    l->srv = NULL;
    pthread_mutex_destroy(&l->mu);
    free(l->name);
    l->name = NULL;
    free(l->address);
    l->address = NULL;
    free(l);
}
