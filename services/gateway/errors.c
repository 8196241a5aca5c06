/* The gateway's error object: filling it and rendering it as JSON text. */
#include "errors.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

bool gateway_error_set(gateway_error *e, unsigned status, const char *code, const char *param,
                       const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%s", param != NULL ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return false;
}

const char *gateway_error_type(unsigned status, const char *code)
{
    if (status == 401) {
        return "authentication_error";
    }
    if (status == 429) {
        return "rate_limit_error";
    }
    if (status >= 500) {
        return "api_error";
    }
    if (code != NULL && strncmp(code, "idempotency_", 12) == 0) {
        return "idempotency_error";
    }
    return "invalid_request_error";
}

/* Copies s with every byte outside printable ASCII replaced by '?'. */
static void ascii_copy(char *out, size_t out_len, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < out_len; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[i] = '\0';
}

static json_t *error_pack(unsigned status, const char *code, const char *message, const char *param)
{
    return json_pack("{s:{s:s, s:s, s:s, s:s?}}", "error", "type", gateway_error_type(status, code),
                     "code", code, "message", message, "param",
                     param != NULL && param[0] != '\0' ? param : NULL);
}

char *gateway_error_render(unsigned status, const char *code, const char *message,
                           const char *param)
{
    json_t *err = error_pack(status, code, message, param);
    char *text;

    if (err == NULL) {
        /* A message or param quoting the client's input may have been cut inside a UTF-8
         * sequence, which JSON cannot carry: fall back to plain ASCII rather than fail. */
        char safe_message[512];
        char safe_param[256];
        ascii_copy(safe_message, sizeof(safe_message), message);
        ascii_copy(safe_param, sizeof(safe_param), param != NULL ? param : "");
        err = error_pack(status, code, safe_message, safe_param);
        if (err == NULL) {
            return NULL;
        }
    }
    text = json_dumps(err, JSON_COMPACT);
    json_decref(err);
    return text;
}
