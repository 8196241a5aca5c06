/* Helpers shared by every provider adapter: status names and the generic free. */
#include "provider.h"

#include <stddef.h>

const char *payments_charge_status_name(payments_charge_status s)
{
    switch (s) {
    case PAYMENTS_CHARGE_SUCCEEDED:
        return "succeeded";
    case PAYMENTS_CHARGE_DECLINED:
        return "declined";
    case PAYMENTS_CHARGE_NOT_PROCESSED:
        return "not_processed";
    case PAYMENTS_CHARGE_UNKNOWN:
        return "unknown";
    }
    return "invalid";
}

const char *payments_lookup_status_name(payments_lookup_status s)
{
    switch (s) {
    case PAYMENTS_LOOKUP_FOUND:
        return "found";
    case PAYMENTS_LOOKUP_NOT_FOUND:
        return "not_found";
    case PAYMENTS_LOOKUP_FAILED:
        return "failed";
    }
    return "invalid";
}

void payments_provider_free(payments_provider *p)
{
    if (p != NULL && p->free != NULL) {
        p->free(p);
    }
}
