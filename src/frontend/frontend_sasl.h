#ifndef POSTERN_FRONTEND_SASL_H
#define POSTERN_FRONTEND_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Server side of the SASL mechanisms a front end offers before login:
 * PLAIN (RFC 4616) and LOGIN. A resumable exchange: start it with the
 * mechanism and the optional initial response, then feed each client
 * response line; each step says what to do next. No I/O here. */

enum fe_sasl_mech { FE_SASL_NONE, FE_SASL_PLAIN, FE_SASL_LOGIN };

enum fe_sasl_result {
	FE_SASL_CHALLENGE, /* send challenge (base64, may be "") and wait */
	FE_SASL_DONE,	   /* user and password are known */
	FE_SASL_CANCEL,	   /* the client sent "*" */
	FE_SASL_ERROR,	   /* malformed: error text in *error_r */
};

#define FE_SASL_MAX_FIELD 512

struct fe_sasl {
	enum fe_sasl_mech mech;
	unsigned step;
	char user[FE_SASL_MAX_FIELD + 1];
	char password[FE_SASL_MAX_FIELD + 1];
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

/* Strict base64 decoding (RFC 4648, padding required, no spaces). Returns
 * the decoded length, or -1 on bad input or when it does not fit out_size
 * (out is NUL-terminated after the data). */
long fe_base64_decode(const char *in, unsigned char *out, size_t out_size);

#endif
