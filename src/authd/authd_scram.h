#ifndef POSTERN_AUTHD_SCRAM_H
#define POSTERN_AUTHD_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/scram.h"

/* authd's side of SCRAM-SHA-256 exchanges (see authd.h for the messages):
 * the exchanges in progress, the server-first message, the proof check and
 * the server signature. The directory is not touched here: authd looks
 * the user up and passes the keys in.
 *
 * An exchange lives in a bounded table until it is finished, it expires,
 * or the table is full and it is the oldest (a flood of client-first
 * messages, which cost nothing to send, evicts old exchanges rather than
 * refusing new ones). Its handle names a slot and carries 128 random bits,
 * and only the worker channel that started it may go on with it: each step
 * is accepted once, so a replayed client-final message finds nothing. */

#define AUTHD_SCRAM_SLOTS      8192
#define AUTHD_SCRAM_LIFETIME_S 180 /* a client gets this long for the exchange */
#define AUTHD_SCRAM_HANDLE_MAX 48

enum authd_scram_state {
	AUTHD_SCRAM_FREE,
	AUTHD_SCRAM_AWAIT_FINAL,   /* server-first sent */
	AUTHD_SCRAM_AWAIT_CONFIRM, /* proof verified, server-final sent */
};

struct authd_scram_exchange {
	enum authd_scram_state state;
	char handle[AUTHD_SCRAM_HANDLE_MAX];
	const void *owner; /* the worker channel */
	unsigned owner_generation;
	long long started_ms;
	char user[SCRAM_MAX_NAME + 1]; /* as the client named it; canonical once verified */
	char *client_first_bare;
	char *gs2_header;
	char *server_first;
	char *nonce; /* the whole nonce: the client's part and authd's */
	char *keys;  /* the stored keys the salt came from; NULL: a fake salt */
	unsigned char stored_key[SCRAM_KEY_SIZE];
	unsigned char server_key[SCRAM_KEY_SIZE];
};

struct authd_scram {
	struct authd_scram_exchange slots[AUTHD_SCRAM_SLOTS];
	unsigned char fake_salt_key[SCRAM_KEY_SIZE];
};

/* The user's keys for a server-first message, or a stand-in. */
struct authd_scram_keys {
	bool real;	    /* false: the user is unknown or has no keys */
	const char *stored; /* the stored form (real only) */
	unsigned iterations;
	const unsigned char *salt;
	size_t salt_len;
	const unsigned char *stored_key, *server_key;
};

/* Set up the table; fake salts are HMAC(key, lower-cased user name), so an
 * unknown name always gets the same salt, as a real user does. */
void authd_scram_init(struct authd_scram *t, const unsigned char *fake_salt_key, size_t key_len);
/* Free every exchange. */
void authd_scram_clear(struct authd_scram *t);

/* Parse a client-first message. Returns 0 with the user name (decoded)
 * into user_r, or -1 with *error_r (a SCRAM error value). The authzid must
 * be empty or the user's own name, as with PLAIN. */
int authd_scram_client_first(const char *msg, size_t len, char user_r[SCRAM_MAX_NAME + 1],
			     const char **error_r);

/* Fill keys with a stand-in for user: a fake salt derived from the name,
 * the default iteration count and random keys that no proof matches.
 * salt_buf and key_buf hold what keys points to. */
void authd_scram_fake_keys(const struct authd_scram *t, const char *user,
			   struct authd_scram_keys *keys, unsigned char salt_buf[SCRAM_SALT_SIZE],
			   unsigned char key_buf[2][SCRAM_KEY_SIZE]);

/* Start an exchange for a client-first message that parsed: make the
 * nonce (server_nonce is authd's part, or NULL for a random one; tests
 * give the RFC's), the server-first message, and a table slot. Returns the
 * exchange, or NULL with *error_r. */
struct authd_scram_exchange *authd_scram_begin(struct authd_scram *t, const char *client_first,
					       size_t len, const struct authd_scram_keys *keys,
					       const char *server_nonce, const void *owner,
					       unsigned owner_generation, long long now_ms,
					       const char **error_r);

/* The exchange a handle names, when it is still alive, in state, and
 * started by owner; NULL otherwise. */
struct authd_scram_exchange *authd_scram_find(struct authd_scram *t, const char *handle,
					      enum authd_scram_state state, const void *owner,
					      unsigned owner_generation, long long now_ms);

/* Check a client-final message against the exchange. Returns 1 when the
 * proof is right, with the server-final message ("v=...") in
 * server_final_r; 0 when it is not or the message does not fit the
 * exchange (why in *why_r, for the log). The exchange is not removed. */
int authd_scram_verify(const struct authd_scram_exchange *e, const char *client_final, size_t len,
		       char *server_final_r, size_t size, const char **why_r);

/* Remove an exchange from the table. */
void authd_scram_end(struct authd_scram *t, struct authd_scram_exchange *e);

/* Remove expired exchanges; returns how many are still alive. */
unsigned authd_scram_expire(struct authd_scram *t, long long now_ms);

#endif
