/* libFuzzer target for the IMAP command parser (src/proto/imap).
 *
 * Input: one byte chooses the limits (the back end's, with APPEND messages
 * streamed, or the front end's before login), LITERAL-, and whether
 * UTF8=ACCEPT is on, one the
 * split seed; the rest is a client's byte stream. It goes through the line
 * reader (src/net/line_reader.c) into the parser, switching to raw mode for
 * literals as a session does. Fed whole and in pseudo-random chunks, the
 * transcript of events must be the same; every event must respect the
 * parser's contract and bounds. Every parsed command is also re-formatted
 * through the writer helpers to exercise them. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/line_reader.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct transcript {
	unsigned char *buf;
	size_t len, cap;
};

static void check(int cond)
{
	if (!cond)
		abort();
}

static void add(struct transcript *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 64;
		t->buf = realloc(t->buf, t->cap);
		check(t->buf != NULL);
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

static void add_str(struct transcript *t, const char *s)
{
	add(t, s != NULL ? s : "(null)", strlen(s != NULL ? s : "(null)") + 1);
}

static void exercise_command(const struct imap_command *cmd, struct transcript *t)
{
	struct imap_buf b;
	imap_buf_init(&b);
	add_str(t, cmd->tag);
	add_str(t, cmd->name);
	check(cmd->def != NULL);
	switch (cmd->def->id) {
	case IMAP_CMD_SEARCH: {
		char *s = imap_search_format(cmd->u.search.keys);
		add_str(t, s);
		free(s);
		break;
	}
	case IMAP_CMD_FETCH:
	case IMAP_CMD_STORE:
	case IMAP_CMD_COPY:
	case IMAP_CMD_MOVE: {
		const struct imap_seqset *set = cmd->def->id == IMAP_CMD_FETCH ? &cmd->u.fetch.set
						: cmd->def->id == IMAP_CMD_STORE ? &cmd->u.store.set
										 : &cmd->u.copy.set;
		char *s = imap_seqset_format(set);
		add_str(t, s);
		free(s);
		for (unsigned i = 1; i < set->count; i++)
			check(set->ranges[i - 1].hi + 1 < set->ranges[i].lo);
		break;
	}
	case IMAP_CMD_SELECT:
	case IMAP_CMD_EXAMINE:
		imap_write_mailbox(&b, cmd->u.select.mailbox.name, cmd->ctx->utf8_accept);
		add(t, b.data, b.len);
		break;
	case IMAP_CMD_LOGIN:
		imap_write_astring(&b, cmd->u.login.user, cmd->u.login.user_len, 0);
		add(t, b.data, b.len);
		break;
	default:
		break;
	}
	imap_buf_deinit(&b);
}

static void run(const uint8_t *data, size_t size, uint8_t mode, uint32_t seed,
		struct transcript *t)
{
	struct imap_parser_limits limits;
	imap_parser_limits_default(&limits);
	/* small bounds so the fuzzer crosses them */
	if (mode & 1) {
		limits.max_command = 256;
		limits.max_literal = 64;
		limits.max_message = 128;
		limits.max_append_total = 200;
		limits.max_discard = 300;
		limits.max_depth = 4;
		limits.max_args = 32;
	}
	limits.literal_minus = (mode & 2) != 0;
	/* the back end streams APPEND messages; the front end (mode & 1:
	 * small bounds, as before login) holds every literal */
	limits.stream_messages = (mode & 16) != 0;
	struct imap_parser *parser = imap_parser_new(&limits);
	struct imap_parse_ctx ctx = {.utf8_accept = (mode & 4) != 0};
	imap_parser_set_ctx(parser, &ctx);
	struct line_reader lr;
	line_reader_init(&lr, (mode & 8) ? 128 : 0);
	size_t pos = 0;
	bool closed = false;
	while (pos < size && !closed) {
		size_t n = size - pos;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			size_t k = 1 + (seed >> 16) % 64;
			if (k < n)
				n = k;
		}
		size_t off = 0;
		while (off < n && !closed) {
			struct line_reader_item item;
			size_t consumed;
			int got = line_reader_feed(&lr, data + pos + off, n - off, &consumed, &item);
			off += consumed;
			if (got == 0)
				break;
			struct imap_parse_result r;
			int ret;
			if (item.kind == LINE_READER_LINE) {
				check(imap_parser_literal_pending(parser) == 0);
				ret = imap_parser_line(parser, item.data, item.len, &r);
			} else if (item.kind == LINE_READER_RAW) {
				check(item.len <= imap_parser_literal_pending(parser));
				ret = imap_parser_literal(parser, item.data, item.len, &r);
			} else {
				ret = imap_parser_line_too_long(parser, &r);
			}
			switch (r.event) {
			case IMAP_PARSE_NONE:
				check(ret == 0);
				break;
			case IMAP_PARSE_LITERAL:
				check(ret == 0);
				add(t, "L", 1);
				add(t, &r.literal_size, sizeof(r.literal_size));
				add(t, &r.literal_sync, 1);
				add(t, &r.literal_stream, 1);
				check(!r.literal_stream || limits.stream_messages);
				check(r.literal_size == imap_parser_literal_pending(parser));
				if (r.literal_skip) {
					check(!r.literal_sync);
					check(r.literal_size <= limits.max_discard);
				} else {
					if (limits.literal_minus && !r.literal_sync)
						check(r.literal_size <= IMAP_LITERAL_MINUS_MAX);
					check(r.literal_size <= limits.max_literal ||
					      r.literal_size <= limits.max_message);
				}
				line_reader_read_raw(&lr, r.literal_size);
				break;
			case IMAP_PARSE_COMMAND:
				check(ret == 1);
				check(imap_parser_idle(parser));
				add(t, "C", 1);
				exercise_command(r.command, t);
				break;
			case IMAP_PARSE_ERROR:
				check(ret == -1);
				check(r.error.text != NULL && r.error.text[0] != '\0');
				check(imap_parser_idle(parser));
				add(t, "E", 1);
				add_str(t, r.error.tag);
				add_str(t, r.error.text);
				closed = r.error.bye;
				break;
			}
		}
		pos += n;
	}
	line_reader_deinit(&lr);
	imap_parser_free(&parser);
	check(parser == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	uint32_t seed = (uint32_t)data[1] + 1;
	data += 2;
	size -= 2;
	struct transcript whole = {0}, chunked = {0};
	run(data, size, mode, 0, &whole);
	run(data, size, mode, seed, &chunked);
	check(whole.len == chunked.len);
	check(whole.len == 0 || memcmp(whole.buf, chunked.buf, whole.len) == 0);
	free(whole.buf);
	free(chunked.buf);
	return 0;
}
