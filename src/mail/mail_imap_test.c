#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mail_address.h"
#include "mail/mail_imap.h"
#include "mail/mime_parser.h"

static char *envelope_of(const char *msg)
{
	struct mime_part *root = mime_parse_buffer(msg, strlen(msg), NULL);
	char *e = mail_imap_envelope(root);
	mime_part_free(&root);
	return e;
}

static void test_envelope(void **state)
{
	char *e = envelope_of("Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
			      "From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
			      "Subject: afternoon meeting\r\n"
			      "To: mooch@owatagu.siam.edu\r\n"
			      "Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
			      "\r\nHello\r\n");
	/* RFC 3501 section 8's example */
	assert_string_equal(e, "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"afternoon meeting\" "
			       "((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) "
			       "((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) "
			       "((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) "
			       "((NIL NIL \"mooch\" \"owatagu.siam.edu\")) NIL NIL NIL "
			       "\"<B27397-0100000@Blurdybloop.COM>\")");
	free(e);
	e = envelope_of("Subject: =?utf-8?q?x?= \"q\" \\ b\r\nSender: \r\n"
			"Reply-To: <@a.example,@b.example:joe@c.example>\r\n"
			"Cc: team: a@x.example, \"B\" <b@x.example>;, solo\r\n\r\n");
	assert_string_equal(e, "(NIL \"=?utf-8?q?x?= \\\"q\\\" \\\\ b\" NIL NIL "
			       "((NIL \"@a.example,@b.example\" \"joe\" \"c.example\")) NIL "
			       "((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"x.example\")"
			       "(\"B\" NIL \"b\" \"x.example\")(NIL NIL NIL NIL)"
			       "(NIL NIL \"solo\" \"MISSING_DOMAIN\")) NIL NIL NIL)");
	free(e);
	/* 8-bit becomes a literal */
	e = envelope_of("Subject: caf\xc3\xa9\r\n\r\n");
	assert_string_equal(e, "(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)");
	free(e);
}

static void test_body_basic(void **state)
{
	const char *m = "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
			"Content-ID: <x@y>\r\nContent-Description: d\r\n"
			"Content-Language: en, de\r\nContent-Location: http://x/\r\n"
			"Content-MD5: abc=\r\n"
			"Content-Transfer-Encoding: 8bit\r\n\r\n"
			"a\r\nb\r\nc\r\n";
	struct mime_part *root = mime_parse_buffer(m, strlen(m), NULL);
	char *b = mail_imap_bodystructure(root, false);
	assert_string_equal(b, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") \"<x@y>\" \"d\" "
			       "\"8bit\" 9 3)");
	free(b);
	b = mail_imap_bodystructure(root, true);
	assert_string_equal(b, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") \"<x@y>\" \"d\" "
			       "\"8bit\" 9 3 \"abc=\" NIL (\"en\" \"de\") \"http://x/\")");
	free(b);
	mime_part_free(&root);
}

struct secs {
	char buf[512];
};

static void on_section(void *ctx, const char *section, const struct mime_part *part,
		       bool is_message)
{
	struct secs *s = ctx;
	size_t l = strlen(s->buf);
	snprintf(s->buf + l, sizeof(s->buf) - l, "%s%s%s", l ? "," : "", section,
		 is_message ? "m" : "");
}

static void test_sections(void **state)
{
	const char *m = "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
			"--a\r\n\r\none\r\n"
			"--a\r\nContent-Type: message/rfc822\r\n\r\n"
			"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
			"--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n"
			"--a\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nz\r\n"
			"--a--\r\n";
	struct mime_part *root = mime_parse_buffer(m, strlen(m), NULL);
	struct secs s = {{0}};
	mail_imap_sections(root, on_section, &s);
	assert_string_equal(s.buf, "m,1,2,2m,2.1,2.2,3,3m,3.1");
	mime_part_free(&root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_envelope),
	    cmocka_unit_test(test_body_basic),
	    cmocka_unit_test(test_sections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
