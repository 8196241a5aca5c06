/* Strict parsing of a JSON request body, free of any server state so that unit tests and the
 * fuzz targets call exactly what the handlers call. */
#ifndef GATEWAY_REQUEST_BODY_H
#define GATEWAY_REQUEST_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

/* Bodies of keel's API nest two levels (an object holding metadata); anything deeper than
 * this is refused before validation looks at it. */
#define GATEWAY_JSON_MAX_DEPTH 8

/* True for "application/json" with optional parameters, ignoring case and blanks, where a
 * charset parameter, when present, must be utf-8. */
bool gateway_content_type_is_json(const char *content_type);

/* Parses body[0..len) as the JSON object of a request. Refuses, filling err:
 *   415 unsupported_media_type  Content-Type is not application/json (param NULL)
 *   400 invalid_json            empty, not JSON, not UTF-8, a duplicate key, a NUL escape,
 *                               nested deeper than GATEWAY_JSON_MAX_DEPTH, or not an object
 * Returns a new reference, or NULL. content_type may be NULL (missing header). */
json_t *gateway_body_parse(const char *content_type, const char *body, size_t len,
                           gateway_error *err);

#endif
