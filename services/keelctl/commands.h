/* The command groups of keelctl; main.c dispatches argv[1] to one of them. */
#ifndef KEELCTL_COMMANDS_H
#define KEELCTL_COMMANDS_H

/* Each gets argc/argv starting at the group name (argv[0] = "topics") and returns the
 * process exit code: 0 success, 1 failure, 2 usage error. */
int keelctl_topics_main(int argc, char **argv);     /* topics.c */
int keelctl_merchant_main(int argc, char **argv);   /* merchants.c */
int keelctl_apikey_main(int argc, char **argv);     /* merchants.c */
int keelctl_audit_main(int argc, char **argv);      /* audit.c */
int keelctl_deliveries_main(int argc, char **argv); /* deliveries.c */

#endif
