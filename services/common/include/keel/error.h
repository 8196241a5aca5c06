/* keel's one result code, shared by every libkeel module. */
#ifndef KEEL_ERROR_H
#define KEEL_ERROR_H

typedef enum keel_result {
    KEEL_OK = 0,
    KEEL_ERR = -1,           /* permanent: retrying the same thing cannot succeed */
    KEEL_ERR_TRANSIENT = -2, /* the database, broker or peer is away: retry later */
    KEEL_ERR_CONFLICT = -3,  /* a uniqueness or state conflict the caller must handle */
    KEEL_ERR_NOT_FOUND = -4,
    KEEL_ERR_TIMEOUT = -5,
    KEEL_ERR_FULL = -6, /* a bounded queue or pool is full: back-pressure, not loss */
} keel_result;

/* A short lowercase name for logs, e.g. "transient". */
const char *keel_result_name(keel_result r);

#endif
