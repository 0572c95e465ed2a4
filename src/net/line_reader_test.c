#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/line_reader.h"

/* A transcript of what the reader handed out: "L:<line>|" per line, "T|" per
 * over-long line, "R:<bytes>|" per complete raw block (chunks joined). A
 * line ending in "{N}" switches to N raw bytes, as an IMAP literal does. */
struct transcript {
	char text[65536];
	size_t len;
	char raw[4096];
	size_t raw_len;
	size_t max_raw_chunk;
	size_t max_pending;
};

static void transcript_add(struct transcript *t, const char *prefix, const char *data, size_t len)
{
	size_t plen = strlen(prefix);
	assert_true(t->len + plen + len + 2 < sizeof(t->text));
	memcpy(t->text + t->len, prefix, plen);
	t->len += plen;
	for (size_t i = 0; i < len; i++)
		t->text[t->len++] = data[i] == '\0' ? '0' : data[i];
	t->text[t->len++] = '|';
	t->text[t->len] = '\0';
}

static size_t literal_size(const char *line, size_t len)
{
	if (len < 3 || line[len - 1] != '}')
		return 0;
	size_t i = len - 1;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == 0 || line[i - 1] != '{' || i == len - 1)
		return 0;
	return (size_t)strtoul(line + i, NULL, 10);
}

static void feed_all(struct line_reader *r, struct transcript *t, const char *data, size_t size)
{
	while (size > 0) {
		struct line_reader_item item;
		size_t consumed;
		int ret = line_reader_feed(r, data, size, &consumed, &item);
		assert_true(consumed <= size);
		data += consumed;
		size -= consumed;
		if (line_reader_pending(r) > t->max_pending)
			t->max_pending = line_reader_pending(r);
		if (ret == 0) {
			assert_int_equal(size, 0);
			break;
		}
		switch (item.kind) {
		case LINE_READER_LINE:
			assert_int_equal(item.data[item.len], '\0');
			transcript_add(t, "L:", item.data, item.len);
			size_t n = literal_size(item.data, item.len);
			line_reader_read_raw(r, n);
			break;
		case LINE_READER_TOO_LONG:
			assert_true(t->len + 3 < sizeof(t->text));
			memcpy(t->text + t->len, "T|", 3);
			t->len += 2;
			break;
		case LINE_READER_RAW:
			assert_true(item.len > 0);
			if (item.len > t->max_raw_chunk)
				t->max_raw_chunk = item.len;
			assert_true(t->raw_len + item.len <= sizeof(t->raw));
			memcpy(t->raw + t->raw_len, item.data, item.len);
			t->raw_len += item.len;
			if (item.remaining == 0) {
				transcript_add(t, "R:", t->raw, t->raw_len);
				t->raw_len = 0;
			}
			break;
		}
	}
}

static void run_whole(const char *input, size_t len, size_t max_line, struct transcript *t)
{
	struct line_reader r;
	memset(t, 0, sizeof(*t));
	line_reader_init(&r, max_line);
	feed_all(&r, t, input, len);
	line_reader_deinit(&r);
}

/* the same transcript at every split point and one byte at a time */
static void check_splits(const char *input, size_t len, size_t max_line, const char *expect)
{
	static struct transcript whole, part;
	run_whole(input, len, max_line, &whole);
	assert_string_equal(whole.text, expect);

	for (size_t k = 0; k <= len; k++) {
		struct line_reader r;
		memset(&part, 0, sizeof(part));
		line_reader_init(&r, max_line);
		feed_all(&r, &part, input, k);
		feed_all(&r, &part, input + k, len - k);
		line_reader_deinit(&r);
		assert_string_equal(part.text, expect);
	}

	struct line_reader r;
	memset(&part, 0, sizeof(part));
	line_reader_init(&r, max_line);
	for (size_t i = 0; i < len; i++)
		feed_all(&r, &part, input + i, 1);
	line_reader_deinit(&r);
	assert_string_equal(part.text, expect);
	assert_true(part.max_pending <= max_line + 1);
}

#define CHECK(input, max, expect) check_splits(input, sizeof(input) - 1, max, expect)

static void test_lines(void **state)
{
	CHECK("A1 NOOP\r\nA2 LOGIN a b\nA3\r\n\r\n\n", 100, "L:A1 NOOP|L:A2 LOGIN a b|L:A3|L:|L:|");
	/* only a CR right before LF is stripped */
	CHECK("a\rb\r\r\nc\r", 100, "L:a\rb\r|");
	/* NUL bytes stay in the line */
	CHECK("a\0b\r\n", 100, "L:a0b|");
	/* an unfinished line is not delivered */
	CHECK("partial", 100, "");
}

static void test_too_long(void **state)
{
	/* max 8: exactly 8 is fine with CRLF or LF */
	CHECK("12345678\r\n12345678\n", 8, "L:12345678|L:12345678|");
	/* 9 bytes is too long, with CRLF, bare LF or a stray CR at the end */
	CHECK("123456789\r\nok\r\n", 8, "T|L:ok|");
	CHECK("123456789\nok\n", 8, "T|L:ok|");
	CHECK("12345678\r\r\nok\n", 8, "T|L:ok|");
	/* reported once however long, and the next line is read normally */
	CHECK("0123456789012345678901234567890123456789\r\nnext\r\n", 8, "T|L:next|");
	CHECK("a\r\n0123456789012345678901234567890123456789\r\n0123456789\r\nb\r\n", 8,
	      "L:a|T|T|L:b|");
	/* too long and still unfinished: reported, rest discarded */
	CHECK("0123456789abcdef", 8, "T|");
}

