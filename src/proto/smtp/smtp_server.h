#ifndef POSTERN_SMTP_SERVER_H
#define POSTERN_SMTP_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp/smtp_address.h"

/* The SMTP / LMTP server engine (RFC 5321, RFC 2033), shared by the
 * submission and lmtp services. Wire syntax only: no sockets, no store.
 *
 * A resumable state machine. The caller feeds it either complete command
 * lines (smtp_server_line(), from its own line reader) or raw bytes
 * (smtp_server_input()); the engine parses commands through its command
 * table (name, handler, allowed states, flags), validates paths and
 * parameters, answers what it can answer alone (syntax 500/501, sequence
 * 503, NOOP, RSET, VRFY, HELP, QUIT, EHLO) and hands the caller typed events
 * through struct smtp_server_callbacks for the rest (MAIL, RCPT, DATA/BDAT
 * body and end, STARTTLS, AUTH).
 *
 * Message bodies (DATA and BDAT) are read byte by byte by the engine itself,
 * so callers must pass raw bytes while smtp_server_wants_raw() is true:
 *   - the end of DATA is "\r\n.\r\n" on the wire and nothing else: a bare LF
 *     or bare CR before or after the dot never ends the message (no SMTP
 *     smuggling);
 *   - dot-unstuffing: a line that starts with "." after a CRLF loses that
 *     dot (".." -> ".", ".x" -> "x");
 *   - normalisation: a bare LF or a bare CR inside the message is stored as
 *     CRLF, so the body handed to the caller always has CRLF line ends. A
 *     line start produced by such normalisation is not a line start for the
 *     end marker or for dot-unstuffing (only a CRLF on the wire is);
 *   - bounds: a line longer than max_message_line bytes (without its CRLF)
 *     or a body longer than max_message_size bytes fails the message; the
 *     engine then stops handing out body bytes but consumes the rest of the
 *     DATA (or chunk) and reports the failure at its end.
 * BDAT (RFC 3030) chunks are counted exactly on the wire bytes; their bytes
 * get the same normalisation and bounds but no dot handling.
 *
 * Pipelining: bytes after the end of a body (or anything fed while a caller
 * decision is pending) are kept and processed in order. While a callback's
 * answer is pending (it returned 0) the engine is paused: it processes no
 * input until smtp_server_complete().
 *
 * Return convention of callbacks that decide (mail, rcpt, data_begin,
 * data_end, starttls, auth): 1 accepted, -1 refused, 0 pending (answer later
 * with smtp_server_complete()). The caller writes its reply with
 * smtp_server_reply() before returning 1/-1 (or before completing); when it
 * accepts without writing a reply, the engine writes the standard one.
 *
 * Strings in events are valid only during the callback. */

struct smtp_server;

enum smtp_protocol {
	SMTP_PROTOCOL_SMTP,
	SMTP_PROTOCOL_LMTP,
};

/* reply lines are cut to this many bytes (RFC 5321: 512 with CRLF) */
#define SMTP_MAX_REPLY_LINE 510

/* defaults for struct smtp_server_settings fields left 0 */
#define SMTP_SERVER_DEFAULT_MAX_LINE	     512
#define SMTP_SERVER_DEFAULT_MAX_MESSAGE_LINE (64 * 1024)
#define SMTP_SERVER_DEFAULT_MAX_MESSAGE_SIZE (35ULL * 1024 * 1024)
#define SMTP_SERVER_DEFAULT_MAX_RECIPIENTS   100
#define SMTP_SERVER_DEFAULT_MAX_BAD_COMMANDS 10
/* input kept while paused or after a body, beyond one partial line */
#define SMTP_SERVER_MAX_PENDING (256 * 1024)

struct smtp_server_settings {
	enum smtp_protocol protocol;
	/* our name in the EHLO/LHLO reply and in 221 (copied) */
	const char *hostname;
	/* command line bound, without CRLF */
	size_t max_line;
	/* line bound inside a message, without CRLF (998 is RFC 5322's) */
	size_t max_message_line;
	/* message bound in bytes, advertised as SIZE */
	uint64_t max_message_size;
	/* accepted recipients per transaction; more get 452 4.5.3 */
	unsigned max_recipients;
	/* after this many errors in a row the session gets 421 and ends */
	unsigned max_bad_commands;
};

