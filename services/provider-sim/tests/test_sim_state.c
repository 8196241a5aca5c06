/* Unit tests for sim_state: fault settings and decisions, idempotent charges, waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "sim_state.h"

/* --- fault settings ---------------------------------------------------------------- */

static void test_rate_parse(void **state)
{
    (void)state;
    double v = -1;
    assert_int_equal(sim_rate_parse("0", &v), 0);
    assert_true(v == 0.0);
    assert_int_equal(sim_rate_parse("1", &v), 0);
    assert_true(v == 1.0);
    assert_int_equal(sim_rate_parse("0.25", &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(sim_rate_parse("1e-1", &v), 0);
    assert_true(v == 0.1);
    v = 0.5;
    const char *bad[] = {"", "1.01", "-0.1", "nan", "inf", "0x1p-1", "abc", "0.5 ", " 0.5", "1e5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sim_rate_parse(bad[i], &v), -1);
        assert_true(v == 0.5); /* untouched on error */
    }
    assert_int_equal(sim_rate_parse(NULL, &v), -1);
}

static void test_faults_patch_applies_only_given_fields(void **state)
{
    (void)state;
    sim_faults f;
    sim_faults_clear(&f);
    f.latency_ms = 7;
    json_t *patch =
        json_pack("{s:s, s:f, s:b}", "provider", "provider_a", "error_rate", 0.5, "outage", 1);
    const char *field = "x";
    char err[256];
    assert_int_equal(sim_faults_patch(&f, patch, &field, err, sizeof(err)), 0);
    assert_null(field);
    assert_true(f.error_rate == 0.5);
    assert_true(f.outage);
    assert_int_equal(f.latency_ms, 7); /* not given: kept */
    assert_true(f.timeout_after_charge_rate == 0.0);
    assert_int_equal(f.timeout_hold_ms, SIM_TIMEOUT_HOLD_DEFAULT_MS);
    json_decref(patch);

    /* An integer rate is a number too. */
    patch = json_pack("{s:i}", "timeout_after_charge_rate", 1);
    assert_int_equal(sim_faults_patch(&f, patch, &field, err, sizeof(err)), 0);
    assert_true(f.timeout_after_charge_rate == 1.0);
    json_decref(patch);
}

static void test_faults_patch_rejects_without_change(void **state)
{
    (void)state;
    sim_faults f, before;
    sim_faults_clear(&f);
    before = f;
    const char *field = NULL;
    char err[256];
    struct {
        json_t *patch;
        const char *field;
    } cases[] = {
        /* the valid latency must not be applied when a later field is bad */
        {json_pack("{s:i, s:f}", "latency_ms", 5, "error_rate", 1.5), "error_rate"},
        {json_pack("{s:i}", "latency_ms", -1), "latency_ms"},
        {json_pack("{s:i}", "latency_ms", SIM_LATENCY_MAX_MS + 1), "latency_ms"},
        {json_pack("{s:f}", "latency_ms", 1.5), "latency_ms"},
        {json_pack("{s:i}", "timeout_hold_ms", SIM_TIMEOUT_HOLD_MAX_MS + 1), "timeout_hold_ms"},
        {json_pack("{s:s}", "error_rate", "0.5"), "error_rate"},
        {json_pack("{s:i}", "outage", 1), "outage"},
        {json_pack("{s:b}", "outrage", 1), "outrage"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_int_equal(sim_faults_patch(&f, cases[i].patch, &field, err, sizeof(err)), -1);
        assert_non_null(field);
        assert_string_equal(field, cases[i].field);
        assert_true(strlen(err) > 0);
        assert_memory_equal(&f, &before, sizeof(f));
        json_decref(cases[i].patch);
    }
    json_t *arr = json_array();
    assert_int_equal(sim_faults_patch(&f, arr, &field, err, sizeof(err)), -1);
    json_decref(arr);
}

static void test_faults_json(void **state)
{
    (void)state;
    sim_faults f;
    sim_faults_clear(&f);
    f.error_rate = 0.25;
    f.outage = true;
    json_t *j = sim_faults_json("provider_a", &f);
    assert_string_equal(json_string_value(json_object_get(j, "provider")), "provider_a");
    assert_true(json_real_value(json_object_get(j, "error_rate")) == 0.25);
    assert_true(json_is_true(json_object_get(j, "outage")));
    assert_int_equal(json_integer_value(json_object_get(j, "timeout_hold_ms")),
                     SIM_TIMEOUT_HOLD_DEFAULT_MS);
    json_decref(j);
}

static void test_decide_extremes(void **state)
{
    (void)state;
    uint64_t rng = 42;
    sim_faults never, always;
    sim_faults_clear(&never);
    sim_faults_clear(&always);
    always.error_rate = 1.0;
    always.timeout_after_charge_rate = 1.0;
    always.latency_ms = 30;
    for (int i = 0; i < 10000; i++) {
        sim_fault_decision d = sim_faults_decide(&never, &rng);
        assert_false(d.error);
        assert_false(d.timeout_after_charge);
        assert_int_equal(d.latency_ms, 0);
        d = sim_faults_decide(&always, &rng);
        assert_true(d.error);
        assert_true(d.timeout_after_charge);
        assert_int_equal(d.latency_ms, 30);
    }
}

static void test_decide_rate_is_a_share(void **state)
{
    (void)state;
    uint64_t rng = 7;
    sim_faults f;
    sim_faults_clear(&f);
    f.error_rate = 0.3;
    f.timeout_after_charge_rate = 0.7;
    int errors = 0, timeouts = 0;
    for (int i = 0; i < 20000; i++) {
        sim_fault_decision d = sim_faults_decide(&f, &rng);
        errors += d.error;
        timeouts += d.timeout_after_charge;
    }
    /* 20000 Bernoulli draws: the standard deviation is about 65, so ±500 cannot flake. */
    assert_in_range(errors, 6000 - 500, 6000 + 500);
    assert_in_range(timeouts, 14000 - 500, 14000 + 500);
}

static void test_decide_same_seed_same_sequence(void **state)
{
    (void)state;
    sim_faults f;
    sim_faults_clear(&f);
    f.error_rate = 0.5;
    uint64_t a = 12345, b = 12345, c = 54321;
    int differs = 0;
    for (int i = 0; i < 1000; i++) {
        sim_fault_decision da = sim_faults_decide(&f, &a);
        sim_fault_decision db = sim_faults_decide(&f, &b);
        sim_fault_decision dc = sim_faults_decide(&f, &c);
        assert_int_equal(da.error, db.error);
        differs += da.error != dc.error;
    }
    assert_true(differs > 100); /* another seed really gives another sequence */

    /* The draws do not depend on the settings: the stream stays aligned when rates change. */
    sim_faults zero;
    sim_faults_clear(&zero);
    uint64_t x = 99, y = 99;
    sim_faults_decide(&zero, &x);
    sim_faults_decide(&f, &y);
    assert_true(x == y);
}

static void test_rand_unit_range(void **state)
{
    (void)state;
    uint64_t rng = 1;
    double lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = sim_rand_unit(&rng);
        assert_true(u >= 0.0 && u < 1.0);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    assert_true(lo < 0.001 && hi > 0.999);
}

/* --- providers and their RNG ------------------------------------------------------- */

static void test_providers_registry(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    assert_non_null(st);
    sim_provider *a = sim_state_add_provider(st, "provider_a", NULL);
    sim_provider *b = sim_state_add_provider(st, "provider_b", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(sim_state_add_provider(st, "provider_a", NULL)); /* duplicate */
    assert_null(sim_state_add_provider(st, "", NULL));
    assert_true(sim_state_provider(st, "provider_b") == b);
    assert_null(sim_state_provider(st, "provider_c"));
    assert_int_equal(sim_state_provider_count(st), 2);
    assert_true(sim_state_provider_at(st, 0) == a);
    assert_null(sim_state_provider_at(st, 2));
    assert_string_equal(sim_provider_name(b), "provider_b");
    sim_faults f = sim_provider_faults(a);
    assert_false(f.outage);
    assert_int_equal(f.timeout_hold_ms, SIM_TIMEOUT_HOLD_DEFAULT_MS);
    sim_state_free(st);
}

static void record_decisions(sim_provider *p, int n, bool *out)
{
    for (int i = 0; i < n; i++)
        out[i] = sim_provider_decide(p).error;
}

static void test_provider_rng_seeded_and_reset(void **state)
{
    (void)state;
    sim_faults f;
    sim_faults_clear(&f);
    f.error_rate = 0.5;
    sim_state *s1 = sim_state_new(5, 0), *s2 = sim_state_new(5, 0), *s3 = sim_state_new(6, 0);
    sim_provider *p1 = sim_state_add_provider(s1, "provider_a", &f);
    sim_provider *p1b = sim_state_add_provider(s1, "provider_b", &f);
    sim_provider *p2 = sim_state_add_provider(s2, "provider_a", &f);
    sim_provider *p3 = sim_state_add_provider(s3, "provider_a", &f);
    enum { N = 200 };
    bool d1[N], d1b[N], d2[N], d3[N], again[N];
    record_decisions(p1, N, d1);
    record_decisions(p1b, N, d1b);
    record_decisions(p2, N, d2);
    record_decisions(p3, N, d3);
    assert_memory_equal(d1, d2, sizeof(d1));      /* same seed, same decisions */
    assert_memory_not_equal(d1, d3, sizeof(d1));  /* other seed */
    assert_memory_not_equal(d1, d1b, sizeof(d1)); /* each provider its own stream */

    /* Reset makes the provider healthy and replays the stream from the start. */
    sim_state_reset(s1);
    assert_true(sim_provider_faults(p1).error_rate == 0.0);
    sim_provider_set_faults(p1, &f);
    record_decisions(p1, N, again);
    assert_memory_equal(d1, again, sizeof(d1));
    sim_state_free(s1);
    sim_state_free(s2);
    sim_state_free(s3);
}

static void test_provider_patch_faults(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    json_t *patch = json_pack("{s:i}", "latency_ms", 250);
    sim_faults after;
    const char *field;
    char err[256];
    assert_int_equal(sim_provider_patch_faults(p, patch, &after, &field, err, sizeof(err)), 0);
    assert_int_equal(after.latency_ms, 250);
    assert_int_equal(sim_provider_faults(p).latency_ms, 250);
    json_decref(patch);
    patch = json_pack("{s:f}", "error_rate", 2.0);
    assert_int_equal(sim_provider_patch_faults(p, patch, &after, &field, err, sizeof(err)), -1);
    assert_true(sim_provider_faults(p).error_rate == 0.0);
    json_decref(patch);
    sim_state_free(st);
}

/* --- charges ----------------------------------------------------------------------- */

typedef struct render_probe {
    int calls;
    bool fail;
} render_probe;

/* A tiny provider shape: the object is {id, amount, status}; the answer embeds a counter so
 * a re-render (instead of a stored replay) would show. */
static int test_render(const sim_charge *c, json_t **object, unsigned *status, char **body,
                       void *ctx)
{
    render_probe *probe = ctx;
    probe->calls++;
    if (probe->fail)
        return -1;
    *object =
        json_pack("{s:s, s:I, s:s, s:s}", "id", c->id, "amount", (json_int_t)c->amount, "status",
                  sim_charge_status_name(c->status), "idempotency_key", c->idempotency_key);
    *status = c->status == SIM_CHARGE_SUCCEEDED ? 200 : 402;
    char text[256];
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"render\":%d}", c->id, probe->calls);
    *body = strdup(text);
    return 0;
}

static sim_charge_request charge_req(const char *key, const char *fingerprint, int64_t amount)
{
    sim_charge_request r = {
        .idempotency_key = key,
        .fingerprint = fingerprint,
        .id_prefix = "ch_",
        .amount = amount,
        .currency = "usd",
        .source = "pm_card_visa",
        .status = SIM_CHARGE_SUCCEEDED,
    };
    return r;
}

static void test_charge_create_replay_conflict(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    render_probe probe = {0};
    sim_response first, again, other;

    sim_charge_request r = charge_req("key-1", "fp-1", 500);
    assert_int_equal(sim_provider_charge(p, &r, test_render, &probe, &first), SIM_CHARGE_CREATED);
    assert_int_equal(first.status, 200);
    assert_int_equal(strncmp(first.charge_id, "ch_", 3), 0);
    assert_int_equal(strlen(first.charge_id), 3 + 32);
    assert_int_equal(sim_provider_charge_count(p), 1);

    /* Same key, same parameters: the stored bytes, no new charge, no re-render. */
    assert_int_equal(sim_provider_charge(p, &r, test_render, &probe, &again), SIM_CHARGE_REPLAYED);
    assert_int_equal(again.status, first.status);
    assert_string_equal(again.body, first.body);
    assert_string_equal(again.charge_id, first.charge_id);
    assert_int_equal(probe.calls, 1);
    assert_int_equal(sim_provider_charge_count(p), 1);

    /* Same key, other parameters: refused, nothing recorded. */
    sim_charge_request changed = charge_req("key-1", "fp-2", 600);
    assert_int_equal(sim_provider_charge(p, &changed, test_render, &probe, &other),
                     SIM_CHARGE_CONFLICT);
    assert_null(other.body);
    assert_string_equal(other.charge_id, first.charge_id);
    assert_int_equal(sim_provider_charge_count(p), 1);
    sim_response_clear(&other);

    /* Another key is another charge. */
    sim_charge_request r2 = charge_req("key-2", "fp-1", 500);
    assert_int_equal(sim_provider_charge(p, &r2, test_render, &probe, &other), SIM_CHARGE_CREATED);
    assert_string_not_equal(other.charge_id, first.charge_id);
    assert_int_equal(sim_provider_charge_count(p), 2);

    /* Lookups return the stored resource. */
    json_t *by_id = sim_provider_charge_by_id(p, first.charge_id);
    json_t *by_key = sim_provider_charge_by_key(p, "key-1");
    assert_non_null(by_id);
    assert_true(json_equal(by_id, by_key));
    assert_int_equal(json_integer_value(json_object_get(by_id, "amount")), 500);
    assert_null(sim_provider_charge_by_id(p, "ch_nope"));
    assert_null(sim_provider_charge_by_key(p, "key-3"));
    json_decref(by_id);
    json_decref(by_key);

    bool more = true;
    json_t *list = sim_provider_charges_list(p, 1, &more);
    assert_int_equal(json_array_size(list), 1);
    assert_true(more);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
                        other.charge_id); /* newest first */
    json_decref(list);
    list = sim_provider_charges_list(p, 10, &more);
    assert_int_equal(json_array_size(list), 2);
    assert_false(more);
    json_decref(list);

    sim_response_clear(&first);
    sim_response_clear(&again);
    sim_response_clear(&other);
    assert_null(first.body);
    sim_state_free(st);
}

static void test_charge_keys_are_per_provider(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *a = sim_state_add_provider(st, "provider_a", NULL);
    sim_provider *b = sim_state_add_provider(st, "provider_b", NULL);
    render_probe probe = {0};
    sim_response ra, rb;
    sim_charge_request r = charge_req("pay_1", "fp", 100);
    assert_int_equal(sim_provider_charge(a, &r, test_render, &probe, &ra), SIM_CHARGE_CREATED);
    assert_int_equal(sim_provider_charge(b, &r, test_render, &probe, &rb), SIM_CHARGE_CREATED);
    assert_string_not_equal(ra.charge_id, rb.charge_id);

    /* The charge log shows both: exactly what a double-charge test looks for. */
    json_t *log = sim_state_charge_log(st, NULL, "pay_1");
    assert_int_equal(json_array_size(log), 2);
    json_t *e = json_array_get(log, 0);
    assert_string_equal(json_string_value(json_object_get(e, "provider")), "provider_a");
    assert_string_equal(json_string_value(json_object_get(e, "id")), ra.charge_id);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(e, "currency")), "usd");
    assert_int_equal(json_integer_value(json_object_get(e, "amount")), 100);
    assert_true(json_is_null(json_object_get(e, "failure_code")));
    assert_true(json_integer_value(json_object_get(e, "created")) > 1700000000);
    json_decref(log);
    log = sim_state_charge_log(st, "provider_b", NULL);
    assert_int_equal(json_array_size(log), 1);
    json_decref(log);
    log = sim_state_charge_log(st, "provider_a", "pay_2");
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
    assert_null(sim_provider_charge_by_id(b, ra.charge_id));

    sim_response_clear(&ra);
    sim_response_clear(&rb);
    sim_state_free(st);
}

