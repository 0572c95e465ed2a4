#ifndef POSTERN_AUTHD_SESSION_H
#define POSTERN_AUTHD_SESSION_H

#include <stdbool.h>

/* Signed-in web sessions of the http service, kept by authd so that every
 * http worker sees the same sessions and a restarted worker loses none.
 *
 * A session id and its CSRF token are 32 random bytes each, in hex. A
 * session ends after idle_s without use, after lifetime_s whatever its
 * use, when its user signs out, or when the table is full and it is the
 * least recently used one. Lookups compare ids in constant time. */

#define AUTHD_SESSION_ID_HEX 64
#define AUTHD_MAX_SESSIONS   4096

struct authd_session {
	char id[AUTHD_SESSION_ID_HEX + 1]; /* "" when the slot is free */
	char csrf[AUTHD_SESSION_ID_HEX + 1];
	char user[65];
	long long created_ms;
	long long used_ms;
	unsigned idle_s;
	unsigned lifetime_s;
};

struct authd_sessions {
	struct authd_session slots[AUTHD_MAX_SESSIONS];
};

/* Start a session for user at now_ms. Returns the session (owned by the
 * table), or NULL when the random generator failed. */
struct authd_session *authd_session_create(struct authd_sessions *t, const char *user,
					   unsigned idle_s, unsigned lifetime_s, long long now_ms);
/* The live session with this id, marked as used at now_ms, or NULL (an
 * expired one is ended here). */
struct authd_session *authd_session_find(struct authd_sessions *t, const char *id,
					 long long now_ms);
/* End one session. */
void authd_session_end(struct authd_session *s);
/* End every session of user (compared ignoring ASCII case). Returns how
 * many ended. */
unsigned authd_session_end_user(struct authd_sessions *t, const char *user);

#endif
