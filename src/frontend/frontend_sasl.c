#include "frontend/frontend_sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

enum fe_sasl_mech fe_sasl_mech_parse(const char *name)
{
	if (strcasecmp(name, "PLAIN") == 0)
		return FE_SASL_PLAIN;
	if (strcasecmp(name, "LOGIN") == 0)
		return FE_SASL_LOGIN;
	return FE_SASL_NONE;
}

long fe_base64_decode(const char *in, unsigned char *out, size_t out_size)
{
	size_t len = strlen(in);
	if (len % 4 != 0)
		return -1;
	if (len == 0) {
		if (out_size < 1)
			return -1;
		out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '+' || c == '/' || (c == '=' && i >= len - 2);
		if (!ok)
			return -1;
	}
	if (in[len - 2] == '=' && in[len - 1] != '=')
		return -1;
	size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
	size_t decoded = len / 4 * 3;
	if (decoded + 1 > out_size)
		return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n != decoded)
		return -1;
	decoded -= pad;
	out[decoded] = '\0';
	return (long)decoded;
}

static enum fe_sasl_result fe_sasl_plain(struct fe_sasl *sasl, const char *response,
					 const char **error_r)
{
	unsigned char buf[3 * FE_SASL_MAX_FIELD + 4];
	long n = fe_base64_decode(response, buf, sizeof(buf));
	if (n < 0) {
		*error_r = "invalid base64 in the PLAIN response";
		return FE_SASL_ERROR;
	}
	/* authzid NUL authcid NUL passwd */
	const unsigned char *end = buf + n;
	const unsigned char *nul1 = memchr(buf, '\0', (size_t)n);
	const unsigned char *nul2 =
		nul1 == NULL ? NULL : memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
	if (nul1 == NULL || nul2 == NULL || memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1))) {
		*error_r = "malformed PLAIN response";
		OPENSSL_cleanse(buf, sizeof(buf));
		return FE_SASL_ERROR;
	}
	size_t authz_len = (size_t)(nul1 - buf);
	size_t user_len = (size_t)(nul2 - nul1 - 1);
	size_t pass_len = (size_t)(end - nul2 - 1);
	if (user_len == 0 || user_len > FE_SASL_MAX_FIELD || pass_len > FE_SASL_MAX_FIELD) {
		*error_r = "malformed PLAIN response";
		OPENSSL_cleanse(buf, sizeof(buf));
		return FE_SASL_ERROR;
	}
	/* acting as another user is not offered to clients */
	if (authz_len != 0 &&
	    (authz_len != user_len || memcmp(buf, nul1 + 1, user_len) != 0)) {
		*error_r = "authorization identity must be empty or the user's own";
		OPENSSL_cleanse(buf, sizeof(buf));
		return FE_SASL_ERROR;
	}
	memcpy(sasl->user, nul1 + 1, user_len);
	sasl->user[user_len] = '\0';
	memcpy(sasl->password, nul2 + 1, pass_len);
	sasl->password[pass_len] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return FE_SASL_DONE;
}

static enum fe_sasl_result fe_sasl_login_field(char *field, const char *response,
					       const char **error_r)
{
	unsigned char buf[FE_SASL_MAX_FIELD + 4];
	long n = fe_base64_decode(response, buf, sizeof(buf));
	if (n < 0 || n > FE_SASL_MAX_FIELD || memchr(buf, '\0', (size_t)n) != NULL) {
		*error_r = "invalid base64 in the LOGIN response";
		OPENSSL_cleanse(buf, sizeof(buf));
		return FE_SASL_ERROR;
	}
	memcpy(field, buf, (size_t)n + 1);
	OPENSSL_cleanse(buf, sizeof(buf));
	return FE_SASL_DONE;
}

enum fe_sasl_result fe_sasl_step(struct fe_sasl *sasl, const char *response,
				 const char **challenge_r, const char **error_r)
{
	if (strcmp(response, "*") == 0) {
		fe_sasl_reset(sasl);
		return FE_SASL_CANCEL;
	}
	enum fe_sasl_result r;
	switch (sasl->mech) {
	case FE_SASL_PLAIN:
		r = fe_sasl_plain(sasl, response, error_r);
		break;
	case FE_SASL_LOGIN:
		if (sasl->step == 0) {
			r = fe_sasl_login_field(sasl->user, response, error_r);
			if (r == FE_SASL_DONE) {
				if (sasl->user[0] == '\0') {
					*error_r = "empty user name";
					r = FE_SASL_ERROR;
					break;
				}
				sasl->step = 1;
				*challenge_r = "UGFzc3dvcmQ6"; /* "Password:" */
				return FE_SASL_CHALLENGE;
			}
		} else {
			r = fe_sasl_login_field(sasl->password, response, error_r);
		}
		break;
	default:
		*error_r = "no authentication in progress";
		r = FE_SASL_ERROR;
	}
	if (r == FE_SASL_ERROR) {
		fe_sasl_reset(sasl);
		return r;
	}
	sasl->mech = FE_SASL_NONE; /* done: credentials stay until reset */
	return r;
}

enum fe_sasl_result fe_sasl_start(struct fe_sasl *sasl, enum fe_sasl_mech mech,
				  const char *initial, const char **challenge_r,
				  const char **error_r)
{
	fe_sasl_reset(sasl);
	sasl->mech = mech;
	if (mech == FE_SASL_NONE) {
		*error_r = "unsupported authentication mechanism";
		return FE_SASL_ERROR;
	}
	if (initial == NULL) {
		*challenge_r = mech == FE_SASL_LOGIN ? "VXNlcm5hbWU6" /* "Username:" */ : "";
		return FE_SASL_CHALLENGE;
	}
	/* "=" is an initial response of zero length (RFC 4959, RFC 5034) */
	return fe_sasl_step(sasl, strcmp(initial, "=") == 0 ? "" : initial, challenge_r, error_r);
}

void fe_sasl_reset(struct fe_sasl *sasl)
{
	OPENSSL_cleanse(sasl, sizeof(*sasl));
	sasl->mech = FE_SASL_NONE;
	sasl->step = 0;
}

bool fe_sasl_active(const struct fe_sasl *sasl)
{
	return sasl->mech != FE_SASL_NONE;
}
