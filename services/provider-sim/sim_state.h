/* The sandbox's memory: per-provider fault settings, the seeded RNG, charges, idempotency
 * records and the charge log, shared by every provider API and the /_sim admin endpoints. */
#ifndef SIM_STATE_H
#define SIM_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_LATENCY_MAX_MS 60000
#define SIM_TIMEOUT_HOLD_DEFAULT_MS 30000
#define SIM_TIMEOUT_HOLD_MAX_MS 120000
/* Default cap on charges kept in memory; past it new charges are refused until a reset. */
#define SIM_STATE_DEFAULT_MAX_CHARGES 1000000
/* Longest provider name (e.g. "provider_a", "provider_b", "risk"). */
#define SIM_PROVIDER_NAME_MAX 32

/* --- fault settings (pure) ---------------------------------------------------------- */

/* How the random part of the latency is spread. */
typedef enum sim_latency_distribution {
    SIM_LATENCY_UNIFORM,     /* uniform in [0, latency_jitter_ms] */
    SIM_LATENCY_EXPONENTIAL, /* exponential with mean latency_jitter_ms: a long tail */
} sim_latency_distribution;

/* How one provider misbehaves. All zero/false = a healthy provider. */
typedef struct sim_faults {
    double error_rate;         /* 0..1: share of requests answered 500 before any work */
    int64_t latency_ms;        /* 0..SIM_LATENCY_MAX_MS slept before handling */
    int64_t latency_jitter_ms; /* 0..SIM_LATENCY_MAX_MS random extra, see distribution */
    sim_latency_distribution latency_distribution;
    double timeout_after_charge_rate; /* 0..1: share of charges held after being recorded */
    int64_t timeout_hold_ms;          /* how long such a charge is held before answering */
    double decline_rate;              /* 0..1: share of otherwise good charges declined */
    bool outage;                      /* the provider's listener is closed */
} sim_faults;

/* What the RNG decided for one request. */
typedef struct sim_fault_decision {
    int64_t latency_ms; /* fixed plus jitter, capped at SIM_LATENCY_MAX_MS */
    bool error;
    bool timeout_after_charge;
    int64_t hold_ms;
    bool decline;
} sim_fault_decision;

/* A healthy provider: no error, no latency, no outage, the default hold. */
void sim_faults_clear(sim_faults *f);

/* Parses a rate "0".."1" (a finite decimal). Returns 0, or -1 if text is not one. */
int sim_rate_parse(const char *text, double *out);

/* "uniform" / "exponential"; -1 for anything else. */
int sim_latency_distribution_parse(const char *text, sim_latency_distribution *out);
const char *sim_latency_distribution_name(sim_latency_distribution d);

/* Applies the fields present in obj ("error_rate", "latency_ms", "latency_jitter_ms",
 * "latency_distribution", "timeout_after_charge_rate", "timeout_hold_ms", "decline_rate",
 * "outage"; "provider" is ignored) to f. Every field is validated before
 * any is applied, so on error f is unchanged. Returns 0, or -1 with a message naming the
 * field and the accepted range in err; *field gets the offending field's name. */
int sim_faults_patch(sim_faults *f, const json_t *obj, const char **field, char *err,
                     size_t err_len);

/* {"provider":..,"error_rate":..,"latency_ms":..,"latency_jitter_ms":..,
 *  "latency_distribution":..,"timeout_after_charge_rate":..,"timeout_hold_ms":..,
 *  "decline_rate":..,"outage":..}; the caller owns the reference. */
json_t *sim_faults_json(const char *provider, const sim_faults *f);

/* A uniform double in [0, 1) from the xorshift state (advances it). */
double sim_rand_unit(uint64_t *rng);

/* Draws exactly four numbers from rng whatever the settings (so one seed gives one
 * sequence of decisions even when rates change) and decides error, timeout-after-charge,
 * the latency's jitter and decline. A rate of 0 never fires, 1 always does. */
sim_fault_decision sim_faults_decide(const sim_faults *f, uint64_t *rng);

/* --- state ------------------------------------------------------------------------- */

typedef struct sim_state sim_state;
typedef struct sim_provider sim_provider;

/* seed feeds every provider's RNG (0 is mapped to a fixed nonzero value); max_charges caps
 * the charges kept across providers (0 = SIM_STATE_DEFAULT_MAX_CHARGES). NULL on OOM. */
sim_state *sim_state_new(uint64_t seed, size_t max_charges);
/* Frees everything. No other thread may use the state any more. NULL is fine. */
void sim_state_free(sim_state *st);

/* Registers a provider before serving starts (not thread-safe against other calls).
 * initial NULL = healthy. The returned handle lives as long as the state. NULL when the
 * name is empty, too long, already registered, or the table is full. */
sim_provider *sim_state_add_provider(sim_state *st, const char *name, const sim_faults *initial);
/* The provider of that name, or NULL. */
sim_provider *sim_state_provider(sim_state *st, const char *name);
size_t sim_state_provider_count(const sim_state *st);
sim_provider *sim_state_provider_at(sim_state *st, size_t i);
const char *sim_provider_name(const sim_provider *p);

