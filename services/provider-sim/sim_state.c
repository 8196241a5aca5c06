/* The sandbox's memory: fault settings, seeded RNGs, charges, refunds, scores and
 * idempotency records. */
#include "sim_state.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "keel/clock.h"
#include "keel/id.h"
#include "keel/retry.h"

#define SIM_MAX_PROVIDERS 8

/* One recorded charge: the view handed to render callbacks points into the owned fields. */
typedef struct sim_record {
    sim_charge view;
    sim_provider *provider;
    char id[64];
    char currency[8];
    char *idempotency_key;
    char *source;
    char *description;
    char *failure_code;
    char *failure_message;
    json_t *metadata;
    json_t *attrs;
    char *fingerprint;
    json_t *object;       /* what retrieval returns */
    unsigned resp_status; /* the answer every replay returns, byte for byte */
    char *resp_body;
} sim_record;

/* One recorded refund, shaped like sim_record. */
typedef struct sim_refund_record {
    sim_refund view;
    sim_provider *provider;
    size_t charge_index; /* in st->records */
    char id[64];
    char *idempotency_key; /* NULL when sent without one */
    char *fingerprint;
    json_t *attrs;
    json_t *object;
    unsigned resp_status;
    char *resp_body;
} sim_refund_record;

struct sim_provider {
    sim_state *st;
    char name[SIM_PROVIDER_NAME_MAX + 1];
    size_t index;
    sim_faults faults;
    uint64_t rng;
    /* Bumped by reset so sleepers notice; outage and stop are checked directly. */
    uint64_t wake_epoch;
    /* Maps (jansson objects are hash tables) from idempotency key / charge id to the
     * record's index in st->records. */
    json_t *by_key;
    json_t *by_id;
    size_t charge_count;
    /* The same for refunds, into st->refunds. */
    json_t *refund_by_key;
    json_t *refund_by_id;
    size_t refund_count;
    size_t score_count;
};

struct sim_state {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC, so wall-clock jumps don't stretch sleeps */
    uint64_t seed;
    size_t max_charges;
    bool stopping;
    sim_provider providers[SIM_MAX_PROVIDERS];
    size_t nproviders;
    sim_record **records; /* every provider's charges in creation order: the charge log */
    size_t nrecords;
    size_t cap;
    sim_refund_record **refunds; /* every provider's refunds in creation order */
    size_t nrefunds;
    size_t refund_cap;
    json_t *scores; /* the score log: an array of objects */
};

/* --- fault settings ------------------------------------------------------------------ */

void sim_faults_clear(sim_faults *f)
{
    memset(f, 0, sizeof(*f));
    f->timeout_hold_ms = SIM_TIMEOUT_HOLD_DEFAULT_MS;
}

int sim_rate_parse(const char *text, double *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    /* strtod also takes "nan", "inf" and hex floats; a rate is a plain decimal. */
    for (const char *c = text; *c != '\0'; c++) {
        if (strchr("0123456789.eE+-", *c) == NULL)
            return -1;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < 0.0 || v > 1.0)
        return -1;
    *out = v;
    return 0;
}

static int sim_faults_rate_field(const json_t *v, const char *name, double *out, char *err,
                                 size_t err_len)
{
    if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 1.0) {
        snprintf(err, err_len, "%s must be a number from 0 to 1 (a share of requests)", name);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int sim_faults_ms_field(const json_t *v, const char *name, int64_t max, int64_t *out,
                               char *err, size_t err_len)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        snprintf(err, err_len, "%s must be an integer number of milliseconds from 0 to %lld", name,
                 (long long)max);
        return -1;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int sim_latency_distribution_parse(const char *text, sim_latency_distribution *out)
{
    if (text != NULL && strcmp(text, "uniform") == 0) {
        *out = SIM_LATENCY_UNIFORM;
        return 0;
    }
    if (text != NULL && strcmp(text, "exponential") == 0) {
        *out = SIM_LATENCY_EXPONENTIAL;
        return 0;
    }
    return -1;
}

const char *sim_latency_distribution_name(sim_latency_distribution d)
{
    return d == SIM_LATENCY_EXPONENTIAL ? "exponential" : "uniform";
}

/* Applies one field of a fault patch to next. Returns 0, or -1 with a message in err. */
static int sim_faults_patch_field(sim_faults *next, const char *name, const json_t *v, char *err,
                                  size_t err_len)
{
    if (strcmp(name, "provider") == 0)
        return 0;
    if (strcmp(name, "error_rate") == 0)
        return sim_faults_rate_field(v, name, &next->error_rate, err, err_len);
    if (strcmp(name, "timeout_after_charge_rate") == 0)
        return sim_faults_rate_field(v, name, &next->timeout_after_charge_rate, err, err_len);
    if (strcmp(name, "decline_rate") == 0)
        return sim_faults_rate_field(v, name, &next->decline_rate, err, err_len);
    if (strcmp(name, "latency_ms") == 0)
        return sim_faults_ms_field(v, name, SIM_LATENCY_MAX_MS, &next->latency_ms, err, err_len);
    if (strcmp(name, "latency_jitter_ms") == 0)
        return sim_faults_ms_field(v, name, SIM_LATENCY_MAX_MS, &next->latency_jitter_ms, err,
                                   err_len);
    if (strcmp(name, "timeout_hold_ms") == 0)
        return sim_faults_ms_field(v, name, SIM_TIMEOUT_HOLD_MAX_MS, &next->timeout_hold_ms, err,
                                   err_len);
    if (strcmp(name, "latency_distribution") == 0) {
        if (sim_latency_distribution_parse(json_string_value(v), &next->latency_distribution) !=
            0) {
            snprintf(err, err_len, "latency_distribution must be \"uniform\" or \"exponential\"");
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "outage") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(err, err_len, "outage must be true or false");
            return -1;
        }
        next->outage = json_is_true(v);
        return 0;
    }
    snprintf(err, err_len,
             "unknown field %.60s; the fields are provider, error_rate, latency_ms, "
             "latency_jitter_ms, latency_distribution, timeout_after_charge_rate, "
             "timeout_hold_ms, decline_rate and outage",
             name);
    return -1;
}

