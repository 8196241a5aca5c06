/* Webhook URL checks on libcurl's URL parser (the same parser that later sends to it). */
#include "endpoint_url.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fetches one part; NULL when absent. The caller curl_free()s it. */
static char *url_part(CURLU *u, CURLUPart what, unsigned flags)
{
    char *v = NULL;
    if (curl_url_get(u, what, &v, flags) != CURLUE_OK) {
        return NULL;
    }
    return v;
}

bool notifier_url_parse(const char *url, bool allow_http, notifier_url *out, char *err,
                        size_t err_len)
{
    bool ok = false;
    CURLU *u = NULL;
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    char *user = NULL;
    char *password = NULL;
    char *fragment = NULL;
    char *zone = NULL;

    memset(out, 0, sizeof(*out));
    if (url == NULL || url[0] == '\0') {
        snprintf(err, err_len, "url is required");
        goto done;
    }
    if (strlen(url) > NOTIFIER_URL_MAX) {
        snprintf(err, err_len, "url is longer than %d bytes", NOTIFIER_URL_MAX);
        goto done;
    }
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(err, err_len,
                     "url must be plain ASCII without spaces or control characters "
                     "(percent-encode them)");
            goto done;
        }
    }
    u = curl_url();
    if (u == NULL) {
        snprintf(err, err_len, "out of memory checking the url");
        goto done;
    }
    /* No scheme guessing: "example.com/hook" is not a URL a merchant meant to give. */
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(err, err_len,
                 "url is not an absolute http(s) URL such as "
                 "https://example.com/webhooks");
        goto done;
    }
    scheme = url_part(u, CURLUPART_SCHEME, 0);
    host = url_part(u, CURLUPART_HOST, 0);
    port = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
    user = url_part(u, CURLUPART_USER, 0);
    password = url_part(u, CURLUPART_PASSWORD, 0);
    fragment = url_part(u, CURLUPART_FRAGMENT, 0);
    zone = url_part(u, CURLUPART_ZONEID, 0);
    if (scheme == NULL || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        snprintf(err, err_len, "url must start with https://");
        goto done;
    }
    out->https = strcmp(scheme, "https") == 0;
    if (!out->https && !allow_http) {
        snprintf(err, err_len, "url must use https:// (events carry payment data)");
        goto done;
    }
    if (user != NULL || password != NULL) {
        snprintf(err, err_len,
                 "url must not contain a user name or password; verify keel's "
                 "deliveries by their Keel-Signature instead");
        goto done;
    }
    if (fragment != NULL) {
        snprintf(err, err_len, "url must not contain a #fragment");
        goto done;
    }
    if (zone != NULL) {
        snprintf(err, err_len, "url must not name an IPv6 zone");
        goto done;
    }
    if (host == NULL || host[0] == '\0') {
        snprintf(err, err_len, "url has no host");
        goto done;
    }
    size_t hlen = strlen(host);
    const char *h = host;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        snprintf(err, err_len, "url's host is empty or longer than 253 characters");
        goto done;
    }
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';
    char *end = NULL;
    long p = port != NULL ? strtol(port, &end, 10) : 0;
    if (port == NULL || end == port || *end != '\0' || p < 1 || p > 65535) {
        snprintf(err, err_len, "url's port must be 1..65535");
        goto done;
    }
    out->port = (int)p;
    ok = true;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(password);
    curl_free(fragment);
    curl_free(zone);
    curl_url_cleanup(u);
    u = NULL;
    return ok;
}

keel_result notifier_url_check(const char *url, bool allow_http, const keel_ssrf_allowlist *allow,
                               int64_t timeout_ms, keel_ip *addr, char *err, size_t err_len)
{
    notifier_url parsed;
    memset(addr, 0, sizeof(*addr));
    if (!notifier_url_parse(url, allow_http, &parsed, err, err_len)) {
        return KEEL_ERR;
    }
    return keel_ssrf_resolve(parsed.host, allow, timeout_ms, addr, err, err_len);
}
