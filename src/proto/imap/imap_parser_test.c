#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/imap/imap_test_util.h"

static void test_simple_commands(void **state)
{
	struct imap_test_run t;
	imap_test_both(&t, "a1 NOOP\r\na2 capability\r\nA3 LOGOUT\r\n", NULL, NULL);
	assert_string_equal(t.transcript,
			    "CMD a1 NOOP 0|CMD a2 CAPABILITY 0|CMD A3 LOGOUT 0|");
	imap_test_done(&t);
}

static void test_generic_tree(void **state)
{
	struct imap_test_run t;
	struct imap_command *cmd =
		imap_test_command(&t, "x ID (\"name\" \"Thunderbird\" \"version\" NIL)");
	assert_int_equal(cmd->arg_count, 1);
	assert_int_equal(cmd->args[0].type, IMAP_ARG_LIST);
	assert_int_equal(cmd->args[0].list_count, 4);
	assert_int_equal(cmd->args[0].list[1].type, IMAP_ARG_QUOTED);
	assert_string_equal(cmd->args[0].list[1].str, "Thunderbird");
	assert_int_equal(cmd->args[0].list[3].type, IMAP_ARG_NIL);
	imap_test_done(&t);

	cmd = imap_test_command(&t, "x FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.512>)");
	const struct imap_arg *items = cmd->args[1].list;
	assert_int_equal(items[1].type, IMAP_ARG_SECTION);
	assert_string_equal(items[1].str, "BODY.PEEK");
	assert_int_equal(items[1].list_count, 2);
	assert_true(items[1].has_partial);
	assert_int_equal(items[1].partial_offset, 0);
	assert_int_equal(items[1].partial_count, 512);
	imap_test_done(&t);

	/* "[" is an atom character outside FETCH */
	cmd = imap_test_command(&t, "x SELECT [Gmail]/Sent");
	assert_string_equal(cmd->u.select.mailbox.name, "[Gmail]/Sent");
	imap_test_done(&t);

	cmd = imap_test_command(&t, "x SELECT \"a \\\"q\\\" \\\\ b\"");
	assert_string_equal(cmd->u.select.mailbox.name, "a \"q\" \\ b");
	imap_test_done(&t);
}

/* stream_messages: APPEND's message literals are counted, not held */
static void test_streamed_messages(void **state)
{
	struct imap_test_run t;
	struct imap_parser_limits limits;
	imap_parser_limits_default(&limits);
	limits.stream_messages = true;
	imap_test_both(&t,
		       "a APPEND {5}\r\nINBOX (\\Seen) {5}\r\nhello ~{3+}\r\nh\x80i"
		       " UTF8 (~{2+}\r\nok)\r\n",
		       &limits, NULL);
	assert_string_equal(t.transcript,
			    "LIT 5 sync|LIT 5 stream sync|LIT 3 stream|LIT 2 stream|CMD a APPEND 6|");
	const struct imap_cmd_append *ap = &t.last.command->u.append;
	assert_string_equal(ap->mailbox.name, "INBOX");
	assert_int_equal(ap->count, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(ap->messages[i].streamed);
		assert_null(ap->messages[i].data);
		assert_int_equal(ap->messages[i].stream_index, i);
	}
	assert_int_equal(ap->messages[0].size, 5);
	assert_int_equal(ap->messages[1].size, 3);
	assert_true(ap->messages[1].binary);
	assert_true(ap->messages[2].utf8);
	imap_test_done(&t);
	/* a NUL outside literal8 still fails the command */
	static const char nul[] = "b APPEND INBOX {3+}\r\na\0b\r\n";
	imap_test_feed(&t, nul, sizeof(nul) - 1, 1, &limits, NULL);
	assert_non_null(strstr(t.transcript, "NUL in literal"));
	imap_test_done(&t);
}

