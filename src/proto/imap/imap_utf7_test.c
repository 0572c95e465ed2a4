#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_utf7.h"

static void roundtrip(const char *utf7, const char *utf8)
{
	char *out;
	const char *error;
	if (imap_utf7_decode(utf7, strlen(utf7), NULL, &out, &error) != 1)
		fail_msg("decode %s: %s", utf7, error);
	assert_string_equal(out, utf8);
	free(out);
	assert_int_equal(imap_utf7_encode(utf8, strlen(utf8), NULL, &out, &error), 1);
	assert_string_equal(out, utf7);
	free(out);
}

static void refused(const char *utf7, const char *text)
{
	char *out;
	const char *error = NULL;
	assert_int_equal(imap_utf7_decode(utf7, strlen(utf7), NULL, &out, &error), -1);
	if (strcmp(error, text) != 0)
		fail_msg("%s: got %s, want %s", utf7, error, text);
	assert_false(imap_utf7_valid(utf7, strlen(utf7)));
}

static void test_roundtrips(void **state)
{
	/* RFC 3501 5.1.3 */
	roundtrip("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	roundtrip("&-", "&");
	roundtrip("Tom &- Jerry", "Tom & Jerry");
	roundtrip("INBOX", "INBOX");
	roundtrip("", "");
	roundtrip("Entw&APw-rfe", "Entw\xc3\xbc" "rfe");
	/* a code point above U+FFFF: a surrogate pair */
	roundtrip("&2D3eAA-", "\xf0\x9f\x98\x80");
	roundtrip("&AOQ-&-", "\xc3\xa4&");
}

static void test_refusals(void **state)
{
	refused("&U,BTFw", "Mailbox name is not valid modified UTF-7 (missing \"-\")");
	refused("&-&", "Mailbox name is not valid modified UTF-7 (missing \"-\")");
	refused("a\xc3\xa4", "Mailbox name is not valid modified UTF-7 (8-bit or control character)");
	refused("&Jjo!-", "Mailbox name is not valid modified UTF-7 (bad base64)");
	refused("&U/BTFw-", "Mailbox name is not valid modified UTF-7 (bad base64)");
	refused("&AGE-", "Mailbox name is not canonical modified UTF-7 (printable ASCII in base64)");
	refused("&2D0-", "Mailbox name is not valid modified UTF-7 (unpaired surrogate)");
	refused("&3gA-", "Mailbox name is not valid modified UTF-7 (unpaired surrogate)");
	refused("&2D3YPQ-", "Mailbox name is not valid modified UTF-7 (unpaired surrogate)");
	refused("&AOQ-&AOQ-", "Mailbox name is not canonical modified UTF-7 (adjacent base64 runs)");
	refused("&AOR-", "Mailbox name is not canonical modified UTF-7 (padding bits)");
	refused("&AOQA-", "Mailbox name is not canonical modified UTF-7 (padding bits)");
	refused("&AAA-", "NUL in mailbox name");
	refused("a\tb", "Mailbox name is not valid modified UTF-7 (8-bit or control character)");
}

static void test_encode_refusals(void **state)
{
	char *out;
	const char *error;
	assert_int_equal(imap_utf7_encode("\xc3", 1, NULL, &out, &error), -1);
	assert_int_equal(imap_utf7_encode("\xc0\xaf", 2, NULL, &out, &error), -1);
	assert_int_equal(imap_utf7_encode("\xed\xa0\x80", 3, NULL, &out, &error), -1);
	assert_int_equal(imap_utf7_encode("\xf4\x90\x80\x80", 4, NULL, &out, &error), -1);
	assert_int_equal(imap_utf7_encode("a\x01", 2, NULL, &out, &error), 1);
	assert_string_equal(out, "a&AAE-");
	free(out);
}

static void test_utf8(void **state)
{
	assert_true(imap_utf8_valid("caf\xc3\xa9", 5));
	assert_false(imap_utf8_valid("caf\xe9", 4));
	assert_false(imap_utf8_valid("\xe0\x80\x80", 3));
	assert_true(imap_utf8_mailbox_valid("Entw\xc3\xbc" "rfe", 9));
	assert_false(imap_utf8_mailbox_valid("", 0));
	assert_false(imap_utf8_mailbox_valid("a\x7f", 2));
	assert_false(imap_utf8_mailbox_valid("a\xc2\x85", 3));
	assert_false(imap_utf8_mailbox_valid("a\nb", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrips),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
