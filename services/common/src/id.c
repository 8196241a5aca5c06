/* UUIDv7 generation (RFC 9562, method 1: a 12-bit counter in rand_a) and parsing. */
#include "keel/id.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "keel/clock.h"

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;
static uint32_t id_counter; /* 12 bits used */

static void id_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(p + done, len - done, 0);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        /* getrandom only fails on EINTR or before the pool is ready at early boot; keep
         * ids unique anyway by mixing in the clock, never returning predictable zeroes. */
        uint64_t t = (uint64_t)keel_clock_now_us() ^ (uint64_t)(uintptr_t)p;
        for (; done < len; done++) {
            t = t * 6364136223846793005ULL + 1442695040888963407ULL;
            p[done] = (unsigned char)(t >> 56);
        }
    }
}

/* Fills the 16 bytes of a new UUIDv7. */
static void id_uuid7_bytes(unsigned char b[16])
{
    unsigned char rnd[10];
    id_random_bytes(rnd, sizeof rnd);

    pthread_mutex_lock(&id_lock);
    int64_t now = keel_clock_now_ms();
    if (now > id_last_ms) {
        id_last_ms = now;
        /* A random start below 2048 keeps ids hard to guess while leaving at least 2048
         * increments before the counter runs out within this millisecond. */
        id_counter = ((uint32_t)rnd[8] << 8 | rnd[9]) & 0x7FF;
    } else {
        /* Same millisecond, or the wall clock stepped back: keep the last timestamp and
         * count up so ids still sort in call order. */
        id_counter++;
        if (id_counter > 0xFFF) {
            /* Counter exhausted: borrow the next millisecond (RFC 9562 section 6.2). */
            id_last_ms++;
            id_counter = 0;
        }
    }
    uint64_t ts = (uint64_t)id_last_ms;
    uint32_t counter = id_counter;
    pthread_mutex_unlock(&id_lock);

    b[0] = (unsigned char)(ts >> 40);
    b[1] = (unsigned char)(ts >> 32);
    b[2] = (unsigned char)(ts >> 24);
    b[3] = (unsigned char)(ts >> 16);
    b[4] = (unsigned char)(ts >> 8);
    b[5] = (unsigned char)ts;
    b[6] = (unsigned char)(0x70 | (counter >> 8));
    b[7] = (unsigned char)(counter & 0xFF);
    memcpy(b + 8, rnd, 8);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F));
}

static const char id_hex[] = "0123456789abcdef";

char *keel_uuid7_new(char out[KEEL_UUID_STR_LEN])
{
    unsigned char b[16];
    id_uuid7_bytes(b);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = id_hex[b[i] >> 4];
        out[o++] = id_hex[b[i] & 0x0F];
    }
    out[o] = '\0';
    return out;
}

char *keel_id_new(const char *prefix, char *out, size_t out_len)
{
    if (prefix == NULL) {
        prefix = "";
    }
    size_t plen = strlen(prefix);
    if (out_len < plen + 33) {
        /* Too small to hold an id: return an empty string rather than a truncated id
         * that could collide. */
        if (out_len > 0) {
            out[0] = '\0';
        }
        return out;
    }
    unsigned char b[16];
    id_uuid7_bytes(b);
    memcpy(out, prefix, plen);
    size_t o = plen;
    for (int i = 0; i < 16; i++) {
        out[o++] = id_hex[b[i] >> 4];
        out[o++] = id_hex[b[i] & 0x0F];
    }
    out[o] = '\0';
    return out;
}

static int id_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool keel_uuid_is_valid(const char *s)
{
    if (s == NULL) {
        return false;
    }
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return false;
            }
        } else if (id_hex_value(s[i]) < 0) {
            return false; /* also stops at a NUL before position 36 */
        }
    }
    return s[36] == '\0';
}

int64_t keel_uuid7_timestamp_ms(const char *s)
{
    if (!keel_uuid_is_valid(s) || s[14] != '7') {
        return -1;
    }
    int variant = id_hex_value(s[19]);
    if ((variant & 0xC) != 0x8) {
        return -1;
    }
    int64_t ts = 0;
    for (int i = 0; i < 13; i++) {
        if (i == 8) {
            continue;
        }
        ts = ts * 16 + id_hex_value(s[i]);
    }
    return ts;
}
