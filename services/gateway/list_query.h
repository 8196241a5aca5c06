/* Keyset pagination in SQL, shared by the payment and refund lists: newest first by
 * (created_at, id), cursors by id, optional created range and status. */
#ifndef GATEWAY_LIST_QUERY_H
#define GATEWAY_LIST_QUERY_H

#include <stdbool.h>

#include "keel/db.h"
#include "keel/error.h"
#include "list_params.h"

typedef struct gateway_list_query {
    const char *name;    /* prefix of the prepared statements, e.g. "gateway_payments" */
    const char *table;   /* read as alias t */
    const char *columns; /* the select list, over alias t */
    /* The rows a caller may see, as SQL over t using $1..$nscope, e.g.
     * "t.merchant_id = $1". Cursors must name a row inside this scope too. */
    const char *scope;
    const char *const *scope_params;
    int nscope;
} gateway_list_query;

/* The page lp asks for, always newest first. Rows come back in the order to show them;
 * there are at most lp->limit of them (*nrows) and *has_more says whether more exist
 * beyond the page in the direction walked (older for starting_after or no cursor, newer
 * for ending_before). KEEL_ERR_NOT_FOUND when a cursor names no row in scope; the caller
 * then answers 404 naming *bad_cursor_param. row_index(i) maps the i-th row to show to the
 * result's row number. The caller PQclear()s *res. */
keel_result gateway_list_fetch(keel_db *db, const gateway_list_query *q,
                               const gateway_list_params *lp, PGresult **res, int *nrows,
                               bool *has_more, bool *reversed, const char **bad_cursor_param);

/* The result row to show i-th (0-based) of a page fetched by gateway_list_fetch. */
int gateway_list_row(int i, int nrows, bool reversed);

#endif