/* A copy of the current settings. */
sim_faults sim_provider_faults(sim_provider *p);
/* Replaces the settings. Turning the outage on wakes requests that are sleeping in
 * sim_provider_wait so the listener can close without waiting for them. */
void sim_provider_set_faults(sim_provider *p, const sim_faults *f);
/* Applies a JSON patch (see sim_faults_patch) atomically; on success *after gets the new
 * settings. Same return and err as sim_faults_patch. */
int sim_provider_patch_faults(sim_provider *p, const json_t *obj, sim_faults *after,
                              const char **field, char *err, size_t err_len);
/* Decides the faults of one request with the provider's seeded RNG. */
sim_fault_decision sim_provider_decide(sim_provider *p);

/* Sleeps up to ms. Returns false after the full time, true when cut short because the
 * provider went into an outage, the state was reset, or sim_state_interrupt was called. */
bool sim_provider_wait(sim_provider *p, int64_t ms);

/* Wakes every sleeping request and makes later waits return at once (for shutdown). */
void sim_state_interrupt(sim_state *st);

/* Forgets every charge of every provider, makes every provider healthy, reseeds the RNGs
 * from the start seed (so a test sees the same decisions again) and wakes sleepers. */
void sim_state_reset(sim_state *st);

/* --- charges ----------------------------------------------------------------------- */

typedef enum sim_charge_status {
    SIM_CHARGE_SUCCEEDED,
    SIM_CHARGE_FAILED,
} sim_charge_status;

/* "succeeded" or "failed". */
const char *sim_charge_status_name(sim_charge_status s);

/* What a provider asks the state to charge. Strings are copied. */
typedef struct sim_charge_request {
    const char *idempotency_key;
    /* The canonical text of the request's parameters: the same key with another
     * fingerprint is a conflict, never a replay. */
    const char *fingerprint;
    const char *id_prefix; /* e.g. "ch_"; the id is prefix + 32 hex digits */
    /* When true the id is instead a decimal integer below 2^53 (JSON-safe), unique in the
     * provider (Paystack-style numeric ids); id_prefix is then ignored. */
    bool numeric_id;
    int64_t amount;
    const char *currency;
    const char *source;
    const char *description; /* NULL = none */
    const json_t *metadata;  /* NULL = none; deep-copied */
    const json_t *attrs;     /* provider-specific fields for the render; NULL = none; copied */
    sim_charge_status status;
    const char *failure_code;    /* NULL when succeeded */
    const char *failure_message; /* NULL when succeeded */
} sim_charge_request;

/* A recorded charge, as the render callback sees it (valid only during the call). */
typedef struct sim_charge {
    const char *provider;
    const char *id;
    const char *idempotency_key;
    int64_t amount;
    const char *currency;
    const char *source;
    const char *description;
    const json_t *metadata;
    const json_t *attrs; /* never NULL (an empty object when none) */
    sim_charge_status status;
    const char *failure_code;
    const char *failure_message;
    int64_t created;  /* Unix seconds */
    int64_t refunded; /* refunded so far, in minor units */
} sim_charge;

/* Turns a new charge into the provider's API shape: *object is the resource that
 * retrieval returns (the state takes the reference); *status and *body (malloc'd, the
 * state takes it) are the answer that the first call and every replay return. Runs under
 * the state's lock: no blocking. Returns 0, or -1 (then nothing is recorded). */
typedef int (*sim_charge_render_fn)(const sim_charge *charge, json_t **object, unsigned *status,
                                    char **body, void *ctx);

typedef enum sim_charge_result {
    SIM_CHARGE_CREATED,  /* a new charge was recorded; out holds its answer */
    SIM_CHARGE_REPLAYED, /* the key was seen with the same parameters; out holds the answer */
    SIM_CHARGE_CONFLICT, /* the key was seen with other parameters; nothing recorded */
    SIM_CHARGE_LOG_FULL, /* max_charges reached; nothing recorded */
    SIM_CHARGE_ERROR,    /* out of memory or the render failed; nothing recorded */
} sim_charge_result;

/* A stored answer handed to the caller (its own copy). */
typedef struct sim_response {
    unsigned status;
    char *body;
    char charge_id[64];
    char refund_id[64]; /* refunds only: the refund's id */
    int64_t remaining;  /* refunds only: what the charge still had to refund before this call */
} sim_response;
void sim_response_clear(sim_response *r);

/* Atomically looks the key up and either replays the stored answer or records a new
 * charge and its answer. Concurrent calls with one key create one charge. */
sim_charge_result sim_provider_charge(sim_provider *p, const sim_charge_request *req,
                                      sim_charge_render_fn render, void *render_ctx,
                                      sim_response *out);

/* The stored resource of a charge (a deep copy the caller owns), or NULL. */
json_t *sim_provider_charge_by_id(sim_provider *p, const char *id);
json_t *sim_provider_charge_by_key(sim_provider *p, const char *idempotency_key);
/* Up to limit resources, newest first (a new array the caller owns); *has_more tells
 * whether older ones were left out. */
