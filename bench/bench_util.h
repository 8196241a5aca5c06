/* Small helpers the benchmark tools share: a monotonic clock, loopback-only address checks and
 * strict number parsing for command-line options. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds: every duration the tools report is measured with it. */
int64_t bench_now_ns(void);

/* True for 127.0.0.0/8 written as a dotted quad, "localhost" and "::1" (with or without
 * brackets). The benchmarks send traffic only to this machine. */
bool bench_host_is_loopback(const char *host, size_t len);

/* Checks an http:// URL whose host is a loopback address. On false, err says why. */
bool bench_url_is_loopback(const char *url, char *err, size_t err_len);

/* Checks a comma-separated Kafka bootstrap list of host:port entries, each on loopback. */
bool bench_brokers_are_loopback(const char *brokers, char *err, size_t err_len);

/* Parses a whole decimal number within [min, max]. False when it is not one. */
bool bench_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool bench_parse_double(const char *s, double min, double max, double *out);

#endif