int sim_faults_patch(sim_faults *f, const json_t *obj, const char **field, char *err,
                     size_t err_len)
{
    if (!json_is_object(obj)) {
        *field = NULL;
        snprintf(err, err_len, "the fault settings must be a JSON object");
        return -1;
    }
    sim_faults next = *f;
    const char *name;
    json_t *v;
    /* json_object_foreach takes a non-const object but does not modify it. */
    json_object_foreach((json_t *)obj, name, v)
    {
        *field = name;
        if (sim_faults_patch_field(&next, name, v, err, err_len) != 0)
            return -1;
    }
    *field = NULL;
    *f = next;
    return 0;
}

json_t *sim_faults_json(const char *provider, const sim_faults *f)
{
    return json_pack("{s:s, s:f, s:I, s:I, s:s, s:f, s:I, s:f, s:b}", "provider", provider,
                     "error_rate", f->error_rate, "latency_ms", (json_int_t)f->latency_ms,
                     "latency_jitter_ms", (json_int_t)f->latency_jitter_ms, "latency_distribution",
                     sim_latency_distribution_name(f->latency_distribution),
                     "timeout_after_charge_rate", f->timeout_after_charge_rate, "timeout_hold_ms",
                     (json_int_t)f->timeout_hold_ms, "decline_rate", f->decline_rate, "outage",
                     f->outage ? 1 : 0);
}

double sim_rand_unit(uint64_t *rng)
{
    /* The top 53 bits fill a double's mantissa exactly: uniform on [0, 1). */
    return (double)(keel_rand_next(rng) >> 11) * 0x1.0p-53;
}

/* The random part of the latency for one uniform draw u in [0, 1). */
static int64_t sim_faults_jitter(const sim_faults *f, double u)
{
    if (f->latency_jitter_ms <= 0)
        return 0;
    double extra = f->latency_distribution == SIM_LATENCY_EXPONENTIAL
                       ? -log(1.0 - u) * (double)f->latency_jitter_ms /* 1 - u is in (0, 1] */
                       : u * (double)(f->latency_jitter_ms + 1);
    return extra >= (double)SIM_LATENCY_MAX_MS ? SIM_LATENCY_MAX_MS : (int64_t)extra;
}

sim_fault_decision sim_faults_decide(const sim_faults *f, uint64_t *rng)
{
    double u_error = sim_rand_unit(rng);
    double u_timeout = sim_rand_unit(rng);
    double u_latency = sim_rand_unit(rng);
    double u_decline = sim_rand_unit(rng);
    int64_t latency = f->latency_ms + sim_faults_jitter(f, u_latency);
    sim_fault_decision d = {
        .latency_ms = latency > SIM_LATENCY_MAX_MS ? SIM_LATENCY_MAX_MS : latency,
        .error = u_error < f->error_rate,
        .timeout_after_charge = u_timeout < f->timeout_after_charge_rate,
        .hold_ms = f->timeout_hold_ms,
        .decline = u_decline < f->decline_rate,
    };
    return d;
}

/* --- state ------------------------------------------------------------------------- */

/* Spreads (seed, provider index) over 64 bits (splitmix64's finalizer) so each provider
 * gets its own reproducible stream; xorshift needs a nonzero state. */
static uint64_t sim_state_rng_seed(uint64_t seed, size_t index)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z != 0 ? z : 0x2545F4914F6CDD1DULL;
}

