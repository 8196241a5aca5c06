/* Loads a service's KEEL_* configuration table from the environment (and *_FILE for secrets). */
#include "keel/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "keel/log.h"

/* A secret file larger than this is surely the wrong file (a key store, a log). */
#define CONFIG_FILE_MAX 65536

typedef enum config_source {
    CONFIG_FROM_DEFAULT,
    CONFIG_FROM_ENV,
    CONFIG_FROM_FILE,
} config_source;

typedef struct config_value {
    char *text; /* the raw value, owned */
    int64_t int_value;
    bool bool_value;
    config_source source;
} config_value;

struct keel_config {
    const keel_config_spec *specs;
    size_t count;
    config_value *values;
};

static const char *config_type_name(keel_config_type t)
{
    switch (t) {
    case KEEL_CONFIG_STRING:
        return "string";
    case KEEL_CONFIG_INT:
        return "int";
    case KEEL_CONFIG_BOOL:
        return "bool";
    }
    return "?";
}

/* Reads a secret file into a malloc'd string with one trailing newline removed.
 * Returns NULL and fills err on failure; never puts file content into err. */
static char *config_read_file(const char *var, const char *path, char *err, size_t err_len)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "%s_FILE=%s cannot be opened: %s; point it at a readable file", var,
                 path, strerror(errno));
        goto fail;
    }
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, err_len, "out of memory reading %s_FILE", var);
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, err_len, "%s_FILE=%s cannot be read: %s", var, path, strerror(errno));
            goto fail;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > CONFIG_FILE_MAX) {
            snprintf(err, err_len, "%s_FILE=%s is larger than %d bytes; is it the right file?", var,
                     path, CONFIG_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    /* Files written by editors and `echo` end with a newline that is not part of the secret. */
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, err_len, "%s_FILE=%s contains a NUL byte; a secret must be text", var, path);
        goto fail;
    }
    buf[len] = '\0';
    return buf;

fail:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    buf = NULL;
    return NULL;
}

