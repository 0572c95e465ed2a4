#include "net/cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"

static const uint8_t cidr_v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void cidr_mask(uint8_t *addr, size_t size, unsigned prefix)
{
	for (size_t i = 0; i < size; i++) {
		unsigned bit = (unsigned)i * 8;
		if (prefix >= bit + 8)
			continue;
		if (prefix <= bit)
			addr[i] = 0;
		else
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
	}
}

int net_cidr_parse(const char *text, struct net_cidr *cidr_r, const char **error_r)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(text, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);

	memset(cidr_r, 0, sizeof(*cidr_r));
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		text++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*error_r = "expected an IP address or network (addr/prefix)";
		return -1;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';

	unsigned max_prefix;
	if (inet_pton(AF_INET, host, cidr_r->addr) == 1) {
		cidr_r->family = AF_INET;
		max_prefix = 32;
	} else if (inet_pton(AF_INET6, host, cidr_r->addr) == 1) {
		cidr_r->family = AF_INET6;
		max_prefix = 128;
	} else {
		*error_r = "not an IPv4 or IPv6 address";
		return -1;
	}

	unsigned prefix = max_prefix;
	if (slash != NULL) {
		const char *s = slash + 1;
		if (*s == '\0' || strlen(s) > 3) {
			*error_r = "bad prefix length";
			return -1;
		}
		prefix = 0;
		for (; *s != '\0'; s++) {
			if (!isdigit((unsigned char)*s)) {
				*error_r = "bad prefix length";
				return -1;
			}
			prefix = prefix * 10 + (unsigned)(*s - '0');
		}
		if (prefix > max_prefix) {
			*error_r = max_prefix == 32 ? "IPv4 prefix length must be 0..32"
						    : "IPv6 prefix length must be 0..128";
			return -1;
		}
	}
	if (cidr_r->family == AF_INET6 && prefix >= 96 &&
	    memcmp(cidr_r->addr, cidr_v4mapped_prefix, sizeof(cidr_v4mapped_prefix)) == 0) {
		memmove(cidr_r->addr, cidr_r->addr + 12, 4);
		memset(cidr_r->addr + 4, 0, 12);
		cidr_r->family = AF_INET;
		prefix -= 96;
		max_prefix = 32;
	}
	cidr_r->prefix = prefix;
	cidr_mask(cidr_r->addr, max_prefix / 8, prefix);
	return 0;
}

int net_cidr_parse_list(const char *text, struct net_cidr **list_r, size_t *count_r, char **error_r)
{
	char *copy = xstrdup(text);
	struct net_cidr *list = NULL;
	size_t count = 0;
	char *save = NULL;

	*list_r = NULL;
	*count_r = 0;
	for (char *tok = strtok_r(copy, ", \t\n", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t\n", &save)) {
		struct net_cidr cidr;
		const char *error;
		if (net_cidr_parse(tok, &cidr, &error) < 0) {
			*error_r = xasprintf("'%s': %s", tok, error);
			free(list);
			free(copy);
			return -1;
		}
		list = xrealloc(list, (count + 1) * sizeof(*list));
		list[count++] = cidr;
	}
	free(copy);
	*list_r = list;
	*count_r = count;
	return 0;
}

sa_family_t net_sockaddr_ip(const struct sockaddr *sa, uint8_t addr_r[16])
{
	memset(addr_r, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		memcpy(addr_r, &sin->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *b = sin6->sin6_addr.s6_addr;
		if (memcmp(b, cidr_v4mapped_prefix, sizeof(cidr_v4mapped_prefix)) == 0) {
			memcpy(addr_r, b + 12, 4);
			return AF_INET;
		}
		memcpy(addr_r, b, 16);
		return AF_INET6;
	}
	return AF_UNSPEC;
}

static bool cidr_match_bytes(const struct net_cidr *cidr, sa_family_t family, const uint8_t *addr)
{
	if (cidr->family != family)
		return false;
	unsigned full = cidr->prefix / 8, rest = cidr->prefix % 8;
	if (memcmp(cidr->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (addr[full] & mask) == cidr->addr[full];
}

bool net_cidr_match_one(const struct net_cidr *cidr, const struct sockaddr *sa)
{
	uint8_t addr[16];
	sa_family_t family = net_sockaddr_ip(sa, addr);
	return family != AF_UNSPEC && cidr_match_bytes(cidr, family, addr);
}

bool net_cidr_match(const struct net_cidr *list, size_t count, const struct sockaddr *sa)
{
	uint8_t addr[16];
	sa_family_t family = net_sockaddr_ip(sa, addr);
	if (family == AF_UNSPEC)
		return false;
	for (size_t i = 0; i < count; i++)
		if (cidr_match_bytes(&list[i], family, addr))
			return true;
	return false;
}

const char *net_cidr_format(const struct net_cidr *cidr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	if (inet_ntop(cidr->family, cidr->addr, host, sizeof(host)) == NULL)
		snprintf(host, sizeof(host), "?");
	snprintf(buf, size, "%s/%u", host, cidr->prefix);
	return buf;
}

void net_cidr_list_replace(const char *key, const char *text, struct net_cidr **list_r,
			   size_t *count_r)
{
	free(*list_r);
	*list_r = NULL;
	*count_r = 0;
	char *error = NULL;
	if (text != NULL && net_cidr_parse_list(text, list_r, count_r, &error) < 0) {
		log_error("%s: %s", key, error);
		free(error);
	}
}
