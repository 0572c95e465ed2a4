#ifndef POSTERN_LINE_READER_H
#define POSTERN_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Splits a byte stream into lines, or hands out exactly N raw bytes.
 *
 * A resumable state machine with no I/O: the caller feeds whatever bytes
 * arrived and gets back one item at a time. A line ends at LF; one CR right
 * before the LF is stripped too (CRLF and bare LF both end a line). A line
 * whose content is longer than max_line is reported once as
 * LINE_READER_TOO_LONG as soon as it crosses the bound, and the rest of it up
 * to and including the next LF is consumed and dropped: the reader never
 * holds more than max_line + 1 bytes, whatever the peer sends.
 *
 * Raw mode (line_reader_read_raw) hands out the next N bytes as they arrive,
 * in chunks that point into the caller's data (nothing is copied or
 * buffered), then returns to line mode by itself. */

#define LINE_READER_DEFAULT_MAX_LINE 8192
/* Raw mode until the caller switches back (relays). */
#define LINE_READER_RAW_UNLIMITED SIZE_MAX

enum line_reader_kind {
	LINE_READER_LINE,     /* data/len: the line, CR/LF stripped, NUL-terminated */
	LINE_READER_TOO_LONG, /* a line crossed max_line; its rest is being dropped */
	LINE_READER_RAW,      /* data/len: raw bytes; remaining: raw bytes still due */
};

struct line_reader_item {
	enum line_reader_kind kind;
	/* LINE: the reader's own buffer, valid until the next call on the
	 * reader (the caller may modify it in place). RAW: points into the
	 * data passed to line_reader_feed(). */
	char *data;
	size_t len;
	/* RAW only: bytes still due after this chunk (0: back in line mode;
	 * LINE_READER_RAW_UNLIMITED in unlimited raw mode). */
	size_t remaining;
};

struct line_reader {
	size_t max_line;      /* bound of the line being read */
	size_t next_max_line; /* adopted when the next line starts */
	char *buf;	      /* current line, at most max_line + 1 bytes + NUL */
	size_t len;
	size_t cap;
	bool line_delivered; /* buf holds a delivered line: clear it on the next call */
	bool discarding;     /* dropping the rest of an over-long line */
	bool raw;
	size_t raw_left;
};

/* Start a reader; max_line 0 means LINE_READER_DEFAULT_MAX_LINE. */
void line_reader_init(struct line_reader *reader, size_t max_line);
/* Release the reader's buffer. The reader may be initialised again. */
void line_reader_deinit(struct line_reader *reader);

/* Change the line bound (0: default). Takes effect when the next line
 * starts; the line being read keeps the bound it started with. */
void line_reader_set_max_line(struct line_reader *reader, size_t max_line);
size_t line_reader_max_line(const struct line_reader *reader);

/* Hand out the next count bytes raw (count LINE_READER_RAW_UNLIMITED: until
 * line_reader_read_lines()). Call between items; a partial line not yet
 * ended is dropped. A line just returned stays valid until the next feed.
 * count 0 does nothing. */
void line_reader_read_raw(struct line_reader *reader, size_t count);
/* Leave raw mode now (the end of unlimited raw mode). */
void line_reader_read_lines(struct line_reader *reader);
bool line_reader_is_raw(const struct line_reader *reader);

/* Drop any partial line (and the line last returned), leave raw mode and
 * discard mode. Used when the stream changes meaning (STARTTLS). */
void line_reader_reset(struct line_reader *reader);

/* Bytes held for a line not yet complete. */
size_t line_reader_pending(const struct line_reader *reader);

/* Feed size bytes of data. Returns 1 with an item in *item_r when one is
 * complete (*consumed_r bytes of data were used; feed the rest again), or 0
 * when all of data was consumed and more is needed (*consumed_r == size).
 * Never fails. */
int line_reader_feed(struct line_reader *reader, const void *data, size_t size, size_t *consumed_r,
		     struct line_reader_item *item_r);

#endif
