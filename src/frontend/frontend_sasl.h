#ifndef POSTERN_FRONTEND_SASL_H
#define POSTERN_FRONTEND_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base64.h"

#include "lib/scram.h"

struct ipc_field;
struct ipc_msg;

/* Server side of the SASL mechanisms a front end (and the submission
 * service) offers before login: PLAIN (RFC 4616), LOGIN and SCRAM-SHA-256
 * (RFC 5802, RFC 7677). A resumable exchange: start it with the mechanism
 * and the optional initial response, then feed each client response line;
 * each step says what to do next. No I/O here.
 *
 * PLAIN and LOGIN end in FE_SASL_DONE with the credentials, which the
 * caller sends to authd. SCRAM-SHA-256 is a dialogue with authd, which
 * holds the keys: each client message (checked here for syntax first)
 * gives FE_SASL_AUTHD, the caller sends fe_sasl_authd_request()'s message
 * and passes authd's answer to fe_sasl_authd_reply(), which gives the next
 * challenge (server-first, then server-final) or the verdict. The client's
 * empty response to the server-final message is sent to authd too, which
 * only then answers with the login (ok, the back end, the ticket), as it
 * answers a PLAIN login. */

enum fe_sasl_mech { FE_SASL_NONE, FE_SASL_PLAIN, FE_SASL_LOGIN, FE_SASL_SCRAM_SHA_256 };

enum fe_sasl_result {
	FE_SASL_CHALLENGE, /* send challenge (base64, may be "") and wait */
	FE_SASL_DONE,	   /* user and password are known */
	FE_SASL_CANCEL,	   /* the client sent "*" */
	FE_SASL_ERROR,	   /* malformed: error text in *error_r */
	FE_SASL_AUTHD,	   /* send fe_sasl_authd_request() to authd, wait for its answer */
	FE_SASL_VERDICT,   /* authd's answer is the login's verdict (fe_sasl_authd_reply) */
};

#define FE_SASL_MAX_FIELD 512

/* The worker's part of a SCRAM-SHA-256 exchange. */
struct fe_scram {
	char message[SCRAM_MAX_MESSAGE + 1]; /* the client's last message, decoded */
	char exchange[64];		     /* authd's handle */
	char challenge[BASE64_ENCODED_LEN(SCRAM_MAX_MESSAGE) + 1];
};

struct fe_sasl {
	enum fe_sasl_mech mech;
	unsigned step;
	char user[FE_SASL_MAX_FIELD + 1];
	char password[FE_SASL_MAX_FIELD + 1];
	struct fe_scram *scram; /* SCRAM-SHA-256 only */
};

/* Mechanism by name (case-insensitive); FE_SASL_NONE when not offered. */
enum fe_sasl_mech fe_sasl_mech_parse(const char *name);

/* Begin an exchange. initial is the initial response as sent ("=" is an
 * empty one) or NULL when the client sent none. */
enum fe_sasl_result fe_sasl_start(struct fe_sasl *sasl, enum fe_sasl_mech mech,
				  const char *initial, const char **challenge_r,
				  const char **error_r);
/* Feed one response line. */
enum fe_sasl_result fe_sasl_step(struct fe_sasl *sasl, const char *response,
				 const char **challenge_r, const char **error_r);
/* Forget the exchange and wipe the credentials. */
void fe_sasl_reset(struct fe_sasl *sasl);
/* true while an exchange waits for a response */
bool fe_sasl_active(const struct fe_sasl *sasl);

/* After FE_SASL_AUTHD: the message for authd, its type (IPC_SCRAM_FIRST,
 * IPC_SCRAM_FINAL or IPC_SCRAM_CONFIRM) and its fields beyond those every
 * login request has (up to 2, pointing into sasl). */
int fe_sasl_authd_request(const struct fe_sasl *sasl, struct ipc_field *fields, size_t *n_r);
/* true while a SCRAM exchange waits for authd */
bool fe_sasl_awaiting_authd(const struct fe_sasl *sasl);
/* authd answered: FE_SASL_CHALLENGE with the next challenge, or
 * FE_SASL_VERDICT when msg is the login's verdict (ok, fail, refused,
 * tempfail: handle it as the answer to a PLAIN login); the exchange is
 * over then. */
enum fe_sasl_result fe_sasl_authd_reply(struct fe_sasl *sasl, const struct ipc_msg *msg,
					const char **challenge_r);

/* Strict base64 decoding (RFC 4648, padding required, no spaces). Returns
 * the decoded length, or -1 on bad input or when it does not fit out_size
 * (out is NUL-terminated after the data). */
long fe_base64_decode(const char *in, unsigned char *out, size_t out_size);

#endif
