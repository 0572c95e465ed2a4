#ifndef POSTERN_NET_ADDR_H
#define POSTERN_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A listening or connecting address as written in settings:
 *   "127.0.0.1:143", "0.0.0.0:993", "[::1]:143", "[::]:993",
 *   "unix:/path/to/socket" (absolute path, at most 107 bytes).
 * Host names are not accepted here: bindings are addresses. */
struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parse one address. Returns 0 on success, -1 with a static error text. */
int net_addr_parse(const char *text, struct net_addr *addr_r, const char **error_r);

/* Parse a comma- or space-separated list ("" is an empty list). On success
 * *addrs_r is a malloc'ed array of *count_r entries (NULL when empty).
 * On failure, *error_r names the offending entry (malloc'ed, caller frees). */
int net_addr_parse_list(const char *text, struct net_addr **addrs_r, size_t *count_r,
			char **error_r);

/* Format as "addr:port" / "[v6]:port" / "unix:/path" into buf. */
const char *net_addr_format(const struct net_addr *addr, char *buf, size_t size);
/* Same for a raw sockaddr (as returned by accept()). */
const char *net_sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf,
				size_t size);

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b);

#endif
