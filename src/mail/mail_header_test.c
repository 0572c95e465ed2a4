#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mail_decode.h"
#include "mail/mail_header.h"

static void test_unfold(void **state)
{
	const char *h = "Subject: a\r\n  folded\r\n\tline\r\nX-Empty:\r\nBad line\r\nTo: "
			"x@y\r\n\r\nBody: no\r\n";
	size_t pos = 0;
	char *n, *v;
	assert_int_equal(mail_header_next(h, strlen(h), &pos, &n, &v), 1);
	assert_string_equal(n, "Subject");
	assert_string_equal(v, "a  folded\tline");
	free(n);
	free(v);
	assert_int_equal(mail_header_next(h, strlen(h), &pos, &n, &v), 1);
	assert_string_equal(n, "X-Empty");
	assert_string_equal(v, "");
	free(n);
	free(v);
	assert_int_equal(mail_header_next(h, strlen(h), &pos, &n, &v), 1);
	assert_string_equal(n, "To");
	free(n);
	free(v);
	assert_int_equal(mail_header_next(h, strlen(h), &pos, &n, &v), 0);
	char *s = mail_header_get(h, strlen(h), "to");
	assert_string_equal(s, "x@y");
	free(s);
	assert_null(mail_header_get(h, strlen(h), "Body"));
}

static void test_content_type(void **state)
{
	char *t, *st;
	struct mime_param *p;
	size_t n;
	mail_content_type_parse("Text/HTML (comment); charset=\"utf-8\"; format=flowed;;junk;x=a=b",
				&t, &st, &p, &n);
	assert_string_equal(t, "Text");
	assert_string_equal(st, "HTML");
	assert_int_equal(n, 3);
	assert_string_equal(p[0].name, "charset");
	assert_string_equal(p[0].value, "utf-8");
	assert_string_equal(p[2].value, "a=b");
	free(t);
	free(st);
	mail_params_free(&p, n);
	mail_content_type_parse("garbage", &t, &st, &p, &n);
	assert_null(t);
	assert_null(st);
	mail_params_free(&p, n);
}

static void test_rfc2047(void **state)
{
	char *s = mail_decode_words("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@x>");
	assert_string_equal(s, "Keld J\xc3\xb8rn Simonsen <keld@x>");
	free(s);
	s = mail_decode_words("=?UTF-8?B?Y2Fmw6k=?=   =?utf-8?q?_au_lait?= done");
	assert_string_equal(s, "caf\xc3\xa9 au lait done");
	free(s);
	s = mail_decode_words("plain =?bogus?X?abc?= =?unknown-cs?q?a=41?=");
	assert_string_equal(s, "plain =?bogus?X?abc?= aA");
	free(s);
	s = mail_decode_words("=?utf-8?q?a=5Fb?=");
	assert_string_equal(s, "a_b");
	free(s);
	s = mail_decode_words("latin1 \xe9t\xe9");
	assert_string_equal(s, "latin1 \xc3\xa9t\xc3\xa9");
	free(s);
}

static void test_rfc2231(void **state)
{
	char *t, *st;
	struct mime_param *p;
	size_t n;
	mail_content_type_parse("application/x-stuff;\r\n"
				" title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
				" title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
				" title*2=\"isn't it!\"; name*=iso-8859-1''f%E9e.txt",
				&t, &st, &p, &n);
	char *v = mail_param_decode(p, n, "title");
	assert_string_equal(v, "This is even more ***fun*** isn't it!");
	free(v);
	v = mail_param_decode(p, n, "name");
	assert_string_equal(v, "f\xc3\xa9\x65.txt");
	free(v);
	assert_null(mail_param_decode(p, n, "none"));
	free(t);
	free(st);
	mail_params_free(&p, n);
}

static void test_decoders(void **state)
{
	size_t n;
	char *s = mail_base64_decode("aGVs\r\nbG8g\nd29y bGQ=", 21, &n);
	assert_string_equal(s, "hello world");
	free(s);
	s = mail_qp_decode("caf=C3=A9 =\r\nsoft=\nbreak =ZZ end=", 33, false, &n);
	assert_string_equal(s, "caf\xc3\xa9 softbreak =ZZ end=");
	free(s);
	/* streaming: one byte at a time equals whole */
	const char *in = "Zm9vYmFyYmF6cXV4\r\n";
	struct mail_decoder d;
	mail_decoder_init(&d, MAIL_ENC_BASE64);
	char out[64];
	size_t w = 0;
	for (size_t i = 0; i < strlen(in); i++)
		w += mail_decoder_feed(&d, in + i, 1, out + w);
	w += mail_decoder_finish(&d, out + w);
	assert_int_equal(w, 12);
	assert_memory_equal(out, "foobarbazqux", 12);
	const char *qp = "a=3D=\r\nb=E9\r\n";
	mail_decoder_init(&d, MAIL_ENC_QP);
	w = 0;
	for (size_t i = 0; i < strlen(qp); i++)
		w += mail_decoder_feed(&d, qp + i, 1, out + w);
	w += mail_decoder_finish(&d, out + w);
	assert_int_equal(w, 6);
	assert_memory_equal(out, "a=b\xe9\r\n", 6);
}

static void test_charset(void **state)
{
	size_t n;
	char *s = mail_charset_to_utf8("windows-1252", "\x80 x", 3, &n);
	assert_string_equal(s, "\xe2\x82\xac x");
	free(s);
	s = mail_charset_to_utf8("utf-8", "bad \xff", 5, &n);
	assert_string_equal(s, "bad \xc3\xbf");
	free(s);
	s = mail_charset_to_utf8("ISO-2022-JP", "\x1b$B$3$s\x1b(B", 10, &n);
	assert_string_equal(s, "\xe3\x81\x93\xe3\x82\x93");
	free(s);
	assert_true(mail_utf8_valid("\xc3\xa9", 2));
	assert_false(mail_utf8_valid("\xc3", 1));
	assert_false(mail_utf8_valid("\xc0\x80", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unfold),   cmocka_unit_test(test_content_type),
	    cmocka_unit_test(test_rfc2047),  cmocka_unit_test(test_rfc2231),
	    cmocka_unit_test(test_decoders), cmocka_unit_test(test_charset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
