/* Strict parsers for the timestamps events carry (RFC 3339) and the dates statements name
 * (YYYY-MM-DD), so nothing malformed ever reaches a SQL cast. */
#ifndef LEDGER_TIMEPARSE_H
#define LEDGER_TIMEPARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" ('t'/'z' and a space for 'T'
 * accepted), years 1970..9999, into milliseconds since the epoch. Digits of the fraction
 * beyond milliseconds are dropped (truncation never moves an instant across a second, so
 * never across a day). Rejects impossible dates (2025-02-30) and leap seconds. */
bool ledger_time_parse_rfc3339(const char *s, int64_t *epoch_ms);

/* Parses exactly "YYYY-MM-DD", a real calendar date in 1970..9999. */
bool ledger_date_parse(const char *s, int *year, int *month, int *day);

#endif
