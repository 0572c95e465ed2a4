#ifndef POSTERN_IMAP_TEST_UTIL_H
#define POSTERN_IMAP_TEST_UTIL_H

/* Unit-test harness: a byte stream goes through the line reader and the
 * parser, whole or in chunks, and every event is written to a transcript.
 * Include after cmocka.h. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/line_reader.h"
#include "proto/imap/imap_parser.h"

struct imap_test_run {
	char transcript[16384];
	size_t len;
	struct imap_parser *parser;
	struct imap_parse_result last; /* the last command or error */
	unsigned commands, errors;
};

static inline void imap_test_add(struct imap_test_run *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void imap_test_add(struct imap_test_run *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->transcript + t->len, sizeof(t->transcript) - t->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(t->transcript) - t->len);
	t->len += (size_t)n;
}

static inline void imap_test_result(struct imap_test_run *t, struct line_reader *lr, int ret,
				    const struct imap_parse_result *r, bool *closed)
{
	switch (r->event) {
	case IMAP_PARSE_NONE:
		assert_int_equal(ret, 0);
		break;
	case IMAP_PARSE_LITERAL:
		assert_int_equal(ret, 0);
		imap_test_add(t, "LIT %zu%s%s%s|", r->literal_size,
			      r->literal_stream ? " stream" : "", r->literal_sync ? " sync" : "",
			      r->literal_skip ? " skip" : "");
		line_reader_read_raw(lr, r->literal_size);
		break;
	case IMAP_PARSE_COMMAND:
		assert_int_equal(ret, 1);
		imap_test_add(t, "CMD %s %s %u|", r->command->tag, r->command->name,
			      r->command->arg_count);
		t->last = *r;
		t->commands++;
		break;
	case IMAP_PARSE_ERROR:
		assert_int_equal(ret, -1);
		imap_test_add(t, "ERR %s [%s] %s%s|", r->error.tag ? r->error.tag : "*",
			      r->error.code ? r->error.code : "", r->error.text,
			      r->error.bye ? " BYE" : "");
		t->last = *r;
		t->errors++;
		if (r->error.bye)
			*closed = true;
		break;
	}
}

/* Feed data in chunks of chunk bytes (0: whole). The parser stays in
 * t->parser (free with imap_test_done()). */
static inline void imap_test_feed(struct imap_test_run *t, const char *data, size_t size,
				  size_t chunk, const struct imap_parser_limits *limits,
				  const struct imap_parse_ctx *ctx)
{
	memset(t, 0, sizeof(*t));
	t->parser = imap_parser_new(limits);
	if (ctx != NULL)
		imap_parser_set_ctx(t->parser, ctx);
	struct line_reader lr;
	line_reader_init(&lr, 8192);
	size_t pos = 0;
	bool closed = false;
	while (pos < size && !closed) {
		size_t n = chunk == 0 || chunk > size - pos ? size - pos : chunk;
		const char *p = data + pos;
		size_t left = n;
		while (left > 0 && !closed) {
			struct line_reader_item item;
			size_t consumed;
			int got = line_reader_feed(&lr, p, left, &consumed, &item);
			p += consumed;
			left -= consumed;
			if (got == 0)
				break;
			struct imap_parse_result r;
			int ret;
			if (item.kind == LINE_READER_LINE)
				ret = imap_parser_line(t->parser, item.data, item.len, &r);
			else if (item.kind == LINE_READER_RAW)
				ret = imap_parser_literal(t->parser, item.data, item.len, &r);
			else
				ret = imap_parser_line_too_long(t->parser, &r);
			imap_test_result(t, &lr, ret, &r, &closed);
		}
		pos += n;
	}
	line_reader_deinit(&lr);
}

static inline void imap_test_done(struct imap_test_run *t)
{
	imap_parser_free(&t->parser);
}

/* Feed whole and one byte at a time; the transcripts must match. Returns
 * the whole run (call imap_test_done()). */
static inline void imap_test_both(struct imap_test_run *t, const char *data,
				  const struct imap_parser_limits *limits,
				  const struct imap_parse_ctx *ctx)
{
	struct imap_test_run *bytes = malloc(sizeof(*bytes));
	assert_non_null(bytes);
	imap_test_feed(bytes, data, strlen(data), 1, limits, ctx);
	imap_test_feed(t, data, strlen(data), 0, limits, ctx);
	assert_string_equal(t->transcript, bytes->transcript);
	imap_test_done(bytes);
	free(bytes);
}

/* One command line (CRLF added): the parsed command, or fail. */
static inline struct imap_command *imap_test_command(struct imap_test_run *t, const char *line)
{
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s\r\n", line);
	imap_test_both(t, buf, NULL, NULL);
	if (t->last.event != IMAP_PARSE_COMMAND)
		fail_msg("not parsed: %s: %s", line, t->transcript);
	return t->last.command;
}

/* One command line that must fail with exactly this text. */
static inline void imap_test_bad(const char *line, const char *text)
{
	struct imap_test_run t;
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s\r\n", line);
	imap_test_both(&t, buf, NULL, NULL);
	if (t.last.event != IMAP_PARSE_ERROR)
		fail_msg("parsed but should fail: %s", line);
	if (strcmp(t.last.error.text, text) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", line, t.last.error.text, text);
	imap_test_done(&t);
}

#endif
