/* Unit tests for sim_state: fault settings and decisions, idempotent charges, refunds,
 * scores, waits. */
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

/* --- new fault knobs ----------------------------------------------------------------- */

static void test_decide_jitter_and_decline(void **state)
{
    (void)state;
    uint64_t rng = 11;
    sim_faults f;
    sim_faults_clear(&f);
    f.latency_ms = 100;
    f.latency_jitter_ms = 50;
    f.decline_rate = 0.25;
    int64_t lo = INT64_MAX, hi = 0;
    int declines = 0;
    for (int i = 0; i < 20000; i++) {
        sim_fault_decision d = sim_faults_decide(&f, &rng);
        assert_in_range(d.latency_ms, 100, 150);
        lo = d.latency_ms < lo ? d.latency_ms : lo;
        hi = d.latency_ms > hi ? d.latency_ms : hi;
        declines += d.decline;
    }
    assert_true(lo <= 101 && hi >= 149); /* the whole range is reached */
    assert_in_range(declines, 5000 - 500, 5000 + 500);

    /* Exponential: mean about the jitter, a long tail past it, capped at the maximum. */
    f.latency_ms = 0;
    f.latency_jitter_ms = 1000;
    f.latency_distribution = SIM_LATENCY_EXPONENTIAL;
    double sum = 0;
    int beyond_3x = 0;
    for (int i = 0; i < 20000; i++) {
        sim_fault_decision d = sim_faults_decide(&f, &rng);
        assert_in_range(d.latency_ms, 0, SIM_LATENCY_MAX_MS);
        sum += (double)d.latency_ms;
        beyond_3x += d.latency_ms > 3000;
    }
    assert_true(sum / 20000 > 900 && sum / 20000 < 1100);
    assert_true(beyond_3x > 500); /* e^-3 ≈ 5% of 20000; a uniform jitter would give none */

    f.latency_ms = SIM_LATENCY_MAX_MS;
    f.latency_jitter_ms = SIM_LATENCY_MAX_MS;
    for (int i = 0; i < 100; i++)
        assert_int_equal(sim_faults_decide(&f, &rng).latency_ms, SIM_LATENCY_MAX_MS);

    /* No jitter: exactly the fixed latency; a decline rate of 0 never fires. */
    sim_faults_clear(&f);
    f.latency_ms = 7;
    for (int i = 0; i < 1000; i++) {
        sim_fault_decision d = sim_faults_decide(&f, &rng);
        assert_int_equal(d.latency_ms, 7);
        assert_false(d.decline);
    }
}

static void test_faults_patch_new_fields(void **state)
{
    (void)state;
    sim_faults f;
    sim_faults_clear(&f);
    const char *field = NULL;
    char err[256];
    json_t *patch = json_pack("{s:i, s:s, s:f}", "latency_jitter_ms", 40, "latency_distribution",
                              "exponential", "decline_rate", 0.5);
    assert_int_equal(sim_faults_patch(&f, patch, &field, err, sizeof(err)), 0);
    assert_int_equal(f.latency_jitter_ms, 40);
    assert_int_equal(f.latency_distribution, SIM_LATENCY_EXPONENTIAL);
    assert_true(f.decline_rate == 0.5);
    json_decref(patch);

    const char *bad[][2] = {
        {"{\"latency_distribution\":\"normal\"}", "latency_distribution"},
        {"{\"latency_distribution\":3}", "latency_distribution"},
        {"{\"latency_jitter_ms\":60001}", "latency_jitter_ms"},
        {"{\"decline_rate\":-0.1}", "decline_rate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t e;
        patch = json_loads(bad[i][0], 0, &e);
        sim_faults before = f;
        assert_int_equal(sim_faults_patch(&f, patch, &field, err, sizeof(err)), -1);
        assert_string_equal(field, bad[i][1]);
        assert_non_null(strstr(err, bad[i][1]));
        assert_memory_equal(&before, &f, sizeof(f));
        json_decref(patch);
    }

    json_t *j = sim_faults_json("provider_b", &f);
    assert_int_equal(json_integer_value(json_object_get(j, "latency_jitter_ms")), 40);
    assert_string_equal(json_string_value(json_object_get(j, "latency_distribution")),
                        "exponential");
    assert_true(json_real_value(json_object_get(j, "decline_rate")) == 0.5);
    json_decref(j);

    sim_latency_distribution d;
    assert_int_equal(sim_latency_distribution_parse("uniform", &d), 0);
    assert_int_equal(d, SIM_LATENCY_UNIFORM);
    assert_int_equal(sim_latency_distribution_parse("Uniform", &d), -1);
    assert_int_equal(sim_latency_distribution_parse(NULL, &d), -1);
}

/* --- numeric ids, refunds, scores ---------------------------------------------------- */

static void test_charge_numeric_ids(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_b", NULL);
    render_probe probe = {0};
    char seen[50][64];
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof(key), "ref-%d", i);
        sim_charge_request r = charge_req(key, "fp", 100);
        r.numeric_id = true;
        sim_response out;
        assert_int_equal(sim_provider_charge(p, &r, test_render, &probe, &out), SIM_CHARGE_CREATED);
        assert_true(strspn(out.charge_id, "0123456789") == strlen(out.charge_id));
        unsigned long long v = strtoull(out.charge_id, NULL, 10);
        assert_true(v >= 1000000000ULL && v < (1ULL << 53));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[j], out.charge_id);
        snprintf(seen[i], sizeof(seen[i]), "%s", out.charge_id);
        sim_response_clear(&out);
    }
    sim_state_free(st);
}

