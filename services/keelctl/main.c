/* keelctl, the operator CLI: picks the command group named by argv[1] and hands over to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "keel/log.h"

typedef struct keelctl_group {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} keelctl_group;

static const keelctl_group keelctl_groups[] = {
    {"topics", keelctl_topics_main,
     "ensure | list: create keel's Kafka topics and their .dlq twins (KEEL_KAFKA_BROKERS)"},
    {"merchant", keelctl_merchant_main,
     "merchants in the gateway database (KEEL_DATABASE_URL, KEEL_DATABASE_PASSWORD[_FILE])"},
    {"apikey", keelctl_apikey_main,
     "merchant API keys in the gateway database (same database settings as merchant)"},
    {"audit", keelctl_audit_main,
     "check that the ledger's books add up (KEEL_LEDGER_DATABASE_URL, ..._PASSWORD[_FILE])"},
    {"deliveries", keelctl_deliveries_main,
     "list | show | replay webhook deliveries (KEEL_NOTIFIER_DATABASE_URL, ..._PASSWORD[_FILE])"},
};

#define KEELCTL_GROUP_COUNT (sizeof keelctl_groups / sizeof keelctl_groups[0])

static void keelctl_usage(FILE *out)
{
    fprintf(out, "usage: keelctl <group> <command> [options]\n\ngroups:\n");
    for (size_t i = 0; i < KEELCTL_GROUP_COUNT; i++) {
        fprintf(out, "  %-9s %s\n", keelctl_groups[i].name, keelctl_groups[i].summary);
    }
    fprintf(out, "\n`keelctl <group> --help` lists a group's commands and options.\n"
                 "KEEL_LOG_LEVEL (default warn) sets how much the libraries log to stderr.\n"
                 "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    /* An operator reads stdout; library logs go to stderr and only when they matter. */
    keel_log_level level = KEEL_LOG_WARN;
    const char *level_text = getenv("KEEL_LOG_LEVEL");
    if (level_text != NULL && level_text[0] != '\0' && !keel_log_level_parse(level_text, &level)) {
        fprintf(stderr, "keelctl: KEEL_LOG_LEVEL=%s is not one of debug, info, warn, error\n",
                level_text);
        return 2;
    }
    keel_log_init("keelctl", level);

    if (argc < 2) {
        keelctl_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        keelctl_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < KEELCTL_GROUP_COUNT; i++) {
        if (strcmp(argv[1], keelctl_groups[i].name) == 0) {
            return keelctl_groups[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "keelctl: unknown command group '%s'\n\n", argv[1]);
    keelctl_usage(stderr);
    return 2;
}
