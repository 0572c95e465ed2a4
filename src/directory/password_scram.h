#ifndef POSTERN_PASSWORD_SCRAM_H
#define POSTERN_PASSWORD_SCRAM_H

#include <stddef.h>

#include "lib/scram.h"

/* SCRAM-SHA-256 keys stored beside a user's crypt hash: the salt, the
 * iteration count, StoredKey and ServerKey (RFC 5802 section 3), never the
 * password nor anything that logs in by itself (a stolen StoredKey does not
 * give the ClientKey a client proves; a stolen ServerKey only lets one
 * pose as the server). Stored in the form of RFC 5803 (PostgreSQL uses it
 * too):
 *
 *   SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
 *
 * Imports also accept the form of Dovecot and GNU SASL's `gsasl --mkpasswd`,
 * "{SCRAM-SHA-256}<iterations>,<salt>,<StoredKey>,<ServerKey>", and store it
 * in the form above. */

/* Iterations for keys postern derives. RFC 7677 asks for at least 4096; the
 * cost falls on the client at every login (the server only computes
 * HMACs), so this stays a count a phone computes in well under a second,
 * while it makes a stolen directory 8 times as costly to attack as 4096
 * would. */
#define PASSWORD_SCRAM_ITERATIONS 32768

struct password_scram {
	unsigned iterations;
	unsigned char salt[SCRAM_MAX_SALT];
	size_t salt_len;
	unsigned char stored_key[SCRAM_KEY_SIZE];
	unsigned char server_key[SCRAM_KEY_SIZE];
};

/* Derive keys for a password with a fresh random salt of SCRAM_SALT_SIZE
 * bytes and PASSWORD_SCRAM_ITERATIONS, from the password after SASLprep
 * (RFC 4013), as clients compute their proof (RFC 5802 2.2). Returns 1
 * with *keys_r (malloc'ed, the stored form); 0 when SASLprep refuses the
 * password (control or unassigned characters, mixed directions, nothing
 * left): no keys (*keys_r NULL), *error_r says why, and only PLAIN and
 * LOGIN can log the user in; -1 with *error_r (malloc'ed). */
int password_scram_make(const char *password, char **keys_r, char **error_r);

/* SASLprep (RFC 4013) of a password to be stored: 1 with *prepared_r
 * (malloc'ed; the password itself for printable ASCII), 0 when refused
 * (*error_r says why). */
int password_scram_prepare(const char *password, char **prepared_r, char **error_r);

/* The same with a given salt and count (tests, the RFC 7677 vector). */
int password_scram_make_with(const char *password, const unsigned char *salt, size_t salt_len,
			     unsigned iterations, char **keys_r, char **error_r);

/* Parse keys in either form into *out. Returns 0, or -1 with *error_r
 * (malloc'ed) saying what is wrong and which forms are accepted. The
 * iteration count must be 4096 to 10,000,000, the salt 1 to 128 bytes. */
int password_scram_parse(const char *keys, struct password_scram *out, char **error_r);

/* Check keys given for import and turn them into the stored form. Returns 0
 * with *stored_r (malloc'ed), or -1 with *error_r. */
int password_scram_normalise(const char *keys, char **stored_r, char **error_r);

/* Whether keys were derived from password (1), not (0), or are unusable (-1).
 * Costs a key derivation. */
int password_scram_matches(const char *keys, const char *password);

#endif