static void test_charge_declined_is_stored(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    render_probe probe = {0};
    sim_response r1, r2;
    sim_charge_request r = charge_req("k", "fp", 100);
    r.status = SIM_CHARGE_FAILED;
    r.failure_code = "insufficient_funds";
    r.failure_message = "Your card has insufficient funds.";
    assert_int_equal(sim_provider_charge(p, &r, test_render, &probe, &r1), SIM_CHARGE_CREATED);
    assert_int_equal(r1.status, 402);
    assert_int_equal(sim_provider_charge(p, &r, test_render, &probe, &r2), SIM_CHARGE_REPLAYED);
    assert_int_equal(r2.status, 402);
    assert_string_equal(r1.body, r2.body);
    json_t *log = sim_state_charge_log(st, "provider_a", "k");
    json_t *e = json_array_get(log, 0);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(e, "failure_code")),
                        "insufficient_funds");
    json_decref(log);
    sim_response_clear(&r1);
    sim_response_clear(&r2);
    sim_state_free(st);
}

static void test_charge_render_failure_and_full_log(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 2);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    render_probe probe = {.fail = true};
    sim_response out;
    sim_charge_request r1 = charge_req("k1", "fp", 1);
    assert_int_equal(sim_provider_charge(p, &r1, test_render, &probe, &out), SIM_CHARGE_ERROR);
    assert_null(out.body);
    assert_int_equal(sim_provider_charge_count(p), 0);
    assert_null(sim_provider_charge_by_key(p, "k1")); /* the key is free for a retry */

    probe.fail = false;
    sim_charge_request r2 = charge_req("k2", "fp", 1), r3 = charge_req("k3", "fp", 1);
    assert_int_equal(sim_provider_charge(p, &r1, test_render, &probe, &out), SIM_CHARGE_CREATED);
    sim_response_clear(&out);
    assert_int_equal(sim_provider_charge(p, &r2, test_render, &probe, &out), SIM_CHARGE_CREATED);
    sim_response_clear(&out);
    assert_int_equal(sim_provider_charge(p, &r3, test_render, &probe, &out), SIM_CHARGE_LOG_FULL);
    /* A full log still replays what it holds. */
    assert_int_equal(sim_provider_charge(p, &r1, test_render, &probe, &out), SIM_CHARGE_REPLAYED);
    sim_response_clear(&out);

    sim_state_reset(st);
    assert_int_equal(sim_provider_charge_count(p), 0);
    json_t *log = sim_state_charge_log(st, NULL, NULL);
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
    assert_int_equal(sim_provider_charge(p, &r3, test_render, &probe, &out), SIM_CHARGE_CREATED);
    sim_response_clear(&out);
    sim_state_free(st);
}

