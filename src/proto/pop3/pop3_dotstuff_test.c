#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pop3/pop3_dotstuff.h"

struct sink {
	char buf[4096];
	size_t len;
};

static void sink_out(void *ctx, const char *data, size_t len)
{
	struct sink *s = ctx;
	assert_true(s->len + len < sizeof(s->buf));
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

/* run the encoder over input in chunks of `chunk` bytes (0: all at once) */
static void encode(const char *input, long top, size_t chunk, struct sink *s)
{
	struct pop3_dotstuff d;
	memset(s, 0, sizeof(*s));
	pop3_dotstuff_init(&d, top, sink_out, s);
	size_t len = strlen(input);
	if (chunk == 0)
		chunk = len == 0 ? 1 : len;
	for (size_t i = 0; i < len; i += chunk)
		pop3_dotstuff_feed(&d, input + i, len - i < chunk ? len - i : chunk);
	pop3_dotstuff_finish(&d);
}

static void check(const char *input, long top, const char *expected)
{
	struct sink whole, trickled, pairs;
	encode(input, top, 0, &whole);
	assert_string_equal(whole.buf, expected);
	encode(input, top, 1, &trickled);
	assert_string_equal(trickled.buf, expected);
	encode(input, top, 2, &pairs);
	assert_string_equal(pairs.buf, expected);
}

static void test_retr(void **state)
{
	(void)state;
	check("Subject: x\r\n\r\nhello\r\n", -1, "Subject: x\r\n\r\nhello\r\n.\r\n");
	check("Subject: x\r\n\r\n.hidden\r\n..two\r\n.\r\n", -1,
	      "Subject: x\r\n\r\n..hidden\r\n...two\r\n..\r\n.\r\n");
	/* no final line end */
	check("Subject: x\r\n\r\nlast", -1, "Subject: x\r\n\r\nlast\r\n.\r\n");
	/* bare LF and bare CR become CRLF */
	check("A: b\n\nx\ry\n.z", -1, "A: b\r\n\r\nx\r\ny\r\n..z\r\n.\r\n");
	check("", -1, ".\r\n");
	check("x\r", -1, "x\r\n.\r\n");
	/* a dot in the middle of a line is left alone */
	check("a.b\r\n", -1, "a.b\r\n.\r\n");
}

static void test_top(void **state)
{
	(void)state;
	const char *msg = "From: a\r\nSubject: s\r\n\r\none\r\n.two\r\nthree\r\n";
	check(msg, 0, "From: a\r\nSubject: s\r\n\r\n.\r\n");
	check(msg, 1, "From: a\r\nSubject: s\r\n\r\none\r\n.\r\n");
	check(msg, 2, "From: a\r\nSubject: s\r\n\r\none\r\n..two\r\n.\r\n");
	check(msg, 100, "From: a\r\nSubject: s\r\n\r\none\r\n..two\r\nthree\r\n.\r\n");
	/* header only, no blank line */
	check("From: a\r\n", 0, "From: a\r\n.\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retr),
		cmocka_unit_test(test_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
