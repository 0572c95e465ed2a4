#include "authd/authd_session.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

static int authd_session_random_hex(char *out)
{
	unsigned char b[AUTHD_SESSION_ID_HEX / 2];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + i * 2, 3, "%02x", b[i]);
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static bool authd_session_expired(const struct authd_session *s, long long now_ms)
{
	return now_ms - s->used_ms >= (long long)s->idle_s * 1000 ||
	       now_ms - s->created_ms >= (long long)s->lifetime_s * 1000;
}

struct authd_session *authd_session_create(struct authd_sessions *t, const char *user,
					   unsigned idle_s, unsigned lifetime_s, long long now_ms)
{
	/* a free or expired slot, else the least recently used one */
	struct authd_session *slot = NULL;
	for (size_t i = 0; i < AUTHD_MAX_SESSIONS; i++) {
		struct authd_session *s = &t->slots[i];
		if (s->id[0] == '\0' || authd_session_expired(s, now_ms)) {
			slot = s;
			break;
		}
		if (slot == NULL || s->used_ms < slot->used_ms)
			slot = s;
	}
	authd_session_end(slot);
	if (authd_session_random_hex(slot->id) < 0 || authd_session_random_hex(slot->csrf) < 0) {
		authd_session_end(slot);
		return NULL;
	}
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->created_ms = slot->used_ms = now_ms;
	slot->idle_s = idle_s;
	slot->lifetime_s = lifetime_s;
	return slot;
}

struct authd_session *authd_session_find(struct authd_sessions *t, const char *id, long long now_ms)
{
	if (strlen(id) != AUTHD_SESSION_ID_HEX)
		return NULL;
	struct authd_session *found = NULL;
	/* every slot is compared, so the time taken does not tell how much of
	 * an id matched */
	for (size_t i = 0; i < AUTHD_MAX_SESSIONS; i++) {
		struct authd_session *s = &t->slots[i];
		if (s->id[0] != '\0' && CRYPTO_memcmp(s->id, id, AUTHD_SESSION_ID_HEX) == 0)
			found = s;
	}
	if (found == NULL)
		return NULL;
	if (authd_session_expired(found, now_ms)) {
		authd_session_end(found);
		return NULL;
	}
	found->used_ms = now_ms;
	return found;
}

void authd_session_end(struct authd_session *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

unsigned authd_session_end_user(struct authd_sessions *t, const char *user)
{
	unsigned n = 0;
	for (size_t i = 0; i < AUTHD_MAX_SESSIONS; i++) {
		struct authd_session *s = &t->slots[i];
		if (s->id[0] != '\0' && strcasecmp(s->user, user) == 0) {
			authd_session_end(s);
			n++;
		}
	}
	return n;
}
