#include "net/conn_limits.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "net/cidr.h"

#define CONN_LIMITS_MIN_BUCKETS 16

struct conn_limits_entry {
	struct conn_limits_entry *next;
	uint64_t hash;
	unsigned count;
	size_t key_len;
	unsigned char key[];
};

struct conn_limits_table {
	struct conn_limits_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t nentries;
};

struct conn_limits {
	uint64_t k0, k1; /* hash key */
	unsigned total;
	struct conn_limits_table ips;
	struct conn_limits_table users;
};

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND()                                                                                 \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL64(v1, 13);                                                               \
		v1 ^= v0;                                                                          \
		v0 = ROTL64(v0, 32);                                                               \
		v2 += v3;                                                                          \
		v3 = ROTL64(v3, 16);                                                               \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL64(v3, 21);                                                               \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL64(v1, 17);                                                               \
		v1 ^= v2;                                                                          \
		v2 = ROTL64(v2, 32);                                                               \
	} while (0)

/* SipHash-2-4: a keyed hash, so table collisions cannot be chosen from outside */
static uint64_t conn_limits_hash(const struct conn_limits *limits, const unsigned char *in,
				 size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ limits->k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ limits->k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ limits->k0;
	uint64_t v3 = 0x7465646279746573ULL ^ limits->k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;
		for (int j = 7; j >= 0; j--)
			m = (m << 8) | in[i + (size_t)j];
		v3 ^= m;
		SIPROUND();
		SIPROUND();
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND();
	SIPROUND();
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND();
	SIPROUND();
	SIPROUND();
	SIPROUND();
	return v0 ^ v1 ^ v2 ^ v3;
}

static void conn_limits_table_init(struct conn_limits_table *table)
{
	table->nbuckets = CONN_LIMITS_MIN_BUCKETS;
	table->buckets = xcalloc(table->nbuckets, sizeof(*table->buckets));
	table->nentries = 0;
}