sim_state *sim_state_new(uint64_t seed, size_t max_charges)
{
    sim_state *st = calloc(1, sizeof(*st));
    pthread_condattr_t attr;
    bool attr_ok = false, mu_ok = false;
    if (st == NULL)
        goto fail;
    st->seed = seed;
    st->max_charges = max_charges != 0 ? max_charges : SIM_STATE_DEFAULT_MAX_CHARGES;
    st->scores = json_array();
    if (st->scores == NULL || pthread_mutex_init(&st->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    attr_ok = true;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&st->wake, &attr) != 0)
        goto fail;
    pthread_condattr_destroy(&attr);
    return st;
fail:
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (mu_ok)
        pthread_mutex_destroy(&st->mu);
    if (st != NULL)
        json_decref(st->scores);
    free(st);
    return NULL;
}

static void sim_record_free(sim_record *r)
{
    if (r == NULL)
        return;
    free(r->idempotency_key);
    free(r->source);
    free(r->description);
    free(r->failure_code);
    free(r->failure_message);
    json_decref(r->metadata);
    json_decref(r->attrs);
    free(r->fingerprint);
    json_decref(r->object);
    free(r->resp_body);
    free(r);
}

static void sim_refund_record_free(sim_refund_record *r)
{
    if (r == NULL)
        return;
    free(r->idempotency_key);
    free(r->fingerprint);
    json_decref(r->attrs);
    json_decref(r->object);
    free(r->resp_body);
    free(r);
}

/* Drops every record; the caller holds the lock (or is the only user). */
static void sim_state_clear_records(sim_state *st)
{
    for (size_t i = 0; i < st->nrecords; i++) {
        sim_record_free(st->records[i]);
        st->records[i] = NULL;
    }
    st->nrecords = 0;
    for (size_t i = 0; i < st->nrefunds; i++) {
        sim_refund_record_free(st->refunds[i]);
        st->refunds[i] = NULL;
    }
    st->nrefunds = 0;
    json_array_clear(st->scores);
    for (size_t i = 0; i < st->nproviders; i++) {
        sim_provider *p = &st->providers[i];
        json_object_clear(p->by_key);
        json_object_clear(p->by_id);
        json_object_clear(p->refund_by_key);
        json_object_clear(p->refund_by_id);
        p->charge_count = 0;
        p->refund_count = 0;
        p->score_count = 0;
    }
}

void sim_state_free(sim_state *st)
{
    if (st == NULL)
        return;
    sim_state_clear_records(st);
    free(st->records);
    st->records = NULL;
    free(st->refunds);
    st->refunds = NULL;
    json_decref(st->scores);
    st->scores = NULL;
    for (size_t i = 0; i < st->nproviders; i++) {
        json_decref(st->providers[i].by_key);
        json_decref(st->providers[i].by_id);
        json_decref(st->providers[i].refund_by_key);
        json_decref(st->providers[i].refund_by_id);
    }
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

sim_provider *sim_state_add_provider(sim_state *st, const char *name, const sim_faults *initial)
{
    if (name == NULL || *name == '\0' || strlen(name) > SIM_PROVIDER_NAME_MAX ||
        st->nproviders == SIM_MAX_PROVIDERS || sim_state_provider(st, name) != NULL)
        return NULL;
    sim_provider *p = &st->providers[st->nproviders];
    memset(p, 0, sizeof(*p));
    p->by_key = json_object();
    p->by_id = json_object();
    p->refund_by_key = json_object();
    p->refund_by_id = json_object();
    if (p->by_key == NULL || p->by_id == NULL || p->refund_by_key == NULL ||
        p->refund_by_id == NULL) {
        json_decref(p->by_key);
        json_decref(p->by_id);
        json_decref(p->refund_by_key);
        json_decref(p->refund_by_id);
        p->by_key = p->by_id = p->refund_by_key = p->refund_by_id = NULL;
        return NULL;
    }
    p->st = st;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->index = st->nproviders;
    if (initial != NULL)
        p->faults = *initial;
    else
        sim_faults_clear(&p->faults);
    p->rng = sim_state_rng_seed(st->seed, p->index);
    st->nproviders++;
    return p;
}

sim_provider *sim_state_provider(sim_state *st, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < st->nproviders; i++) {
        if (strcmp(st->providers[i].name, name) == 0)
            return &st->providers[i];
    }
    return NULL;
}

size_t sim_state_provider_count(const sim_state *st)
{
    return st->nproviders;
}

sim_provider *sim_state_provider_at(sim_state *st, size_t i)
{
    return i < st->nproviders ? &st->providers[i] : NULL;
}

const char *sim_provider_name(const sim_provider *p)
{
    return p->name;
}

sim_faults sim_provider_faults(sim_provider *p)
{
    pthread_mutex_lock(&p->st->mu);
    sim_faults f = p->faults;
    pthread_mutex_unlock(&p->st->mu);
    return f;
}

/* Caller holds the lock. */
static void sim_provider_store_faults(sim_provider *p, const sim_faults *f)
{
    bool outage_began = f->outage && !p->faults.outage;
    p->faults = *f;
    if (outage_began)
        pthread_cond_broadcast(&p->st->wake);
}

