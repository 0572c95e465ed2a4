#include "authd/authd_ticket.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/xalloc.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int authd_tickets_init(struct authd_tickets *t, const char *secret_hex, char **error_r)
{
	memset(t, 0, sizeof(*t));
	size_t len = strlen(secret_hex);
	if (len % 2 != 0 || len < 64 || len > 128) {
		*error_r = xstrdup("the internal secret must be 32 to 64 bytes of hex");
		return -1;
	}
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_value(secret_hex[i]), lo = hex_value(secret_hex[i + 1]);
		if (hi < 0 || lo < 0) {
			OPENSSL_cleanse(t->key, sizeof(t->key));
			*error_r = xstrdup("the internal secret is not hex");
			return -1;
		}
		t->key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	t->key_len = len / 2;
	return 0;
}

static void authd_ticket_mac(const struct authd_tickets *t, const char *user, const char *peer,
			     const char *expiry, uint8_t out[32])
{
	static const char label[] = "postern-backend-login";
	/* NUL-separated fields: none of them may contain NUL */
	size_t ulen = strlen(user), plen = strlen(peer), elen = strlen(expiry);
	size_t len = sizeof(label) + ulen + 1 + plen + 1 + elen;
	uint8_t *msg = xmalloc(len);
	size_t pos = 0;
	memcpy(msg, label, sizeof(label));
	pos += sizeof(label);
	memcpy(msg + pos, user, ulen + 1);
	pos += ulen + 1;
	memcpy(msg + pos, peer, plen + 1);
	pos += plen + 1;
	memcpy(msg + pos, expiry, elen);
	unsigned outlen = 32;
	HMAC(EVP_sha256(), t->key, (int)t->key_len, msg, len, out, &outlen);
	free(msg);
}

void authd_ticket_make(const struct authd_tickets *t, const char *user, const char *peer,
		       time_t now, char *expiry_r, size_t expiry_size,
		       char mac_r[AUTHD_TICKET_MAC_HEX + 1])
{
	snprintf(expiry_r, expiry_size, "%lld", (long long)now + AUTHD_TICKET_LIFETIME_S);
	uint8_t mac[32];
	authd_ticket_mac(t, user, peer, expiry_r, mac);
	for (size_t i = 0; i < 32; i++)
		snprintf(mac_r + i * 2, 3, "%02x", mac[i]);
}

static size_t authd_ticket_slot(const uint8_t mac[16])
{
	uint32_t h;
	memcpy(&h, mac, sizeof(h));
	return h % AUTHD_TICKET_SLOTS;
}

int authd_ticket_check(struct authd_tickets *t, const char *user, const char *peer,
		       const char *expiry, const char *mac_hex, time_t now, const char **why_r)
{
	char *end;
	long long exp = strtoll(expiry, &end, 10);
	if (*expiry == '\0' || *end != '\0' || strlen(mac_hex) != AUTHD_TICKET_MAC_HEX) {
		*why_r = "malformed ticket";
		return -1;
	}
	uint8_t given[32];
	for (size_t i = 0; i < 32; i++) {
		int hi = hex_value(mac_hex[i * 2]), lo = hex_value(mac_hex[i * 2 + 1]);
		if (hi < 0 || lo < 0) {
			*why_r = "malformed ticket";
			return -1;
		}
		given[i] = (uint8_t)(hi << 4 | lo);
	}
	if (exp < (long long)now || exp > (long long)now + AUTHD_TICKET_LIFETIME_S) {
		*why_r = "expired ticket";
		return -1;
	}
	uint8_t want[32];
	authd_ticket_mac(t, user, peer, expiry, want);
	if (CRYPTO_memcmp(want, given, sizeof(want)) != 0) {
		*why_r = "forged ticket";
		return -1;
	}
	size_t start = authd_ticket_slot(given);
	struct authd_ticket_used *free_slot = NULL;
	for (size_t i = 0; i < AUTHD_TICKET_PROBE; i++) {
		struct authd_ticket_used *u = &t->used[(start + i) % AUTHD_TICKET_SLOTS];
		bool live = u->expiry >= now;
		if (live && memcmp(u->mac, given, sizeof(u->mac)) == 0) {
			*why_r = "ticket used before";
			return -1;
		}
		if (!live && free_slot == NULL)
			free_slot = u;
	}
	/* every probed slot holds a live ticket: drop the one expiring first */
	if (free_slot == NULL) {
		free_slot = &t->used[start];
		for (size_t i = 1; i < AUTHD_TICKET_PROBE; i++) {
			struct authd_ticket_used *u = &t->used[(start + i) % AUTHD_TICKET_SLOTS];
			if (u->expiry < free_slot->expiry)
				free_slot = u;
		}
	}
	memcpy(free_slot->mac, given, sizeof(free_slot->mac));
	free_slot->expiry = (time_t)exp;
	return 0;
}

/* ---- sent copies ---- */

static void authd_sent_copy_mac(const struct authd_tickets *t, const char *user, const char *digest,
				uint8_t out[32])
{
	static const char label[] = "postern-sent-copy";
	size_t ulen = strlen(user), dlen = strlen(digest);
	size_t len = sizeof(label) + ulen + 1 + dlen;
	uint8_t *msg = xmalloc(len);
	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), user, ulen + 1);
	memcpy(msg + sizeof(label) + ulen + 1, digest, dlen);
	unsigned outlen = 32;
	HMAC(EVP_sha256(), t->key, (int)t->key_len, msg, len, out, &outlen);
	free(msg);
}

/* 64 hex digits into 32 bytes; -1 when it is not that */
static int authd_hex32(const char *hex, uint8_t out[32])
{
	if (strlen(hex) != 64)
		return -1;
	for (size_t i = 0; i < 32; i++) {
		int hi = hex_value(hex[i * 2]), lo = hex_value(hex[i * 2 + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int authd_sent_copy_make(const struct authd_tickets *t, const char *user, const char *digest,
			 char mac_r[AUTHD_TICKET_MAC_HEX + 1])
{
	uint8_t d[32], mac[32];
	if (authd_hex32(digest, d) < 0)
		return -1;
	/* the digest as lower-case hex, whatever case it came in */
	char norm[65];
	for (size_t i = 0; i < 32; i++)
		snprintf(norm + i * 2, 3, "%02x", d[i]);
	authd_sent_copy_mac(t, user, norm, mac);
	for (size_t i = 0; i < 32; i++)
		snprintf(mac_r + i * 2, 3, "%02x", mac[i]);
	return 0;
}

int authd_sent_copy_check(const struct authd_tickets *t, const char *user, const char *digest,
			  const char *mac_hex, const char **why_r)
{
	uint8_t d[32], given[32], want[32];
	if (authd_hex32(digest, d) < 0 || authd_hex32(mac_hex, given) < 0) {
		*why_r = "malformed authorisation";
		return -1;
	}
	char norm[65];
	for (size_t i = 0; i < 32; i++)
		snprintf(norm + i * 2, 3, "%02x", d[i]);
	authd_sent_copy_mac(t, user, norm, want);
	if (CRYPTO_memcmp(want, given, sizeof(want)) != 0) {
		*why_r = "forged authorisation";
		return -1;
	}
	return 0;
}
