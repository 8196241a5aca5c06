/* Named crash and delay points for fault tests, switched on by KEEL_FAILPOINTS at start-up. */
#include "keel/failpoint.h"

#ifdef KEEL_FAILPOINTS_ENABLED

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/log.h"

#define FAILPOINT_MAX 64
#define FAILPOINT_NAME_MAX 128

typedef enum failpoint_action {
    FAILPOINT_CRASH,
    FAILPOINT_SLEEP,
} failpoint_action;

typedef struct failpoint {
    char name[FAILPOINT_NAME_MAX];
    failpoint_action action;
    int64_t sleep_ms;
} failpoint;

/* Written once under pthread_once, read-only afterwards: no lock on the hit path. */
static failpoint failpoints[FAILPOINT_MAX];
static size_t failpoint_count;
static pthread_once_t failpoint_once = PTHREAD_ONCE_INIT;

static void failpoint_trim(const char **start, const char **end)
{
    while (*start < *end && isspace((unsigned char)**start)) {
        (*start)++;
    }
    while (*end > *start && isspace((unsigned char)(*end)[-1])) {
        (*end)--;
    }
}

/* Parses one "name=action" entry in [start, end); logs and skips a malformed one, so a
 * typo shows in the test's log instead of silently never firing. */
static void failpoint_parse_entry(const char *start, const char *end)
{
    failpoint_trim(&start, &end);
    if (start == end) {
        return;
    }
    const char *eq = memchr(start, '=', (size_t)(end - start));
    if (eq == NULL) {
        keel_log_error("KEEL_FAILPOINTS: \"%.*s\" has no \"=action\"; use name=crash or "
                       "name=sleep(MS)",
                       (int)(end - start), start);
        return;
    }
    const char *name_end = eq;
    const char *act = eq + 1;
    failpoint_trim(&start, &name_end);
    failpoint_trim(&act, &end);
    size_t name_len = (size_t)(name_end - start);
    size_t act_len = (size_t)(end - act);
    if (name_len == 0 || name_len >= FAILPOINT_NAME_MAX) {
        keel_log_error("KEEL_FAILPOINTS: empty or too long failpoint name in \"%.*s\"",
                       (int)(end - start), start);
        return;
    }
    if (failpoint_count == FAILPOINT_MAX) {
        keel_log_error("KEEL_FAILPOINTS: more than %d failpoints; \"%.*s\" ignored", FAILPOINT_MAX,
                       (int)name_len, start);
        return;
    }
    failpoint fp;
    memset(&fp, 0, sizeof fp);
    memcpy(fp.name, start, name_len);
    if (act_len == 5 && memcmp(act, "crash", 5) == 0) {
        fp.action = FAILPOINT_CRASH;
    } else if (act_len > 7 && memcmp(act, "sleep(", 6) == 0 && act[act_len - 1] == ')') {
        char num[32];
        size_t num_len = act_len - 7;
        if (num_len == 0 || num_len >= sizeof num) {
            goto bad_action;
        }
        memcpy(num, act + 6, num_len);
        num[num_len] = '\0';
        char *num_end = NULL;
        errno = 0;
        long long ms = strtoll(num, &num_end, 10);
        if (errno != 0 || *num_end != '\0' || ms < 0 || !isdigit((unsigned char)num[0])) {
            goto bad_action;
        }
        fp.action = FAILPOINT_SLEEP;
        fp.sleep_ms = (int64_t)ms;
    } else {
        goto bad_action;
    }
    failpoints[failpoint_count++] = fp;
    keel_log_warn("failpoint %s armed: %.*s", fp.name, (int)act_len, act);
    return;

bad_action:
    keel_log_error("KEEL_FAILPOINTS: unknown action \"%.*s\" for %s; use crash or sleep(MS)",
                   (int)act_len, act, fp.name);
}

static void failpoint_load(void)
{
    const char *spec = getenv("KEEL_FAILPOINTS");
    if (spec == NULL) {
        return;
    }
    const char *p = spec;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        failpoint_parse_entry(p, end);
        p = comma != NULL ? comma + 1 : end;
    }
}

void keel_failpoint_hit(const char *name)
{
    pthread_once(&failpoint_once, failpoint_load);
    for (size_t i = 0; i < failpoint_count; i++) {
        const failpoint *fp = &failpoints[i];
        if (strcmp(fp->name, name) != 0) {
            continue;
        }
        if (fp->action == FAILPOINT_CRASH) {
            keel_log_warn("failpoint %s: crashing with SIGKILL", name);
            raise(SIGKILL);
        } else {
            keel_log_warn("failpoint %s: sleeping %lld ms", name, (long long)fp->sleep_ms);
            keel_clock_sleep_ms(fp->sleep_ms);
        }
        return;
    }
}

#else

/* ISO C forbids an empty translation unit; failpoints are compiled out in this build. */
typedef int keel_failpoint_disabled;

#endif
