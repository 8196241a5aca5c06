/* Named crash points for fault tests, compiled in only when KEEL_FAILPOINTS_ENABLED. */
#ifndef KEEL_FAILPOINT_H
#define KEEL_FAILPOINT_H

/* KEEL_FAILPOINTS="name=action,name=action" switches points on at start-up. Actions:
 *   crash      raise(SIGKILL): the process dies as if killed, with nothing flushed
 *   sleep(MS)  sleep MS milliseconds, then go on
 * In a build without KEEL_FAILPOINTS_ENABLED the macro is empty and costs nothing. */
#ifdef KEEL_FAILPOINTS_ENABLED
void keel_failpoint_hit(const char *name);
#define KEEL_FAILPOINT(name) keel_failpoint_hit(name)
#else
#define KEEL_FAILPOINT(name) ((void)0)
#endif

#endif
