#include "authd/authd_tarpit.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TARPIT_SLOTS 8192

struct tarpit_entry {
	char key[48];
	unsigned failures;
	long long last_ms;
};

static struct tarpit_entry tarpit_table[TARPIT_SLOTS];

void authd_tarpit_key(const char *peer, char *key, unsigned size)
{
	char host[64];
	const char *end;
	if (peer[0] == '[') {
		end = strchr(peer, ']');
		peer++;
	} else {
		end = strrchr(peer, ':');
	}
	size_t n = end != NULL ? (size_t)(end - peer) : strlen(peer);
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	memcpy(host, peer, n);
	host[n] = '\0';
	struct in6_addr a6;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		/* IPv4-mapped addresses count as IPv4 */
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a6.s6_addr, mapped, 12) == 0) {
			snprintf(key, size, "%u.%u.%u.%u", a6.s6_addr[12], a6.s6_addr[13],
				 a6.s6_addr[14], a6.s6_addr[15]);
			return;
		}
		memset(a6.s6_addr + 8, 0, 8);
		char text[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &a6, text, sizeof(text));
		snprintf(key, size, "%s/64", text);
		return;
	}
	snprintf(key, size, "%s", host);
}

static struct tarpit_entry *tarpit_slot(const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return &tarpit_table[h % TARPIT_SLOTS];
}

unsigned authd_tarpit_count(const char *key, long long now_ms)
{
	struct tarpit_entry *e = tarpit_slot(key);
	if (strcmp(e->key, key) != 0 || now_ms - e->last_ms > TARPIT_WINDOW_MS)
		return 0;
	return e->failures;
}

unsigned authd_tarpit_fail(const char *key, long long now_ms)
{
	struct tarpit_entry *e = tarpit_slot(key);
	if (strcmp(e->key, key) != 0 || now_ms - e->last_ms > TARPIT_WINDOW_MS) {
		snprintf(e->key, sizeof(e->key), "%s", key);
		e->failures = 0;
	}
	if (e->failures < 1000)
		e->failures++;
	e->last_ms = now_ms;
	return e->failures;
}

long long authd_tarpit_delay_ms(unsigned failures, long long base_ms)
{
	if (failures <= 1)
		return 0;
	long long delay = base_ms > 0 ? base_ms : 1000;
	for (unsigned i = 2; i < failures && delay < TARPIT_MAX_DELAY_MS; i++)
		delay *= 2;
	return delay > TARPIT_MAX_DELAY_MS ? TARPIT_MAX_DELAY_MS : delay;
}
