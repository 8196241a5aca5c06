/* One sandbox provider's own HTTP listener, which a simulated outage closes (clients get
 * "connection refused") and the end of the outage reopens on the same port. */
#ifndef SIM_LISTENER_H
#define SIM_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"

/* Adds the provider's routes to a freshly created server (called on every reopen). */
typedef void (*sim_listener_routes_fn)(keel_http_server *srv, void *ctx);

typedef struct sim_listener_options {
    const char *name;    /* the provider's name, for logs */
    const char *address; /* copied */
    uint16_t port;       /* 0 = a free port on first open, then the same one on reopen */
    unsigned threads;    /* worker threads; a held (timed-out) request occupies one */
    sim_listener_routes_fn routes;
    void *routes_ctx;
} sim_listener_options;

typedef struct sim_listener sim_listener;

/* Creates a closed listener. NULL on OOM. */
sim_listener *sim_listener_new(const sim_listener_options *opts);

/* Opens or closes the listener; doing what is already done is a no-op. Closing waits for
 * requests in progress (so wake sleeping ones first, see sim_provider_set_faults).
 * Opening retries a few times with backoff, since the port was just released. Thread-safe:
 * concurrent calls are serialised. Returns 0, or -1 with a message in err. */
int sim_listener_set_open(sim_listener *l, bool open, char *err, size_t err_len);

bool sim_listener_is_open(sim_listener *l);
/* The bound port (the configured one until the first open with port 0). */
uint16_t sim_listener_port(sim_listener *l);

/* Closes (if open) and frees. NULL is fine. */
void sim_listener_free(sim_listener *l);

#endif
