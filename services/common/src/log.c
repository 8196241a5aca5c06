/* JSON-lines logger: one escaped object per line, written to stderr with a single write(2). */
#include "keel/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "keel/clock.h"

/* A line longer than this is cut: a runaway message must not turn into an unbounded write. */
#define LOG_MAX_MSG 16384
#define LOG_TRACE_LEN 32
#define LOG_SERVICE_LEN 128
/* Bytes of a line besides the message: keys, time, level, escaped service and trace id. */
#define LOG_FIXED_BYTES (160 + (LOG_SERVICE_LEN + LOG_TRACE_LEN) * 6)

static char log_service[LOG_SERVICE_LEN] = "keel";
static atomic_int log_min_level = KEEL_LOG_INFO;
static _Thread_local char log_trace[LOG_TRACE_LEN + 1];

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void keel_log_init(const char *service, keel_log_level min_level)
{
    if (service != NULL) {
        snprintf(log_service, sizeof log_service, "%s", service);
    }
    atomic_store(&log_min_level, (int)min_level);
}

bool keel_log_level_parse(const char *text, keel_log_level *out)
{
    if (text == NULL) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, log_level_names[i]) == 0) {
            *out = (keel_log_level)i;
            return true;
        }
    }
    return false;
}

void keel_log_set_trace_id(const char *trace_id)
{
    if (trace_id == NULL) {
        log_trace[0] = '\0';
        return;
    }
    snprintf(log_trace, sizeof log_trace, "%s", trace_id);
}

const char *keel_log_trace_id(void)
{
    return log_trace[0] != '\0' ? log_trace : NULL;
}

/* A fixed-capacity output buffer, sized before use so it never needs to grow. */
typedef struct log_buf {
    char *data;
    size_t len;
    size_t cap;
} log_buf;

static void log_buf_put(log_buf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len) {
        n = b->cap - b->len; /* cannot happen with the sizing in keel_log_write */
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void log_buf_puts(log_buf *b, const char *s)
{
    log_buf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one.
 * Rejects overlong forms, surrogates and code points above U+10FFFF (RFC 3629). */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* Appends s as a JSON string body: quotes, backslashes and control characters escaped,
 * invalid UTF-8 replaced by U+FFFD so every line stays parseable. */
static void log_buf_json(log_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            log_buf_put(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            const char *named = NULL;
            switch (c) {
            case '\n':
                named = "\\n";
                break;
            case '\r':
                named = "\\r";
                break;
            case '\t':
                named = "\\t";
                break;
            case '\b':
                named = "\\b";
                break;
            case '\f':
                named = "\\f";
                break;
            default:
                break;
            }
            if (named != NULL) {
                log_buf_puts(b, named);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c);
                log_buf_put(b, esc, 6);
            }
            i++;
        } else if (c < 0x80) {
            log_buf_put(b, (const char *)&p[i], 1);
            i++;
        } else {
            size_t len = log_utf8_len(p + i, n - i);
            if (len == 0) {
                log_buf_puts(b, "\\ufffd");
                i++;
            } else {
                log_buf_put(b, (const char *)&p[i], len);
                i += len;
            }
        }
    }
}

static void log_write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

void keel_log_write(keel_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&log_min_level)) {
        return;
    }
    int saved_errno = errno;
    if ((int)level < 0 || (int)level > KEEL_LOG_ERROR) {
        level = KEEL_LOG_ERROR;
    }

    char stack_msg[1024];
    char *msg = stack_msg;
    size_t msg_len = 0;
    char stack_line[4096];
    log_buf line = {.data = stack_line, .len = 0, .cap = sizeof stack_line};
    bool line_heap = false;

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(stack_msg, sizeof stack_msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(stack_msg, sizeof stack_msg, "(unformattable log message: %s)", fmt);
        msg_len = strlen(stack_msg);
    } else if ((size_t)n < sizeof stack_msg) {
        msg_len = (size_t)n;
    } else {
        size_t want = (size_t)n < LOG_MAX_MSG ? (size_t)n : LOG_MAX_MSG;
        char *heap = malloc(want + 1);
        if (heap != NULL) {
            va_start(ap, fmt);
            vsnprintf(heap, want + 1, fmt, ap);
            va_end(ap);
            msg = heap;
            msg_len = want;
        } else {
            msg_len = sizeof stack_msg - 1;
        }
    }

    /* Every input byte expands to at most 6 output bytes (an escaped control byte or
     * U+FFFD), so the line is sized for the worst case up front. Long lines go to the heap;
     * if that fails the message is cut to what the stack buffer holds. */
    size_t fixed = LOG_FIXED_BYTES;
    size_t need = fixed + msg_len * 6;
    if (need > sizeof stack_line) {
        char *heap_line = malloc(need);
        if (heap_line != NULL) {
            line.data = heap_line;
            line.cap = need;
            line_heap = true;
        } else {
            msg_len = (sizeof stack_line - fixed) / 6;
        }
    }

    char ts[KEEL_RFC3339_LEN];
    keel_clock_format_rfc3339(keel_clock_now_ms(), ts);
    log_buf_puts(&line, "{\"ts\":\"");
    log_buf_puts(&line, ts);
    log_buf_puts(&line, "\",\"level\":\"");
    log_buf_puts(&line, log_level_names[level]);
    log_buf_puts(&line, "\",\"service\":\"");
    log_buf_json(&line, log_service, strlen(log_service));
    if (log_trace[0] != '\0') {
        log_buf_puts(&line, "\",\"trace_id\":\"");
        log_buf_json(&line, log_trace, strlen(log_trace));
        log_buf_puts(&line, "\",\"msg\":\"");
    } else {
        log_buf_puts(&line, "\",\"trace_id\":null,\"msg\":\"");
    }
    log_buf_json(&line, msg, msg_len);
    if (n >= 0 && (size_t)n > msg_len) {
        log_buf_puts(&line, "...");
    }
    log_buf_puts(&line, "\"}\n");

    log_write_all(line.data, line.len);

    if (msg != stack_msg) {
        free(msg);
        msg = NULL;
    }
    if (line_heap) {
        free(line.data);
        line.data = NULL;
    }
    errno = saved_errno;
}