static void test_literals(void **state)
{
	struct imap_test_run t;
	imap_test_both(&t, "a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n", NULL, NULL);
	assert_string_equal(t.transcript, "LIT 5 sync|LIT 6|CMD a LOGIN 2|");
	assert_string_equal(t.last.command->u.login.user, "alice");
	assert_string_equal(t.last.command->u.login.password, "secret");
	imap_test_done(&t);

	/* literal holding CRLF, and an empty literal */
	imap_test_both(&t, "a LOGIN {4}\r\na\r\nb {0}\r\n\r\n", NULL, NULL);
	assert_string_equal(t.transcript, "LIT 4 sync|LIT 0 sync|CMD a LOGIN 2|");
	assert_string_equal(t.last.command->u.login.user, "a\r\nb");
	assert_string_equal(t.last.command->u.login.password, "");
	imap_test_done(&t);

	/* literal8 and NUL */
	imap_test_both(&t, "a APPEND INBOX ~{3}\r\na\0b\r\n", NULL, NULL);
	imap_test_done(&t);
	const char wire[] = "a APPEND INBOX ~{3+}\r\na\0b\r\n";
	imap_test_feed(&t, wire, sizeof(wire) - 1, 1, NULL, NULL);
	assert_string_equal(t.transcript, "LIT 3|CMD a APPEND 2|");
	assert_true(t.last.command->u.append.messages[0].binary);
	assert_int_equal(t.last.command->u.append.messages[0].size, 3);
	imap_test_done(&t);

	const char nul[] = "a LOGIN {3+}\r\na\0b x\r\nb NOOP\r\n";
	imap_test_feed(&t, nul, sizeof(nul) - 1, 1, NULL, NULL);
	assert_string_equal(t.transcript,
			    "LIT 3|ERR a [] NUL in literal (use literal8 ~{N})|CMD b NOOP 0|");
	imap_test_done(&t);
}

static void test_syntax_errors(void **state)
{
	imap_test_bad("", "Empty command line");
	imap_test_bad("+a NOOP", "Missing or invalid tag");
	imap_test_bad("a", "Missing command");
	imap_test_bad("a FOO bar", "Unknown command: FOO");
	imap_test_bad("a UID FOO 1", "Unknown command: UID FOO");
	imap_test_bad("a UID", "Missing command after UID");
	imap_test_bad("a NOOP ", "Extra space at the end of the line");
	imap_test_bad("a LOGIN  a b", "Extra space between arguments");
	imap_test_bad("a LOGIN \"a b", "Missing closing quote");
	imap_test_bad("a LOGIN \"a\\b\" c", "Invalid escape in quoted string (only \\\" and \\\\)");
	imap_test_bad("a ID (\"a\" \"b\"", "Missing ')'");
	imap_test_bad("a ID \"a\")", "Unexpected ')'");
	imap_test_bad("a LOGIN a\"b\" c", "Missing space between arguments");
	imap_test_bad("a LOGIN {3} x", "A literal announcement must end the line");
	imap_test_bad("a LOGIN {x}", "Invalid literal size");
	imap_test_bad("a LOGIN caf\xc3\xa9 x",
		      "8-bit data must be sent as a quoted string or a literal");
	imap_test_bad("a LOGIN \"caf\xe9\" x", "8-bit data in a quoted string must be UTF-8");
	imap_test_bad("a NOOP x", "NOOP takes no arguments");
	imap_test_bad("a FETCH 1 BODY[]<0.0>", "Partial count must not be 0");
	imap_test_bad("a FETCH 1 BODY[]<5>", "Invalid partial range (expected <offset.count>)");
}

static void test_error_then_continue(void **state)
{
	struct imap_test_run t;
	/* an error in a line ending with a non-sync literal: the literal is
	 * dropped and the stream stays in step */
	imap_test_both(&t, "a BOGUS {5+}\r\nhello more {2+}\r\nxx\r\nb NOOP\r\n", NULL, NULL);
	assert_string_equal(t.transcript,
			    "LIT 5 skip|LIT 2 skip|ERR a [CLIENTBUG] Unknown command: BOGUS|CMD b NOOP 0|");
	imap_test_done(&t);
	/* a sync literal after an error is never requested */
	imap_test_both(&t, "a BOGUS {5}\r\nb NOOP\r\n", NULL, NULL);
	assert_string_equal(t.transcript,
			    "ERR a [CLIENTBUG] Unknown command: BOGUS|CMD b NOOP 0|");
	imap_test_done(&t);
}

