/* Intake of RefundRequested: validation against the payment under its row lock, the refund row
 * and (when refused) its RefundFailed event, with the inbox row, in one transaction. */
#ifndef PAYMENTS_REFUND_INTAKE_H
#define PAYMENTS_REFUND_INTAKE_H

#include <stddef.h>

#include "keel/consume.h"
#include "request_intake.h"

/* Failure codes of refunds refused at intake (RefundFailed.failure_code). */
#define PAYMENTS_REFUND_AMOUNT_EXCEEDS "amount_exceeds_refundable"
#define PAYMENTS_REFUND_PAYMENT_NOT_FOUND "payment_not_found"
#define PAYMENTS_REFUND_PAYMENT_NOT_SUCCEEDED "payment_not_succeeded"
#define PAYMENTS_REFUND_CURRENCY_MISMATCH "currency_mismatch"

/* Handles one record of type keel.v1.RefundRequested (payments_intake_handle dispatches
 * here). A refund is admitted when its payment exists here, succeeded, belongs to the same
 * merchant, has the same currency, and amount <= amount - every refund not failed (in flight
 * included); otherwise it is stored failed and RefundFailed is published. A payment not known
 * yet (or still processing) is waited for: RETRY up to in->refund_wait_retries times in a row
 * for this event, then refused. */
keel_handle_result payments_refund_intake_handle(const keel_message *msg, payments_intake *in,
                                                 char *reason, size_t reason_len);

#endif
