/* libFuzzer target for the line reader (src/net/line_reader.c).
 *
 * Input: two bytes choose max_line (1..1024) and the split seed; the rest
 * is the stream. A line ending in "{N}" switches to N raw bytes, as an
 * IMAP literal does. Fed whole and in pseudo-random chunks, the transcript
 * must be the same; every item must respect the bounds. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/line_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct transcript {
	unsigned char *buf;
	size_t len, cap;
	unsigned char raw_pending; /* raw chunks joined: compare bytes only */
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

static size_t literal_size(const char *line, size_t len)
{
	if (len < 3 || line[len - 1] != '}')
		return 0;
	size_t i = len - 1, n = 0, mult = 1;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9' && len - i < 7) {
		n += (size_t)(line[i - 1] - '0') * mult;
		mult *= 10;
		i--;
	}
	if (i == 0 || i == len - 1 || line[i - 1] != '{')
		return 0;
	return n;
}

static void run(const uint8_t *data, size_t size, size_t max_line, uint32_t seed,
		struct transcript *t)
{
	struct line_reader r;
	line_reader_init(&r, max_line);
	size_t pos = 0;
	bool in_raw = false;
	while (pos < size) {
		size_t n = size - pos;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			size_t k = 1 + (seed >> 16) % 64;
			if (k < n)
				n = k;
		}
		size_t off = 0;
		while (off < n) {
			struct line_reader_item item;
			size_t consumed;
			int ret = line_reader_feed(&r, data + pos + off, n - off, &consumed, &item);
			check(consumed <= n - off);
			off += consumed;
			check(line_reader_pending(&r) <= max_line + 1);
			if (ret == 0) {
				check(off == n);
				break;
			}
			switch (item.kind) {
			case LINE_READER_LINE:
				check(!in_raw);
				check(item.len <= max_line);
				check(item.data[item.len] == '\0');
				check(memchr(item.data, '\n', item.len) == NULL);
				add(t, "L", 1);
				add(t, &item.len, sizeof(item.len));
				add(t, item.data, item.len);
				size_t lit = literal_size(item.data, item.len);
				line_reader_read_raw(&r, lit);
				in_raw = lit > 0;
				break;
			case LINE_READER_TOO_LONG:
				check(!in_raw);
				add(t, "T", 1);
				break;
			case LINE_READER_RAW:
				check(in_raw);
				check(item.len > 0 && item.len <= consumed);
				add(t, item.data, item.len);
				if (item.remaining == 0) {
					add(t, "R", 1);
					in_raw = false;
				}
				break;
			}
		}
		pos += n;
	}
	line_reader_deinit(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max_line = 1 + ((size_t)data[0] * 4) % 1024;
	uint32_t seed = (uint32_t)data[1] + 1;
	data += 2;
	size -= 2;

	struct transcript whole = {0}, chunked = {0};
	run(data, size, max_line, 0, &whole);
	run(data, size, max_line, seed, &chunked);
	check(whole.len == chunked.len);
	check(whole.len == 0 || memcmp(whole.buf, chunked.buf, whole.len) == 0);
	free(whole.buf);
	free(chunked.buf);
	return 0;
}
