#ifndef POSTERN_FRONTEND_PRIVATE_H
#define POSTERN_FRONTEND_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "frontend/frontend_sasl.h"
#include "net/cidr.h"
#include "net/conn.h"

/* the longest IMAP tag (the parser's IMAP_PARSER_MAX_TAG) */
#define FE_IMAP_MAX_TAG 256

struct conn;
struct imap_parser;
struct ipc_msg;
struct worker;
struct fe_session;

/* How a protocol differs; the machinery around it is shared
 * (frontend.c). Every hook gets the session. */
struct fe_protocol {
	const char *name;	 /* "pop3", "imap4" */
	const char *display;	 /* "POP3", "IMAP4" */
	void (*greet)(struct fe_session *s);
	void (*line)(struct fe_session *s, char *line, size_t len);
	void (*raw)(struct fe_session *s, const unsigned char *data, size_t len, size_t remaining);
	void (*line_too_long)(struct fe_session *s);
	/* authd answered the session's login; reply fields in msg */
	void (*auth_result)(struct fe_session *s, const struct ipc_msg *msg);
	/* a step of the SASL exchange (frontend_sasl.h): a challenge to send,
	 * a message for authd (FE_SASL_AUTHD: fe_sasl_authd_send()), ... */
	void (*sasl_result)(struct fe_session *s, enum fe_sasl_result r, const char *challenge,
			    const char *error);
	/* the session is ended by the server: idle timeout, shutdown, too
	 * many errors. Write the goodbye (the caller closes after flush). */
	void (*goodbye)(struct fe_session *s, const char *text);
	/* refused at connect: a connection limit was hit */
	void (*refuse_connection)(struct fe_session *s, const char *text);
	/* a login was verified but the session cannot go on: a per-user
	 * limit (code "IN-USE"/"LIMIT") or the back end cannot be reached
	 * (code "SYS/TEMP"/"UNAVAILABLE"); answer the login command */
	void (*login_unavailable)(struct fe_session *s, bool limit, const char *text);
	void (*session_free)(struct fe_session *s);
	/* the protocol log's text for a client line, with credentials masked */
	void (*log_mask)(struct fe_session *s, const char *line, char *out, size_t size);

	/* the back-end login dialogue; NULL while the protocol's back end is
	 * not part of the build */
	bool (*backend_greeting_ok)(const char *line);
	/* write the XLOGIN command carrying the ticket to the back end */
	void (*backend_login)(struct fe_session *s, struct conn *backend);
	/* a line of the back end's answer: 1 logged in (the protocol has
	 * answered the client), 0 more lines follow, -1 refused */
	int (*backend_login_reply)(struct fe_session *s, const char *line);
};

enum fe_login_type {
	FE_LOGIN_PLAIN_TEXT_LOGIN,	    /* credentials in the clear are accepted */
	FE_LOGIN_PLAIN_TEXT_AUTHENTICATION, /* LOGIN/USER+PASS in the clear; SASL only on TLS */
	FE_LOGIN_SECURE,		    /* no credentials before TLS */
};

/* One front-end worker's state. */
struct frontend {
	struct worker *worker;
	const struct fe_protocol *proto;
	struct tls_server *tls;
	struct conn_limits *limits;
	struct protolog *protolog;
	struct fe_session *sessions;
	unsigned nsessions;
	unsigned next_auth_id;
	bool shutting_down;
	struct event *shutdown_ev;

	/* settings, re-read on every change */
	enum fe_login_type login_type;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_connections_per_user;
	unsigned pre_auth_timeout_ms;
	unsigned auth_timeout_ms;
	unsigned max_command_size;
	bool literal_minus; /* IMAP: LITERAL- instead of LITERAL+ (RFC 7888) */
	unsigned failure_delay_s;
	bool offer_scram; /* sasl-scram-sha-256 */
	struct net_cidr *proxy_trusted;
	size_t proxy_trusted_count;
	struct net_cidr *trusted;
	size_t trusted_count;
};

