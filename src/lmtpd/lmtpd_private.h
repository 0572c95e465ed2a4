#ifndef POSTERN_LMTPD_PRIVATE_H
#define POSTERN_LMTPD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct event;
struct ipc_msg;
struct smtp_data_result;
struct smtp_mail;
struct smtp_rcpt;
struct smtp_server;
struct store;
struct store_append;
struct worker;

/* Recipients in one transaction, at most (Postfix sends 50 per LMTP
 * transaction by default: lmtp_destination_recipient_limit). Every distinct
 * user holds an open store and an appender during DATA, so this also bounds
 * the descriptors one session holds. */
#define LMTP_MAX_RECIPIENTS 50
/* A line inside a message, without CRLF; longer fails the message. */
#define LMTP_MAX_MESSAGE_LINE (64 * 1024)
/* Errors (syntax, sequence, over-long lines) before the session is ended. */
#define LMTP_MAX_BAD_COMMANDS 20
/* Time authd gets to answer a recipient lookup (451 4.3.0 after it). */
#define LMTP_LOOKUP_TIMEOUT_S 30
/* Time sessions get to finish at shutdown. */
#define LMTP_SHUTDOWN_GRACE_MS 3000

/* One worker's state. */
struct lmtpd {
	struct worker *worker;
	struct lmtp_session *sessions;
	unsigned nsessions;
	unsigned next_lookup_id;
	bool shutting_down;
	struct event *shutdown_ev;
	char hostname[256];
	char *mail_root; /* DATADIR/mail */

	/* settings, re-read on every change; new sessions use them */
	unsigned max_connections; /* 0: unlimited */
	unsigned idle_timeout_ms;
	unsigned max_command_size;
	uint64_t max_message_size;
};

/* One distinct user of a transaction: where its copy goes. */
enum lmtp_box_state {
	LMTP_BOX_WAITING, /* before DATA */
	LMTP_BOX_OPEN,	  /* receiving the body */
	LMTP_BOX_DONE,	  /* committed: durable */
	LMTP_BOX_OVER_QUOTA,
	LMTP_BOX_FAILED,   /* store error: temporary failure */
	LMTP_BOX_REJECTED, /* the body failed the bounds */
	LMTP_BOX_MISMATCH, /* a sent copy whose bytes are not the authorised ones */
};

struct lmtp_box {
	char *user; /* canonical name from authd */
	/* the submitter's own copy for its Sent folder (RCPT ... XSENTCOPY=):
	 * stored without trace fields, \Seen, only when its bytes have the
	 * SHA-256 authd authorised */
	bool sent_copy;
	char digest[65];
	struct evp_md_ctx_st *sha;
	uint64_t quota;
	char *first_rcpt; /* the address named in its Received header */
	struct store *store;
	struct store_append *append;
	enum lmtp_box_state state;
	uint32_t uid;
};

struct lmtp_rcpt {
	char *address; /* as given in RCPT TO */
	size_t box;    /* index into the session's boxes */
};

/* One LMTP session. */
struct lmtp_session {
	struct lmtpd *lm;
	struct conn *conn;
	struct smtp_server *srv;
	struct lmtp_session *prev, *next;
	bool raw;    /* conn delivers raw bytes (a body, or pipelined input) */
	bool paused; /* conn input paused while the engine waits */
	bool closing;

	char *lhlo; /* the client's LHLO name */
	/* the transaction */
	bool smtputf8;	    /* MAIL had SMTPUTF8: "with UTF8LMTP" (RFC 6531) */
	char *sender;	    /* MAIL FROM address, "" for <> */
	uint64_t size_hint; /* MAIL SIZE=, 0 when not given */
	struct lmtp_rcpt rcpts[LMTP_MAX_RECIPIENTS];
	size_t nrcpts;
	struct lmtp_box boxes[LMTP_MAX_RECIPIENTS];
	size_t nboxes;
	unsigned lookup_id;    /* non-zero while authd is asked about a recipient */
	char *lookup_address;  /* the recipient as given */
	char *lookup_local;    /* its local part without +detail, when asked second */
	char *lookup_sent;     /* its XSENTCOPY value ("DIGEST.MAC"), or NULL */
	bool lookup_verifying; /* the lookup is done; authd checks the XSENTCOPY */
	char *lookup_user;     /* meanwhile: the canonical name and quota found */
	uint64_t lookup_quota;
	struct event *lookup_timer;
};

/* lmtp_delivery.c: the transaction, on the engine's events. */
int lmtp_delivery_mail(struct lmtp_session *s, const struct smtp_mail *mail);
int lmtp_delivery_rcpt(struct lmtp_session *s, const struct smtp_rcpt *rcpt);
/* authd answered the recipient lookup of s. */
void lmtp_delivery_lookup_reply(struct lmtp_session *s, const struct ipc_msg *msg);
int lmtp_delivery_data_begin(struct lmtp_session *s);
void lmtp_delivery_data(struct lmtp_session *s, const void *data, size_t len);
int lmtp_delivery_data_end(struct lmtp_session *s, const struct smtp_data_result *result);
/* Drop the transaction: abort appenders, close stores, free recipients. */
void lmtp_delivery_reset(struct lmtp_session *s);

/* lmtpd.c: align conn's input mode and pause with the engine. */
void lmtpd_sync_input(struct lmtp_session *s);

#endif
