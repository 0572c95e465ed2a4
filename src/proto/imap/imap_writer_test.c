#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_date.h"
#include "proto/imap/imap_writer.h"

static void expect_astring_n(const char *in, size_t len, unsigned flags, const char *out,
			     size_t out_len)
{
	struct imap_buf b;
	imap_buf_init(&b);
	imap_write_astring(&b, in, len, flags);
	assert_int_equal(b.len, out_len);
	assert_memory_equal(b.data, out, out_len);
	imap_buf_deinit(&b);
}

static void expect_astring(const char *in, size_t len, unsigned flags, const char *out)
{
	struct imap_buf b;
	imap_buf_init(&b);
	imap_write_astring(&b, in, len, flags);
	assert_int_equal(b.len, strlen(out));
	assert_memory_equal(b.data, out, b.len);
	imap_buf_deinit(&b);
}

static void test_quoting(void **state)
{
	expect_astring("INBOX", 5, 0, "INBOX");
	expect_astring("", 0, 0, "\"\"");
	expect_astring("NIL", 3, 0, "\"NIL\"");
	expect_astring("a b", 3, 0, "\"a b\"");
	expect_astring("a]b", 3, 0, "a]b");
	expect_astring("a*", 2, 0, "\"a*\"");
	expect_astring("say \"hi\" \\o/", 12, 0, "\"say \\\"hi\\\" \\\\o/\"");
	expect_astring("a\r\nb", 4, 0, "{4}\r\na\r\nb");
	expect_astring("caf\xc3\xa9", 5, 0, "{5}\r\ncaf\xc3\xa9");
	expect_astring("caf\xc3\xa9", 5, IMAP_WRITE_UTF8, "\"caf\xc3\xa9\"");
	expect_astring("caf\xe9", 4, IMAP_WRITE_UTF8, "{4}\r\ncaf\xe9");
	expect_astring_n("a\0b", 3, 0, "{3}\r\na\0b", 8);
	expect_astring_n("a\0b", 3, IMAP_WRITE_BINARY, "~{3}\r\na\0b", 9);
	char *big = malloc(IMAP_WRITER_QUOTED_MAX + 2);
	memset(big, 'x', IMAP_WRITER_QUOTED_MAX + 1);
	big[IMAP_WRITER_QUOTED_MAX + 1] = ' ';
	assert_int_equal(imap_string_form(big, IMAP_WRITER_QUOTED_MAX, false, 0),
			 IMAP_FORM_QUOTED);
	assert_int_equal(imap_string_form(big, IMAP_WRITER_QUOTED_MAX + 2, false, 0),
			 IMAP_FORM_LITERAL);
	free(big);
	assert_int_equal(imap_string_form("abc", 3, false, 0), IMAP_FORM_QUOTED);
}

static void test_values(void **state)
{
	struct imap_buf b;
	imap_buf_init(&b);
	const char *flags[] = {"\\Seen", "$Forwarded"};
	imap_write_flags(&b, flags, 2);
	imap_buf_str(&b, " ");
	imap_write_flags(&b, NULL, 0);
	imap_buf_str(&b, " ");
	imap_write_nstring(&b, NULL, 0, 0);
	imap_buf_str(&b, " ");
	imap_write_number(&b, 18446744073709551615ULL);
	imap_buf_str(&b, " ");
	imap_write_datetime(&b, 760686745, -480);
	imap_buf_str(&b, " ");
	assert_int_equal(imap_write_mailbox(&b, "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97", false), 0);
	imap_buf_str(&b, " ");
	assert_int_equal(imap_write_mailbox(&b, "Entw\xc3\xbc" "rfe", true), 0);
	assert_int_equal(imap_write_mailbox(&b, "\xff", true), -1);
	assert_string_equal(b.data, "(\\Seen $Forwarded) () NIL 18446744073709551615 "
				    "\" 7-Feb-1994 21:52:25 -0800\" ~peter/mail/&U,BTFw- "
				    "\"Entw\xc3\xbcrfe\"");
	imap_buf_consume(&b, 19);
	assert_memory_equal(b.data, "() NIL", 6);
	imap_buf_deinit(&b);
}

static void test_status(void **state)
{
	struct imap_buf b;
	imap_buf_init(&b);
	imap_write_status(&b, "a1", IMAP_OK, IMAP_CODE_READ_WRITE, NULL, "SELECT completed");
	imap_write_status(&b, NULL, IMAP_OK, IMAP_CODE_PERMANENTFLAGS, "(\\Seen \\*)", "Limited");
	imap_write_status(&b, "a2", IMAP_NO, IMAP_CODE_TRYCREATE, NULL, "No such %s", "mailbox");
	imap_write_status(&b, "a3", IMAP_OK, IMAP_CODE_APPENDUID, "38505 3955", "APPEND done");
	imap_write_status(&b, NULL, IMAP_BYE, IMAP_CODE_NONE, NULL, "bad\r\ntext");
	imap_write_continuation(&b, "Ready");
	imap_write_parse_error(&b, "t", "TOOBIG", "Literal too large", true);
	imap_write_parse_error(&b, NULL, NULL, "Empty command line", false);
	assert_string_equal(b.data, "a1 OK [READ-WRITE] SELECT completed\r\n"
				    "* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n"
				    "a2 NO [TRYCREATE] No such mailbox\r\n"
				    "a3 OK [APPENDUID 38505 3955] APPEND done\r\n"
				    "* BYE bad  text\r\n"
				    "+ Ready\r\n"
				    "t BAD [TOOBIG] Literal too large\r\n"
				    "* BYE Literal too large\r\n"
				    "* BAD Empty command line\r\n");
	imap_buf_deinit(&b);
	for (int c = 1; c < IMAP_CODE_COUNT_; c++) {
		const char *name = imap_resp_code_name((enum imap_resp_code)c);
		assert_non_null(name);
		assert_int_equal(imap_resp_code_lookup(name), c);
	}
	assert_null(imap_resp_code_name(IMAP_CODE_NONE));
	assert_int_equal(imap_resp_code_lookup("nonexistent"), IMAP_CODE_NONEXISTENT);
}

static void test_dates(void **state)
{
	struct imap_datetime dt;
	const char *error;
	char buf[IMAP_DATETIME_SIZE];
	assert_int_equal(imap_date_parse_datetime("17-Jul-1996 02:44:25 -0700", 26, &dt, &error), 1);
	imap_date_format_datetime(dt.time, dt.tz_minutes, buf);
	assert_string_equal(buf, "17-Jul-1996 02:44:25 -0700");
	assert_int_equal(imap_date_parse_datetime("1-Jan-2000 00:00:00 +0000", 25, &dt, &error), 1);
	assert_int_equal(dt.time, 946684800);
	assert_int_equal(imap_date_parse_datetime("29-Feb-2001 00:00:00 +0000", 26, &dt, &error), -1);
	assert_int_equal(imap_date_parse_datetime("1-Foo-2000 00:00:00 +0000", 25, &dt, &error), -1);
	assert_int_equal(imap_date_parse_datetime("01-Jan-2000 24:00:00 +0000", 26, &dt, &error), -1);
	time_t day;
	assert_int_equal(imap_date_parse_date("29-Feb-2000", 11, &day, &error), 1);
	assert_int_equal(day, 951782400);
	assert_int_equal(imap_date_parse_date("29-Feb-2000x", 12, &day, &error), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
