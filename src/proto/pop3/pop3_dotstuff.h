#ifndef POSTERN_POP3_DOTSTUFF_H
#define POSTERN_POP3_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

/* Turns message bytes into a POP3 multi-line response body (RFC 1939
 * section 3): lines that start with "." get another "." in front, every line
 * ends in CRLF (a bare LF or bare CR in the input becomes CRLF), and
 * pop3_dotstuff_finish() ends the response with "." CRLF, adding a CRLF
 * first when the last line had none. Optionally stops after the header and
 * max_body_lines lines of the body (TOP).
 *
 * Resumable: feed the message in chunks of any size; the state lives in the
 * struct. No I/O: output goes to a callback. */

struct pop3_dotstuff {
	bool line_start;     /* the next byte starts a line */
	bool prev_cr;	     /* the last byte was CR */
	bool in_body;	     /* past the empty line after the header */
	bool header_empty;   /* the current header line is empty so far */
	bool limit_lines;    /* TOP: count body lines */
	unsigned long body_lines_left;
	bool done;	     /* TOP: enough lines sent; further input is ignored */
	void (*out)(void *ctx, const char *data, size_t len);
	void *ctx;
};

/* max_body_lines < 0: the whole message (RETR); else TOP's line count. */
void pop3_dotstuff_init(struct pop3_dotstuff *d, long max_body_lines,
			void (*out)(void *ctx, const char *data, size_t len), void *ctx);
/* Feed message bytes. */
void pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len);
/* True when TOP has sent all it needs (the caller can stop reading). */
bool pop3_dotstuff_done(const struct pop3_dotstuff *d);
/* End the response ("." CRLF). */
void pop3_dotstuff_finish(struct pop3_dotstuff *d);

#endif
