/* Service configuration from KEEL_* environment variables, described by one table per service. */
#ifndef KEEL_CONFIG_H
#define KEEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum keel_config_type {
    KEEL_CONFIG_STRING,
    KEEL_CONFIG_INT,  /* a decimal integer that fits int64 */
    KEEL_CONFIG_BOOL, /* true/false, 1/0, yes/no, on/off */
} keel_config_type;

/* One row of a service's configuration table. */
typedef struct keel_config_spec {
    const char *name; /* the environment variable, e.g. "KEEL_HTTP_PORT" */
    keel_config_type type;
    const char *default_value; /* NULL: the variable is required */
    const char *help;          /* one line, printed by --help */
    bool secret;               /* never printed; may also come from <name>_FILE */
} keel_config_spec;

typedef struct keel_config keel_config;

/* Reads every spec'd variable from the environment. For a secret, <name>_FILE names a
 * file whose content (trailing newline removed) is the value; setting both is an error.
 * Values are checked against their type. On error returns NULL and writes a message
 * naming the variable and what to do into err. The specs must outlive the config. */
keel_config *keel_config_load(const keel_config_spec *specs, size_t count, char *err,
                              size_t err_len);
void keel_config_free(keel_config *cfg);

/* Getters abort() when name is not in the table or has another type: that is a
 * programming error, not a user error. Strings stay owned by the config. */
const char *keel_config_string(const keel_config *cfg, const char *name);
int64_t keel_config_int(const keel_config *cfg, const char *name);
bool keel_config_bool(const keel_config *cfg, const char *name);
/* True if name is a row of this config's table (for shared code that reads optional rows). */
bool keel_config_has(const keel_config *cfg, const char *name);

/* True if argv holds --help or -h. */
bool keel_config_wants_help(int argc, char **argv);
/* Prints the table: name, type, default, secret flag, help. */
void keel_config_print_help(FILE *out, const char *program, const char *summary,
                            const keel_config_spec *specs, size_t count);
/* Logs every value at info level, secrets shown as "<redacted>". */
void keel_config_log(const keel_config *cfg);

#endif
