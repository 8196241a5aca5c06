/* JSON-lines logging to stderr: one object per line with time, level, service and trace id. */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

#include <stdbool.h>

typedef enum keel_log_level {
    KEEL_LOG_DEBUG = 0,
    KEEL_LOG_INFO = 1,
    KEEL_LOG_WARN = 2,
    KEEL_LOG_ERROR = 3,
} keel_log_level;

/* Sets the service name written on every line and the lowest level that is written.
 * Call once at start-up, before other threads log. */
void keel_log_init(const char *service, keel_log_level min_level);

/* Parses "debug", "info", "warn" or "error" (case-insensitive). Returns false if unknown. */
bool keel_log_level_parse(const char *text, keel_log_level *out);

/* The W3C trace id (32 hex digits) attached to this thread's following lines; NULL clears.
 * Thread-local: set it when a request or message starts, clear it when it ends. */
void keel_log_set_trace_id(const char *trace_id);
const char *keel_log_trace_id(void);

/* Writes {"ts":..,"level":..,"service":..,"trace_id":..,"msg":..} with msg formatted
 * printf-style and JSON-escaped. One write(2) per line, so lines from threads never mix. */
void keel_log_write(keel_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define keel_log_debug(...) keel_log_write(KEEL_LOG_DEBUG, __VA_ARGS__)
#define keel_log_info(...) keel_log_write(KEEL_LOG_INFO, __VA_ARGS__)
#define keel_log_warn(...) keel_log_write(KEEL_LOG_WARN, __VA_ARGS__)
#define keel_log_error(...) keel_log_write(KEEL_LOG_ERROR, __VA_ARGS__)

#endif