static void test_refund_check(void **state)
{
    (void)state;
    int64_t granted = -1;
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 0, 0, &granted),
                     SIM_REFUND_CREATED);
    assert_int_equal(granted, 1000); /* 0 = everything left */
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 400, 600, &granted),
                     SIM_REFUND_CREATED);
    assert_int_equal(granted, 600); /* exactly what is left */
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 400, 601, &granted),
                     SIM_REFUND_AMOUNT_TOO_LARGE);
    assert_int_equal(granted, 0);
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 400, 0, &granted),
                     SIM_REFUND_CREATED);
    assert_int_equal(granted, 600);
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 1000, 1, &granted),
                     SIM_REFUND_ALREADY_REFUNDED);
    assert_int_equal(sim_refund_check(SIM_CHARGE_SUCCEEDED, 1000, 1000, 0, &granted),
                     SIM_REFUND_ALREADY_REFUNDED);
    assert_int_equal(sim_refund_check(SIM_CHARGE_FAILED, 1000, 0, 10, &granted),
                     SIM_REFUND_NOT_REFUNDABLE);
}

/* The refund object is {id, amount, charge, charge_refunded}. */
static int test_refund_render(const sim_refund *r, json_t **object, unsigned *status, char **body,
                              void *ctx)
{
    render_probe *probe = ctx;
    probe->calls++;
    if (probe->fail)
        return -1;
    *object =
        json_pack("{s:s, s:I, s:s, s:I}", "id", r->id, "amount", (json_int_t)r->amount, "charge",
                  r->charge->id, "charge_refunded", (json_int_t)r->charge->refunded);
    *body = json_dumps(*object, JSON_COMPACT);
    *status = 200;
    return 0;
}

static sim_refund_request refund_req(const char *key, const char *fp, const char *charge,
                                     int64_t amount)
{
    sim_refund_request r = {
        .idempotency_key = key,
        .fingerprint = fp,
        .charge_ref = charge,
        .id_prefix = "re_",
        .amount = amount,
    };
    return r;
}

