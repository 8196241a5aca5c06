/* The chaos driver's HTTP client: one libcurl handle per client thread, kept alive between
 * calls. libkeel's keel_http_client_do opens a connection per call; at the driver's rates that
 * leaves thousands of sockets in TIME_WAIT, whose ports a restarting broker or service of the
 * stack may then fail to bind. */
#ifndef CHAOS_CLIENT_H
#define CHAOS_CLIENT_H

#include "keel/http_client.h"

typedef struct chaos_client chaos_client;

/* NULL when libcurl cannot make a handle. */
chaos_client *chaos_client_new(void);
/* Closes the client's connections. NULL is fine. */
void chaos_client_free(chaos_client *c);

/* keel_http_client_do's contract (the call's timeouts and size cap, out always filled, the
 * failure sorted by whether the request may have reached the peer) on the client's reused
 * connections. connect_address is not supported. Not thread-safe: one client per thread. */
keel_http_failure chaos_client_do(chaos_client *c, const keel_http_call *call,
                                  keel_http_result *out);

#endif
