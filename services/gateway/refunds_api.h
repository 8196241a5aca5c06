/* The HTTP handlers of /v1/payments/{id}/refunds: POST (create, idempotent) and GET (list). */
#ifndef GATEWAY_REFUNDS_API_H
#define GATEWAY_REFUNDS_API_H

#include "api.h"
#include "keel/http_server.h"

/* Adds POST and GET /v1/payments/:id/refunds; api must outlive the server. */
void gateway_refunds_register(gateway_api *api, keel_http_server *srv);

#endif
