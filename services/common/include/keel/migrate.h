/* Versioned SQL migrations, applied at start-up under an advisory lock, each recorded with a
 * checksum so a changed file that was already applied stops the service. */
#ifndef KEEL_MIGRATE_H
#define KEEL_MIGRATE_H

#include <stddef.h>

#include "keel/db.h"
#include "keel/error.h"

/* One migration file. The build embeds a folder of NNN_name.sql files as an array of these
 * (cmake: keel_embed_migrations), sorted by version. */
typedef struct keel_migration {
    int version;
    const char *name; /* file name, e.g. "001_init.sql" */
    const char *sql;
} keel_migration;

/* libkeel's own tables (outbox, inbox), as the component "libkeel". */
extern const keel_migration keel_common_migrations[];
extern const size_t keel_common_migrations_count;

/* Applies, in version order, every migration of component not yet recorded in
 * keel_schema_migrations (created if missing), each in its own transaction, all under
 * pg_advisory_lock so concurrent instances apply each file once. A recorded migration whose
 * SHA-256 differs from the file's → KEEL_ERR with a message naming the file (a changed
 * migration must become a new one). Writes the reason into err on failure. */
keel_result keel_migrate_apply(keel_db *db, const char *component, const keel_migration *list,
                               size_t count, char *err, size_t err_len);

#endif
