#ifndef POSTERN_IMAP_PARSER_H
#define POSTERN_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/imap_command.h"

/* A resumable IMAP command parser with no I/O.
 *
 * The caller feeds what its connection delivers: complete lines (CR/LF
 * stripped, net/conn.h line callback or net/line_reader.h) and the bytes of
 * literals in any chunks (raw callback). Each call returns:
 *
 *   1  a complete command in result->command (typed, imap_command.h)
 *   0  not yet; result->event says whether a literal was announced:
 *      IMAP_PARSE_LITERAL: result->literal_size bytes follow; when
 *      result->literal_sync the caller sends a continuation request
 *      ("+ Ready") first; then it switches its input to raw for that many
 *      bytes (nothing when the size is 0) and feeds them to
 *      imap_parser_literal(). IMAP_PARSE_NONE: feed the next line or
 *      literal chunk.
 *  -1  the command failed: result->error says what to answer (tagged BAD
 *      when error.tag is set, else "* BAD", with the response code if any),
 *      and when error.bye, "* BYE <text>" after it and close the connection
 *      (the stream cannot be resynchronised). Otherwise the next line is a
 *      new command.
 *
 * Syntax errors in a command whose line ends in a non-synchronising literal
 * are held back: the literal (and further non-synchronising ones) is read
 * and dropped, and the error is returned when the command ends, so the
 * stream stays in step. A synchronising literal is never read after an
 * error: the BAD answers the client's wait for "+".
 *
 * The command and everything it points to live in the parser's per-command
 * arena and stay valid until the next imap_parser_* call on the parser.
 *
 * Not handled here: IDLE's "DONE" line and AUTHENTICATE's response lines
 * (the session reads those itself; see imap_parser_is_done()). */

/* Defaults; each is a field of struct imap_parser_limits. */
#define IMAP_PARSER_DEFAULT_MAX_COMMAND	      (64 * 1024) /* lines + literals of one command */
#define IMAP_PARSER_DEFAULT_MAX_LITERAL	      (64 * 1024) /* one literal outside APPEND */
#define IMAP_PARSER_DEFAULT_MAX_MESSAGE	      (64 * 1024 * 1024) /* APPENDLIMIT */
#define IMAP_PARSER_DEFAULT_MAX_APPEND_TOTAL  (256 * 1024 * 1024) /* all messages of one APPEND */
#define IMAP_PARSER_DEFAULT_MAX_DISCARD	      (1024 * 1024) /* bytes dropped to resynchronise */
#define IMAP_PARSER_DEFAULT_MAX_DEPTH	      16	   /* nesting of ( ) and [ ] */
#define IMAP_PARSER_DEFAULT_MAX_ARGS	      10000	   /* arguments in one command */
/* RFC 7888: with LITERAL- non-synchronising literals are at most this */
#define IMAP_LITERAL_MINUS_MAX 4096
/* tag and command name lengths */
#define IMAP_PARSER_MAX_TAG	     256
#define IMAP_PARSER_MAX_COMMAND_NAME 32
/* the first block of the per-command arena */
#define IMAP_PARSER_ARENA_BLOCK 8192

struct imap_parser_limits {
	size_t max_command;	 /* total of lines (+2 each) and non-message literals */
	size_t max_literal;	 /* a literal that is not an APPEND message */
	size_t max_message;	 /* one APPEND message literal (APPENDLIMIT) */
	size_t max_append_total; /* the message literals of one APPEND together */
	size_t max_discard;	 /* non-sync literal bytes read and dropped after an error */
	unsigned max_depth;
	unsigned max_args;
	bool literal_minus; /* LITERAL- (not LITERAL+): non-sync literals <= 4096 */
	/* APPEND message literals are not held: the caller takes their bytes
	 * (IMAP_PARSE_LITERAL with literal_stream), still feeding them to
	 * imap_parser_literal(), which only counts and checks them */
	bool stream_messages;
};