static void test_refund_flow(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_a", NULL);
    sim_provider *other = sim_state_add_provider(st, "provider_b", NULL);
    render_probe probe = {0}, rprobe = {0};
    sim_response ch, out, again;
    sim_charge_request c = charge_req("pay_1", "fp", 1000);
    assert_int_equal(sim_provider_charge(p, &c, test_render, &probe, &ch), SIM_CHARGE_CREATED);

    sim_refund_request r1 = refund_req("rk-1", "rfp-1", ch.charge_id, 400);
    assert_int_equal(sim_provider_refund(p, &r1, test_refund_render, &rprobe, &out),
                     SIM_REFUND_CREATED);
    assert_int_equal(out.status, 200);
    assert_int_equal(strncmp(out.refund_id, "re_", 3), 0);
    assert_string_equal(out.charge_id, ch.charge_id);
    assert_int_equal(out.remaining, 1000);
    json_t *obj = json_loads(out.body, 0, NULL);
    /* The render sees the charge with this refund included. */
    assert_int_equal(json_integer_value(json_object_get(obj, "charge_refunded")), 400);
    json_decref(obj);

    /* Replay: the same bytes, no second refund, no re-render. */
    assert_int_equal(sim_provider_refund(p, &r1, test_refund_render, &rprobe, &again),
                     SIM_REFUND_REPLAYED);
    assert_string_equal(again.body, out.body);
    assert_string_equal(again.refund_id, out.refund_id);
    assert_int_equal(rprobe.calls, 1);
    assert_int_equal(sim_provider_refund_count(p), 1);
    sim_response_clear(&again);

    /* Same key, other parameters. */
    sim_refund_request changed = refund_req("rk-1", "rfp-2", ch.charge_id, 500);
    assert_int_equal(sim_provider_refund(p, &changed, test_refund_render, &rprobe, &again),
                     SIM_REFUND_CONFLICT);
    assert_null(again.body);
    assert_string_equal(again.refund_id, out.refund_id);
    sim_response_clear(&again);

    /* More than is left: refused with what is left. */
    sim_refund_request big = refund_req("rk-2", "rfp", ch.charge_id, 601);
    assert_int_equal(sim_provider_refund(p, &big, test_refund_render, &rprobe, &again),
                     SIM_REFUND_AMOUNT_TOO_LARGE);
    assert_int_equal(again.remaining, 600);
    assert_int_equal(sim_provider_refund_count(p), 1);
    sim_response_clear(&again);

    /* The rest (amount 0), then nothing is left; the refused key stays free for reuse. */
    sim_refund_request rest = refund_req("rk-2", "rfp-rest", ch.charge_id, 0);
    assert_int_equal(sim_provider_refund(p, &rest, test_refund_render, &rprobe, &again),
                     SIM_REFUND_CREATED);
    obj = json_loads(again.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(obj, "amount")), 600);
    json_decref(obj);
    sim_response_clear(&again);
    sim_refund_request more = refund_req("rk-3", "rfp", ch.charge_id, 1);
    assert_int_equal(sim_provider_refund(p, &more, test_refund_render, &rprobe, &again),
                     SIM_REFUND_ALREADY_REFUNDED);
    sim_response_clear(&again);

    /* Unknown charge; a charge id of another provider is unknown here; a key is not an id
     * unless ref_may_be_key. */
    sim_refund_request nope = refund_req("rk-4", "rfp", "ch_nope", 1);
    assert_int_equal(sim_provider_refund(p, &nope, test_refund_render, &rprobe, &again),
                     SIM_REFUND_NO_CHARGE);
    sim_refund_request elsewhere = refund_req("rk-4", "rfp", ch.charge_id, 1);
    assert_int_equal(sim_provider_refund(other, &elsewhere, test_refund_render, &rprobe, &again),
                     SIM_REFUND_NO_CHARGE);
    sim_refund_request by_key = refund_req("rk-4", "rfp", "pay_1", 1);
    assert_int_equal(sim_provider_refund(p, &by_key, test_refund_render, &rprobe, &again),
                     SIM_REFUND_NO_CHARGE);
    by_key.ref_may_be_key = true;
    assert_int_equal(sim_provider_refund(p, &by_key, test_refund_render, &rprobe, &again),
                     SIM_REFUND_ALREADY_REFUNDED);
    assert_string_equal(again.charge_id, ch.charge_id);
    sim_response_clear(&again);

    /* A failed charge cannot be refunded. */
    sim_charge_request declined = charge_req("pay_2", "fp", 300);
    declined.status = SIM_CHARGE_FAILED;
    declined.failure_code = "card_declined";
    sim_response ch2;
    assert_int_equal(sim_provider_charge(p, &declined, test_render, &probe, &ch2),
                     SIM_CHARGE_CREATED);
    sim_refund_request on_failed = refund_req("rk-5", "rfp", ch2.charge_id, 0);
    assert_int_equal(sim_provider_refund(p, &on_failed, test_refund_render, &rprobe, &again),
                     SIM_REFUND_NOT_REFUNDABLE);
    sim_response_clear(&again);

    /* Lookups, list, logs and counts. */
    json_t *got = sim_provider_refund_by_key(p, "rk-1");
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "id")), out.refund_id);
    json_t *by_id = sim_provider_refund_by_id(p, out.refund_id);
    assert_true(json_equal(got, by_id));
    json_decref(got);
    json_decref(by_id);
    assert_null(sim_provider_refund_by_key(p, "rk-3"));
    bool found = false, has_more = true;
    json_t *list = sim_provider_refunds_list(p, "pay_1", true, 10, &found, &has_more);
    assert_true(found);
    assert_false(has_more);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "amount")),
                     600); /* newest first */
    json_decref(list);
    list = sim_provider_refunds_list(p, "ch_nope", false, 10, &found, &has_more);
    assert_false(found);
    json_decref(list);

    json_t *log = sim_state_refund_log(st, NULL, NULL, NULL);
    assert_int_equal(json_array_size(log), 2);
    json_t *first = json_array_get(log, 0);
    assert_string_equal(json_string_value(json_object_get(first, "provider")), "provider_a");
    assert_string_equal(json_string_value(json_object_get(first, "idempotency_key")), "rk-1");
    assert_string_equal(json_string_value(json_object_get(first, "charge")), ch.charge_id);
    assert_string_equal(json_string_value(json_object_get(first, "charge_idempotency_key")),
                        "pay_1");
    assert_int_equal(json_integer_value(json_object_get(first, "amount")), 400);
    json_decref(log);
    log = sim_state_refund_log(st, NULL, "rk-2", NULL);
    assert_int_equal(json_array_size(log), 1);
    json_decref(log);
    log = sim_state_refund_log(st, NULL, NULL, "pay_1"); /* charge by its key */
    assert_int_equal(json_array_size(log), 2);
    json_decref(log);
    log = sim_state_refund_log(st, "provider_b", NULL, NULL);
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
    log = sim_state_charge_log(st, NULL, "pay_1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "refunded")), 1000);
    json_decref(log);

    json_t *counts = sim_state_counts(st);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(counts, "provider_a"), "refunds")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(counts, "provider_a"), "charges")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(counts, "provider_b"), "refunds")), 0);
    json_decref(counts);

    /* Reset forgets refunds too. */
    sim_state_reset(st);
    assert_int_equal(sim_provider_refund_count(p), 0);
    assert_null(sim_provider_refund_by_key(p, "rk-1"));
    log = sim_state_refund_log(st, NULL, NULL, NULL);
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);

    sim_response_clear(&ch);
    sim_response_clear(&ch2);
    sim_response_clear(&out);
    sim_state_free(st);
}

