#include "directory/password.h"

#include <crypt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/xalloc.h"

/* Run crypt_ra and copy the result; NULL when libcrypt refused the setting
 * (it returns NULL or a "*..." failure token then). The work area holds
 * password-derived data, so it is wiped before it is freed. */
static char *password_crypt(const char *password, const char *setting)
{
	void *data = NULL;
	int size = 0;
	const char *out = crypt_ra(password, setting, &data, &size);
	char *copy = out == NULL || out[0] == '*' ? NULL : xstrdup(out);
	if (data != NULL) {
		OPENSSL_cleanse(data, (size_t)size);
		free(data);
	}
	return copy;
}

int password_hash(const char *password, char **hash_r, char **error_r)
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
	char *salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (salt == NULL) {
		*error_r = xstrdup("libcrypt could not make a yescrypt salt");
		return -1;
	}
	char *hash = password_crypt(password, salt);
	free(salt);
	if (hash == NULL) {
		*error_r = xstrdup("libcrypt could not hash the password");
		return -1;
	}
	*hash_r = hash;
	return 0;
}

const char *password_scheme(const char *hash)
{
	static const struct {
		const char *prefix, *name;
	} schemes[] = {
	    {"$y$", "yescrypt"},     {"$gy$", "gost-yescrypt"}, {"$7$", "scrypt"},
	    {"$6$", "sha512-crypt"}, {"$5$", "sha256-crypt"},	{"$2b$", "bcrypt"},
	    {"$2y$", "bcrypt"},	     {"$2a$", "bcrypt"},
	};
	if (hash == NULL)
		return "unknown";
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(hash, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
			return schemes[i].name;
	return "unknown";
}

int password_hash_check(const char *hash, char **error_r)
{
	static const char accepted[] = "accepted: yescrypt ($y$...), SHA-512-crypt ($6$...), "
				       "bcrypt ($2b$/$2y$/$2a$...), scrypt ($7$...)";
	if (hash == NULL || hash[0] == '\0') {
		*error_r = xasprintf("the password hash is empty; %s", accepted);
		return -1;
	}
	for (const char *p = hash; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == ':') {
			*error_r = xasprintf("the password hash holds a character that no crypt "
					     "hash has; %s",
					     accepted);
			return -1;
		}
	}
	if (strcmp(password_scheme(hash), "unknown") == 0) {
		*error_r =
		    xasprintf("the password hash is not of a supported method; %s", accepted);
		return -1;
	}
	switch (crypt_checksalt(hash)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_TOO_CHEAP:
		break;
	case CRYPT_SALT_METHOD_LEGACY:
	case CRYPT_SALT_METHOD_DISABLED:
		*error_r = xasprintf("the password hash uses a legacy method that is refused; %s",
				     accepted);
		return -1;
	default:
		*error_r = xasprintf("the password hash is malformed; %s", accepted);
		return -1;
	}
	/* hashing any password with the full hash as setting must give a
	 * string of the same shape: this rejects truncated or padded hashes
	 * that checksalt (which reads the setting part only) lets through */
	char *probe = password_crypt("postern-probe", hash);
	bool ok = probe != NULL && strlen(probe) == strlen(hash);
	if (ok) {
		const char *a = strrchr(probe, '$'), *b = strrchr(hash, '$');
		ok = a != NULL && b != NULL && a - probe == b - hash &&
		     strncmp(probe, hash, (size_t)(a - probe)) == 0;
	}
	free(probe);
	if (!ok) {
		*error_r = xasprintf("the password hash is malformed or truncated; %s", accepted);
		return -1;
	}
	return 0;
}

int password_verify(const char *password, const char *hash)
{
	if (hash == NULL || hash[0] == '\0' || hash[0] == '*' || hash[0] == '!')
		return -1;
	if (strlen(password) > PASSWORD_MAX_LENGTH)
		return 0;
	char *computed = password_crypt(password, hash);
	if (computed == NULL)
		return -1;
	size_t len = strlen(hash);
	int ret;
	if (strlen(computed) != len)
		ret = -1;
	else
		ret = CRYPTO_memcmp(computed, hash, len) == 0 ? 1 : 0;
	OPENSSL_cleanse(computed, strlen(computed));
	free(computed);
	return ret;
}
