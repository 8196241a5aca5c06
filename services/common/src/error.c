/* Names of keel_result codes, for log lines and error messages. */
#include "keel/error.h"

const char *keel_result_name(keel_result r)
{
    switch (r) {
    case KEEL_OK:
        return "ok";
    case KEEL_ERR:
        return "error";
    case KEEL_ERR_TRANSIENT:
        return "transient";
    case KEEL_ERR_CONFLICT:
        return "conflict";
    case KEEL_ERR_NOT_FOUND:
        return "not_found";
    case KEEL_ERR_TIMEOUT:
        return "timeout";
    case KEEL_ERR_FULL:
        return "full";
    }
    return "unknown";
}