void sim_provider_set_faults(sim_provider *p, const sim_faults *f)
{
    pthread_mutex_lock(&p->st->mu);
    sim_provider_store_faults(p, f);
    pthread_mutex_unlock(&p->st->mu);
}

int sim_provider_patch_faults(sim_provider *p, const json_t *obj, sim_faults *after,
                              const char **field, char *err, size_t err_len)
{
    pthread_mutex_lock(&p->st->mu);
    sim_faults next = p->faults;
    int rc = sim_faults_patch(&next, obj, field, err, err_len);
    if (rc == 0) {
        sim_provider_store_faults(p, &next);
        *after = next;
    }
    pthread_mutex_unlock(&p->st->mu);
    return rc;
}

sim_fault_decision sim_provider_decide(sim_provider *p)
{
    pthread_mutex_lock(&p->st->mu);
    sim_fault_decision d = sim_faults_decide(&p->faults, &p->rng);
    pthread_mutex_unlock(&p->st->mu);
    return d;
}

bool sim_provider_wait(sim_provider *p, int64_t ms)
{
    if (ms <= 0)
        return false;
    sim_state *st = p->st;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    bool cut = false;
    pthread_mutex_lock(&st->mu);
    uint64_t epoch = p->wake_epoch;
    for (;;) {
        /* Checked under the lock that set_faults/reset/interrupt take, so a wake-up that
         * happens before this thread starts waiting is not missed. */
        if (st->stopping || p->faults.outage || p->wake_epoch != epoch) {
            cut = true;
            break;
        }
        if (pthread_cond_timedwait(&st->wake, &st->mu, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&st->mu);
    return cut;
}

void sim_state_interrupt(sim_state *st)
{
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->mu);
}

void sim_state_reset(sim_state *st)
{
    pthread_mutex_lock(&st->mu);
    sim_state_clear_records(st);
    for (size_t i = 0; i < st->nproviders; i++) {
        sim_provider *p = &st->providers[i];
        sim_faults_clear(&p->faults);
        p->rng = sim_state_rng_seed(st->seed, p->index);
        p->wake_epoch++;
    }
    pthread_cond_broadcast(&st->wake);
    pthread_mutex_unlock(&st->mu);
}

/* --- charges ----------------------------------------------------------------------- */

const char *sim_charge_status_name(sim_charge_status s)
{
    return s == SIM_CHARGE_SUCCEEDED ? "succeeded" : "failed";
}

void sim_response_clear(sim_response *r)
{
    free(r->body);
    r->body = NULL;
    r->status = 0;
    r->charge_id[0] = '\0';
    r->refund_id[0] = '\0';
    r->remaining = 0;
}

/* Writes a new id into out (at least 64 bytes): prefix + 32 hex digits, or with numeric a
 * decimal integer in [10^9, 2^53) not yet in map (JSON numbers stay exact below 2^53).
 * Returns 0, or -1 when the prefix is too long or no free number was found. Caller holds
 * the lock. */
static int sim_state_new_id(json_t *map, const char *prefix, bool numeric, char *out,
                            size_t out_len)
{
    if (!numeric) {
        if (prefix == NULL)
            prefix = "";
        if (strlen(prefix) + 33 > out_len)
            return -1;
        keel_id_new(prefix, out, out_len);
        return 0;
    }
    /* Random rather than sequential so ids from a restarted sandbox do not repeat old ones;
     * a collision (unlikely: 2^52 values) just draws again, a bounded number of times. */
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = keel_rand_next(&(uint64_t){(uint64_t)keel_clock_now_ms() + (uint64_t)attempt});
        uint64_t v = UINT64_C(1000000000) + r % ((UINT64_C(1) << 53) - UINT64_C(1000000000));
        snprintf(out, out_len, "%llu", (unsigned long long)v);
        if (json_object_get(map, out) == NULL)
            return 0;
    }
    return -1;
}

static char *sim_strdup_or_null(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *oom = true;
    return copy;
}