typedef struct race_arg {
    sim_provider *p;
    sim_response out;
    sim_charge_result result;
} race_arg;

static render_probe race_probe;

static void *race_worker(void *arg)
{
    race_arg *a = arg;
    sim_charge_request r = charge_req("same-key", "fp", 42);
    /* The render runs under the state's lock, so the shared probe needs no lock of its own. */
    a->result = sim_provider_charge(a->p, &r, test_render, &race_probe, &a->out);
    return NULL;
}

static void test_charge_concurrent_same_key_charges_once(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    enum { N = 16 };
    pthread_t threads[N];
    race_arg args[N];
    memset(&race_probe, 0, sizeof(race_probe));
    for (int i = 0; i < N; i++) {
        args[i] = (race_arg){.p = p};
        assert_int_equal(pthread_create(&threads[i], NULL, race_worker, &args[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        created += args[i].result == SIM_CHARGE_CREATED;
        assert_true(args[i].result == SIM_CHARGE_CREATED || args[i].result == SIM_CHARGE_REPLAYED);
    }
    assert_int_equal(created, 1);
    assert_int_equal(sim_provider_charge_count(p), 1);
    for (int i = 1; i < N; i++)
        assert_string_equal(args[i].out.body, args[0].out.body);
    for (int i = 0; i < N; i++)
        sim_response_clear(&args[i].out);
    sim_state_free(st);
}

/* --- waits ------------------------------------------------------------------------- */

static void test_wait_full_time(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    int64_t t0 = keel_clock_monotonic_ms();
    assert_false(sim_provider_wait(p, 60));
    int64_t took = keel_clock_monotonic_ms() - t0;
    assert_true(took >= 60);
    assert_false(sim_provider_wait(p, 0));
    sim_state_free(st);
}

typedef struct waker {
    sim_state *st;
    sim_provider *p;
    int what; /* 0 outage, 1 reset, 2 interrupt */
} waker;

static void *waker_main(void *arg)
{
    waker *w = arg;
    keel_clock_sleep_ms(50);
    if (w->what == 0) {
        sim_faults f = sim_provider_faults(w->p);
        f.outage = true;
        sim_provider_set_faults(w->p, &f);
    } else if (w->what == 1) {
        sim_state_reset(w->st);
    } else {
        sim_state_interrupt(w->st);
    }
    return NULL;
}

static void test_wait_is_cut_short(void **state)
{
    (void)state;
    for (int what = 0; what < 3; what++) {
        sim_state *st = sim_state_new(1, 0);
        sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
        waker w = {.st = st, .p = p, .what = what};
        pthread_t t;
        int64_t t0 = keel_clock_monotonic_ms();
        assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
        assert_true(sim_provider_wait(p, 20000));
        int64_t took = keel_clock_monotonic_ms() - t0;
        pthread_join(t, NULL);
        assert_true(took < 5000);
        if (what != 1) {
            /* Outage and stop persist: the next wait returns at once. */
            assert_true(sim_provider_wait(p, 20000));
        }
        sim_state_free(st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_parse),
        cmocka_unit_test(test_faults_patch_applies_only_given_fields),
        cmocka_unit_test(test_faults_patch_rejects_without_change),
        cmocka_unit_test(test_faults_json),
        cmocka_unit_test(test_decide_extremes),
        cmocka_unit_test(test_decide_rate_is_a_share),
        cmocka_unit_test(test_decide_same_seed_same_sequence),
        cmocka_unit_test(test_rand_unit_range),
        cmocka_unit_test(test_providers_registry),
        cmocka_unit_test(test_provider_rng_seeded_and_reset),
        cmocka_unit_test(test_provider_patch_faults),
        cmocka_unit_test(test_charge_create_replay_conflict),
        cmocka_unit_test(test_charge_keys_are_per_provider),
        cmocka_unit_test(test_charge_declined_is_stored),
        cmocka_unit_test(test_charge_render_failure_and_full_log),
        cmocka_unit_test(test_charge_concurrent_same_key_charges_once),
        cmocka_unit_test(test_wait_full_time),
        cmocka_unit_test(test_wait_is_cut_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
