#include "lib/net_addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/xalloc.h"

static int net_addr_parse_port(const char *s, unsigned *port_r)
{
	if (*s == '\0' || strlen(s) > 5)
		return -1;
	unsigned port = 0;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		port = port * 10 + (unsigned)(*s - '0');
	}
	if (port == 0 || port > 65535)
		return -1;
	*port_r = port;
	return 0;
}

int net_addr_parse(const char *text, struct net_addr *addr_r, const char **error_r)
{
	memset(addr_r, 0, sizeof(*addr_r));
	if (strncmp(text, "unix:", 5) == 0) {
		const char *path = text + 5;
		struct sockaddr_un *sun = (struct sockaddr_un *)&addr_r->ss;
		if (path[0] != '/') {
			*error_r = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(path) >= sizeof(sun->sun_path)) {
			*error_r = "unix socket path too long (at most 107 bytes)";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		addr_r->len = (socklen_t)sizeof(*sun);
		return 0;
	}

	char host[INET6_ADDRSTRLEN + 2];
	const char *port_text;
	bool bracketed = text[0] == '[';
	if (bracketed) {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':') {
			*error_r = "expected [ipv6-address]:port";
			return -1;
		}
		size_t n = (size_t)(close - text - 1);
		if (n == 0 || n >= sizeof(host)) {
			*error_r = "bad IPv6 address";
			return -1;
		}
		memcpy(host, text + 1, n);
		host[n] = '\0';
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL) {
			*error_r = "expected address:port";
			return -1;
		}
		size_t n = (size_t)(colon - text);
		if (n == 0 || n >= sizeof(host) || memchr(text, ':', n) != NULL) {
			*error_r = "expected address:port (write IPv6 as [addr]:port)";
			return -1;
		}
		memcpy(host, text, n);
		host[n] = '\0';
		port_text = colon + 1;
	}
	unsigned port;
	if (net_addr_parse_port(port_text, &port) < 0) {
		*error_r = "port must be a number from 1 to 65535";
		return -1;
	}
	if (bracketed) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr_r->ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*error_r = "bad IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		addr_r->len = (socklen_t)sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&addr_r->ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*error_r = "bad IPv4 address";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		addr_r->len = (socklen_t)sizeof(*sin);
	}
	return 0;
}

int net_addr_parse_list(const char *text, struct net_addr **addrs_r, size_t *count_r,
			char **error_r)
{
	*addrs_r = NULL;
	*count_r = 0;
	char *copy = xstrdup(text);
	struct net_addr *addrs = NULL;
	size_t count = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		struct net_addr addr;
		const char *error;
		if (net_addr_parse(tok, &addr, &error) < 0) {
			*error_r = xasprintf("'%s': %s", tok, error);
			free(addrs);
			free(copy);
			return -1;
		}
		addrs = xrealloc(addrs, (count + 1) * sizeof(*addrs));
		addrs[count++] = addr;
	}
	free(copy);
	*addrs_r = addrs;
	*count_r = count;
	return 0;
}

const char *net_sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf,
				size_t size)
{
	char host[INET6_ADDRSTRLEN];
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
		if (len <= (socklen_t)offsetof(struct sockaddr_un, sun_path) ||
		    sun->sun_path[0] == '\0')
			snprintf(buf, size, "unix:");
		else
			snprintf(buf, size, "unix:%s", sun->sun_path);
		break;
	}
	default:
		snprintf(buf, size, "?");
	}
	return buf;
}

const char *net_addr_format(const struct net_addr *addr, char *buf, size_t size)
{
	return net_sockaddr_format((const struct sockaddr *)&addr->ss, addr->len, buf, size);
}

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}