static void test_raw(void **state)
{
	CHECK("A1 APPEND x {10}\r\n0123456789 tail\r\nA2 NOOP\r\n", 100,
	      "L:A1 APPEND x {10}|R:0123456789|L: tail|L:A2 NOOP|");
	/* raw bytes may hold CR, LF and NUL; a literal right at the end */
	CHECK("X {5}\r\na\r\n\0b\r\n", 100, "L:X {5}|R:a\r\n0b|L:|");
	CHECK("X {3}\nabc", 100, "L:X {3}|R:abc|");
	/* raw bytes are not bound by max_line */
	CHECK("X {20}\n01234567890123456789\n", 8, "L:X {20}|R:01234567890123456789|L:|");
}

static void test_raw_chunks_not_buffered(void **state)
{
	struct line_reader r;
	struct transcript *t = calloc(1, sizeof(*t));
	char data[2048];
	memset(data, 'x', sizeof(data));

	line_reader_init(&r, 100);
	feed_all(&r, t, "A {3000}\r\n", 10);
	/* chunks come straight from the fed data: 2048, then 952 */
	feed_all(&r, t, data, sizeof(data));
	assert_int_equal(t->max_raw_chunk, 2048);
	assert_int_equal(line_reader_pending(&r), 0);
	feed_all(&r, t, data, sizeof(data));
	assert_int_equal(t->raw_len, 0);
	/* the rest of the second block (1096 x) is a line over max 100: it is
	 * reported and dropped, not held */
	assert_int_equal(t->text[t->len - 2], 'T');
	assert_int_equal(line_reader_pending(&r), 0);
	line_reader_deinit(&r);
	free(t);
}

static void test_max_line_change(void **state)
{
	struct line_reader r;
	struct transcript *t = calloc(1, sizeof(*t));
	line_reader_init(&r, 10);
	feed_all(&r, t, "0123456", 7);
	/* a change mid-line applies from the next line on */
	line_reader_set_max_line(&r, 4);
	feed_all(&r, t, "89\r\n0123456\r\n0123\r\n", 19);
	assert_string_equal(t->text, "L:012345689|T|L:0123|");
	assert_int_equal(line_reader_max_line(&r), 4);
	line_reader_set_max_line(&r, 0);
	assert_int_equal(line_reader_max_line(&r), LINE_READER_DEFAULT_MAX_LINE);
	line_reader_deinit(&r);
	free(t);
}

static void test_huge_line_bounded(void **state)
{
	struct line_reader r;
	struct transcript *t = calloc(1, sizeof(*t));
	char chunk[65536];
	memset(chunk, 'a', sizeof(chunk));
	line_reader_init(&r, 1024);
	for (int i = 0; i < 160; i++) { /* 10 MiB */
		feed_all(&r, t, chunk, sizeof(chunk));
		assert_true(line_reader_pending(&r) <= 1025);
		assert_true(r.cap <= 1026);
	}
	feed_all(&r, t, "\r\nNEXT\r\n", 8);
	assert_string_equal(t->text, "T|L:NEXT|");
	line_reader_deinit(&r);
	free(t);
}

static void test_line_survives_read_raw(void **state)
{
	struct line_reader r;
	struct line_reader_item item;
	size_t consumed;
	char big[20000];
	memset(big, 'b', sizeof(big));
	memcpy(big + sizeof(big) - 6, "{3}\r\n", 5);
	big[sizeof(big) - 1] = 'x';

	line_reader_init(&r, 30000);
	assert_int_equal(line_reader_feed(&r, big, sizeof(big), &consumed, &item), 1);
	assert_int_equal(item.kind, LINE_READER_LINE);
	assert_int_equal(consumed, sizeof(big) - 1);
	/* switching to raw keeps the line readable until the next feed */
	line_reader_read_raw(&r, 3);
	assert_true(line_reader_is_raw(&r));
	assert_memory_equal(item.data + item.len - 3, "{3}", 3);
	assert_int_equal(line_reader_feed(&r, "xyz\n", 4, &consumed, &item), 1);
	assert_int_equal(item.kind, LINE_READER_RAW);
	assert_int_equal(item.len, 3);
	assert_int_equal(item.remaining, 0);
	assert_false(line_reader_is_raw(&r));
	line_reader_deinit(&r);
}

static void test_unlimited_raw_and_reset(void **state)
{
	struct line_reader r;
	struct line_reader_item item;
	size_t consumed;
	line_reader_init(&r, 0);
	assert_int_equal(line_reader_max_line(&r), LINE_READER_DEFAULT_MAX_LINE);
	line_reader_read_raw(&r, LINE_READER_RAW_UNLIMITED);
	assert_int_equal(line_reader_feed(&r, "abc\n", 4, &consumed, &item), 1);
	assert_int_equal(item.kind, LINE_READER_RAW);
	assert_int_equal(item.len, 4);
	assert_int_equal(item.remaining, LINE_READER_RAW_UNLIMITED);
	assert_int_equal(line_reader_feed(&r, "", 0, &consumed, &item), 0);
	line_reader_read_lines(&r);
	assert_int_equal(line_reader_feed(&r, "par", 3, &consumed, &item), 0);
	assert_int_equal(line_reader_pending(&r), 3);
	line_reader_reset(&r);
	assert_int_equal(line_reader_pending(&r), 0);
	assert_int_equal(line_reader_feed(&r, "tial\n", 5, &consumed, &item), 1);
	assert_int_equal(item.kind, LINE_READER_LINE);
	assert_string_equal(item.data, "tial");
	line_reader_deinit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_too_long),
	    cmocka_unit_test(test_raw),
	    cmocka_unit_test(test_raw_chunks_not_buffered),
	    cmocka_unit_test(test_max_line_change),
	    cmocka_unit_test(test_huge_line_bounded),
	    cmocka_unit_test(test_line_survives_read_raw),
	    cmocka_unit_test(test_unlimited_raw_and_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
