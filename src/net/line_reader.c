#include "net/line_reader.h"

#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

/* a buffer grown past this for one long line is released when the next
 * line starts, so an idle connection costs little */
#define LINE_READER_KEEP_CAP 16384
#define LINE_READER_MIN_CAP  256

void line_reader_init(struct line_reader *reader, size_t max_line)
{
	memset(reader, 0, sizeof(*reader));
	reader->max_line = max_line == 0 ? LINE_READER_DEFAULT_MAX_LINE : max_line;
	reader->next_max_line = reader->max_line;
}

void line_reader_deinit(struct line_reader *reader)
{
	free(reader->buf);
	memset(reader, 0, sizeof(*reader));
}

void line_reader_set_max_line(struct line_reader *reader, size_t max_line)
{
	reader->next_max_line = max_line == 0 ? LINE_READER_DEFAULT_MAX_LINE : max_line;
	if (reader->len == 0 && !reader->discarding)
		reader->max_line = reader->next_max_line;
}

size_t line_reader_max_line(const struct line_reader *reader)
{
	return reader->next_max_line;
}

static void line_reader_start_line(struct line_reader *reader)
{
	reader->len = 0;
	reader->line_delivered = false;
	reader->max_line = reader->next_max_line;
	if (reader->cap > LINE_READER_KEEP_CAP) {
		free(reader->buf);
		reader->buf = NULL;
		reader->cap = 0;
	}
}

void line_reader_read_raw(struct line_reader *reader, size_t count)
{
	if (count == 0)
		return;
	/* the buffer is left alone: a line callback may still be reading the
	 * line that announced the raw bytes */
	if (!reader->line_delivered)
		reader->len = 0;
	reader->discarding = false;
	reader->raw = true;
	reader->raw_left = count;
}

void line_reader_read_lines(struct line_reader *reader)
{
	reader->raw = false;
	reader->raw_left = 0;
}

bool line_reader_is_raw(const struct line_reader *reader)
{
	return reader->raw;
}

void line_reader_reset(struct line_reader *reader)
{
	line_reader_start_line(reader);
	reader->discarding = false;
	reader->raw = false;
	reader->raw_left = 0;
}

size_t line_reader_pending(const struct line_reader *reader)
{
	return reader->line_delivered ? 0 : reader->len;
}

static void line_reader_append(struct line_reader *reader, const char *data, size_t n)
{
	/* the caller checked len + n <= max_line + 1 */
	if (reader->len + n + 1 > reader->cap) {
		size_t cap = reader->cap < LINE_READER_MIN_CAP ? LINE_READER_MIN_CAP : reader->cap;
		while (cap < reader->len + n + 1)
			cap *= 2;
		if (cap > reader->max_line + 2)
			cap = reader->max_line + 2;
		reader->buf = xrealloc(reader->buf, cap);
		reader->cap = cap;
	}
	memcpy(reader->buf + reader->len, data, n);
	reader->len += n;
}

static int line_reader_feed_raw(struct line_reader *reader, const char *data, size_t size,
				size_t *consumed_r, struct line_reader_item *item_r)
{
	if (size == 0) {
		*consumed_r = 0;
		return 0;
	}
	size_t n = size < reader->raw_left ? size : reader->raw_left;
	if (reader->raw_left != LINE_READER_RAW_UNLIMITED) {
		reader->raw_left -= n;
		if (reader->raw_left == 0)
			reader->raw = false;
	}
	item_r->kind = LINE_READER_RAW;
	item_r->data = (char *)data;
	item_r->len = n;
	item_r->remaining = reader->raw_left;
	*consumed_r = n;
	return 1;
}

int line_reader_feed(struct line_reader *reader, const void *data, size_t size, size_t *consumed_r,
		     struct line_reader_item *item_r)
{
	const char *p = data;
	size_t pos = 0;

	if (reader->line_delivered)
		line_reader_start_line(reader);
	if (reader->raw)
		return line_reader_feed_raw(reader, p, size, consumed_r, item_r);

	while (pos < size) {
		const char *lf = memchr(p + pos, '\n', size - pos);
		size_t chunk = (lf != NULL ? (size_t)(lf - p) : size) - pos;

		if (reader->discarding) {
			if (lf == NULL) {
				pos = size;
				break;
			}
			pos += chunk + 1;
			reader->discarding = false;
			line_reader_start_line(reader);
			continue;
		}
		/* one byte beyond max_line is allowed for the CR of CRLF */
		if (reader->len + chunk > reader->max_line + 1) {
			reader->len = 0;
			if (lf != NULL) {
				pos += chunk + 1;
				line_reader_start_line(reader);
			} else {
				pos = size;
				reader->discarding = true;
			}
			item_r->kind = LINE_READER_TOO_LONG;
			item_r->data = NULL;
			item_r->len = 0;
			item_r->remaining = 0;
			*consumed_r = pos;
			return 1;
		}
		if (chunk > 0)
			line_reader_append(reader, p + pos, chunk);
		pos += chunk;
		if (lf == NULL)
			break;
		pos++;
		size_t len = reader->len;
		if (len > 0 && reader->buf[len - 1] == '\r')
			len--;
		if (len > reader->max_line) {
			line_reader_start_line(reader);
			item_r->kind = LINE_READER_TOO_LONG;
			item_r->data = NULL;
			item_r->len = 0;
			item_r->remaining = 0;
			*consumed_r = pos;
			return 1;
		}
		if (reader->buf == NULL)
			line_reader_append(reader, "", 0);
		reader->buf[len] = '\0';
		reader->line_delivered = true;
		item_r->kind = LINE_READER_LINE;
		item_r->data = reader->buf;
		item_r->len = len;
		item_r->remaining = 0;
		*consumed_r = pos;
		return 1;
	}
	*consumed_r = size;
	return 0;
}
