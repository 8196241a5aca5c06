/* The sandbox's memory: fault settings, seeded RNGs, charges and idempotency records. */
#include "sim_state.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    char *fingerprint;
    json_t *object;       /* what retrieval returns */
    unsigned resp_status; /* the answer every replay returns, byte for byte */
    char *resp_body;
} sim_record;

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
        int rc = 0;
        if (strcmp(name, "provider") == 0) {
            continue;
        } else if (strcmp(name, "error_rate") == 0) {
            rc = sim_faults_rate_field(v, name, &next.error_rate, err, err_len);
        } else if (strcmp(name, "timeout_after_charge_rate") == 0) {
            rc = sim_faults_rate_field(v, name, &next.timeout_after_charge_rate, err, err_len);
        } else if (strcmp(name, "latency_ms") == 0) {
            rc = sim_faults_ms_field(v, name, SIM_LATENCY_MAX_MS, &next.latency_ms, err, err_len);
        } else if (strcmp(name, "timeout_hold_ms") == 0) {
            rc = sim_faults_ms_field(v, name, SIM_TIMEOUT_HOLD_MAX_MS, &next.timeout_hold_ms, err,
                                     err_len);
        } else if (strcmp(name, "outage") == 0) {
            if (!json_is_boolean(v)) {
                snprintf(err, err_len, "outage must be true or false");
                rc = -1;
            } else {
                next.outage = json_is_true(v);
            }
        } else {
            snprintf(err, err_len,
                     "unknown field %s; the fields are provider, error_rate, latency_ms, "
                     "timeout_after_charge_rate, timeout_hold_ms and outage",
                     name);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    *field = NULL;
    *f = next;
    return 0;
}

json_t *sim_faults_json(const char *provider, const sim_faults *f)
{
    return json_pack("{s:s, s:f, s:I, s:f, s:I, s:b}", "provider", provider, "error_rate",
                     f->error_rate, "latency_ms", (json_int_t)f->latency_ms,
                     "timeout_after_charge_rate", f->timeout_after_charge_rate, "timeout_hold_ms",
                     (json_int_t)f->timeout_hold_ms, "outage", f->outage ? 1 : 0);
}

double sim_rand_unit(uint64_t *rng)
{
    /* The top 53 bits fill a double's mantissa exactly: uniform on [0, 1). */
    return (double)(keel_rand_next(rng) >> 11) * 0x1.0p-53;
}

sim_fault_decision sim_faults_decide(const sim_faults *f, uint64_t *rng)
{
    double u_error = sim_rand_unit(rng);
    double u_timeout = sim_rand_unit(rng);
    sim_fault_decision d = {
        .latency_ms = f->latency_ms,
        .error = u_error < f->error_rate,
        .timeout_after_charge = u_timeout < f->timeout_after_charge_rate,
        .hold_ms = f->timeout_hold_ms,
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
    if (pthread_mutex_init(&st->mu, NULL) != 0)
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
    free(r->fingerprint);
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
    for (size_t i = 0; i < st->nproviders; i++) {
        json_object_clear(st->providers[i].by_key);
        json_object_clear(st->providers[i].by_id);
        st->providers[i].charge_count = 0;
    }
}

void sim_state_free(sim_state *st)
{
    if (st == NULL)
        return;
    sim_state_clear_records(st);
    free(st->records);
    st->records = NULL;
    for (size_t i = 0; i < st->nproviders; i++) {
        json_decref(st->providers[i].by_key);
        json_decref(st->providers[i].by_id);
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
    if (p->by_key == NULL || p->by_id == NULL) {
        json_decref(p->by_key);
        json_decref(p->by_id);
        p->by_key = p->by_id = NULL;
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
    snprintf(r->currency, sizeof(r->currency), "%s", req->currency);
    const char *prefix = req->id_prefix != NULL ? req->id_prefix : "";
    if (oom || strlen(prefix) + 33 > sizeof(r->id)) {
        sim_record_free(r);
        return NULL;
    }
    keel_id_new(prefix, r->id, sizeof(r->id));
    r->view = (sim_charge){
        .provider = p->name,
        .id = r->id,
        .idempotency_key = r->idempotency_key,
        .amount = req->amount,
        .currency = r->currency,
        .source = r->source,
        .description = r->description,
        .metadata = r->metadata,
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

json_t *sim_provider_charge_by_id(sim_provider *p, const char *id)
{
    pthread_mutex_lock(&p->st->mu);
    sim_record *r = sim_provider_lookup(p, p->by_id, id);
    json_t *copy = r != NULL ? json_deep_copy(r->object) : NULL;
    pthread_mutex_unlock(&p->st->mu);
    return copy;
}

json_t *sim_provider_charge_by_key(sim_provider *p, const char *idempotency_key)
{
    pthread_mutex_lock(&p->st->mu);
    sim_record *r = sim_provider_lookup(p, p->by_key, idempotency_key);
    json_t *copy = r != NULL ? json_deep_copy(r->object) : NULL;
    pthread_mutex_unlock(&p->st->mu);
    return copy;
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
        if (r->provider != p)
            continue;
        if (json_array_size(list) == limit) {
            *has_more = true;
            break;
        }
        json_array_append_new(list, json_deep_copy(r->object));
    }
    pthread_mutex_unlock(&p->st->mu);
    return list;
}

size_t sim_provider_charge_count(sim_provider *p)
{
    pthread_mutex_lock(&p->st->mu);
    size_t n = p->charge_count;
    pthread_mutex_unlock(&p->st->mu);
    return n;
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
            "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s?, s:I}", "provider", r->view.provider, "id",
            r->id, "idempotency_key", r->idempotency_key, "amount", (json_int_t)r->view.amount,
            "currency", r->currency, "source", r->source != NULL ? r->source : "", "status",
            sim_charge_status_name(r->view.status), "failure_code", r->failure_code, "created",
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
