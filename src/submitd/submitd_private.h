#ifndef POSTERN_SUBMITD_PRIVATE_H
#define POSTERN_SUBMITD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "frontend/frontend_sasl.h"

struct conn;
struct conn_limits;
struct event;
struct ipc_msg;
struct net_cidr;
struct queue_entry;
struct queue_runner;
struct queue_writer;
struct smtp_data_result;
struct smtp_mail;
struct smtp_rcpt;
struct smtp_server;
struct tls_server;
struct worker;

/* Bounds of the submission service (docs/LIMITS.md). Those with a key are
 * settings; the rest are fixed here. */
/* a line inside a message, without CRLF; longer: 500 5.5.2 at the end */
#define SUBMIT_MAX_MESSAGE_LINE (64 * 1024)
/* the header section of a message; larger: 552 5.3.4 */
#define SUBMIT_MAX_HEADER_SIZE (256 * 1024)
/* errors in a row before 421 and the end of the session */
#define SUBMIT_MAX_BAD_COMMANDS 10
/* failed AUTH in one session before 421 and the end */
#define SUBMIT_MAX_AUTH_FAILURES 3
/* time authd gets for a recipient lookup or a login (451 / 454 after) */
#define SUBMIT_AUTHD_TIMEOUT_S 30
/* time sessions get to finish at shutdown */
#define SUBMIT_SHUTDOWN_GRACE_MS 3000

/* login-type: whether AUTH is offered on an unencrypted connection. SMTP
 * has only SASL, so plain-text-authentication is as strict as
 * secure-login here. */
enum submit_login_type {
	SUBMIT_LOGIN_PLAIN_TEXT_LOGIN,
	SUBMIT_LOGIN_PLAIN_TEXT_AUTHENTICATION,
	SUBMIT_LOGIN_SECURE,
};

/* One worker's state. */
struct submitd {
	struct worker *worker;
	struct tls_server *tls;
	struct conn_limits *limits;
	struct queue_runner *runner;
	char *queue_dir;
	struct submit_session *sessions;
	unsigned nsessions;
	unsigned next_id;
	bool shutting_down;
	struct event *shutdown_ev;
	char hostname[256];

	/* settings, re-read on every change; new sessions use them */
	enum submit_login_type login_type;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_connections_per_user;
	unsigned pre_auth_timeout_ms;
	unsigned auth_timeout_ms;
	unsigned max_command_size;
	unsigned failure_delay_s;
	bool offer_scram; /* sasl-scram-sha-256 */
	unsigned max_recipients;
	uint64_t max_message_size;
	bool save_sent; /* the default of users whose own save-sent is "default" */
	char **local_domains;
	struct net_cidr *proxy_trusted;
	size_t proxy_trusted_count;
	struct net_cidr *trusted;
	size_t trusted_count;
};

struct submit_rcpt {
	char *address;
	bool local;
	char *lmtp; /* local: the back end's lmtp address */
	unsigned notify;
	char *orcpt;
};

/* One client session. */
struct submit_session {
	struct submitd *sd;
	struct conn *conn;
	struct smtp_server *srv;
	struct submit_session *prev, *next;
	struct sockaddr_storage peer;
	bool counted_total, counted_ip, counted_user;
	bool closing;
	bool raw;    /* conn delivers raw bytes */
	bool paused; /* conn input paused while the engine waits */
	char *helo;

	/* authentication */
	struct fe_sasl sasl;
	unsigned auth_id; /* non-zero while authd decides a login */
	unsigned auth_failures;
	char *user;	 /* after AUTH: the canonical name */
	char *address;	 /* the user's own address */
	char *domain;	 /* the instance's domain, from authd */
	char *send_as;	 /* "a@x, b@y" */
	char *user_lmtp; /* the user's back end's lmtp address */
	char *save_sent; /* the user's save-sent: "on", "off" or "default" */
	struct event *authd_timer;

	/* the transaction */
	bool in_mail;
	char *sender;
	bool smtputf8, eightbit;
	int ret;
	char *envid;
	struct submit_rcpt *rcpts;
	size_t nrcpts;
	unsigned lookup_id; /* non-zero while authd looks up a recipient */
	char *lookup_address;
	char *lookup_local; /* asked second: the local part alone */
	unsigned lookup_notify;
	char *lookup_orcpt;

	/* the body */
	struct queue_writer *qw;
	char *hdr; /* the header section, held until its end */
	size_t hdr_len;
	bool hdr_done;
	bool hdr_too_big;
	bool from_bad;
	bool write_failed;
	bool delivering; /* waiting for the local deliveries */

	/* the copy for the user's Sent folder: the message after the
	 * Received field we add, its SHA-256, and authd's authorisation */
	bool copy;
	uint64_t copy_offset;
	struct evp_md_ctx_st *copy_sha;
	char copy_digest[65];
	bool copy_pending; /* lookup_id is authd's answer about the copy */
};

/* submitd.c */
/* Align conn's input mode and pause with the engine. */
void submitd_sync_input(struct submit_session *s);
/* End the session after flushing what was written. */
void submitd_close(struct submit_session *s);
/* Ask authd (IPC_USER_LOOKUP / IPC_AUTH_REQUEST) with a fresh id and arm
 * the session's authd timer. Returns the id, or 0 when authd is
 * unreachable. */
unsigned submitd_authd_send(struct submit_session *s, int type, const void *fields,
			    unsigned nfields);
/* RFC 5322 date of now into buf. */
void submitd_date(char *buf, size_t size);

/* submitd_auth.c: AUTH on the engine's events */
int submitd_auth_start(struct submit_session *s, const char *mechanism, const char *initial);
void submitd_auth_line(struct submit_session *s, const char *line);
void submitd_auth_reply(struct submit_session *s, const struct ipc_msg *msg);
void submitd_auth_timeout(struct submit_session *s);

/* submitd_mail.c: the transaction on the engine's events */
int submitd_mail(struct submit_session *s, const struct smtp_mail *mail);
int submitd_rcpt(struct submit_session *s, const struct smtp_rcpt *rcpt);
void submitd_lookup_reply(struct submit_session *s, const struct ipc_msg *msg);
void submitd_lookup_timeout(struct submit_session *s);
int submitd_data_begin(struct submit_session *s);
void submitd_data(struct submit_session *s, const void *data, size_t len);
int submitd_data_end(struct submit_session *s, const struct smtp_data_result *result);
/* Drop the transaction (the engine's reset, and the session's end). */
void submitd_reset(struct submit_session *s);
/* True when address (any case) is the user's own or one of its send-as. */
bool submitd_sender_allowed(const struct submit_session *s, const char *address);

#endif
