/* Token buckets keyed by string: a hash table for lookup and an LRU list for bounded memory. */
#include "keel/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RATELIMIT_DEFAULT_MAX_KEYS 10000u
/* When a limit admits nothing, tell the client to come back in a minute rather than at once. */
#define RATELIMIT_CLOSED_RETRY_MS 60000

typedef struct rl_bucket {
    char *key;
    uint64_t hash;
    keel_ratelimit_limit limit;
    double tokens;
    int64_t last_ms;
    struct rl_bucket *chain; /* next in the same hash slot */
    struct rl_bucket *newer; /* LRU list: head is the most recently used */
    struct rl_bucket *older;
} rl_bucket;

struct keel_ratelimit {
    pthread_mutex_t lock;
    rl_bucket **slots;
    size_t nslots;
    size_t size;
    size_t max_keys;
    rl_bucket *newest;
    rl_bucket *oldest;
};

/* FNV-1a: keys are short and not attacker-chosen in a way that matters (the table is bounded
 * and chains are short because the slot count is at least twice max_keys). */
static uint64_t rl_hash(const char *key)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

keel_ratelimit *keel_ratelimit_new(size_t max_keys)
{
    keel_ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        return NULL;
    }
    rl->max_keys = max_keys > 0 ? max_keys : RATELIMIT_DEFAULT_MAX_KEYS;
    rl->nslots = 16;
    while (rl->nslots < 2 * rl->max_keys) {
        rl->nslots *= 2;
    }
    rl->slots = calloc(rl->nslots, sizeof(*rl->slots));
    if (rl->slots == NULL) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void keel_ratelimit_free(keel_ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    rl_bucket *b = rl->newest;
    while (b != NULL) {
        rl_bucket *next = b->older;
        free(b->key);
        free(b);
        b = next;
    }
    free(rl->slots);
    rl->slots = NULL;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

static void rl_lru_unlink(keel_ratelimit *rl, rl_bucket *b)
{
    if (b->newer != NULL) {
        b->newer->older = b->older;
    } else {
        rl->newest = b->older;
    }
    if (b->older != NULL) {
        b->older->newer = b->newer;
    } else {
        rl->oldest = b->newer;
    }
    b->newer = NULL;
    b->older = NULL;
}

static void rl_lru_push(keel_ratelimit *rl, rl_bucket *b)
{
    b->newer = NULL;
    b->older = rl->newest;
    if (rl->newest != NULL) {
        rl->newest->newer = b;
    }
    rl->newest = b;
    if (rl->oldest == NULL) {
        rl->oldest = b;
    }
}

static rl_bucket *rl_find(const keel_ratelimit *rl, const char *key, uint64_t h)
{
    for (rl_bucket *b = rl->slots[h & (rl->nslots - 1)]; b != NULL; b = b->chain) {
        if (b->hash == h && strcmp(b->key, key) == 0) {
            return b;
        }
    }
    return NULL;
}

static void rl_evict_oldest(keel_ratelimit *rl)
{
    rl_bucket *victim = rl->oldest;
    if (victim == NULL) {
        return;
    }
    rl_lru_unlink(rl, victim);
    rl_bucket **p = &rl->slots[victim->hash & (rl->nslots - 1)];
    while (*p != victim) {
        p = &(*p)->chain;
    }
    *p = victim->chain;
    free(victim->key);
    free(victim);
    rl->size--;
}

/* A new bucket, full; NULL when out of memory (the caller then admits without tracking). */
static rl_bucket *rl_insert(keel_ratelimit *rl, const char *key, uint64_t h,
                            const keel_ratelimit_limit *limit, int64_t now_ms)
{
    rl_bucket *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->key = strdup(key);
    if (b->key == NULL) {
        free(b);
        return NULL;
    }
    if (rl->size >= rl->max_keys) {
        rl_evict_oldest(rl);
    }
    b->hash = h;
    b->limit = *limit;
    b->tokens = limit->burst;
    b->last_ms = now_ms;
    b->chain = rl->slots[h & (rl->nslots - 1)];
    rl->slots[h & (rl->nslots - 1)] = b;
    rl_lru_push(rl, b);
    rl->size++;
    return b;
}

static int64_t rl_ms_for(double tokens, double rate_per_s)
{
    if (tokens <= 0) {
        return 0;
    }
    /* The epsilon keeps float noise (0.99 + 0.01 != 1.0) from adding a millisecond. */
    return (int64_t)ceil(tokens * 1000.0 / rate_per_s - 1e-6);
}

bool keel_ratelimit_take(keel_ratelimit *rl, const char *key, const keel_ratelimit_limit *limit,
                         int64_t now_ms, keel_ratelimit_decision *out)
{
    memset(out, 0, sizeof(*out));
    if (!(limit->rate_per_s > 0) || !(limit->burst >= 1)) {
        out->retry_after_ms = RATELIMIT_CLOSED_RETRY_MS;
        out->reset_ms = RATELIMIT_CLOSED_RETRY_MS;
        return false;
    }
    uint64_t h = rl_hash(key);
    pthread_mutex_lock(&rl->lock);
    rl_bucket *b = rl_find(rl, key, h);
    if (b == NULL) {
        b = rl_insert(rl, key, h, limit, now_ms);
        if (b == NULL) {
            /* Out of memory: refusing every request would turn a memory blip into an
             * outage; admitting one untracked request is the smaller harm. */
            pthread_mutex_unlock(&rl->lock);
            out->allowed = true;
            out->remaining = (int64_t)limit->burst - 1;
            return true;
        }
    } else {
        rl_lru_unlink(rl, b);
        rl_lru_push(rl, b);
        /* A clock that went backwards (it should not: callers pass a monotonic one) adds
         * nothing instead of taking tokens away. */
        int64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
        b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
        b->limit = *limit;
        b->tokens += (double)elapsed * limit->rate_per_s / 1000.0;
        if (b->tokens > limit->burst) {
            b->tokens = limit->burst;
        }
    }
    /* The same tolerance here, so a client that waits exactly retry_after_ms is admitted. */
    if (b->tokens >= 1.0 - 1e-9) {
        b->tokens = b->tokens > 1.0 ? b->tokens - 1.0 : 0.0;
        out->allowed = true;
    } else {
        out->retry_after_ms = rl_ms_for(1.0 - b->tokens, limit->rate_per_s);
    }
    out->remaining = (int64_t)floor(b->tokens);
    out->reset_ms = rl_ms_for(limit->burst - b->tokens, limit->rate_per_s);
    pthread_mutex_unlock(&rl->lock);
    return out->allowed;
}

bool keel_ratelimit_lookup(keel_ratelimit *rl, const char *key, keel_ratelimit_limit *limit)
{
    uint64_t h = rl_hash(key);
    pthread_mutex_lock(&rl->lock);
    rl_bucket *b = rl_find(rl, key, h);
    if (b != NULL) {
        *limit = b->limit;
    }
    pthread_mutex_unlock(&rl->lock);
    return b != NULL;
}

void keel_ratelimit_configure(keel_ratelimit *rl, const char *key,
                              const keel_ratelimit_limit *limit)
{
    uint64_t h = rl_hash(key);
    pthread_mutex_lock(&rl->lock);
    rl_bucket *b = rl_find(rl, key, h);
    if (b != NULL) {
        b->limit = *limit;
        if (b->tokens > limit->burst) {
            b->tokens = limit->burst;
        }
    }
    pthread_mutex_unlock(&rl->lock);
}

size_t keel_ratelimit_size(keel_ratelimit *rl)
{
    pthread_mutex_lock(&rl->lock);
    size_t n = rl->size;
    pthread_mutex_unlock(&rl->lock);
    return n;
}