static void test_refund_without_key_and_failures(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 0);
    sim_provider *p = sim_state_add_provider(st, "provider_b", NULL);
    render_probe probe = {0}, rprobe = {0};
    sim_response ch, a, b;
    sim_charge_request c = charge_req("ref-1", "fp", 1000);
    c.numeric_id = true;
    assert_int_equal(sim_provider_charge(p, &c, test_render, &probe, &ch), SIM_CHARGE_CREATED);

    /* No key: every call is a new refund (Paystack has no refund idempotency). */
    sim_refund_request r = refund_req(NULL, NULL, "ref-1", 100);
    r.ref_may_be_key = true;
    r.numeric_id = true;
    assert_int_equal(sim_provider_refund(p, &r, test_refund_render, &rprobe, &a),
                     SIM_REFUND_CREATED);
    assert_int_equal(sim_provider_refund(p, &r, test_refund_render, &rprobe, &b),
                     SIM_REFUND_CREATED);
    assert_string_not_equal(a.refund_id, b.refund_id);
    assert_true(strspn(a.refund_id, "0123456789") == strlen(a.refund_id));
    json_t *log = sim_state_refund_log(st, "provider_b", NULL, "ref-1");
    assert_int_equal(json_array_size(log), 2);
    assert_true(json_is_null(json_object_get(json_array_get(log, 0), "idempotency_key")));
    json_decref(log);
    sim_response_clear(&a);
    sim_response_clear(&b);

    /* A render failure records nothing and leaves the charge's refunded amount alone. */
    rprobe.fail = true;
    assert_int_equal(sim_provider_refund(p, &r, test_refund_render, &rprobe, &a), SIM_REFUND_ERROR);
    assert_null(a.body);
    assert_int_equal(sim_provider_refund_count(p), 2);
    log = sim_state_charge_log(st, NULL, "ref-1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "refunded")), 200);
    json_decref(log);
    sim_response_clear(&a);
    sim_response_clear(&ch);
    sim_state_free(st);

    /* A full log refuses refunds. */
    st = sim_state_new(1, 1);
    p = sim_state_add_provider(st, "provider_a", NULL);
    rprobe.fail = false;
    sim_charge_request c2 = charge_req("pay_1", "fp", 1000);
    assert_int_equal(sim_provider_charge(p, &c2, test_render, &probe, &ch), SIM_CHARGE_CREATED);
    sim_refund_request r1 = refund_req("k1", "f", ch.charge_id, 1);
    sim_refund_request r2 = refund_req("k2", "f", ch.charge_id, 1);
    assert_int_equal(sim_provider_refund(p, &r1, test_refund_render, &rprobe, &a),
                     SIM_REFUND_CREATED);
    assert_int_equal(sim_provider_refund(p, &r2, test_refund_render, &rprobe, &b),
                     SIM_REFUND_LOG_FULL);
    sim_response_clear(&a);
    sim_response_clear(&b);
    sim_response_clear(&ch);
    sim_state_free(st);
}