/* Builds a record (not yet rendered) from the request; NULL on OOM. */
static sim_record *sim_record_new(sim_provider *p, const sim_charge_request *req)
{
    sim_record *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    bool oom = false;
    r->provider = p;
    r->idempotency_key = sim_strdup_or_null(req->idempotency_key, &oom);
    r->source = sim_strdup_or_null(req->source, &oom);
    r->description = sim_strdup_or_null(req->description, &oom);
    r->failure_code = sim_strdup_or_null(req->failure_code, &oom);
    r->failure_message = sim_strdup_or_null(req->failure_message, &oom);
    r->fingerprint = sim_strdup_or_null(req->fingerprint, &oom);
    if (req->metadata != NULL) {
        /* json_deep_copy takes a const pointer in jansson >= 2.10. */
        r->metadata = json_deep_copy(req->metadata);
        if (r->metadata == NULL)
            oom = true;
    }
    r->attrs = req->attrs != NULL ? json_deep_copy(req->attrs) : json_object();
    if (r->attrs == NULL)
        oom = true;
    snprintf(r->currency, sizeof(r->currency), "%s", req->currency);
    if (oom ||
        sim_state_new_id(p->by_id, req->id_prefix, req->numeric_id, r->id, sizeof(r->id)) != 0) {
        sim_record_free(r);
        return NULL;
    }
    r->view = (sim_charge){
        .provider = p->name,
        .id = r->id,
        .idempotency_key = r->idempotency_key,
        .amount = req->amount,
        .currency = r->currency,
        .source = r->source,
        .description = r->description,
        .metadata = r->metadata,
        .attrs = r->attrs,
        .status = req->status,
        .failure_code = r->failure_code,
        .failure_message = r->failure_message,
        .created = keel_clock_now_ms() / 1000,
    };
    return r;
}

/* Copies a stored answer for the caller; false on OOM. Caller holds the lock. */
static bool sim_record_answer(const sim_record *r, sim_response *out)
{
    out->body = strdup(r->resp_body);
    if (out->body == NULL)
        return false;
    out->status = r->resp_status;
    snprintf(out->charge_id, sizeof(out->charge_id), "%s", r->id);
    return true;
}

static sim_record *sim_provider_lookup(sim_provider *p, json_t *map, const char *key)
{
    json_t *idx = json_object_get(map, key);
    if (idx == NULL)
        return NULL;
    return p->st->records[json_integer_value(idx)];
}

sim_charge_result sim_provider_charge(sim_provider *p, const sim_charge_request *req,
                                      sim_charge_render_fn render, void *render_ctx,
                                      sim_response *out)
{
    sim_state *st = p->st;
    sim_charge_result result = SIM_CHARGE_ERROR;
    sim_record *rec = NULL;
    json_t *object = NULL;
    char *body = NULL;
    unsigned status = 0;
    memset(out, 0, sizeof(*out));

    pthread_mutex_lock(&st->mu);
    sim_record *seen = sim_provider_lookup(p, p->by_key, req->idempotency_key);
    if (seen != NULL) {
        if (strcmp(seen->fingerprint, req->fingerprint) != 0) {
            result = SIM_CHARGE_CONFLICT;
            snprintf(out->charge_id, sizeof(out->charge_id), "%s", seen->id);
        } else if (sim_record_answer(seen, out)) {
            result = SIM_CHARGE_REPLAYED;
        }
        goto done;
    }
    if (st->nrecords >= st->max_charges) {
        result = SIM_CHARGE_LOG_FULL;
        goto done;
    }
    if (st->nrecords == st->cap) {
        size_t cap = st->cap != 0 ? st->cap * 2 : 256;
        sim_record **grown = realloc(st->records, cap * sizeof(*grown));
        if (grown == NULL)
            goto done;
        st->records = grown;
        st->cap = cap;
    }
    rec = sim_record_new(p, req);
    if (rec == NULL)
        goto done;
    if (render(&rec->view, &object, &status, &body, render_ctx) != 0 || object == NULL ||
        body == NULL)
        goto done;
    /* The caller's copy is made before anything is stored, so a failure here records
     * nothing instead of recording a charge the caller cannot report. */
    out->body = strdup(body);
    if (out->body == NULL)
        goto done;
    json_t *idx = json_integer((json_int_t)st->nrecords);
    if (idx == NULL)
        goto done;
    /* _nocheck: keys are not required to be UTF-8 here, only unique. */
    if (json_object_set_new_nocheck(p->by_key, rec->idempotency_key, json_incref(idx)) != 0 ||
        json_object_set_new_nocheck(p->by_id, rec->id, json_incref(idx)) != 0) {
        json_object_del(p->by_key, rec->idempotency_key);
        json_decref(idx);
        goto done;
    }
    json_decref(idx);
    out->status = status;
    snprintf(out->charge_id, sizeof(out->charge_id), "%s", rec->id);
    rec->object = object;
    rec->resp_status = status;
    rec->resp_body = body;
    object = NULL;
    body = NULL;
    st->records[st->nrecords++] = rec;
    p->charge_count++;
    result = SIM_CHARGE_CREATED;
    rec = NULL;
done:
    pthread_mutex_unlock(&st->mu);
    if (result == SIM_CHARGE_ERROR)
        sim_response_clear(out);
    sim_record_free(rec);
    json_decref(object);
    free(body);
    return result;
}

/* A deep copy of the resource that map (one of the provider's four) indexes under key, or
 * NULL. refunds says whether the map points into st->refunds or st->records. */