/* Which bound a command crossed (error.limit). */
enum imap_parse_limit {
	IMAP_LIMIT_NONE, /* a syntax error */
	IMAP_LIMIT_LINE, /* imap_parser_line_too_long() */
	IMAP_LIMIT_COMMAND,
	IMAP_LIMIT_LITERAL,
	IMAP_LIMIT_MESSAGE,
	IMAP_LIMIT_APPEND_TOTAL,
	IMAP_LIMIT_LITERAL_MINUS,
	IMAP_LIMIT_DEPTH,
	IMAP_LIMIT_ARGS,
};

enum imap_parse_event {
	IMAP_PARSE_NONE,
	IMAP_PARSE_LITERAL,
	IMAP_PARSE_COMMAND,
	IMAP_PARSE_ERROR,
};

struct imap_parse_error {
	const char *tag;  /* NULL: answer untagged */
	const char *code; /* response code without brackets ("TOOBIG", "CLIENTBUG") or NULL */
	const char *text;
	bool bye; /* after the BAD, send "* BYE <text>" and close */
	enum imap_parse_limit limit;
	/* a known command name that failed (NULL if unknown or not reached) */
	const struct imap_command_def *def;
};

struct imap_parse_result {
	enum imap_parse_event event;
	/* IMAP_PARSE_LITERAL */
	size_t literal_size;
	bool literal_sync;
	bool literal8;
	/* an APPEND message under stream_messages: the caller keeps the bytes;
	 * literal_index counts these literals within the command from 0 */
	bool literal_stream;
	unsigned literal_index;
	/* the command already failed: the bytes are read and dropped (the
	 * error follows when the command ends) */
	bool literal_skip;
	/* IMAP_PARSE_COMMAND */
	struct imap_command *command;
	/* IMAP_PARSE_ERROR */
	struct imap_parse_error error;
};

struct imap_parser;

/* The defaults above. */
void imap_parser_limits_default(struct imap_parser_limits *limits_r);

/* A parser with these limits (NULL: defaults; zero fields take their
 * default). */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
/* Free the parser and its arena; sets *parser to NULL. */
void imap_parser_free(struct imap_parser **parser);

/* Change how arguments are read (UTF8=ACCEPT), from the next command on. */
void imap_parser_set_ctx(struct imap_parser *parser, const struct imap_parse_ctx *ctx);
/* Change the limits (e.g. after login), from the next command on. */
void imap_parser_set_limits(struct imap_parser *parser, const struct imap_parser_limits *limits);

/* Feed one line (CR/LF stripped; may hold NULs). Returns 1 / 0 / -1 as
 * described above. Must not be called while literal bytes are due. */
int imap_parser_line(struct imap_parser *parser, const char *line, size_t len,
		     struct imap_parse_result *result_r);
/* Feed literal bytes (at most what is still due). Returns 0 (more literal
 * bytes or the next line are needed) or -1 (only when a literal was
 * malformed and the stream cannot continue: never in practice; NUL in a
 * non-literal8 literal is reported when the command ends). */
int imap_parser_literal(struct imap_parser *parser, const void *data, size_t len,
			struct imap_parse_result *result_r);
/* The connection dropped an over-long line. Returns -1 with the BAD to
 * send; the parser is reset (the next line is a new command). */
int imap_parser_line_too_long(struct imap_parser *parser, struct imap_parse_result *result_r);

/* Forget any partial command (STARTTLS, the session's own reset). */
void imap_parser_reset(struct imap_parser *parser);
/* Literal bytes still due (0: the parser wants a line). */
size_t imap_parser_literal_pending(const struct imap_parser *parser);
/* true between commands (no partial command held). */
bool imap_parser_idle(const struct imap_parser *parser);

/* true when line is "DONE" (any case), the end of IDLE. */
bool imap_parser_is_done(const char *line, size_t len);

#endif
