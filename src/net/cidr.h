#ifndef POSTERN_CIDR_H
#define POSTERN_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* IP networks as written in settings: "10.0.0.0/8", "192.0.2.7" (a single
 * host), "2001:db8::/32", "::1", "[2001:db8::]/48". IPv6 networks may have
 * any prefix length 0..128. Host bits set beyond the prefix are cleared
 * ("10.1.2.3/8" is 10.0.0.0/8). An IPv4-mapped IPv6 network
 * ("::ffff:10.0.0.0/104") is stored as the IPv4 network it names, and an
 * IPv4-mapped peer address (::ffff:a.b.c.d from a dual-stack socket) is
 * matched as the IPv4 address, so "10.0.0.0/8" covers both. */

struct net_cidr {
	sa_family_t family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network bytes (4 used for AF_INET) */
	unsigned prefix;    /* 0..32 or 0..128 */
};

/* Parse one network. Returns 0, or -1 with a static error text. */
int net_cidr_parse(const char *text, struct net_cidr *cidr_r, const char **error_r);

/* Parse a comma- or space-separated list ("" is an empty list). On success
 * *list_r is a malloc'ed array of *count_r entries (NULL when empty). On
 * failure *error_r names the offending entry (malloc'ed, caller frees). */
int net_cidr_parse_list(const char *text, struct net_cidr **list_r, size_t *count_r,
			char **error_r);

/* Replace *list_r / *count_r (freed first) with the networks in text, a
 * setting's value (NULL is an empty list). A value that does not parse
 * leaves the list empty and is logged with key, so a bad value never
 * widens what is trusted. */
void net_cidr_list_replace(const char *key, const char *text, struct net_cidr **list_r,
			   size_t *count_r);

/* true when the socket address is inside one of the networks. Non-IP
 * addresses (unix sockets) never match. */
bool net_cidr_match(const struct net_cidr *list, size_t count, const struct sockaddr *sa);
bool net_cidr_match_one(const struct net_cidr *cidr, const struct sockaddr *sa);

/* Format as "addr/prefix" into buf. */
const char *net_cidr_format(const struct net_cidr *cidr, char *buf, size_t size);

/* The IP bytes of a socket address with IPv4-mapped IPv6 unmapped: returns
 * AF_INET (4 bytes in addr_r), AF_INET6 (16 bytes) or AF_UNSPEC for
 * anything else. Shared with conn_limits. */
sa_family_t net_sockaddr_ip(const struct sockaddr *sa, uint8_t addr_r[16]);

#endif