static void test_score_log(void **state)
{
    (void)state;
    sim_state *st = sim_state_new(1, 2);
    sim_provider *risk = sim_state_add_provider(st, "risk", NULL);
    json_t *e1 = json_pack("{s:s, s:i}", "payment_id", "pay_1", "score", 90);
    json_t *e2 = json_pack("{s:s, s:i}", "payment_id", "pay_2", "score", 10);
    assert_int_equal(sim_provider_record_score(risk, e1), 0);
    assert_int_equal(sim_provider_record_score(risk, e2), 0);
    assert_int_equal(sim_provider_record_score(risk, e1), -1); /* max 2 */
    assert_int_equal(sim_provider_score_count(risk), 2);
    json_t *log = sim_state_score_log(st, "pay_1");
    assert_int_equal(json_array_size(log), 1);
    json_t *entry = json_array_get(log, 0);
    assert_int_equal(json_integer_value(json_object_get(entry, "score")), 90);
    assert_string_equal(json_string_value(json_object_get(entry, "provider")), "risk");
    json_decref(log);
    log = sim_state_score_log(st, NULL);
    assert_int_equal(json_array_size(log), 2);
    json_decref(log);
    json_t *counts = sim_state_counts(st);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(counts, "risk"), "scores")),
                     2);
    json_decref(counts);
    sim_state_reset(st);
    assert_int_equal(sim_provider_score_count(risk), 0);
    log = sim_state_score_log(st, NULL);
    assert_int_equal(json_array_size(log), 0);
    json_decref(log);
    json_decref(e1);
    json_decref(e2);
    sim_state_free(st);
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
        cmocka_unit_test(test_decide_jitter_and_decline),
        cmocka_unit_test(test_faults_patch_new_fields),
        cmocka_unit_test(test_charge_numeric_ids),
        cmocka_unit_test(test_refund_check),
        cmocka_unit_test(test_refund_flow),
        cmocka_unit_test(test_refund_without_key_and_failures),
        cmocka_unit_test(test_score_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
