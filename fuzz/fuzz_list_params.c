/* libFuzzer target: the list endpoints' query parameters. The input is read like a decoded
 * query string: pairs separated by '&', name and value by the first '=' (no '=': a value-less
 * parameter), for both lists; every value also goes through the timestamp parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "list_params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAIRS 40

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    const char *names[MAX_PAIRS];
    const char *values[MAX_PAIRS];
    size_t n = 0;
    gateway_list_params lp;
    gateway_error err;
    char *save = NULL;

    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *pair = strtok_r(text, "&", &save); pair != NULL && n < MAX_PAIRS;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        names[n] = pair;
        values[n] = eq != NULL ? eq + 1 : NULL;
        n++;
    }
    for (int kind = 0; kind < 2; kind++) {
        /* More than GATEWAY_LIST_MAX_PARAMS pairs must be refused without reading them. */
        if (gateway_list_params_parse((gateway_list_kind)kind, names, values, n, &lp, &err)) {
            if (lp.limit < 1 || lp.limit > GATEWAY_LIST_LIMIT_MAX ||
                (lp.starting_after[0] != '\0' && lp.ending_before[0] != '\0')) {
                abort(); /* the parser let through what its contract forbids */
            }
        } else if (err.status != 400 || err.code == NULL) {
            abort();
        }
    }
    for (size_t i = 0; i < n; i++) {
        int64_t ms;
        if (values[i] != NULL && gateway_timestamp_parse(values[i], &ms) &&
            (ms < INT64_C(-62135596800000) - 86400000 || ms > INT64_C(253402387200000))) {
            abort(); /* outside years 1..9999 (plus a day of offset) */
        }
    }
    free(text);
    return 0;
}