json_t *sim_provider_charges_list(sim_provider *p, size_t limit, bool *has_more);
/* Charges recorded by this provider. */
size_t sim_provider_charge_count(sim_provider *p);

/* The charge log in creation order, across providers: [{"provider","id","idempotency_key",
 * "amount","currency","source","status","failure_code","refunded","created"}]. provider and
 * key filter when not NULL. A new array the caller owns; NULL on OOM. */
json_t *sim_state_charge_log(sim_state *st, const char *provider, const char *idempotency_key);

/* --- refunds ----------------------------------------------------------------------- */

/* What a provider asks the state to refund. Strings are copied. */
typedef struct sim_refund_request {
    /* NULL = no key: never a replay, every call is a new refund attempt. */
    const char *idempotency_key;
    const char *fingerprint; /* canonical parameters; required with a key */
    /* The charge: its id, or (when ref_may_be_key) first its idempotency key. */
    const char *charge_ref;
    bool ref_may_be_key;
    const char *id_prefix; /* e.g. "re_" */
    bool numeric_id;       /* see sim_charge_request */
    int64_t amount;        /* > 0, or 0 = everything not yet refunded */
    const json_t *attrs;   /* provider-specific fields for the render; NULL = none; copied */
} sim_refund_request;

/* A recorded refund, as the render callback sees it (valid only during the call). */
typedef struct sim_refund {
    const char *provider;
    const char *id;
    const char *idempotency_key; /* NULL when sent without one */
    const sim_charge *charge;    /* its refunded field already includes this refund */
    int64_t amount;
    const json_t *attrs; /* never NULL (an empty object when none) */
    int64_t created;     /* Unix seconds */
} sim_refund;

typedef int (*sim_refund_render_fn)(const sim_refund *refund, json_t **object, unsigned *status,
                                    char **body, void *ctx);

typedef enum sim_refund_result {
    SIM_REFUND_CREATED,
    SIM_REFUND_REPLAYED,
    SIM_REFUND_CONFLICT,         /* key seen with other parameters; out->refund_id names it */
    SIM_REFUND_NO_CHARGE,        /* no charge under that reference */
    SIM_REFUND_NOT_REFUNDABLE,   /* the charge failed */
    SIM_REFUND_ALREADY_REFUNDED, /* nothing left to refund */
    SIM_REFUND_AMOUNT_TOO_LARGE, /* amount > what is left; out->remaining says how much is */
    SIM_REFUND_LOG_FULL,
    SIM_REFUND_ERROR,
} sim_refund_result;

/* The refund rule on its own (pure): amount asked (0 = all that is left) against what was
 * charged and already refunded. On SIM_REFUND_CREATED *granted is the amount to refund. */
sim_refund_result sim_refund_check(sim_charge_status status, int64_t charged, int64_t refunded,
                                   int64_t asked, int64_t *granted);

/* Atomically replays (same key, same fingerprint), or checks the charge and records the
 * refund and its answer. out->charge_id always names the charge when one was found, and
 * out->remaining is what was left to refund before this call. */
sim_refund_result sim_provider_refund(sim_provider *p, const sim_refund_request *req,
                                      sim_refund_render_fn render, void *render_ctx,
                                      sim_response *out);

/* The stored resource of a refund (a deep copy the caller owns), or NULL. */
json_t *sim_provider_refund_by_id(sim_provider *p, const char *id);
json_t *sim_provider_refund_by_key(sim_provider *p, const char *idempotency_key);
/* Refunds newest first, of one charge (charge_ref resolved like the request's) or of all
 * when charge_ref is NULL; up to limit. *found is false when charge_ref names no charge.
 * A new array the caller owns; NULL on OOM. */
json_t *sim_provider_refunds_list(sim_provider *p, const char *charge_ref, bool ref_may_be_key,
                                  size_t limit, bool *found, bool *has_more);
size_t sim_provider_refund_count(sim_provider *p);

/* The refund log in creation order: [{"provider","id","idempotency_key","charge",
 * "charge_idempotency_key","amount","currency","status":"succeeded","created"}]. Filters
 * apply when not NULL; charge matches the charge's id or its idempotency key. */
json_t *sim_state_refund_log(sim_state *st, const char *provider, const char *idempotency_key,
                             const char *charge);

/* --- scores (risk) --------------------------------------------------------------------- */

/* Appends a copy of entry (any object; "payment_id" is what the log filters on) to the
 * score log under provider p. Returns 0, or -1 when the log is full or on OOM. */
int sim_provider_record_score(sim_provider *p, const json_t *entry);
size_t sim_provider_score_count(sim_provider *p);
/* The score log in order, filtered by payment_id when not NULL; each entry gets
 * "provider". A new array the caller owns; NULL on OOM. */
json_t *sim_state_score_log(sim_state *st, const char *payment_id);

/* {"<provider>":{"charges":n,"refunds":n,"scores":n},...}; NULL on OOM. */
json_t *sim_state_counts(sim_state *st);

#endif
