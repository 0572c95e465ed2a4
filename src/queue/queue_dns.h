#ifndef POSTERN_QUEUE_DNS_H
#define POSTERN_QUEUE_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/net_addr.h"

/* Where the queue runner sends mail, found without blocking the event loop.
 *
 * Name servers: the dns-resolvers setting ("192.0.2.53, [::1]:5353"), or
 * the nameserver lines of /etc/resolv.conf when it is empty; libevent's
 * evdns holds them and asks them for A and AAAA records. libevent 2.1's
 * evdns has no query for other record types, so the MX query is made here,
 * on the event loop, to the same servers: a UDP query with EDNS0 (1232
 * bytes), over TCP when the answer comes truncated, QUEUE_DNS_TRY_MS per
 * try, every server QUEUE_DNS_ROUNDS times before the lookup counts as a
 * temporary failure.
 *
 * queue_dns_mx() follows RFC 5321 5.1: the domain's MX hosts in preference
 * order (equal preferences in random order) with their addresses (A, then
 * AAAA), or, when the domain has no MX records, the domain's own addresses
 * (the implicit MX). A null MX (RFC 7505: one MX record of preference 0
 * naming ".") means the domain takes no mail. A name the DNS says does not
 * exist is a permanent failure; a server failure, a refusal or no answer
 * is a temporary one (the message is deferred).
 *
 * Results come through the callback from the event loop, never from inside
 * the call that started the lookup. */

/* the time one server gets to answer one query, and the rounds over all
 * servers for the MX query (A/AAAA: evdns's own timeout and attempts) */
#define QUEUE_DNS_TRY_MS 3000
#define QUEUE_DNS_ROUNDS 2
/* MX hosts looked up per domain, and addresses handed out */
#define QUEUE_DNS_MAX_MX    8
#define QUEUE_DNS_MAX_ADDRS 16

struct event_base;
struct queue_dns;
struct queue_dns_lookup;

enum queue_dns_outcome {
	QUEUE_DNS_OK,	     /* addresses found */
	QUEUE_DNS_TEMPFAIL,  /* no answer, a server failure: try later (4.4.3) */
	QUEUE_DNS_NO_DOMAIN, /* no such domain, or neither MX nor address (5.1.2) */
	QUEUE_DNS_NULL_MX,   /* RFC 7505: the domain takes no mail (5.1.10) */
	QUEUE_DNS_NO_HOST,   /* MX hosts, none of which has an address (5.4.4) */
};

struct queue_dns_result {
	enum queue_dns_outcome outcome;
	const char *detail; /* what was found or went wrong, for the status text */
	const struct net_addr *addrs;
	const char *const *names; /* the host name of each address (TLS SNI) */
	size_t naddrs;
};

typedef void queue_dns_cb(void *ctx, const struct queue_dns_result *result);

/* A resolver on base with the servers of resolvers ("" for
 * /etc/resolv.conf). Never NULL; a bad server list is logged and leaves no
 * server, so that lookups fail temporarily. */
struct queue_dns *queue_dns_new(struct event_base *base, const char *resolvers);
/* Use other servers from now on (nothing happens when they are the same). */
void queue_dns_set_resolvers(struct queue_dns *d, const char *resolvers);
/* Free; lookups in progress end without their callbacks. Clears *d. */
void queue_dns_free(struct queue_dns **d);

/* Where mail for domain goes (addresses with port). */
struct queue_dns_lookup *queue_dns_mx(struct queue_dns *d, const char *domain, unsigned port,
				      queue_dns_cb *cb, void *ctx);
/* The addresses of one host (a smarthost): an IP address as it is, else
 * /etc/hosts, else A and AAAA records. No address at all is TEMPFAIL. */
struct queue_dns_lookup *queue_dns_host(struct queue_dns *d, const char *host, unsigned port,
					queue_dns_cb *cb, void *ctx);
/* Stop caring about a lookup: its callback is not called. Clears *l (NULL
 * is fine). */
void queue_dns_cancel(struct queue_dns_lookup **l);

/* The MX records of a DNS answer to a query with this id for this domain.
 * Returns the RCODE (0 NOERROR, 3 NXDOMAIN, ...) with up to max records in
 * mx (sorted by preference) and their count in *n; -1 when the message is
 * not such an answer (wrong id, not a response, another question, cut
 * off); -2 when it is truncated (TC: ask again over TCP). */
struct queue_dns_mx_record {
	unsigned pref;
	char name[256]; /* "" for the root (a null MX) */
};
int queue_dns_parse_mx(const unsigned char *msg, size_t len, uint16_t id, const char *domain,
		       struct queue_dns_mx_record *mx, size_t max, size_t *n);
/* A query for domain's MX records with EDNS0 into buf (512 bytes). Returns
 * its length, or -1 for a name that is not a valid DNS name. */
int queue_dns_build_mx_query(const char *domain, uint16_t id, unsigned char *buf, size_t size);

#endif
