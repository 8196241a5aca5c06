/* Keyset pagination: one statement per shape of request, prepared once per connection. */
#include "list_query.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LIST_MAX_PARAMS 12

static void appendf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends to the SQL text in buf; the buffer is sized for the longest shape. */
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

static keel_result cursor_exists(keel_db *db, const gateway_list_query *q, const char *id,
                                 bool *exists)
{
    char sql[512];
    char name[96];
    const char *params[LIST_MAX_PARAMS];
    PGresult *res;
    keel_result r;

    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s t WHERE t.id = $%d AND %s", q->table,
             q->nscope + 1, q->scope);
    snprintf(name, sizeof(name), "%s_cursor", q->name);
    for (int i = 0; i < q->nscope; i++) {
        params[i] = q->scope_params[i];
    }
    params[q->nscope] = id;
    res = keel_db_exec_prepared(db, name, sql, q->nscope + 1, params);
    r = keel_db_check(db, res, "looking up the list cursor");
    *exists = r == KEEL_OK && PQntuples(res) == 1;
    PQclear(res);
    return r;
}

keel_result gateway_list_fetch(keel_db *db, const gateway_list_query *q,
                               const gateway_list_params *lp, PGresult **res, int *nrows,
                               bool *has_more, bool *reversed, const char **bad_cursor_param)
{
    char sql[2048];
    char name[96];
    char gte[24];
    char lt[24];
    char limit[16];
    const char *params[LIST_MAX_PARAMS];
    int np = q->nscope;
    unsigned shape = 0;
    const char *cursor = NULL;
    keel_result r;

    *res = NULL;
    *nrows = 0;
    *has_more = false;
    *reversed = lp->ending_before[0] != '\0';
    *bad_cursor_param = NULL;
    if (lp->starting_after[0] != '\0' || lp->ending_before[0] != '\0') {
        bool exists = false;
        cursor = *reversed ? lp->ending_before : lp->starting_after;
        r = cursor_exists(db, q, cursor, &exists);
        if (r != KEEL_OK) {
            return r;
        }
        if (!exists) {
            *bad_cursor_param = *reversed ? "ending_before" : "starting_after";
            return KEEL_ERR_NOT_FOUND;
        }
    }
    for (int i = 0; i < q->nscope; i++) {
        params[i] = q->scope_params[i];
    }
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s t WHERE %s", q->columns, q->table, q->scope);
    /* Each optional condition is spelled out only when present, so the planner sees the
     * real shape (and the index on (merchant_id, created_at, id)) for every variant. */
    if (lp->status != NULL) {
        shape |= 1u;
        params[np++] = lp->status;
        appendf(sql, sizeof(sql), " AND t.status = $%d", np);
    }
    if (lp->has_created_gte) {
        shape |= 2u;
        snprintf(gte, sizeof(gte), "%" PRId64, lp->created_gte_ms);
        params[np++] = gte;
        appendf(sql, sizeof(sql),
                " AND t.created_at >= 'epoch'::timestamptz + $%d::bigint * interval "
                "'1 millisecond'",
                np);
    }
    if (lp->has_created_lt) {
        shape |= 4u;
        snprintf(lt, sizeof(lt), "%" PRId64, lp->created_lt_ms);
        params[np++] = lt;
        appendf(sql, sizeof(sql),
                " AND t.created_at < 'epoch'::timestamptz + $%d::bigint * interval "
                "'1 millisecond'",
                np);
    }
    if (cursor != NULL) {
        shape |= *reversed ? 16u : 8u;
        params[np++] = cursor;
        /* The cursor's own key, read in the same statement. */
        appendf(sql, sizeof(sql),
                " AND (t.created_at, t.id) %c (SELECT c.created_at, c.id FROM %s c WHERE c.id = "
                "$%d)",
                *reversed ? '>' : '<', q->table, np);
    }
    snprintf(limit, sizeof(limit), "%d", lp->limit + 1);
    params[np++] = limit;
    appendf(sql, sizeof(sql), " ORDER BY t.created_at %s, t.id %s LIMIT $%d",
            *reversed ? "ASC" : "DESC", *reversed ? "ASC" : "DESC", np);
    snprintf(name, sizeof(name), "%s_%u", q->name, shape);
    *res = keel_db_exec_prepared(db, name, sql, np, params);
    r = keel_db_check(db, *res, "listing");
    if (r != KEEL_OK) {
        PQclear(*res);
        *res = NULL;
        return r;
    }
    *nrows = PQntuples(*res);
    if (*nrows > lp->limit) {
        *has_more = true;
        *nrows = lp->limit;
    }
    return KEEL_OK;
}

int gateway_list_row(int i, int nrows, bool reversed)
{
    /* An ending_before page was read oldest first; show it newest first like every page. */
    return reversed ? nrows - 1 - i : i;
}