static json_t *sim_provider_copy(sim_provider *p, json_t *map, const char *key, bool refunds)
{
    pthread_mutex_lock(&p->st->mu);
    json_t *idx = key != NULL ? json_object_get(map, key) : NULL;
    const json_t *obj = NULL;
    if (idx != NULL)
        obj = refunds ? p->st->refunds[json_integer_value(idx)]->object
                      : p->st->records[json_integer_value(idx)]->object;
    json_t *copy = obj != NULL ? json_deep_copy(obj) : NULL;
    pthread_mutex_unlock(&p->st->mu);
    return copy;
}

json_t *sim_provider_charge_by_id(sim_provider *p, const char *id)
{
    return sim_provider_copy(p, p->by_id, id, false);
}

json_t *sim_provider_charge_by_key(sim_provider *p, const char *idempotency_key)
{
    return sim_provider_copy(p, p->by_key, idempotency_key, false);
}

/* Appends a copy of obj to a list of at most limit; when full sets *has_more and returns
 * false (stop). */
static bool sim_list_add(json_t *list, const json_t *obj, size_t limit, bool *has_more)
{
    if (json_array_size(list) == limit) {
        *has_more = true;
        return false;
    }
    json_array_append_new(list, json_deep_copy(obj));
    return true;
}

json_t *sim_provider_charges_list(sim_provider *p, size_t limit, bool *has_more)
{
    json_t *list = json_array();
    if (list == NULL)
        return NULL;
    *has_more = false;
    pthread_mutex_lock(&p->st->mu);
    for (size_t i = p->st->nrecords; i > 0; i--) {
        sim_record *r = p->st->records[i - 1];
        if (r->provider == p && !sim_list_add(list, r->object, limit, has_more))
            break;
    }
    pthread_mutex_unlock(&p->st->mu);
    return list;
}

/* Reads one of the provider's counters under the lock. */
static size_t sim_provider_counter(sim_provider *p, const size_t *counter)
{
    pthread_mutex_lock(&p->st->mu);
    size_t n = *counter;
    pthread_mutex_unlock(&p->st->mu);
    return n;
}

size_t sim_provider_charge_count(sim_provider *p)
{
    return sim_provider_counter(p, &p->charge_count);
}