static void test_bounds(void **state)
{
	struct imap_test_run t;
	struct imap_parser_limits l;
	imap_parser_limits_default(&l);
	l.max_literal = 10;
	l.max_discard = 20;
	/* sync literal too large: BAD, the client does not send it */
	imap_test_both(&t, "a LOGIN {11}\r\nb NOOP\r\n", &l, NULL);
	assert_string_equal(t.transcript,
			    "ERR a [TOOBIG] Literal too large (max 10 bytes)|CMD b NOOP 0|");
	imap_test_done(&t);
	/* non-sync too large but droppable */
	imap_test_both(&t, "a LOGIN {15+}\r\n0123456789abcde x\r\nb NOOP\r\n", &l, NULL);
	assert_string_equal(t.transcript, "LIT 15 skip|ERR a [TOOBIG] Literal too large (max 10 "
					  "bytes)|CMD b NOOP 0|");
	imap_test_done(&t);
	/* non-sync beyond what is worth dropping: BYE */
	imap_test_both(&t, "a LOGIN {500+}\r\nb NOOP\r\n", &l, NULL);
	assert_string_equal(t.transcript,
			    "ERR a [TOOBIG] Literal too large (max 10 bytes) BYE|");
	imap_test_done(&t);
	/* LITERAL- */
	imap_parser_limits_default(&l);
	l.literal_minus = true;
	l.max_discard = 100;
	imap_test_both(&t, "a LOGIN {4097+}\r\n", &l, NULL);
	assert_string_equal(t.transcript, "ERR a [TOOBIG] Non-synchronising literal larger than "
					  "4096 bytes (LITERAL-) BYE|");
	imap_test_done(&t);
	/* depth */
	imap_parser_limits_default(&l);
	l.max_depth = 3;
	imap_test_both(&t, "a ID ((()))\r\nb ID ((((x))))\r\n", &l, NULL);
	assert_string_equal(t.transcript, "ERR a [] Usage: ID (field value ...) or ID NIL|"
					  "ERR b [LIMIT] Lists nested too deeply (max 3)|");
	imap_test_done(&t);
	/* argument count */
	l.max_args = 4;
	imap_test_both(&t, "a ENABLE A B C D\r\nb ENABLE A B C D E\r\n", &l, NULL);
	assert_string_equal(t.transcript,
			    "CMD a ENABLE 4|ERR b [LIMIT] Too many arguments (max 4)|");
	imap_test_done(&t);
	/* total command size */
	imap_parser_limits_default(&l);
	l.max_command = 40;
	imap_test_both(&t, "a LOGIN {10}\r\n0123456789 {20}\r\nb NOOP\r\n", &l, NULL);
	assert_string_equal(t.transcript, "LIT 10 sync|ERR a [TOOBIG] Command too long (max 40 "
					  "bytes)|CMD b NOOP 0|");
	imap_test_done(&t);
	/* APPENDLIMIT applies to the message, not the mailbox name */
	imap_parser_limits_default(&l);
	l.max_literal = 4;
	l.max_message = 8;
	imap_test_both(&t, "a APPEND {5}\r\n", &l, NULL);
	assert_string_equal(t.transcript, "ERR a [TOOBIG] Literal too large (max 4 bytes)|");
	imap_test_done(&t);
	imap_test_both(&t, "a APPEND x {8}\r\n12345678\r\nb APPEND x {9}\r\n", &l, NULL);
	assert_string_equal(t.transcript,
			    "LIT 8 sync|CMD a APPEND 2|ERR b [TOOBIG] Message too large "
			    "(APPENDLIMIT is 8 bytes)|");
	imap_test_done(&t);
}

static void test_line_too_long(void **state)
{
	struct imap_test_run t;
	static char big[20000];
	strcpy(big, "a LOGIN ");
	memset(big + 8, 'x', 10000);
	strcpy(big + 10008, "\r\nb NOOP\r\n");
	imap_test_both(&t, big, NULL, NULL);
	assert_string_equal(t.transcript, "ERR * [TOOBIG] Command line too long|CMD b NOOP 0|");
	imap_test_done(&t);
}

static void test_done_line(void **state)
{
	assert_true(imap_parser_is_done("done", 4));
	assert_true(imap_parser_is_done("DONE", 4));
	assert_false(imap_parser_is_done("DONE ", 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_generic_tree),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_error_then_continue),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_streamed_messages),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_done_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
