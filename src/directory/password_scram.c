#include "directory/password_scram.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include "directory/password.h"
#include "lib/base64.h"
#include "lib/xalloc.h"

#define PASSWORD_SCRAM_PREFIX  "SCRAM-SHA-256$"
#define PASSWORD_SCRAM_DOVECOT "{SCRAM-SHA-256}"
#define PASSWORD_SCRAM_ACCEPTED                                                                    \
	"accepted: SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY (RFC 5803) or "               \
	"{SCRAM-SHA-256}ITERATIONS,SALT,STOREDKEY,SERVERKEY (Dovecot, gsasl --mkpasswd), in "      \
	"base64, with 4096 to 10000000 iterations"

static char *password_scram_format(const struct password_scram *k)
{
	char salt[BASE64_ENCODED_LEN(SCRAM_MAX_SALT) + 1];
	char stored[BASE64_ENCODED_LEN(SCRAM_KEY_SIZE) + 1];
	char server[BASE64_ENCODED_LEN(SCRAM_KEY_SIZE) + 1];
	base64_encode(k->salt, k->salt_len, salt, sizeof(salt));
	base64_encode(k->stored_key, SCRAM_KEY_SIZE, stored, sizeof(stored));
	base64_encode(k->server_key, SCRAM_KEY_SIZE, server, sizeof(server));
	return xasprintf(PASSWORD_SCRAM_PREFIX "%u:%s$%s:%s", k->iterations, salt, stored, server);
}

int password_scram_prepare(const char *password, char **prepared_r, char **error_r)
{
	char *out = NULL;
	/* a password becomes keys, which are stored: unassigned code points
	 * are refused (RFC 4013 section 2, RFC 3454 section 7) */
	int rc = stringprep_profile(password, &out, "SASLprep", STRINGPREP_NO_UNASSIGNED);
	if (rc != STRINGPREP_OK) {
		free(out);
		*error_r = xasprintf("the password is not valid under SASLprep (RFC 4013): %s",
				     stringprep_strerror(rc));
		return 0;
	}
	if (*out == '\0') {
		free(out);
		*error_r = xstrdup("the password is empty after SASLprep (RFC 4013)");
		return 0;
	}
	*prepared_r = out;
	return 1;
}

