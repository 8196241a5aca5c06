/* The HTTP handlers of /v1/payments: POST (create, idempotent), GET one, GET the list. */
#ifndef GATEWAY_PAYMENTS_API_H
#define GATEWAY_PAYMENTS_API_H

#include "api.h"
#include "keel/http_server.h"

/* Adds POST /v1/payments, GET /v1/payments and GET /v1/payments/:id, and the refund routes
 * (refunds_api.h); api must outlive the server. */
void gateway_api_register(gateway_api *api, keel_http_server *srv);

#endif