json_t *sim_state_charge_log(sim_state *st, const char *provider, const char *idempotency_key)
{
    json_t *log = json_array();
    if (log == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->nrecords; i++) {
        const sim_record *r = st->records[i];
        if (provider != NULL && strcmp(provider, r->view.provider) != 0)
            continue;
        if (idempotency_key != NULL && strcmp(idempotency_key, r->idempotency_key) != 0)
            continue;
        json_t *entry = json_pack(
            "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s?, s:I, s:I}", "provider", r->view.provider,
            "id", r->id, "idempotency_key", r->idempotency_key, "amount",
            (json_int_t)r->view.amount, "currency", r->currency, "source",
            r->source != NULL ? r->source : "", "status", sim_charge_status_name(r->view.status),
            "failure_code", r->failure_code, "refunded", (json_int_t)r->view.refunded, "created",
            (json_int_t)r->view.created);
        if (entry == NULL || json_array_append_new(log, entry) != 0) {
            json_decref(log);
            log = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return log;
}

/* --- refunds ----------------------------------------------------------------------- */

sim_refund_result sim_refund_check(sim_charge_status status, int64_t charged, int64_t refunded,
                                   int64_t asked, int64_t *granted)
{
    *granted = 0;
    if (status != SIM_CHARGE_SUCCEEDED)
        return SIM_REFUND_NOT_REFUNDABLE;
    int64_t left = charged - refunded;
    if (left <= 0)
        return SIM_REFUND_ALREADY_REFUNDED;
    if (asked < 0 || asked > left)
        return SIM_REFUND_AMOUNT_TOO_LARGE;
    *granted = asked == 0 ? left : asked;
    return SIM_REFUND_CREATED;
}

/* The charge a refund names: by idempotency key first when allowed, then by id. Caller
 * holds the lock. Returns its index in st->records, or -1. */
static long sim_provider_find_charge(sim_provider *p, const char *ref, bool ref_may_be_key)
{
    if (ref == NULL)
        return -1;
    json_t *idx = ref_may_be_key ? json_object_get(p->by_key, ref) : NULL;
    if (idx == NULL)
        idx = json_object_get(p->by_id, ref);
    return idx != NULL ? (long)json_integer_value(idx) : -1;
}

static sim_refund_record *sim_refund_lookup(sim_provider *p, json_t *map, const char *key)
{
    json_t *idx = key != NULL ? json_object_get(map, key) : NULL;
    return idx != NULL ? p->st->refunds[json_integer_value(idx)] : NULL;
}

/* Builds a refund record (not yet rendered); NULL on OOM. Caller holds the lock. */
static sim_refund_record *sim_refund_record_new(sim_provider *p, const sim_refund_request *req,
                                                size_t charge_index, int64_t amount)
{
    sim_refund_record *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    bool oom = false;
    r->provider = p;
    r->charge_index = charge_index;
    r->idempotency_key = sim_strdup_or_null(req->idempotency_key, &oom);
    r->fingerprint = sim_strdup_or_null(req->fingerprint, &oom);
    r->attrs = req->attrs != NULL ? json_deep_copy(req->attrs) : json_object();
    if (oom || r->attrs == NULL ||
        sim_state_new_id(p->refund_by_id, req->id_prefix, req->numeric_id, r->id, sizeof(r->id)) !=
            0) {
        sim_refund_record_free(r);
        return NULL;
    }
    r->view = (sim_refund){
        .provider = p->name,
        .id = r->id,
        .idempotency_key = r->idempotency_key,
        .charge = &p->st->records[charge_index]->view,
        .amount = amount,
        .attrs = r->attrs,
        .created = keel_clock_now_ms() / 1000,
    };
    return r;
}

/* Stores the refund's indexes in the provider's maps; false on OOM (nothing stored).
 * Caller holds the lock. */
static bool sim_refund_index(sim_provider *p, const sim_refund_record *r, size_t index)
{
    json_t *idx = json_integer((json_int_t)index);
    if (idx == NULL)
        return false;
    bool ok = json_object_set_new_nocheck(p->refund_by_id, r->id, json_incref(idx)) == 0;
    if (ok && r->idempotency_key != NULL &&
        json_object_set_new_nocheck(p->refund_by_key, r->idempotency_key, json_incref(idx)) != 0) {
        json_object_del(p->refund_by_id, r->id);
        ok = false;
    }
    json_decref(idx);
    return ok;
}

sim_refund_result sim_provider_refund(sim_provider *p, const sim_refund_request *req,
                                      sim_refund_render_fn render, void *render_ctx,
                                      sim_response *out)
{
    sim_state *st = p->st;
    sim_refund_result result = SIM_REFUND_ERROR;
    sim_refund_record *rec = NULL;
    json_t *object = NULL;
    char *body = NULL;
    unsigned status = 0;
    memset(out, 0, sizeof(*out));

    pthread_mutex_lock(&st->mu);
    sim_refund_record *seen = sim_refund_lookup(p, p->refund_by_key, req->idempotency_key);
    if (seen != NULL) {
        snprintf(out->refund_id, sizeof(out->refund_id), "%s", seen->id);
        snprintf(out->charge_id, sizeof(out->charge_id), "%s", seen->view.charge->id);
        if (req->fingerprint == NULL || strcmp(seen->fingerprint, req->fingerprint) != 0) {
            result = SIM_REFUND_CONFLICT;
        } else {
            out->body = strdup(seen->resp_body);
            out->status = seen->resp_status;
            result = out->body != NULL ? SIM_REFUND_REPLAYED : SIM_REFUND_ERROR;
        }
        goto done;
    }
    long ci = sim_provider_find_charge(p, req->charge_ref, req->ref_may_be_key);
    if (ci < 0) {
        result = SIM_REFUND_NO_CHARGE;
        goto done;
    }
    sim_record *charge = st->records[ci];
    snprintf(out->charge_id, sizeof(out->charge_id), "%s", charge->id);
    out->remaining = charge->view.status == SIM_CHARGE_SUCCEEDED
                         ? charge->view.amount - charge->view.refunded
                         : 0;
    int64_t granted = 0;
    result = sim_refund_check(charge->view.status, charge->view.amount, charge->view.refunded,
                              req->amount, &granted);
    if (result != SIM_REFUND_CREATED)
        goto done;
    result = SIM_REFUND_ERROR;
    if (req->idempotency_key != NULL && req->fingerprint == NULL)
        goto done;
    if (st->nrefunds >= st->max_charges) {
        result = SIM_REFUND_LOG_FULL;
        goto done;
    }
    if (st->nrefunds == st->refund_cap) {
        size_t cap = st->refund_cap != 0 ? st->refund_cap * 2 : 256;
        sim_refund_record **grown = realloc(st->refunds, cap * sizeof(*grown));
        if (grown == NULL)
            goto done;
        st->refunds = grown;
        st->refund_cap = cap;
    }
    rec = sim_refund_record_new(p, req, (size_t)ci, granted);
    if (rec == NULL)
        goto done;
    /* The render sees the charge as it will be after this refund; undone on failure. */
    charge->view.refunded += granted;
    if (render(&rec->view, &object, &status, &body, render_ctx) != 0 || object == NULL ||
        body == NULL || (out->body = strdup(body)) == NULL ||
        !sim_refund_index(p, rec, st->nrefunds)) {
        charge->view.refunded -= granted;
        goto done;
    }
    out->status = status;
    snprintf(out->refund_id, sizeof(out->refund_id), "%s", rec->id);
    rec->object = object;
    rec->resp_status = status;
    rec->resp_body = body;
    object = NULL;
    body = NULL;
    st->refunds[st->nrefunds++] = rec;
    p->refund_count++;
    rec = NULL;
    result = SIM_REFUND_CREATED;
done:
    pthread_mutex_unlock(&st->mu);
    if (result == SIM_REFUND_ERROR) {
        free(out->body);
        out->body = NULL;
        out->status = 0;
    }
    sim_refund_record_free(rec);
    json_decref(object);
    free(body);
    return result;
}

json_t *sim_provider_refund_by_id(sim_provider *p, const char *id)
{
    return sim_provider_copy(p, p->refund_by_id, id, true);
}

json_t *sim_provider_refund_by_key(sim_provider *p, const char *idempotency_key)
{
    return sim_provider_copy(p, p->refund_by_key, idempotency_key, true);
}

json_t *sim_provider_refunds_list(sim_provider *p, const char *charge_ref, bool ref_may_be_key,
                                  size_t limit, bool *found, bool *has_more)
{
    json_t *list = json_array();
    if (list == NULL)
        return NULL;
    *has_more = false;
    *found = true;
    pthread_mutex_lock(&p->st->mu);
    long ci = charge_ref != NULL ? sim_provider_find_charge(p, charge_ref, ref_may_be_key) : -1;
    if (charge_ref != NULL && ci < 0)
        *found = false;
    for (size_t i = p->st->nrefunds; *found && i > 0; i--) {
        sim_refund_record *r = p->st->refunds[i - 1];
        if (r->provider != p || (ci >= 0 && r->charge_index != (size_t)ci))
            continue;
        if (!sim_list_add(list, r->object, limit, has_more))
            break;
    }
    pthread_mutex_unlock(&p->st->mu);
    return list;
}

size_t sim_provider_refund_count(sim_provider *p)
{
    return sim_provider_counter(p, &p->refund_count);
}

json_t *sim_state_refund_log(sim_state *st, const char *provider, const char *idempotency_key,
                             const char *charge)
{
    json_t *log = json_array();
    if (log == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->nrefunds; i++) {
        const sim_refund_record *r = st->refunds[i];
        const sim_record *c = st->records[r->charge_index];
        if (provider != NULL && strcmp(provider, r->view.provider) != 0)
            continue;
        if (idempotency_key != NULL &&
            (r->idempotency_key == NULL || strcmp(idempotency_key, r->idempotency_key) != 0))
            continue;
        if (charge != NULL && strcmp(charge, c->id) != 0 && strcmp(charge, c->idempotency_key) != 0)
            continue;
        json_t *entry = json_pack(
            "{s:s, s:s, s:s?, s:s, s:s, s:I, s:s, s:s, s:I}", "provider", r->view.provider, "id",
            r->id, "idempotency_key", r->idempotency_key, "charge", c->id, "charge_idempotency_key",
            c->idempotency_key, "amount", (json_int_t)r->view.amount, "currency", c->currency,
            "status", "succeeded", "created", (json_int_t)r->view.created);
        if (entry == NULL || json_array_append_new(log, entry) != 0) {
            json_decref(log);
            log = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return log;
}

/* --- scores ------------------------------------------------------------------------ */

int sim_provider_record_score(sim_provider *p, const json_t *entry)
{
    json_t *copy = json_deep_copy(entry);
    if (copy == NULL || json_object_set_new(copy, "provider", json_string(p->name)) != 0) {
        json_decref(copy);
        return -1;
    }
    int rc = -1;
    pthread_mutex_lock(&p->st->mu);
    if (json_array_size(p->st->scores) < p->st->max_charges &&
        json_array_append_new(p->st->scores, copy) == 0) {
        p->score_count++;
        rc = 0;
        copy = NULL;
    }
    pthread_mutex_unlock(&p->st->mu);
    json_decref(copy);
    return rc;
}

size_t sim_provider_score_count(sim_provider *p)
{
    return sim_provider_counter(p, &p->score_count);
}

json_t *sim_state_score_log(sim_state *st, const char *payment_id)
{
    json_t *log = json_array();
    if (log == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    size_t i;
    json_t *entry;
    json_array_foreach(st->scores, i, entry)
    {
        const char *pid = json_string_value(json_object_get(entry, "payment_id"));
        if (payment_id != NULL && (pid == NULL || strcmp(pid, payment_id) != 0))
            continue;
        if (json_array_append_new(log, json_deep_copy(entry)) != 0) {
            json_decref(log);
            log = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return log;
}

json_t *sim_state_counts(sim_state *st)
{
    json_t *counts = json_object();
    if (counts == NULL)
        return NULL;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->nproviders; i++) {
        const sim_provider *p = &st->providers[i];
        json_t *one =
            json_pack("{s:I, s:I, s:I}", "charges", (json_int_t)p->charge_count, "refunds",
                      (json_int_t)p->refund_count, "scores", (json_int_t)p->score_count);
        if (one == NULL || json_object_set_new(counts, p->name, one) != 0) {
            json_decref(counts);
            counts = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return counts;
}
