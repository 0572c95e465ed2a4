#include "authd/authd_scram.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "directory/password_scram.h"
#include "lib/base64.h"
#include "lib/xalloc.h"

void authd_scram_init(struct authd_scram *t, const unsigned char *fake_salt_key, size_t key_len)
{
	memset(t, 0, sizeof(*t));
	unsigned int n = SCRAM_KEY_SIZE;
	static const char label[] = "postern-scram-fake-salt";
	HMAC(EVP_sha256(), fake_salt_key, (int)key_len, (const unsigned char *)label,
	     sizeof(label) - 1, t->fake_salt_key, &n);
}

static void authd_scram_release(struct authd_scram_exchange *e)
{
	free(e->client_first_bare);
	free(e->gs2_header);
	free(e->server_first);
	free(e->nonce);
	free(e->keys);
	OPENSSL_cleanse(e, sizeof(*e));
	e->state = AUTHD_SCRAM_FREE;
}

void authd_scram_clear(struct authd_scram *t)
{
	for (size_t i = 0; i < AUTHD_SCRAM_SLOTS; i++)
		if (t->slots[i].state != AUTHD_SCRAM_FREE)
			authd_scram_release(&t->slots[i]);
}

int authd_scram_client_first(const char *msg, size_t len, char user_r[SCRAM_MAX_NAME + 1],
			     const char **error_r)
{
	struct scram_client_first cf;
	if (scram_parse_client_first(msg, len, &cf, error_r) < 0)
		return -1;
	/* acting as another user is not offered to clients */
	if (cf.authzid[0] != '\0' && strcmp(cf.authzid, cf.user) != 0) {
		*error_r = "invalid-username-encoding";
		return -1;
	}
	memcpy(user_r, cf.user, sizeof(cf.user));
	return 0;
}

void authd_scram_fake_keys(const struct authd_scram *t, const char *user,
			   struct authd_scram_keys *keys, unsigned char salt_buf[SCRAM_SALT_SIZE],
			   unsigned char key_buf[2][SCRAM_KEY_SIZE])
{
	char lower[SCRAM_MAX_NAME + 1];
	size_t n = 0;
	for (; user[n] != '\0' && n < SCRAM_MAX_NAME; n++)
		lower[n] = (char)tolower((unsigned char)user[n]);
	unsigned char mac[SCRAM_KEY_SIZE];
	unsigned int mac_len = sizeof(mac);
	HMAC(EVP_sha256(), t->fake_salt_key, SCRAM_KEY_SIZE, (const unsigned char *)lower, n, mac,
	     &mac_len);
	memcpy(salt_buf, mac, SCRAM_SALT_SIZE);
	/* keys no proof can match: nobody knows them */
	RAND_bytes(key_buf[0], SCRAM_KEY_SIZE);
	RAND_bytes(key_buf[1], SCRAM_KEY_SIZE);
	*keys = (struct authd_scram_keys){
	    .real = false,
	    .stored = NULL,
	    .iterations = PASSWORD_SCRAM_ITERATIONS,
	    .salt = salt_buf,
	    .salt_len = SCRAM_SALT_SIZE,
	    .stored_key = key_buf[0],
	    .server_key = key_buf[1],
	};
}

/* a free slot, else an expired one, else the oldest */
static size_t authd_scram_slot(struct authd_scram *t, long long now_ms)
{
	size_t oldest = 0;
	for (size_t i = 0; i < AUTHD_SCRAM_SLOTS; i++) {
		struct authd_scram_exchange *e = &t->slots[i];
		if (e->state == AUTHD_SCRAM_FREE)
			return i;
		if (now_ms - e->started_ms > AUTHD_SCRAM_LIFETIME_S * 1000LL) {
			authd_scram_release(e);
			return i;
		}
		if (e->started_ms < t->slots[oldest].started_ms)
			oldest = i;
	}
	authd_scram_release(&t->slots[oldest]);
	return oldest;
}