static void conn_limits_table_deinit(struct conn_limits_table *table)
{
	for (size_t i = 0; i < table->nbuckets; i++) {
		struct conn_limits_entry *e = table->buckets[i];
		while (e != NULL) {
			struct conn_limits_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(table->buckets);
	table->buckets = NULL;
}

static void conn_limits_table_resize(struct conn_limits_table *table, size_t nbuckets)
{
	struct conn_limits_entry **buckets = xcalloc(nbuckets, sizeof(*buckets));
	for (size_t i = 0; i < table->nbuckets; i++) {
		struct conn_limits_entry *e = table->buckets[i];
		while (e != NULL) {
			struct conn_limits_entry *next = e->next;
			size_t b = (size_t)e->hash & (nbuckets - 1);
			e->next = buckets[b];
			buckets[b] = e;
			e = next;
		}
	}
	free(table->buckets);
	table->buckets = buckets;
	table->nbuckets = nbuckets;
}

static struct conn_limits_entry **conn_limits_table_find(const struct conn_limits_table *table,
							 uint64_t hash, const unsigned char *key,
							 size_t key_len)
{
	struct conn_limits_entry **ep = &table->buckets[(size_t)hash & (table->nbuckets - 1)];
	for (; *ep != NULL; ep = &(*ep)->next) {
		if ((*ep)->hash == hash && (*ep)->key_len == key_len &&
		    memcmp((*ep)->key, key, key_len) == 0)
			break;
	}
	return ep;
}

static unsigned conn_limits_table_count(const struct conn_limits *limits,
					const struct conn_limits_table *table,
					const unsigned char *key, size_t key_len)
{
	uint64_t hash = conn_limits_hash(limits, key, key_len);
	struct conn_limits_entry **ep = conn_limits_table_find(table, hash, key, key_len);
	return *ep == NULL ? 0 : (*ep)->count;
}

static int conn_limits_table_add(struct conn_limits *limits, struct conn_limits_table *table,
				 const unsigned char *key, size_t key_len, unsigned max)
{
	uint64_t hash = conn_limits_hash(limits, key, key_len);
	struct conn_limits_entry **ep = conn_limits_table_find(table, hash, key, key_len);
	if (*ep != NULL) {
		if (max != 0 && (*ep)->count >= max)
			return 0;
		(*ep)->count++;
		return 1;
	}
	struct conn_limits_entry *e = xmalloc(sizeof(*e) + key_len);
	e->hash = hash;
	e->count = 1;
	e->key_len = key_len;
	memcpy(e->key, key, key_len);
	e->next = NULL;
	*ep = e;
	if (++table->nentries > table->nbuckets * 2)
		conn_limits_table_resize(table, table->nbuckets * 2);
	return 1;
}

static void conn_limits_table_remove(struct conn_limits *limits, struct conn_limits_table *table,
				     const unsigned char *key, size_t key_len)
{
	uint64_t hash = conn_limits_hash(limits, key, key_len);
	struct conn_limits_entry **ep = conn_limits_table_find(table, hash, key, key_len);
	struct conn_limits_entry *e = *ep;
	if (e == NULL)
		return;
	if (--e->count > 0)
		return;
	*ep = e->next;
	free(e);
	table->nentries--;
	if (table->nbuckets > CONN_LIMITS_MIN_BUCKETS && table->nentries < table->nbuckets / 8)
		conn_limits_table_resize(table, table->nbuckets / 2);
}

struct conn_limits *conn_limits_new(void)
{
	struct conn_limits *limits = xcalloc(1, sizeof(*limits));
	uint64_t key[2];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		/* a weak key only weakens collision resistance, not correctness */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		key[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
		key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)limits;
	}
	limits->k0 = key[0];
	limits->k1 = key[1];
	conn_limits_table_init(&limits->ips);
	conn_limits_table_init(&limits->users);
	return limits;
}

void conn_limits_free(struct conn_limits **limitsp)
{
	struct conn_limits *limits = *limitsp;
	if (limits == NULL)
		return;
	*limitsp = NULL;
	conn_limits_table_deinit(&limits->ips);
	conn_limits_table_deinit(&limits->users);
	free(limits);
}

int conn_limits_try_add_total(struct conn_limits *limits, unsigned max)
{
	if (max != 0 && limits->total >= max)
		return 0;
	limits->total++;
	return 1;
}

void conn_limits_remove_total(struct conn_limits *limits)
{
	if (limits->total > 0)
		limits->total--;
}

unsigned conn_limits_total(const struct conn_limits *limits)
{
	return limits->total;
}

/* key: family byte + /32 or /64 of the address */
static size_t conn_limits_ip_key(const struct sockaddr *sa, unsigned char key_r[9])
{
	uint8_t addr[16];
	sa_family_t family = net_sockaddr_ip(sa, addr);
	switch (family) {
	case AF_INET:
		key_r[0] = 4;
		memcpy(key_r + 1, addr, 4);
		return 5;
	case AF_INET6:
		key_r[0] = 6;
		memcpy(key_r + 1, addr, 8);
		return 9;
	default:
		key_r[0] = 0;
		return 1;
	}
}

int conn_limits_try_add_ip(struct conn_limits *limits, const struct sockaddr *sa, unsigned max)
{
	unsigned char key[9];
	size_t len = conn_limits_ip_key(sa, key);
	return conn_limits_table_add(limits, &limits->ips, key, len, max);
}

void conn_limits_remove_ip(struct conn_limits *limits, const struct sockaddr *sa)
{
	unsigned char key[9];
	size_t len = conn_limits_ip_key(sa, key);
	conn_limits_table_remove(limits, &limits->ips, key, len);
}

unsigned conn_limits_ip_count(const struct conn_limits *limits, const struct sockaddr *sa)
{
	unsigned char key[9];
	size_t len = conn_limits_ip_key(sa, key);
	return conn_limits_table_count(limits, &limits->ips, key, len);
}

int conn_limits_try_add_user(struct conn_limits *limits, const char *user, unsigned max)
{
	return conn_limits_table_add(limits, &limits->users, (const unsigned char *)user,
				     strlen(user), max);
}

void conn_limits_remove_user(struct conn_limits *limits, const char *user)
{
	conn_limits_table_remove(limits, &limits->users, (const unsigned char *)user, strlen(user));
}

unsigned conn_limits_user_count(const struct conn_limits *limits, const char *user)
{
	return conn_limits_table_count(limits, &limits->users, (const unsigned char *)user,
				       strlen(user));
}

size_t conn_limits_entries(const struct conn_limits *limits)
{
	return limits->ips.nentries + limits->users.nentries;
}
