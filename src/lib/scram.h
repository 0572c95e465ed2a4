#ifndef POSTERN_SCRAM_H
#define POSTERN_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

/* SCRAM-SHA-256 (RFC 5802, RFC 7677): the syntax of its four messages and
 * the computations on them. No I/O and no state: the front ends check the
 * client's messages with the parsers before they pass them on, and authd
 * (which holds the keys) parses them again and verifies.
 *
 * Channel binding is not offered (no SCRAM-SHA-256-PLUS): a client-first
 * message whose gs2 header asks for it ("p=...") is refused; "n" (the
 * client does not support it) and "y" (it does, but thinks the server does
 * not) are accepted, and the client-final message must repeat the gs2
 * header in its c= attribute. A mandatory extension (m=) is refused;
 * other extensions are ignored, as RFC 5802 says. Messages are bytes
 * without NUL, at most SCRAM_MAX_MESSAGE of them. */

#define SCRAM_KEY_SIZE	   32	/* SHA-256 */
#define SCRAM_MAX_MESSAGE  2048 /* longest message accepted, decoded */
#define SCRAM_MAX_NAME	   255	/* longest user name or authzid, decoded */
#define SCRAM_MAX_SALT	   128	/* longest salt, decoded */
#define SCRAM_SALT_SIZE	   16	/* salts postern makes */
#define SCRAM_NONCE_RANDOM 24	/* random bytes in the server's part of a nonce */
/* iteration counts accepted from a server (client side) or at import */
#define SCRAM_MIN_ITERATIONS 4096 /* RFC 7677 section 4 */
#define SCRAM_MAX_ITERATIONS 10000000

/* client-first-message = gs2-header client-first-message-bare */
struct scram_client_first {
	char cbind_flag;		  /* 'n' or 'y' */
	size_t gs2_header_len;		  /* "n,," or "n,a=NAME,": the bytes before the bare part */
	char authzid[SCRAM_MAX_NAME + 1]; /* decoded; "" when none */
	char user[SCRAM_MAX_NAME + 1];	  /* decoded (=2C and =3D) */
	size_t bare_offset;		  /* client-first-message-bare starts here */
	size_t nonce_offset, nonce_len;	  /* the client's nonce (after r=) */
};

/* client-final-message = c=... ",r=" nonce ["," extensions] ",p=" proof */
struct scram_client_final {
	unsigned char cbind[SCRAM_MAX_NAME + 16]; /* c= decoded: the gs2 header */
	size_t cbind_len;
	size_t nonce_offset, nonce_len;
	size_t without_proof_len; /* client-final-message-without-proof */
	unsigned char proof[SCRAM_KEY_SIZE];
};

/* server-first-message = "r=" nonce ",s=" salt ",i=" count ["," extensions] */
struct scram_server_first {
	size_t nonce_offset, nonce_len;
	unsigned char salt[SCRAM_MAX_SALT + 1];
	size_t salt_len;
	unsigned iterations;
};

/* server-final-message = "v=" signature / "e=" error */
struct scram_server_final {
	bool error; /* e=: text in error_text */
	char error_text[64];
	unsigned char signature[SCRAM_KEY_SIZE];
};

/* The parsers return 0, or -1 with *error_r: the RFC 5802 server-error
 * value that fits ("invalid-encoding", "extensions-not-supported",
 * "channel-binding-not-supported", "invalid-username-encoding",
 * "other-error"), a static string. */
int scram_parse_client_first(const char *msg, size_t len, struct scram_client_first *out,
			     const char **error_r);
int scram_parse_client_final(const char *msg, size_t len, struct scram_client_final *out,
			     const char **error_r);
int scram_parse_server_first(const char *msg, size_t len, struct scram_server_first *out,
			     const char **error_r);
int scram_parse_server_final(const char *msg, size_t len, struct scram_server_final *out,
			     const char **error_r);

/* SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations). The
 * password is used as given: SASLprep is the identity on printable ASCII;
 * other passwords are taken as the bytes the client sends (see
 * docs/ARCHITECTURE.md). Returns 0, or -1 when OpenSSL fails. */
int scram_salted_password(const char *password, size_t password_len, const unsigned char *salt,
			  size_t salt_len, unsigned iterations,
			  unsigned char salted[SCRAM_KEY_SIZE]);
/* StoredKey = H(HMAC(SaltedPassword, "Client Key")),
 * ServerKey = HMAC(SaltedPassword, "Server Key"). */
void scram_server_keys(const unsigned char salted[SCRAM_KEY_SIZE],
		       unsigned char stored_key[SCRAM_KEY_SIZE],
		       unsigned char server_key[SCRAM_KEY_SIZE]);
/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage): the client's
 * side, for tests and test clients. */
void scram_client_proof(const unsigned char salted[SCRAM_KEY_SIZE], const char *auth_message,
			size_t auth_len, unsigned char proof[SCRAM_KEY_SIZE]);
/* Whether proof shows knowledge of the password behind stored_key:
 * H(proof XOR HMAC(StoredKey, AuthMessage)) == StoredKey, compared in
 * constant time. */
bool scram_verify_proof(const unsigned char stored_key[SCRAM_KEY_SIZE], const char *auth_message,
			size_t auth_len, const unsigned char proof[SCRAM_KEY_SIZE]);
/* ServerSignature = HMAC(ServerKey, AuthMessage) */
void scram_server_signature(const unsigned char server_key[SCRAM_KEY_SIZE],
			    const char *auth_message, size_t auth_len,
			    unsigned char signature[SCRAM_KEY_SIZE]);

/* AuthMessage = client-first-message-bare "," server-first-message ","
 * client-final-message-without-proof, into out. Returns its length, or -1
 * when it does not fit. */
long scram_auth_message(const char *client_first_bare, size_t cfb_len, const char *server_first,
			size_t sf_len, const char *client_final, size_t cf_len, char *out,
			size_t out_size);

/* Encode a user name as a saslname (',' as =2C, '=' as =3D). Returns the
 * length, or -1 when it does not fit out_size (with its NUL). */
long scram_saslname_encode(const char *name, char *out, size_t out_size);

#endif