struct authd_scram_exchange *authd_scram_begin(struct authd_scram *t, const char *client_first,
					       size_t len, const struct authd_scram_keys *keys,
					       const char *server_nonce, const void *owner,
					       unsigned owner_generation, long long now_ms,
					       const char **error_r)
{
	struct scram_client_first cf;
	if (scram_parse_client_first(client_first, len, &cf, error_r) < 0)
		return NULL;
	char nonce_part[BASE64_ENCODED_LEN(SCRAM_NONCE_RANDOM) + 1];
	if (server_nonce == NULL) {
		unsigned char random[SCRAM_NONCE_RANDOM];
		if (RAND_bytes(random, sizeof(random)) != 1) {
			*error_r = "no-resources";
			return NULL;
		}
		base64_encode(random, sizeof(random), nonce_part, sizeof(nonce_part));
		server_nonce = nonce_part;
	}
	unsigned char handle_random[16];
	if (RAND_bytes(handle_random, sizeof(handle_random)) != 1) {
		*error_r = "no-resources";
		return NULL;
	}
	char salt[BASE64_ENCODED_LEN(SCRAM_MAX_SALT) + 1];
	if (keys->salt_len == 0 ||
	    base64_encode(keys->salt, keys->salt_len, salt, sizeof(salt)) < 0) {
		*error_r = "other-error";
		return NULL;
	}
	size_t slot = authd_scram_slot(t, now_ms);
	struct authd_scram_exchange *e = &t->slots[slot];
	memset(e, 0, sizeof(*e));
	int n = snprintf(e->handle, sizeof(e->handle), "%zu.", slot);
	for (size_t i = 0; i < sizeof(handle_random); i++)
		n += snprintf(e->handle + n, sizeof(e->handle) - (size_t)n, "%02x",
			      handle_random[i]);
	e->owner = owner;
	e->owner_generation = owner_generation;
	e->started_ms = now_ms;
	memcpy(e->user, cf.user, sizeof(e->user));
	e->client_first_bare = xstrndup(client_first + cf.bare_offset, len - cf.bare_offset);
	e->gs2_header = xstrndup(client_first, cf.gs2_header_len);
	e->nonce =
	    xasprintf("%.*s%s", (int)cf.nonce_len, client_first + cf.nonce_offset, server_nonce);
	e->server_first = xasprintf("r=%s,s=%s,i=%u", e->nonce, salt, keys->iterations);
	e->keys = keys->real && keys->stored != NULL ? xstrdup(keys->stored) : NULL;
	memcpy(e->stored_key, keys->stored_key, SCRAM_KEY_SIZE);
	memcpy(e->server_key, keys->server_key, SCRAM_KEY_SIZE);
	e->state = AUTHD_SCRAM_AWAIT_FINAL;
	return e;
}

struct authd_scram_exchange *authd_scram_find(struct authd_scram *t, const char *handle,
					      enum authd_scram_state state, const void *owner,
					      unsigned owner_generation, long long now_ms)
{
	char *end;
	unsigned long slot = strtoul(handle, &end, 10);
	if (end == handle || *end != '.' || slot >= AUTHD_SCRAM_SLOTS)
		return NULL;
	struct authd_scram_exchange *e = &t->slots[slot];
	size_t len = strlen(e->handle);
	if (e->state != state || strlen(handle) != len ||
	    CRYPTO_memcmp(handle, e->handle, len) != 0 || e->owner != owner ||
	    e->owner_generation != owner_generation)
		return NULL;
	if (now_ms - e->started_ms > AUTHD_SCRAM_LIFETIME_S * 1000LL) {
		authd_scram_release(e);
		return NULL;
	}
	return e;
}

int authd_scram_verify(const struct authd_scram_exchange *e, const char *client_final, size_t len,
		       char *server_final_r, size_t size, const char **why_r)
{
	struct scram_client_final cf;
	const char *error;
	if (scram_parse_client_final(client_final, len, &cf, &error) < 0) {
		*why_r = "malformed client-final message";
		return 0;
	}
	size_t gs2_len = strlen(e->gs2_header);
	if (cf.cbind_len != gs2_len || memcmp(cf.cbind, e->gs2_header, gs2_len) != 0) {
		*why_r = "channel binding data differs from the gs2 header";
		return 0;
	}
	if (cf.nonce_len != strlen(e->nonce) ||
	    memcmp(client_final + cf.nonce_offset, e->nonce, cf.nonce_len) != 0) {
		*why_r = "wrong nonce";
		return 0;
	}
	size_t cfb_len = strlen(e->client_first_bare), sf_len = strlen(e->server_first);
	size_t auth_size = cfb_len + sf_len + cf.without_proof_len + 3;
	char *auth = xmalloc(auth_size);
	long auth_len = scram_auth_message(e->client_first_bare, cfb_len, e->server_first, sf_len,
					   client_final, cf.without_proof_len, auth, auth_size);
	/* a fake exchange is verified too, against keys nobody has: the same
	 * work as a real one */
	bool ok = auth_len >= 0 &&
		  scram_verify_proof(e->stored_key, auth, (size_t)auth_len, cf.proof) &&
		  e->keys != NULL;
	unsigned char signature[SCRAM_KEY_SIZE];
	if (ok)
		scram_server_signature(e->server_key, auth, (size_t)auth_len, signature);
	free(auth);
	if (!ok) {
		*why_r = e->keys != NULL ? "wrong password" : "no SCRAM keys";
		return 0;
	}
	char sig64[BASE64_ENCODED_LEN(SCRAM_KEY_SIZE) + 1];
	base64_encode(signature, sizeof(signature), sig64, sizeof(sig64));
	snprintf(server_final_r, size, "v=%s", sig64);
	return 1;
}

void authd_scram_end(struct authd_scram *t, struct authd_scram_exchange *e)
{
	(void)t;
	if (e != NULL && e->state != AUTHD_SCRAM_FREE)
		authd_scram_release(e);
}

unsigned authd_scram_expire(struct authd_scram *t, long long now_ms)
{
	unsigned alive = 0;
	for (size_t i = 0; i < AUTHD_SCRAM_SLOTS; i++) {
		struct authd_scram_exchange *e = &t->slots[i];
		if (e->state == AUTHD_SCRAM_FREE)
			continue;
		if (now_ms - e->started_ms > AUTHD_SCRAM_LIFETIME_S * 1000LL)
			authd_scram_release(e);
		else
			alive++;
	}
	return alive;
}
