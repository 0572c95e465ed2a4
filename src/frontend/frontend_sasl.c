#include "frontend/frontend_sasl.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/ipc.h"
#include "lib/xalloc.h"

enum fe_sasl_mech fe_sasl_mech_parse(const char *name)
{
	if (strcasecmp(name, "PLAIN") == 0)
		return FE_SASL_PLAIN;
	if (strcasecmp(name, "LOGIN") == 0)
		return FE_SASL_LOGIN;
	if (strcasecmp(name, "SCRAM-SHA-256") == 0)
		return FE_SASL_SCRAM_SHA_256;
	return FE_SASL_NONE;
}

long fe_base64_decode(const char *in, unsigned char *out, size_t out_size)
{
	return base64_decode(in, strlen(in), out, out_size);
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

/* the error text for a SCRAM error value */
static const char *fe_sasl_scram_error(const char *value)
{
	if (strcmp(value, "channel-binding-not-supported") == 0)
		return "SCRAM-SHA-256: channel binding is not supported (no -PLUS mechanism is "
		       "offered)";
	if (strcmp(value, "extensions-not-supported") == 0)
		return "SCRAM-SHA-256: mandatory extensions are not supported";
	if (strcmp(value, "invalid-username-encoding") == 0)
		return "SCRAM-SHA-256: invalid user name encoding";
	return "SCRAM-SHA-256: malformed message";
}

/* One client message of a SCRAM-SHA-256 exchange. */
static enum fe_sasl_result fe_sasl_scram(struct fe_sasl *sasl, const char *response,
					 const char **error_r)
{
	struct fe_scram *x = sasl->scram;
	if (sasl->step == 4) {
		/* the client checked the server signature: it answers with
		 * nothing (RFC 4422 section 5, additional data as a challenge) */
		if (*response != '\0') {
			*error_r = "SCRAM-SHA-256: an empty response was expected";
			return FE_SASL_ERROR;
		}
		sasl->step = 5;
		return FE_SASL_AUTHD;
	}
	if (sasl->step != 0 && sasl->step != 2) {
		*error_r = "SCRAM-SHA-256: not expecting a response now";
		return FE_SASL_ERROR;
	}
	long n = base64_decode(response, strlen(response), (unsigned char *)x->message,
			       sizeof(x->message));
	if (n <= 0) {
		*error_r = "SCRAM-SHA-256: invalid base64";
		return FE_SASL_ERROR;
	}
	const char *value = NULL;
	if (sasl->step == 0) {
		struct scram_client_first cf;
		if (scram_parse_client_first(x->message, (size_t)n, &cf, &value) < 0) {
			*error_r = fe_sasl_scram_error(value);
			return FE_SASL_ERROR;
		}
		/* acting as another user is not offered to clients */
		if (cf.authzid[0] != '\0' && strcmp(cf.authzid, cf.user) != 0) {
			*error_r = "authorization identity must be empty or the user's own";
			return FE_SASL_ERROR;
		}
		snprintf(sasl->user, sizeof(sasl->user), "%s", cf.user);
		sasl->step = 1;
	} else {
		struct scram_client_final cf;
		if (scram_parse_client_final(x->message, (size_t)n, &cf, &value) < 0) {
			*error_r = fe_sasl_scram_error(value);
			return FE_SASL_ERROR;
		}
		sasl->step = 3;
	}
	return FE_SASL_AUTHD;
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
	case FE_SASL_SCRAM_SHA_256:
		r = fe_sasl_scram(sasl, response, error_r);
		if (r == FE_SASL_AUTHD)
			return r;
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
	if (mech == FE_SASL_SCRAM_SHA_256)
		sasl->scram = xcalloc(1, sizeof(*sasl->scram));
	if (initial == NULL) {
		*challenge_r = mech == FE_SASL_LOGIN ? "VXNlcm5hbWU6" /* "Username:" */ : "";
		return FE_SASL_CHALLENGE;
	}
	/* "=" is an initial response of zero length (RFC 4959, RFC 5034) */
	return fe_sasl_step(sasl, strcmp(initial, "=") == 0 ? "" : initial, challenge_r, error_r);
}

void fe_sasl_reset(struct fe_sasl *sasl)
{
	if (sasl->scram != NULL) {
		OPENSSL_cleanse(sasl->scram, sizeof(*sasl->scram));
		free(sasl->scram);
	}
	OPENSSL_cleanse(sasl, sizeof(*sasl));
	sasl->mech = FE_SASL_NONE;
	sasl->step = 0;
}

bool fe_sasl_active(const struct fe_sasl *sasl)
{
	return sasl->mech != FE_SASL_NONE;
}

int fe_sasl_authd_request(const struct fe_sasl *sasl, struct ipc_field *fields, size_t *n_r)
{
	const struct fe_scram *x = sasl->scram;
	*n_r = 0;
	if (sasl->mech != FE_SASL_SCRAM_SHA_256 || x == NULL)
		return -1;
	switch (sasl->step) {
	case 1:
		fields[0] = (struct ipc_field){"message", x->message};
		*n_r = 1;
		return IPC_SCRAM_FIRST;
	case 3:
		fields[0] = (struct ipc_field){"exchange", x->exchange};
		fields[1] = (struct ipc_field){"message", x->message};
		*n_r = 2;
		return IPC_SCRAM_FINAL;
	case 5:
		fields[0] = (struct ipc_field){"exchange", x->exchange};
		*n_r = 1;
		return IPC_SCRAM_CONFIRM;
	default:
		return -1;
	}
}

bool fe_sasl_awaiting_authd(const struct fe_sasl *sasl)
{
	return sasl->mech == FE_SASL_SCRAM_SHA_256 &&
	       (sasl->step == 1 || sasl->step == 3 || sasl->step == 5);
}

enum fe_sasl_result fe_sasl_authd_reply(struct fe_sasl *sasl, const struct ipc_msg *msg,
					const char **challenge_r)
{
	const char *result = ipc_msg_get(msg, "result");
	const char *exchange = ipc_msg_get(msg, "exchange");
	const char *challenge = ipc_msg_get(msg, "challenge");
	struct fe_scram *x = sasl->scram;
	if (x != NULL && (sasl->step == 1 || sasl->step == 3) && result != NULL &&
	    strcmp(result, "continue") == 0 && exchange != NULL && challenge != NULL &&
	    strlen(exchange) < sizeof(x->exchange) &&
	    base64_encode((const unsigned char *)challenge, strlen(challenge), x->challenge,
			  sizeof(x->challenge)) >= 0) {
		snprintf(x->exchange, sizeof(x->exchange), "%s", exchange);
		sasl->step++;
		*challenge_r = x->challenge;
		return FE_SASL_CHALLENGE;
	}
	fe_sasl_reset(sasl);
	return FE_SASL_VERDICT;
}
