/* Server-side request forgery guard: classifies IPv4/IPv6 addresses (v4-mapped and other
 * embeddings by the IPv4 address they carry), an allow-list of CIDRs, and a host resolution
 * with a timeout that refuses a host when any of its addresses is not public. */
#ifndef KEEL_SSRF_H
#define KEEL_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "keel/error.h"

#define KEEL_IP_STR_LEN 46 /* INET6_ADDRSTRLEN */

/* One IPv4 or IPv6 address. An IPv4 address uses bytes[0..3]; family is AF_INET or AF_INET6. */
typedef struct keel_ip {
    int family;
    uint8_t bytes[16];
} keel_ip;

typedef enum keel_ssrf_class {
    KEEL_SSRF_PUBLIC = 0,  /* globally routable: fine to call */
    KEEL_SSRF_LOOPBACK,    /* 127.0.0.0/8, ::1 */
    KEEL_SSRF_PRIVATE,     /* RFC 1918, fc00::/7 unique local, fec0::/10 site-local */
    KEEL_SSRF_LINK_LOCAL,  /* 169.254.0.0/16, fe80::/10 */
    KEEL_SSRF_MULTICAST,   /* 224.0.0.0/4, ff00::/8 */
    KEEL_SSRF_UNSPECIFIED, /* 0.0.0.0/8 ("this network"), :: */
    KEEL_SSRF_CGNAT,       /* 100.64.0.0/10 shared address space */
    KEEL_SSRF_METADATA,    /* cloud instance metadata: 169.254.169.254, fd00:ec2::254,
                              168.63.129.16, 100.100.100.200 */
    KEEL_SSRF_RESERVED,    /* documentation, benchmarking, 240.0.0.0/4, broadcast, Teredo,
                              deprecated IPv4-compatible IPv6, discard-only */
} keel_ssrf_class;

/* Parses an address literal without brackets ("10.0.0.1", "::ffff:127.0.0.1"). Strict:
 * dotted quads only for IPv4 (inet_pton). False when text is not an address. */
bool keel_ip_parse(const char *text, keel_ip *out);
/* Copies the address of an AF_INET/AF_INET6 sockaddr; false for another family. */
bool keel_ip_from_sockaddr(const struct sockaddr *sa, keel_ip *out);
/* Writes the canonical text form into out (KEEL_IP_STR_LEN bytes). Returns out. */
char *keel_ip_format(const keel_ip *ip, char *out);

/* The class of ip. An IPv6 address that carries an IPv4 address (v4-mapped ::ffff:0:0/96,
 * NAT64 64:ff9b::/96, 6to4 2002::/16) has the class of the IPv4 address it carries. */
keel_ssrf_class keel_ssrf_classify(const keel_ip *ip);
/* A short lowercase name, e.g. "loopback", for messages and metrics labels. */
const char *keel_ssrf_class_name(keel_ssrf_class c);

/* A list of CIDRs (e.g. "127.0.0.0/8,::1/128") whose addresses may be called although they
 * are not public. */
typedef struct keel_ssrf_allowlist keel_ssrf_allowlist;

/* Parses a comma- or space-separated CIDR list; a bare address means a /32 or /128. NULL or ""
 * gives an empty list. NULL with err filled (naming the bad entry) on a malformed entry. */
keel_ssrf_allowlist *keel_ssrf_allowlist_parse(const char *cidrs, char *err, size_t err_len);
void keel_ssrf_allowlist_free(keel_ssrf_allowlist *list);
/* Entries in the list (for logs). */
size_t keel_ssrf_allowlist_count(const keel_ssrf_allowlist *list);

/* True when keel may connect to ip: it is public, or an entry of list covers it. A metadata
 * address needs an entry that names exactly it (/32 or /128): a broad range such as
 * 169.254.0.0/16 never opens the metadata service by accident. An embedded IPv4 address is
 * matched against IPv4 entries too. list may be NULL (empty). *cls (may be NULL) gets the
 * class. */
bool keel_ssrf_permitted(const keel_ssrf_allowlist *list, const keel_ip *ip, keel_ssrf_class *cls);

/* Resolves host (a DNS name or an address literal, IPv6 without brackets) within timeout_ms
 * and checks every address it resolves to: one refused address refuses the host, so a name
 * cannot smuggle an internal address behind a public one. On KEEL_OK *out is the first
 * address, the one to connect to (pin it: connect to nothing else). Errors, with err naming
 * the host, the address and why:
 *   KEEL_ERR            an address is refused (not public and not allow-listed)
 *   KEEL_ERR_NOT_FOUND  the name does not exist or has no IPv4/IPv6 address
 *   KEEL_ERR_TRANSIENT  the resolver failed temporarily (retry later)
 *   KEEL_ERR_TIMEOUT    no answer within timeout_ms
 * Thread-safe; blocks the caller up to timeout_ms (the lookup itself runs on a helper
 * thread that finishes on its own). */
keel_result keel_ssrf_resolve(const char *host, const keel_ssrf_allowlist *list, int64_t timeout_ms,
                              keel_ip *out, char *err, size_t err_len);

#endif
