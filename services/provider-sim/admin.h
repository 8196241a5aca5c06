/* The /_sim admin endpoints: the charge, refund and score logs tests read, and fault settings
 * changed at runtime (an outage closes the provider's listener). */
#ifndef SIM_ADMIN_H
#define SIM_ADMIN_H

#include <stddef.h>

#include "keel/http_server.h"
#include "listener.h"
#include "sim_state.h"

typedef struct sim_admin sim_admin;

/* NULL on OOM. The state must outlive the admin. */
sim_admin *sim_admin_new(sim_state *st);
void sim_admin_free(sim_admin *a);

/* Ties a provider's outage setting to its listener. Call before serving. Returns 0, or -1
 * when the table is full. */
int sim_admin_add_listener(sim_admin *a, sim_provider *p, sim_listener *l);

/* Opens or closes every tied listener to match its provider's outage setting. Returns 0,
 * or -1 with the first failure's message in err (the others are still attempted). */
int sim_admin_sync(sim_admin *a, char *err, size_t err_len);

/* GET /_sim/charges, /_sim/refunds, /_sim/scores, /_sim/counts, GET and POST /_sim/faults,
 * POST /_sim/reset (see docs/provider-sim.md). */
void sim_admin_routes(keel_http_server *srv, sim_admin *a);

#endif
