/* Where worker threads that poll the database for due work sleep: woken when work is stored
 * (a kick), when a time they were told about arrives, when their poll interval passes, or on
 * stop. Waits run on the monotonic clock, so wall-clock jumps neither stall nor spin them. */
#ifndef KEEL_WAKEUP_H
#define KEEL_WAKEUP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct keel_wakeup keel_wakeup;

/* NULL when out of memory or the clock attributes are not available. */
keel_wakeup *keel_wakeup_new(void);
/* Call after every sleeper returned (joined). NULL is fine. */
void keel_wakeup_free(keel_wakeup *w);

/* The number of kicks so far: read it BEFORE looking for work, pass it to _sleep, so a kick
 * that lands while the thread looks is not slept through. */
uint64_t keel_wakeup_seen(keel_wakeup *w);
/* New work is stored: wakes every sleeper. Thread-safe; w may be NULL. */
void keel_wakeup_kick(keel_wakeup *w);
/* Work falls due in delay_ms: one sleeper wakes then (the earliest such time is kept). */
void keel_wakeup_due_in(keel_wakeup *w, int64_t delay_ms);
/* Wakes every sleeper for good: _stopped is true from now on. */
void keel_wakeup_stop(keel_wakeup *w);
/* True after _stop, or once a process shutdown was requested (keel/shutdown.h). */
bool keel_wakeup_stopped(keel_wakeup *w);

/* Sleeps until a kick after `seen`, a due time, ms, or a stop, whichever comes first. */
void keel_wakeup_sleep(keel_wakeup *w, uint64_t seen, int64_t ms);

#endif
