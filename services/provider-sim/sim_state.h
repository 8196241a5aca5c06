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

/* How one provider misbehaves. All zero/false = a healthy provider. */
typedef struct sim_faults {
    double error_rate;                /* 0..1: share of requests answered 500 before any work */
    int64_t latency_ms;               /* 0..SIM_LATENCY_MAX_MS slept before handling */
    double timeout_after_charge_rate; /* 0..1: share of charges held after being recorded */
    int64_t timeout_hold_ms;          /* how long such a charge is held before answering */
    bool outage;                      /* the provider's listener is closed */
} sim_faults;

/* What the RNG decided for one request. */
typedef struct sim_fault_decision {
    int64_t latency_ms;
    bool error;
    bool timeout_after_charge;
    int64_t hold_ms;
} sim_fault_decision;

/* A healthy provider: no error, no latency, no outage, the default hold. */
void sim_faults_clear(sim_faults *f);

/* Parses a rate "0".."1" (a finite decimal). Returns 0, or -1 if text is not one. */
int sim_rate_parse(const char *text, double *out);

/* Applies the fields present in obj ("error_rate", "latency_ms", "timeout_after_charge_rate",
 * "timeout_hold_ms", "outage"; "provider" is ignored) to f. Every field is validated before
 * any is applied, so on error f is unchanged. Returns 0, or -1 with a message naming the
 * field and the accepted range in err; *field gets the offending field's name. */
int sim_faults_patch(sim_faults *f, const json_t *obj, const char **field, char *err,
                     size_t err_len);

/* {"provider":..,"error_rate":..,"latency_ms":..,"timeout_after_charge_rate":..,
 *  "timeout_hold_ms":..,"outage":..}; the caller owns the reference. */
json_t *sim_faults_json(const char *provider, const sim_faults *f);

/* A uniform double in [0, 1) from the xorshift state (advances it). */
double sim_rand_unit(uint64_t *rng);

/* Draws exactly two numbers from rng whatever the settings (so one seed gives one sequence
 * of decisions even when rates change) and decides error and timeout-after-charge. A rate
 * of 0 never fires, 1 always does. */
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
    int64_t amount;
    const char *currency;
    const char *source;
    const char *description; /* NULL = none */
    const json_t *metadata;  /* NULL = none; deep-copied */
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
    sim_charge_status status;
    const char *failure_code;
    const char *failure_message;
    int64_t created; /* Unix seconds */
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
 * "amount","currency","source","status","failure_code","created"}]. provider and key
 * filter when not NULL. A new array the caller owns; NULL on OOM. */
json_t *sim_state_charge_log(sim_state *st, const char *provider, const char *idempotency_key);

#endif