static bool config_parse_bool(const char *text, bool *out)
{
    static const char *const truthy[] = {"true", "1", "yes", "on"};
    static const char *const falsy[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, truthy[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(text, falsy[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool config_parse_int(const char *text, int64_t *out, bool *overflow)
{
    *overflow = false;
    const char *p = text;
    if (*p == '+' || *p == '-') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return false; /* rejects "", whitespace and what strtoll would skip */
    }
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE) {
        *overflow = true;
        return false;
    }
    if (end == NULL || *end != '\0') {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* Parses one value by its spec's type into v. Secrets are never echoed into err. */
static bool config_parse_value(const keel_config_spec *spec, config_value *v, char *err,
                               size_t err_len)
{
    const char *shown = spec->secret ? "<redacted>" : v->text;
    switch (spec->type) {
    case KEEL_CONFIG_STRING:
        return true;
    case KEEL_CONFIG_INT: {
        bool overflow = false;
        if (config_parse_int(v->text, &v->int_value, &overflow)) {
            return true;
        }
        if (overflow) {
            snprintf(err, err_len,
                     "%s=\"%s\" is out of range: it must be between %" PRId64 " and %" PRId64,
                     spec->name, shown, INT64_MIN, INT64_MAX);
        } else {
            snprintf(err, err_len, "%s=\"%s\" is not a decimal integer (%s)", spec->name, shown,
                     spec->help != NULL ? spec->help : "");
        }
        return false;
    }
    case KEEL_CONFIG_BOOL:
        if (config_parse_bool(v->text, &v->bool_value)) {
            return true;
        }
        snprintf(err, err_len, "%s=\"%s\" is not a boolean: use true/false, 1/0, yes/no or on/off",
                 spec->name, shown);
        return false;
    }
    snprintf(err, err_len, "%s has an unknown type in the service's table", spec->name);
    return false;
}

keel_config *keel_config_load(const keel_config_spec *specs, size_t count, char *err,
                              size_t err_len)
{
    keel_config *cfg = calloc(1, sizeof *cfg);
    char file_var[256];
    if (cfg == NULL) {
        snprintf(err, err_len, "out of memory loading the configuration");
        goto fail;
    }
    cfg->specs = specs;
    cfg->count = count;
    cfg->values = calloc(count > 0 ? count : 1, sizeof *cfg->values);
    if (cfg->values == NULL) {
        snprintf(err, err_len, "out of memory loading the configuration");
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        const keel_config_spec *spec = &specs[i];
        config_value *v = &cfg->values[i];
        const char *env = getenv(spec->name);
        const char *file = NULL;
        if (spec->secret) {
            snprintf(file_var, sizeof file_var, "%s_FILE", spec->name);
            file = getenv(file_var);
            if (file != NULL && file[0] == '\0') {
                file = NULL;
            }
        }
        if (file != NULL && env != NULL && env[0] != '\0') {
            snprintf(err, err_len, "both %s and %s_FILE are set; set only one of them", spec->name,
                     spec->name);
            goto fail;
        }
        if (file != NULL) {
            v->text = config_read_file(spec->name, file, err, err_len);
            if (v->text == NULL) {
                goto fail;
            }
            v->source = CONFIG_FROM_FILE;
        } else if (env != NULL) {
            v->text = strdup(env);
            v->source = CONFIG_FROM_ENV;
        } else if (spec->default_value != NULL) {
            v->text = strdup(spec->default_value);
            v->source = CONFIG_FROM_DEFAULT;
        } else {
            snprintf(err, err_len, "%s is required but not set: %s. Set %s%s%s", spec->name,
                     spec->help != NULL ? spec->help : "(no description)", spec->name,
                     spec->secret ? " or " : "", spec->secret ? file_var : "");
            goto fail;
        }
        if (v->text == NULL) {
            snprintf(err, err_len, "out of memory loading %s", spec->name);
            goto fail;
        }
        if (spec->default_value == NULL && v->text[0] == '\0') {
            snprintf(err, err_len, "%s is required but empty: %s", spec->name,
                     spec->help != NULL ? spec->help : "(no description)");
            goto fail;
        }
        if (!config_parse_value(spec, v, err, err_len)) {
            goto fail;
        }
    }
    return cfg;

fail:
    keel_config_free(cfg);
    cfg = NULL;
    return NULL;
}

void keel_config_free(keel_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    if (cfg->values != NULL) {
        for (size_t i = 0; i < cfg->count; i++) {
            char *text = cfg->values[i].text;
            if (text != NULL && cfg->specs[i].secret) {
                /* Do not leave secrets lying in freed heap memory. */
                explicit_bzero(text, strlen(text));
            }
            free(text);
            cfg->values[i].text = NULL;
        }
        free(cfg->values);
        cfg->values = NULL;
    }
    free(cfg);
}

/* The value for name, checked against the expected type; aborts on a programming error. */
static const config_value *config_lookup(const keel_config *cfg, const char *name,
                                         keel_config_type type)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->specs[i].name, name) == 0) {
            if (cfg->specs[i].type != type) {
                fprintf(stderr, "keel_config: %s is a %s, read as a %s\n", name,
                        config_type_name(cfg->specs[i].type), config_type_name(type));
                abort();
            }
            return &cfg->values[i];
        }
    }
    fprintf(stderr, "keel_config: %s is not in this service's configuration table\n", name);
    abort();
}

const char *keel_config_string(const keel_config *cfg, const char *name)
{
    return config_lookup(cfg, name, KEEL_CONFIG_STRING)->text;
}

int64_t keel_config_int(const keel_config *cfg, const char *name)
{
    return config_lookup(cfg, name, KEEL_CONFIG_INT)->int_value;
}

bool keel_config_bool(const keel_config *cfg, const char *name)
{
    return config_lookup(cfg, name, KEEL_CONFIG_BOOL)->bool_value;
}

bool keel_config_has(const keel_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->count; i++) {
        if (strcmp(cfg->specs[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

bool keel_config_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (argv[i] != NULL && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            return true;
        }
    }
    return false;
}

static const char *config_default_shown(const keel_config_spec *spec)
{
    if (spec->default_value == NULL) {
        return "(required)";
    }
    if (spec->default_value[0] == '\0') {
        return "\"\"";
    }
    return spec->default_value;
}

void keel_config_print_help(FILE *out, const char *program, const char *summary,
                            const keel_config_spec *specs, size_t count)
{
    /* Column widths from the table itself, so the columns line up whatever the names. */
    int w_name = (int)strlen("VARIABLE");
    int w_type = (int)strlen("TYPE");
    int w_def = (int)strlen("DEFAULT");
    for (size_t i = 0; i < count; i++) {
        int n = (int)strlen(specs[i].name);
        int d = (int)strlen(config_default_shown(&specs[i]));
        int t = (int)strlen(config_type_name(specs[i].type));
        w_name = n > w_name ? n : w_name;
        w_def = d > w_def ? d : w_def;
        w_type = t > w_type ? t : w_type;
    }
    /* A very long default (a URL) would push the help text off screen; cap the column. */
    if (w_def > 30) {
        w_def = 30;
    }
    fprintf(out, "Usage: %s [--help]\n\n", program != NULL ? program : "keel");
    if (summary != NULL && summary[0] != '\0') {
        fprintf(out, "%s\n\n", summary);
    }
    fprintf(out,
            "Configuration is read from these environment variables. A secret may instead\n"
            "be read from the file named by <VARIABLE>_FILE (one trailing newline removed).\n\n");
    fprintf(out, "  %-*s  %-*s  %-*s  %-6s  %s\n", w_name, "VARIABLE", w_type, "TYPE", w_def,
            "DEFAULT", "SECRET", "DESCRIPTION");
    for (size_t i = 0; i < count; i++) {
        const keel_config_spec *spec = &specs[i];
        fprintf(out, "  %-*s  %-*s  %-*s  %-6s  %s\n", w_name, spec->name, w_type,
                config_type_name(spec->type), w_def, config_default_shown(spec),
                spec->secret ? "yes" : "no", spec->help != NULL ? spec->help : "");
    }
    fflush(out);
}

/* Copies value into out with a password inside it masked: the "pass" of
 * "scheme://user:pass@host" and the value of a libpq "password=..." keyword. The help says
 * URLs carry no password, but a log line is the wrong place to find out someone ignored it. */
static void config_mask_password(const char *value, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s", value);
    char *scheme = strstr(out, "://");
    if (scheme != NULL) {
        char *auth = scheme + 3;
        size_t auth_len = strcspn(auth, "/?#");
        char *at = memrchr(auth, '@', auth_len);
        char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            char rest[1024];
            snprintf(rest, sizeof rest, "%s", at);
            snprintf(colon + 1, out_len - (size_t)(colon + 1 - out), "<redacted>%s", rest);
        }
    }
    char *kw = strstr(out, "password=");
    if (kw != NULL) {
        char *val = kw + strlen("password=");
        char rest[1024];
        snprintf(rest, sizeof rest, "%s", val + strcspn(val, " "));
        snprintf(val, out_len - (size_t)(val - out), "<redacted>%s", rest);
    }
}

void keel_config_log(const keel_config *cfg)
{
    static const char *const sources[] = {"default", "environment", "file"};
    char shown[1024];
    for (size_t i = 0; i < cfg->count; i++) {
        const keel_config_spec *spec = &cfg->specs[i];
        const config_value *v = &cfg->values[i];
        if (spec->secret) {
            snprintf(shown, sizeof shown, "<redacted>");
        } else {
            config_mask_password(v->text, shown, sizeof shown);
        }
        keel_log_info("config %s=%s (from %s)", spec->name, shown, sources[v->source]);
    }
}