/* One client session. */
struct fe_session {
	struct frontend *fe;
	struct conn *conn;
	struct fe_session *prev, *next;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	bool counted_total;
	bool counted_ip;
	bool counted_user;
	bool closing;

	unsigned bad_commands;
	unsigned auth_failures;
	unsigned auth_id;   /* non-zero while authd is deciding */
	char *user;	    /* after a successful login */
	bool client_closed;

	/* the hand-over to the back end (frontend_relay.c) */
	enum fe_backend_state {
		FE_BACKEND_NONE,
		FE_BACKEND_CONNECTING,
		FE_BACKEND_GREETING,
		FE_BACKEND_LOGIN,
		FE_BACKEND_RELAY,
	} backend_state;
	int backend_fd;	    /* while connecting, or -1 */
	struct event *backend_ev;
	struct conn *backend;
	char *ticket_expiry;
	char *ticket_mac;
	struct fe_sasl sasl;

	/* protocol state */
	char *pop3_user;    /* POP3 USER given, waiting for PASS */
	char imap_tag[FE_IMAP_MAX_TAG + 1]; /* tag of the command in progress (AUTHENTICATE) */
	struct imap_parser *imap_parser;    /* IMAP: src/proto/imap, made on first use */
};

/* after this many bad commands the connection ends */
#define FE_MAX_BAD_COMMANDS 10
/* after this many failed logins in one session it ends */
#define FE_MAX_AUTH_FAILURES 3

/* The session's connection is encrypted. */
bool fe_session_secured(const struct fe_session *s);
/* Whether a plaintext credential form may be used now:
 * sasl=false for LOGIN / USER+PASS, true for AUTHENTICATE / AUTH. */
bool fe_plaintext_allowed(const struct fe_session *s, bool sasl);
/* Send credentials to authd. The answer arrives in proto->auth_result.
 * Returns 0, or -1 when authd is unreachable (answer with a temporary
 * failure). */
int fe_auth_request(struct fe_session *s, const char *user, const char *password);
/* Send the SASL exchange's message to authd (after FE_SASL_AUTHD); the
 * answer arrives in proto->sasl_result (a challenge) or proto->auth_result
 * (the verdict). Returns 0, or -1 when authd is unreachable (the exchange
 * is reset; answer with a temporary failure). */
int fe_sasl_authd_send(struct fe_session *s);
/* Record a failed login; returns true when the session must now end. */
bool fe_auth_failed(struct fe_session *s);
/* Count a bad command; returns true when the session must now end (the
 * goodbye has been written). */
bool fe_bad_command(struct fe_session *s);
/* Upgrade to TLS after the protocol's go-ahead was queued. Returns 0 or
 * -1 (TLS not configured or already active). */
int fe_starttls(struct fe_session *s);
/* End the session after flushing what was written. */
void fe_close(struct fe_session *s);
/* The session logged in (msg is authd's reply): apply the per-user limit
 * and hand the session to the user's back end. When that cannot happen,
 * proto->login_unavailable answers the client. */
void fe_login_succeeded(struct fe_session *s, const struct ipc_msg *msg);
/* frontend_relay.c */
/* The client closed. Returns true when the session lives on until the
 * back end has received what the client sent and closed too. */
bool fe_relay_client_closed(struct fe_session *s);
/* Free what the hand-over holds. */
void fe_relay_release(struct fe_session *s);
/* frontend.c */
void fe_session_free(struct fe_session *s);
/* The client's conn closed (conn_callbacks.closed of every phase). */
void fe_session_client_closed(struct conn *conn, enum conn_close_reason reason,
			      const char *detail, void *ctx);

/* Protocol log lines (when protocol-log-enabled): a client line (masked by
 * the protocol) and a status line the front end answered. */
void fe_log_client(struct fe_session *s, const char *line, size_t len);
void fe_log_server(struct fe_session *s, const char *text, size_t len);

/* The service's banner setting. */
const char *fe_banner(const struct fe_session *s);

#endif
