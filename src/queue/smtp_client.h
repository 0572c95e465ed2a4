#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/net_addr.h"

/* An SMTP (RFC 5321) or LMTP (RFC 2033) client for one transaction on the
 * event loop: connect (non-blocking), greeting, EHLO/LHLO, STARTTLS
 * (RFC 3207) when wanted, AUTH PLAIN when given credentials (only over
 * TLS), MAIL, RCPT for each recipient, DATA with the message read from a
 * file (dot-stuffed on the way, with back-pressure), the final reply (one
 * per accepted recipient for LMTP), QUIT. The result comes once through
 * the done callback, never from inside smtp_client_start().
 *
 * The message file must hold CRLF line ends (the queue's messages do). */

struct event_base;
struct smtp_client;

/* Bounds of one transaction (every step's reply must come within the
 * step timeout; RFC 5321 4.5.3.2 suggests minutes, these are shorter). */
#define SMTP_CLIENT_CONNECT_TIMEOUT_MS (30 * 1000)
#define SMTP_CLIENT_STEP_TIMEOUT_MS    (120 * 1000)
#define SMTP_CLIENT_DATA_TIMEOUT_MS    (600 * 1000)
/* a reply line longer than this ends the transaction (temporary failure) */
#define SMTP_CLIENT_MAX_LINE 2048
/* lines of one multi-line reply, at most */
#define SMTP_CLIENT_MAX_REPLY_LINES 100

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,	       /* never STARTTLS */
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* when offered; go on in clear when not */
	SMTP_CLIENT_TLS_REQUIRED,      /* not offered or failed: temporary failure */
};

struct smtp_client_settings {
	bool lmtp;
	const char *helo_name; /* our name in EHLO/LHLO */
	enum smtp_client_tls tls;
	SSL_CTX *tls_ctx;	 /* client context (borrowed; needed unless TLS_NONE) */
	const char *server_name; /* SNI / host name, may be NULL */
	const char *auth_user;	 /* AUTH PLAIN when not NULL (only over TLS) */
	const char *auth_password;
	const char *log_name; /* service name in log lines */
};

struct smtp_client_envelope {
	const char *sender;		/* "" for <> */
	const char *mail_params;	/* " SIZE=.. BODY=.." or "" (only when offered) */
	const char *const *rcpts;	/* addresses */
	const char *const *rcpt_params; /* per recipient, may be NULL */
	size_t nrcpts;
	int msg_fd;	     /* read with pread from msg_offset; borrowed */
	uint64_t msg_size;   /* the file's size: the message is msg_offset..msg_size */
	uint64_t msg_offset; /* 0, or where the message starts in the file */
	/* the message needs SMTPUTF8 / 8BITMIME when offered (adds the MAIL
	 * parameters itself) */
	bool smtputf8;
	bool eightbit;
};

/* The outcome. status: 1 the transaction ran to the end (each recipient's
 * rcpt_code says how it fared), 0 a temporary failure of the whole
 * (connection, 4xx greeting/MAIL/DATA, timeout, TLS), -1 a permanent
 * failure of the whole (5xx greeting/MAIL/DATA). reply is the reply that
 * decided ("421 4.4.2 ..." or a text of ours for local failures). */
struct smtp_client_result {
	int status;
	const char *reply;
	const char *remote;		 /* the peer's address text */
	unsigned *rcpt_codes;		 /* 0 when the recipient was never answered */
	const char *const *rcpt_replies; /* "" when never answered */
	size_t nrcpts;
};

typedef void smtp_client_done_cb(void *ctx, const struct smtp_client_result *result);

/* Start a transaction to addr. The envelope's strings are copied; msg_fd is
 * borrowed until done. Returns the client (never NULL: a failure to
 * connect comes through done, from the loop). */
struct smtp_client *smtp_client_start(struct event_base *base, const struct net_addr *addr,
				      const struct smtp_client_settings *set,
				      const struct smtp_client_envelope *env,
				      smtp_client_done_cb *done, void *ctx);
/* Stop now without calling done; clears *c (NULL is fine). */
void smtp_client_abort(struct smtp_client **c);

/* Parse a reply's code and enhanced status: "250-2.1.0 Ok" -> 250, '-',
 * "2.1.0". Returns 0, or -1 when the line is not a reply line. */
int smtp_client_parse_reply(const char *line, unsigned *code_r, bool *more_r);

#endif
