/* The POST /v1/payments work: payment row and outbox row, under the claimed idempotency key. */
#include "payment_create.h"

#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/id.h"
#include "keel/log.h"
#include "keel/outbox.h"
#include "keel/v1/payments.pb-c.h"
#include "payment_store.h"

/* Packs PaymentRequested for the outbox. Strings are borrowed from the request; only the
 * metadata entry arrays are allocated here. Returns the packed bytes (malloc'd) or NULL. */
static uint8_t *pack_requested(const char *payment_id, const gateway_create_request *req,
                               const char *created_at, size_t *len)
{
    const gateway_payment_input *in = req->input;
    Keel__V1__PaymentRequested msg = KEEL__V1__PAYMENT_REQUESTED__INIT;
    Keel__V1__PaymentRequested__MetadataEntry *entries = NULL;
    Keel__V1__PaymentRequested__MetadataEntry **entry_ptrs = NULL;
    size_t n = in->metadata != NULL ? json_object_size(in->metadata) : 0;
    uint8_t *buf = NULL;

    msg.payment_id = (char *)payment_id;
    msg.merchant_id = (char *)req->merchant_id;
    msg.amount = in->amount;
    msg.currency = (char *)in->currency->code;
    msg.description = (char *)(in->description != NULL ? in->description : "");
    msg.payment_method = (char *)in->payment_method;
    msg.created_at = (char *)created_at;
    if (n > 0) {
        const char *key;
        json_t *value;
        size_t i = 0;

        entries = calloc(n, sizeof(*entries));
        entry_ptrs = calloc(n, sizeof(*entry_ptrs));
        if (entries == NULL || entry_ptrs == NULL) {
            goto done;
        }
        json_object_foreach(in->metadata, key, value)
        {
            Keel__V1__PaymentRequested__MetadataEntry init =
                KEEL__V1__PAYMENT_REQUESTED__METADATA_ENTRY__INIT;
            entries[i] = init;
            entries[i].key = (char *)key;
            entries[i].value = (char *)json_string_value(value);
            entry_ptrs[i] = &entries[i];
            i++;
        }
        msg.n_metadata = i;
        msg.metadata = entry_ptrs;
    }
    *len = keel__v1__payment_requested__get_packed_size(&msg);
    buf = malloc(*len > 0 ? *len : 1);
    if (buf != NULL) {
        keel__v1__payment_requested__pack(&msg, buf);
    }
done:
    free(entries);
    entries = NULL;
    free(entry_ptrs);
    entry_ptrs = NULL;
    return buf;
}

keel_result gateway_outbox_request(keel_db *db, const char *ce_type, const char *payment_id,
                                   const uint8_t *payload, size_t len, const char *traceparent)
{
    keel_cloudevent ce;
    keel_outbox_message msg;

    keel_cloudevent_init(&ce, GATEWAY_EVENT_SOURCE, ce_type, traceparent);
    memset(&msg, 0, sizeof(msg));
    msg.topic = GATEWAY_PAYMENT_REQUESTS_TOPIC;
    msg.key = payment_id; /* every event of one payment stays on one partition, in order */
    msg.payload = payload;
    msg.payload_len = len;
    msg.ce = &ce;
    return keel_outbox_insert(db, &msg);
}

static keel_result create_work(keel_db *db, void *arg, int *status, char **body_out)
{
    const gateway_create_request *req = arg;
    char payment_id[48];
    char created_at[KEEL_RFC3339_LEN];
    int64_t created_at_ms = 0;
    char *body = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    keel_result r;

    keel_id_new("pay_", payment_id, sizeof(payment_id));
    r = gateway_payment_store_insert(db, payment_id, req->merchant_id, req->input, &body,
                                     &created_at_ms);
    if (r != KEEL_OK) {
        goto done;
    }
    keel_clock_format_rfc3339(created_at_ms, created_at);
    payload = pack_requested(payment_id, req, created_at, &payload_len);
    if (payload == NULL) {
        keel_log_error("out of memory packing PaymentRequested for %s", payment_id);
        r = KEEL_ERR;
        goto done;
    }
    r = gateway_outbox_request(db, "keel.v1.PaymentRequested", payment_id, payload, payload_len,
                               req->traceparent);
    if (r != KEEL_OK) {
        goto done;
    }
    *status = 202;
    *body_out = body;
    body = NULL;
done:
    free(body);
    body = NULL;
    free(payload);
    payload = NULL;
    return r;
}

keel_result gateway_payment_create(keel_db *db, const keel_db_tx_options *opts,
                                   const gateway_create_request *req, gateway_idem_result *out)
{
    gateway_idem_request idem = {
        .merchant_id = req->merchant_id,
        .key = req->idempotency_key,
        .method = "POST",
        .path = "/v1/payments",
        .params = req->params,
        .lease_ms = req->lease_ms,
    };
    return gateway_idempotent_execute(db, opts, &idem, create_work, (void *)req, out);
}