enum smtp_hello_kind { SMTP_HELO, SMTP_EHLO, SMTP_LHLO };

enum smtp_body_type { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

enum smtp_dsn_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

/* A parsed reverse-path or forward-path. */
struct smtp_path {
	/* "local@domain" as sent (quoted local part kept quoted), "" for <> */
	const char *address;
	/* the local part with quoting removed ("a b" for "\"a b\"") */
	const char *local_part;
	/* the domain or address literal ("[192.0.2.1]"); "" for <Postmaster> and <> */
	const char *domain;
	bool null; /* <> */
	bool utf8; /* holds non-ASCII (only accepted with SMTPUTF8) */
};

struct smtp_mail {
	struct smtp_path path;
	uint64_t size; /* SIZE=, 0 when not given */
	enum smtp_body_type body;
	bool smtputf8;
	enum smtp_dsn_ret ret;
	const char *envid; /* xtext as sent, NULL when not given */
	const char *auth;  /* AUTH= value as sent, NULL when not given */
};

struct smtp_rcpt {
	struct smtp_path path;
	unsigned notify;   /* SMTP_NOTIFY_* mask, 0 when not given */
	const char *orcpt; /* "rfc822;..." as sent, NULL when not given */
	/* XSENTCOPY= (postern's own, only when "XSENTCOPY" is advertised):
	 * the value as sent, NULL when not given */
	const char *sent_copy;
};

/* the longest XSENTCOPY value */
#define SMTP_MAX_XSENTCOPY 200

enum smtp_data_error {
	SMTP_DATA_OK,
	SMTP_DATA_TOO_BIG,	 /* over max_message_size */
	SMTP_DATA_LINE_TOO_LONG, /* a line over max_message_line */
};

struct smtp_data_result {
	uint64_t size; /* body bytes handed out (after unstuffing, normalised) */
	enum smtp_data_error error;
	bool chunked; /* BDAT rather than DATA */
};

struct smtp_server_callbacks {
	/* Output: queue len bytes for the client. */
	void (*write)(void *ctx, const void *data, size_t len);
	/* HELO/EHLO/LHLO with its domain or address literal. Accepting (1)
	 * without a reply makes the engine answer with the keyword list. */
	int (*hello)(void *ctx, enum smtp_hello_kind kind, const char *domain);
	int (*mail)(void *ctx, const struct smtp_mail *mail);
	int (*rcpt)(void *ctx, const struct smtp_rcpt *rcpt);
	/* DATA (before 354) or the first BDAT of a transaction. */
	int (*data_begin)(void *ctx, bool chunked);
	/* Body bytes, normalised and unstuffed, in order. */
	void (*data)(void *ctx, const void *data, size_t len);
	/* The end of the body (DATA's "." or BDAT LAST). The caller always
	 * replies: once for SMTP, once per accepted recipient for LMTP (see
	 * smtp_server_reply_data_error() for the failures). The transaction
	 * is over when this returns 1/-1 (or is completed). */
	int (*data_end)(void *ctx, const struct smtp_data_result *result);
	/* The transaction ended without data_end (RSET, a new HELO/EHLO,
	 * STARTTLS, QUIT, a failed BDAT chunk followed by RSET, or the session
	 * ended): drop what was collected for it. Called only while a
	 * transaction (MAIL accepted) is open. */
	void (*reset)(void *ctx);
	/* STARTTLS (only when advertised). The caller writes "220 2.0.0 ..."
	 * and starts TLS; accepted (1) resets the session to before EHLO and
	 * drops input pipelined after the command. */
	int (*starttls)(void *ctx);
	/* AUTH mechanism [initial-response] (only when advertised, outside a
	 * transaction, before a successful AUTH). The caller runs the SASL
	 * dialogue; see smtp_server_auth_lines(). */
	int (*auth)(void *ctx, const char *mechanism, const char *initial);
	/* A SASL response line while smtp_server_auth_lines(srv, true). */
	void (*auth_line)(void *ctx, const char *line);
	/* QUIT was answered, or too many errors: close after flushing. */
	void (*quit)(void *ctx);
};

/* Make an engine. Fields of set left 0 get the defaults above; strings are
 * copied. Returns the engine (never NULL). */
struct smtp_server *smtp_server_new(const struct smtp_server_settings *set,
				    const struct smtp_server_callbacks *callbacks, void *ctx);
/* Free the engine and set *srv to NULL. An open transaction is not reported
 * (the caller drops its own state). */
void smtp_server_free(struct smtp_server **srv);

/* Replace the bounds (e.g. settings reloaded); hostname may be NULL to keep
 * it. Applies from the next command or transaction. */
void smtp_server_set_settings(struct smtp_server *srv, const struct smtp_server_settings *set);

/* The EHLO/LHLO keyword lines, in order (e.g. "PIPELINING", "SIZE 1024",
 * "AUTH PLAIN LOGIN"), NULL-terminated; copied. The first word of each
 * enables the matching commands and parameters: SIZE, 8BITMIME, SMTPUTF8,
 * DSN, CHUNKING (BDAT), STARTTLS, AUTH. Without a keyword its command gets
 * 502 5.5.1 and its parameters 555 5.5.4. */
void smtp_server_set_extensions(struct smtp_server *srv, const char *const *keywords);

/* Write the greeting "220 <hostname> <text>". */
void smtp_server_greet(struct smtp_server *srv, const char *text);

/* Feed raw bytes from the client. Always takes them all (kept when paused).
 * Returns 0, or -1 when the engine would have to keep more than
 * SMTP_SERVER_MAX_PENDING bytes (a caller that stops reading while paused
 * never gets there); the caller then closes the session. */
int smtp_server_input(struct smtp_server *srv, const void *data, size_t len);
/* Feed one complete command line without its line end (line[len] need not
 * be NUL; NUL bytes inside are refused with 500). Allowed only while
 * smtp_server_wants_raw() is false; otherwise it is treated as the bytes
 * line + CRLF. Returns as smtp_server_input(). */
int smtp_server_line(struct smtp_server *srv, const char *line, size_t len);
/* The caller's line reader met a line longer than max_line: answer
 * 500 5.5.2. */
void smtp_server_line_too_long(struct smtp_server *srv);

/* True while the next input must be raw bytes (smtp_server_input()): a
 * body is being read, or the engine holds pipelined input of its own. */
bool smtp_server_wants_raw(const struct smtp_server *srv);
/* True while a callback's decision is pending; the caller stops reading
 * (input fed meanwhile is kept). */
bool smtp_server_paused(const struct smtp_server *srv);
/* True after QUIT (or too many errors): no more input is processed. */
bool smtp_server_finished(const struct smtp_server *srv);

/* Give the decision of a callback that returned 0: 1 accepted, -1 refused
 * (reply written by the caller before this call, or the standard reply
 * when accepted without one). Processes the input kept meanwhile, so
 * callbacks may run from inside this call. */
void smtp_server_complete(struct smtp_server *srv, int result);

/* While true, command lines go to callbacks.auth_line unparsed (SASL
 * continuation). The caller ends it before the final AUTH reply. */
void smtp_server_auth_lines(struct smtp_server *srv, bool on);
/* Record that the session authenticated: a second AUTH gets 503. */
void smtp_server_set_authenticated(struct smtp_server *srv);

/* Write one reply line: "CODE ENH text" (enh may be NULL). Control bytes in
 * the text become '?', and the line is cut at SMTP_MAX_REPLY_LINE. */
void smtp_server_reply(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));
void smtp_server_vreply(struct smtp_server *srv, unsigned code, const char *enh, const char *fmt,
			va_list ap) __attribute__((format(printf, 4, 0)));
/* A multi-line reply: "CODE-..." for all but the last of n lines. */
void smtp_server_reply_lines(struct smtp_server *srv, unsigned code, const char *enh,
			     const char *const *lines, size_t n);
/* The standard reply for a failed body (552 5.3.4 too big, 500 5.5.2 line
 * too long), optionally naming a recipient (LMTP: "<rcpt> ..."). */
void smtp_server_reply_data_error(struct smtp_server *srv, enum smtp_data_error error,
				  const char *rcpt);

/* Recipients accepted in the current transaction. */
unsigned smtp_server_recipient_count(const struct smtp_server *srv);

#endif
