/* The sandbox risk-scoring API: POST /v1/score gives a score and a decision that tests steer
 * by payment-method token, with the same fault injection as the providers. */
#ifndef SIM_RISK_H
#define SIM_RISK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/http_server.h"
#include "keel/metrics.h"
#include "sim_api.h"
#include "sim_state.h"

#define RISK_NAME "risk"
#define RISK_MODEL "keel-sim-risk-1"
#define RISK_BLOCK_AT 80  /* score >= this: block */
#define RISK_REVIEW_AT 50 /* score >= this: review */
#define RISK_MAX_TEXT_LEN 255

/* --- pure logic (unit tested) -------------------------------------------------------- */

typedef enum risk_decision {
    RISK_ALLOW,
    RISK_REVIEW,
    RISK_BLOCK,
} risk_decision;

/* "allow", "review" or "block". */
const char *risk_decision_name(risk_decision d);

/* The decision for a score: >= RISK_BLOCK_AT block, >= RISK_REVIEW_AT review, else allow. */
risk_decision risk_decision_for(int score);

/* Deterministic per token: pm_risk_high → 90, pm_risk_review → 60, anything else → 0..29
 * (FNV-1a of the token mod 30). *reason gets a short static explanation. */
int risk_score_for(const char *payment_method, const char **reason);

/* The fields of POST /v1/score. Pointers borrow from the parsed body. */
typedef struct risk_params {
    const char *payment_id;
    const char *merchant_id; /* NULL when absent or null */
    int64_t amount;
    char currency[4]; /* lowercased */
    const char *payment_method;
} risk_params;

/* Validates a score body: payment_id, currency (three letters) and payment_method are
 * required strings (at most 255 bytes), amount an integer >= 0, merchant_id a string or
 * null. Other fields are ignored. Returns 0, or -1 with *param the field at fault and a
 * message in msg. */
int risk_parse(const json_t *body, risk_params *out, const char **param, char *msg, size_t msg_len);

/* {"payment_id","score","decision","reasons":[..],"model"}; NULL on OOM. */
json_t *risk_answer(const risk_params *p, int score, const char *reason);

/* --- the HTTP API ------------------------------------------------------------------ */

/* Adds POST /v1/score to srv; ctx is a sim_api whose errors are keel_http_respond_error
 * (a sim_listener_routes_fn). */
void risk_routes(keel_http_server *srv, void *ctx);

#endif
