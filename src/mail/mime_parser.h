#ifndef POSTERN_MIME_PARSER_H
#define POSTERN_MIME_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A streaming, resumable MIME structure parser. It is fed a message's bytes
 * in pieces of any size and builds the part tree with the byte offsets and
 * line counts of every part and the header fields that ENVELOPE and
 * BODYSTRUCTURE need. It never fails on damaged input: missing or
 * unterminated boundaries, bare LF, garbage and missing headers give a
 * best-effort tree and set `damaged`. Bounds (each hit sets `damaged` and
 * the parser goes on treating the rest as plain body):
 *   MIME_MAX_DEPTH        nesting of multipart and message/rfc822
 *   MIME_MAX_HEADER       bytes of one part's header block kept for parsing
 *   MIME_MAX_PARTS        parts in one message
 * Fed one byte at a time or all at once, the result is the same. */

#define MIME_MAX_DEPTH	  20
#define MIME_MAX_HEADER	  (64 * 1024)
#define MIME_MAX_PARTS	  10000
#define MIME_MAX_BOUNDARY 200

struct mime_param {
	char *name;  /* as written (RFC 2231 sections keep their "*0*" suffix) */
	char *value; /* unquoted, not decoded */
};

/* Header fields of a message (top level or inside message/rfc822), raw:
 * unfolded, leading and trailing blanks removed, not decoded. NULL when
 * absent. */
enum mime_env_field {
	MIME_ENV_DATE,
	MIME_ENV_SUBJECT,
	MIME_ENV_FROM,
	MIME_ENV_SENDER,
	MIME_ENV_REPLY_TO,
	MIME_ENV_TO,
	MIME_ENV_CC,
	MIME_ENV_BCC,
	MIME_ENV_IN_REPLY_TO,
	MIME_ENV_MESSAGE_ID,
	MIME_ENV_COUNT
};

struct mime_part {
	struct mime_part *parent, *children, *next;
	/* byte offsets in the whole message: header block from header_start
	 * (inclusive) to body_start; body from body_start to end. The CRLF
	 * before a boundary line belongs to the boundary, not the body. */
	uint64_t header_start, body_start, end;
	uint64_t body_lines; /* lines of the body; a last line without EOL counts */
	unsigned depth;
	bool is_message; /* the root of a message (top level or message/rfc822 body) */
	bool is_multipart, is_rfc822;

	char *type, *subtype; /* as written; defaults "text"/"plain" */
	struct mime_param *params;
	size_t nparams;
	char *encoding, *id, *description, *md5, *language, *location;
	char *disposition; /* the disposition type */
	struct mime_param *disp_params;
	size_t ndisp_params;
	char *boundary;		   /* multipart only */
	char *env[MIME_ENV_COUNT]; /* is_message only */

	/* parser bookkeeping */
	uint64_t lf_at_body_start;
	bool closed; /* multipart whose close delimiter was seen */
};

/* Called for the body bytes of leaf parts (not multipart, not
 * message/rfc822), in order, exactly the bytes in [body_start, end). */
typedef void mime_body_cb(void *ctx, const struct mime_part *part, const void *data, size_t len);

struct mime_parser;

/* Create a parser; body_cb may be NULL. */
struct mime_parser *mime_parser_new(mime_body_cb *body_cb, void *ctx);
/* Feed the next len bytes. Never fails. */
void mime_parser_feed(struct mime_parser *parser, const void *data, size_t len);
/* End of message: close every open part and return the tree (owned by the
 * caller from now on, free with mime_part_free()). *damaged_r (may be NULL)
 * tells whether anything was malformed or a bound was hit. The parser is
 * freed and the pointer cleared. */
struct mime_part *mime_parser_finish(struct mime_parser **parser, bool *damaged_r);
/* Free a parser without taking its tree. */
void mime_parser_free(struct mime_parser **parser);

/* Parse a whole message held in memory (for tests and small messages). */
struct mime_part *mime_parse_buffer(const void *data, size_t len, bool *damaged_r);

void mime_part_free(struct mime_part **part);

/* Value of a parameter by name (ASCII case-insensitive), raw; NULL if none. */
const char *mime_param_get(const struct mime_param *params, size_t count, const char *name);

/* Number of parts in the tree (every node, message roots included). */
size_t mime_part_count(const struct mime_part *root);

#endif