/* Returns 1, 0 when SASLprep refuses the password, -1. */
static int password_scram_derive(const char *password, struct password_scram *k, char **error_r)
{
	size_t len = strlen(password);
	if (len == 0) {
		*error_r = xstrdup("the password is empty");
		return -1;
	}
	if (len > PASSWORD_MAX_LENGTH) {
		*error_r = xasprintf("the password is longer than %d bytes", PASSWORD_MAX_LENGTH);
		return -1;
	}
	char *prepared;
	int r = password_scram_prepare(password, &prepared, error_r);
	if (r <= 0)
		return r;
	unsigned char salted[SCRAM_KEY_SIZE];
	r = scram_salted_password(prepared, strlen(prepared), k->salt, k->salt_len, k->iterations,
				  salted);
	OPENSSL_cleanse(prepared, strlen(prepared));
	free(prepared);
	if (r < 0) {
		*error_r = xstrdup("OpenSSL could not derive the SCRAM keys");
		return -1;
	}
	scram_server_keys(salted, k->stored_key, k->server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return 1;
}

int password_scram_make_with(const char *password, const unsigned char *salt, size_t salt_len,
			     unsigned iterations, char **keys_r, char **error_r)
{
	struct password_scram k = {.iterations = iterations, .salt_len = salt_len};
	if (salt_len == 0 || salt_len > sizeof(k.salt) || iterations < SCRAM_MIN_ITERATIONS ||
	    iterations > SCRAM_MAX_ITERATIONS) {
		*error_r = xstrdup("SCRAM keys need a salt of 1 to 128 bytes and 4096 to 10000000 "
				   "iterations");
		return -1;
	}
	memcpy(k.salt, salt, salt_len);
	*keys_r = NULL;
	int r = password_scram_derive(password, &k, error_r);
	if (r > 0)
		*keys_r = password_scram_format(&k);
	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

int password_scram_make(const char *password, char **keys_r, char **error_r)
{
	unsigned char salt[SCRAM_SALT_SIZE];
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = xstrdup("the OpenSSL random generator failed");
		return -1;
	}
	return password_scram_make_with(password, salt, sizeof(salt), PASSWORD_SCRAM_ITERATIONS,
					keys_r, error_r);
}

/* one base64 field of exactly len bytes of text into out; the decoded size
 * must be in [min, max] */
static bool password_scram_field(const char *text, size_t len, unsigned char *out, size_t min,
				 size_t max, size_t *decoded_r)
{
	unsigned char buf[SCRAM_MAX_SALT + 2];
	long n = base64_decode(text, len, buf, sizeof(buf));
	if (n < 0 || (size_t)n < min || (size_t)n > max)
		return false;
	memcpy(out, buf, (size_t)n);
	*decoded_r = (size_t)n;
	return true;
}

int password_scram_parse(const char *keys, struct password_scram *out, char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (keys == NULL) {
		*error_r = xasprintf("no SCRAM keys; %s", PASSWORD_SCRAM_ACCEPTED);
		return -1;
	}
	/* split into count, salt, StoredKey, ServerKey */
	const char *p;
	char sep[3];
	if (strncmp(keys, PASSWORD_SCRAM_PREFIX, strlen(PASSWORD_SCRAM_PREFIX)) == 0) {
		p = keys + strlen(PASSWORD_SCRAM_PREFIX);
		memcpy(sep, ":$:", 3);
	} else if (strncmp(keys, PASSWORD_SCRAM_DOVECOT, strlen(PASSWORD_SCRAM_DOVECOT)) == 0) {
		p = keys + strlen(PASSWORD_SCRAM_DOVECOT);
		memcpy(sep, ",,,", 3);
	} else {
		*error_r = xasprintf("not SCRAM-SHA-256 keys; %s", PASSWORD_SCRAM_ACCEPTED);
		return -1;
	}
	const char *part[4];
	size_t plen[4];
	for (int i = 0; i < 4; i++) {
		part[i] = p;
		const char *end = i < 3 ? strchr(p, sep[i]) : p + strlen(p);
		if (end == NULL)
			goto bad;
		plen[i] = (size_t)(end - p);
		p = i < 3 ? end + 1 : end;
	}
	unsigned long long count = 0;
	if (plen[0] == 0 || plen[0] > 8 || part[0][0] == '0')
		goto bad;
	for (size_t i = 0; i < plen[0]; i++) {
		if (part[0][i] < '0' || part[0][i] > '9')
			goto bad;
		count = count * 10 + (unsigned)(part[0][i] - '0');
	}
	if (count < SCRAM_MIN_ITERATIONS || count > SCRAM_MAX_ITERATIONS)
		goto bad;
	out->iterations = (unsigned)count;
	size_t n;
	if (!password_scram_field(part[1], plen[1], out->salt, 1, SCRAM_MAX_SALT, &out->salt_len) ||
	    !password_scram_field(part[2], plen[2], out->stored_key, SCRAM_KEY_SIZE, SCRAM_KEY_SIZE,
				  &n) ||
	    !password_scram_field(part[3], plen[3], out->server_key, SCRAM_KEY_SIZE, SCRAM_KEY_SIZE,
				  &n))
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	*error_r = xasprintf("malformed SCRAM-SHA-256 keys; %s", PASSWORD_SCRAM_ACCEPTED);
	return -1;
}

int password_scram_normalise(const char *keys, char **stored_r, char **error_r)
{
	struct password_scram k;
	if (password_scram_parse(keys, &k, error_r) < 0)
		return -1;
	*stored_r = password_scram_format(&k);
	return 0;
}

int password_scram_matches(const char *keys, const char *password)
{
	struct password_scram k, fresh;
	char *error = NULL;
	if (password_scram_parse(keys, &k, &error) < 0) {
		free(error);
		return -1;
	}
	fresh = k;
	if (password_scram_derive(password, &fresh, &error) <= 0) {
		free(error);
		return 0;
	}
	bool same = CRYPTO_memcmp(fresh.stored_key, k.stored_key, SCRAM_KEY_SIZE) == 0 &&
		    CRYPTO_memcmp(fresh.server_key, k.server_key, SCRAM_KEY_SIZE) == 0;
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	return same ? 1 : 0;
}
