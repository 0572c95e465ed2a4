#ifndef POSTERN_POP3D_PRIVATE_H
#define POSTERN_POP3D_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/metrics.h"
#include "proto/pop3/pop3_dotstuff.h"

struct conn;
struct event;
struct store;
struct store_folder;
struct worker;

struct pop3d {
	struct worker *worker;
	struct pop3d_session *sessions;
	unsigned nsessions;
	unsigned next_request_id;
	bool shutting_down;
	struct event *shutdown_ev;
	char *mail_root;
	struct protolog *protolog;
	unsigned pre_auth_timeout_ms;
	unsigned auth_timeout_ms;
	unsigned max_command_size;
};

enum pop3d_state {
	POP3D_AUTHORIZATION,
	POP3D_VERIFYING, /* authd is checking the front end's ticket */
	POP3D_TRANSACTION,
};

struct pop3d_session {
	struct pop3d *srv;
	struct conn *conn;
	struct pop3d_session *prev, *next;
	enum pop3d_state state;
	unsigned request_id;
	unsigned bad_commands;
	bool closing;

	char *user;
	char *client; /* the client's address as the front end saw it */
	char *direct_user; /* USER target*admin given, waiting for PASS */
	struct store *store;
	struct store_folder *inbox;
	size_t count;	/* messages in the maildrop snapshot */
	bool *deleted;	/* per message, marked by DELE */
	bool *retrieved; /* per message, sent whole by RETR: \Seen at QUIT */

	/* a RETR or TOP being streamed */
	int retr_fd;
	struct pop3_dotstuff dotstuff;
	uint32_t retr_uid;
	size_t retr_index;

	struct metrics_timer metrics; /* the command in progress */
};

#define POP3D_MAX_BAD_COMMANDS 10
#define POP3D_READ_CHUNK 65536

/* pop3d_commands.c */
void pop3d_command(struct pop3d_session *s, char *line, size_t len);
void pop3d_reply(struct pop3d_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Continue streaming a message (after output drained). */
void pop3d_retr_continue(struct pop3d_session *s);
/* Drop the maildrop (store and folder) without changes. */
void pop3d_session_release(struct pop3d_session *s);
/* authd's verdict on the XLOGIN ticket */
void pop3d_login_verified(struct pop3d_session *s, bool ok, const char *user,
			  unsigned long long quota, const char *reason);
void pop3d_close(struct pop3d_session *s);

/* pop3d.c */
/* Ask authd about the front end's ticket; the answer comes to
 * pop3d_login_verified(). Returns 0, or -1 when authd is unreachable. */
int pop3d_verify_ticket(struct pop3d_session *s, const char *user, const char *peer,
			const char *expiry, const char *mac);
/* An administrator's direct login as target (debugging mode); the answer
 * comes to pop3d_login_verified(). Returns 0, or -1 when authd is
 * unreachable. */
int pop3d_direct_login(struct pop3d_session *s, const char *admin, const char *password,
		       const char *target);
/* The back end's direct-admin-login setting. */
bool pop3d_direct_login_allowed(const struct pop3d_session *s);
void pop3d_session_set_authenticated_timeout(struct pop3d_session *s);
const char *pop3d_mail_root(const struct pop3d_session *s);

#endif
