#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/imap/imap_test_util.h"

static void test_session_commands(void **state)
{
	struct imap_test_run t;
	struct imap_command *c = imap_test_command(&t, "a AUTHENTICATE plain AGFsaWNlAHNlY3JldA==");
	assert_string_equal(c->u.authenticate.mechanism, "PLAIN");
	assert_string_equal(c->u.authenticate.initial, "AGFsaWNlAHNlY3JldA==");
	imap_test_done(&t);
	c = imap_test_command(&t, "a AUTHENTICATE PLAIN =");
	assert_string_equal(c->u.authenticate.initial, "=");
	imap_test_done(&t);
	c = imap_test_command(&t, "a AUTHENTICATE SCRAM-SHA-256");
	assert_null(c->u.authenticate.initial);
	imap_test_done(&t);
	imap_test_bad("a AUTHENTICATE PLAIN abc", "Initial response must be base64 or \"=\"");
	imap_test_bad("a AUTHENTICATE", "Usage: AUTHENTICATE mechanism [initial-response]");

	c = imap_test_command(&t, "a LOGIN \"alice\" NIL");
	assert_string_equal(c->u.login.password, "NIL");
	imap_test_done(&t);
	imap_test_bad("a LOGIN alice", "Usage: LOGIN user password");
	imap_test_bad("a LOGIN (alice) x", "Usage: LOGIN user password");

	c = imap_test_command(&t, "a ENABLE CONDSTORE qresync UTF8=ACCEPT");
	assert_int_equal(c->u.enable.count, 3);
	assert_string_equal(c->u.enable.capabilities[1], "QRESYNC");
	imap_test_done(&t);
	imap_test_bad("a ENABLE", "Usage: ENABLE capability...");

	c = imap_test_command(&t, "a ID NIL");
	assert_true(c->u.id.nil);
	imap_test_done(&t);
	imap_test_bad("a ID (\"name\")", "Usage: ID (field value ...) or ID NIL");
	imap_test_bad("a ID (\"name\" \"a\" \"NAME\" \"b\")", "ID field given twice: NAME");

	c = imap_test_command(&t, "a COMPRESS deflate");
	assert_string_equal(c->u.compress.mechanism, "DEFLATE");
	imap_test_done(&t);
	imap_test_bad("a COMPRESS LZ4", "Unknown compression mechanism: LZ4");

	c = imap_test_command(&t, "a SETQUOTA \"\" (STORAGE 512 message 1000)");
	assert_int_equal(c->u.setquota.count, 2);
	assert_string_equal(c->u.setquota.resources[1].name, "MESSAGE");
	assert_int_equal(c->u.setquota.resources[1].limit, 1000);
	imap_test_done(&t);
	imap_test_bad("a SETQUOTA \"\" (STORAGE)", "Usage: SETQUOTA root (resource limit ...)");
	c = imap_test_command(&t, "a GETQUOTAROOT INBOX");
	assert_string_equal(c->u.mailbox.mailbox.name, "INBOX");
	imap_test_done(&t);
	c = imap_test_command(&t, "a GETQUOTA \"\"");
	assert_string_equal(c->u.quota.root, "");
	imap_test_done(&t);

	const char *none[] = {"CAPABILITY", "NOOP",	"LOGOUT", "STARTTLS", "NAMESPACE",
			      "IDLE",	    "CHECK", "CLOSE",  "UNSELECT", "EXPUNGE"};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "t %s", none[i]);
		imap_test_command(&t, line);
		imap_test_done(&t);
	}
}

static void test_mailbox_commands(void **state)
{
	struct imap_test_run t;
	struct imap_command *c = imap_test_command(&t, "a SELECT inbox (CONDSTORE)");
	assert_string_equal(c->u.select.mailbox.name, "INBOX");
	assert_true(c->u.select.condstore);
	imap_test_done(&t);
	c = imap_test_command(&t, "a SELECT INBOX (QRESYNC (67890007 20050715194045000 "
				  "41,43:211,214:541 (1:3 4:6)))");
	assert_true(c->u.select.qresync);
	assert_int_equal(c->u.select.uidvalidity, 67890007);
	assert_int_equal(c->u.select.modseq, 20050715194045000ULL);
	assert_true(c->u.select.has_known_uids);
	assert_true(c->u.select.has_seq_match);
	imap_test_done(&t);
	imap_test_bad("a SELECT INBOX (FOO)", "Unknown SELECT parameter: FOO");
	imap_test_bad("a EXAMINE", "Usage: EXAMINE mailbox [(parameters)]");
	imap_test_bad("a SELECT INBOX (QRESYNC (0 1))",
		      "Usage: QRESYNC (uidvalidity modseq [known-uids] "
		      "[(known-sequence-set known-uid-set)])");

	c = imap_test_command(&t, "a CREATE Drafts (USE (\\Drafts \\sent))");
	assert_int_equal(c->u.create.use, IMAP_USE_DRAFTS | IMAP_USE_SENT);
	imap_test_done(&t);
	imap_test_bad("a CREATE x (USE (\\Bogus))", "Unknown special-use attribute: \\Bogus");
	imap_test_bad("a CREATE \"\"", "Empty mailbox name");

	c = imap_test_command(&t, "a RENAME \"a b\" {3+}\r\nc d");
	assert_string_equal(c->u.rename.from.name, "a b");
	assert_string_equal(c->u.rename.to.name, "c d");
	imap_test_done(&t);
	imap_test_bad("a DELETE", "Usage: DELETE mailbox");
	imap_test_bad("a SUBSCRIBE a*", "Invalid mailbox name");
	c = imap_test_command(&t, "a UNSUBSCRIBE ~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	assert_string_equal(c->u.mailbox.mailbox.name,
			    "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	imap_test_done(&t);
	imap_test_bad("a DELETE &Jjo!", "Mailbox name is not valid modified UTF-7 (bad base64)");

	c = imap_test_command(&t, "a LIST \"\" %");
	assert_false(c->u.list.extended);
	assert_string_equal(c->u.list.patterns[0].name, "%");
	imap_test_done(&t);
	c = imap_test_command(&t, "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\") "
				  "RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))");
	assert_true(c->u.list.extended);
	assert_int_equal(c->u.list.selection,
			 IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH);
	assert_int_equal(c->u.list.pattern_count, 2);
	assert_int_equal(c->u.list.ret, IMAP_LIST_RET_CHILDREN | IMAP_LIST_RET_SPECIAL_USE |
						IMAP_LIST_RET_STATUS);
	assert_int_equal(c->u.list.status_items,
			 IMAP_STATUS_MESSAGES | IMAP_STATUS_UNSEEN | IMAP_STATUS_SIZE);
	imap_test_done(&t);
	imap_test_bad("a LIST (RECURSIVEMATCH) \"\" *",
		      "RECURSIVEMATCH needs another selection option");
	imap_test_bad("a LIST (BOGUS) \"\" *", "Unknown LIST selection option: BOGUS");
	imap_test_bad("a LIST \"\" * RETURN (BOGUS)", "Unknown LIST return option: BOGUS");
	imap_test_bad("a LIST \"\"",
		      "Usage: LIST [(selection)] reference pattern [RETURN (options)]");
	c = imap_test_command(&t, "a LSUB \"\" *");
	assert_string_equal(c->u.list.patterns[0].name, "*");
	imap_test_done(&t);

	c = imap_test_command(&t, "a STATUS Sent (MESSAGES UIDNEXT HIGHESTMODSEQ APPENDLIMIT "
				  "DELETED SIZE)");
	assert_int_equal(c->u.status.items, IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT |
						    IMAP_STATUS_HIGHESTMODSEQ |
						    IMAP_STATUS_APPENDLIMIT | IMAP_STATUS_DELETED |
						    IMAP_STATUS_SIZE);
	imap_test_done(&t);
	imap_test_bad("a STATUS x (BOGUS)", "Unknown status item: BOGUS");
	imap_test_bad("a STATUS x ()", "Expected a list of status items");
}

static void test_append(void **state)
{
	struct imap_test_run t;
	imap_test_both(&t,
		       "A003 APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\n"
		       "hello (\\Draft $Label) {3+}\r\nabc UTF8 (~{2+}\r\nxy)\r\n",
		       NULL, NULL);
	assert_string_equal(t.transcript, "LIT 5 sync|LIT 3|LIT 2|CMD A003 APPEND 8|");
	struct imap_cmd_append *a = &t.last.command->u.append;
	assert_int_equal(a->count, 3);
	assert_string_equal(a->messages[0].flags[0], "\\Seen");
	assert_true(a->messages[0].has_date);
	assert_int_equal(a->messages[0].date.time, 760686745);
	assert_int_equal(a->messages[0].date.tz_minutes, -480);
	assert_memory_equal(a->messages[0].data, "hello", 5);
	assert_string_equal(a->messages[1].flags[1], "$Label");
	assert_true(a->messages[2].utf8);
	imap_test_done(&t);
	imap_test_bad("a APPEND INBOX (\\Seen)", "Usage: APPEND mailbox [(flags)] [\"date-time\"] {size}");
	imap_test_bad("a APPEND INBOX \"xx\" {1+}\r\nx",
		      "Invalid date-time (expected \"dd-Mon-yyyy hh:mm:ss +zzzz\")");
	imap_test_bad("a APPEND INBOX (\\Recent) {1+}\r\nx", "\\Recent cannot be set");
	imap_test_bad("a APPEND INBOX", "Usage: APPEND mailbox [(flags)] [\"date-time\"] {size}");
}

static void test_fetch(void **state)
{
	struct imap_test_run t;
	struct imap_command *c = imap_test_command(
		&t, "a UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[1.2.HEADER.FIELDS.NOT "
		    "(x-spam \"References\")]<10.20> BINARY[1.1] BINARY.SIZE[2] MODSEQ SAVEDATE "
		    "EMAILID THREADID BODY[] BODYSTRUCTURE ENVELOPE INTERNALDATE) "
		    "(CHANGEDSINCE 12345 VANISHED)");
	struct imap_cmd_fetch *f = &c->u.fetch;
	assert_true(c->uid);
	assert_int_equal(f->count, 14);
	struct imap_fetch_item *it = &f->items[3];
	assert_int_equal(it->kind, IMAP_FETCH_BODY_SECTION);
	assert_true(it->peek);
	assert_int_equal(it->part_count, 2);
	assert_int_equal(it->text, IMAP_SECTION_HEADER_FIELDS_NOT);
	assert_string_equal(it->fields[0], "X-SPAM");
	assert_true(it->has_partial);
	assert_int_equal(it->partial_offset, 10);
	assert_string_equal(it->name, "BODY[1.2.HEADER.FIELDS.NOT (X-SPAM REFERENCES)]");
	assert_int_equal(f->items[4].kind, IMAP_FETCH_BINARY);
	assert_int_equal(f->items[5].kind, IMAP_FETCH_BINARY_SIZE);
	assert_int_equal(f->items[10].text, IMAP_SECTION_ALL);
	assert_true(f->has_changedsince);
	assert_int_equal(f->changedsince, 12345);
	assert_true(f->vanished);
	imap_test_done(&t);

	c = imap_test_command(&t, "a FETCH 2,4:3 full");
	assert_string_equal(c->u.fetch.macro, "FULL");
	assert_int_equal(c->u.fetch.count, 5);
	assert_int_equal(c->u.fetch.set.count, 1);
	imap_test_done(&t);
	c = imap_test_command(&t, "a FETCH $ (BODY[1.MIME] BODY[TEXT] BODY[HEADER])");
	assert_true(c->u.fetch.set.saved);
	imap_test_done(&t);

	imap_test_bad("a FETCH 1 (FOO)", "Unknown FETCH item: FOO");
	imap_test_bad("a FETCH 1 (BODY[MIME])", "Invalid section: MIME");
	imap_test_bad("a FETCH 1 (BINARY[HEADER])", "BINARY sections are part numbers only");
	imap_test_bad("a FETCH 1 (BINARY.SIZE[1]<0.5>)", "BINARY.SIZE takes no partial range");
	imap_test_bad("a FETCH 1 (BODY[HEADER.FIELDS])", "HEADER.FIELDS needs a list of header names");
	imap_test_bad("a FETCH 1 (ALL)", "Unknown FETCH item: ALL");
	imap_test_bad("a FETCH 0 FLAGS", "Invalid sequence set");
	imap_test_bad("a FETCH 1 FLAGS (VANISHED)", "VANISHED is allowed in UID FETCH only");
	imap_test_bad("a UID FETCH 1 FLAGS (VANISHED)", "VANISHED needs CHANGEDSINCE");
	imap_test_bad("a FETCH 1 BODY[0]", "Invalid section part number");
	imap_test_bad("a FETCH 1 BODY[1", "Missing ']'");
}

static void test_store_copy(void **state)
{
	struct imap_test_run t;
	struct imap_command *c = imap_test_command(&t, "a STORE 1:3 +FLAGS.SILENT (\\seen $Junk)");
	assert_int_equal(c->u.store.mode, IMAP_STORE_ADD);
	assert_true(c->u.store.silent);
	assert_string_equal(c->u.store.flags[0], "\\Seen");
	imap_test_done(&t);
	c = imap_test_command(&t, "a UID STORE 5 (UNCHANGEDSINCE 320162338) -FLAGS \\Deleted \\Draft");
	assert_int_equal(c->u.store.mode, IMAP_STORE_REMOVE);
	assert_true(c->u.store.has_unchangedsince);
	assert_int_equal(c->u.store.flag_count, 2);
	imap_test_done(&t);
	c = imap_test_command(&t, "a STORE 1 FLAGS ()");
	assert_int_equal(c->u.store.mode, IMAP_STORE_REPLACE);
	assert_int_equal(c->u.store.flag_count, 0);
	imap_test_done(&t);
	imap_test_bad("a STORE 1 +FLAGS.LOUD (\\Seen)", "Unknown STORE item: +FLAGS.LOUD");
	imap_test_bad("a STORE 1 FLAGS (\\Recent)", "\\Recent cannot be set");
	imap_test_bad("a STORE 1 FLAGS (a*)", "Invalid flag");

	c = imap_test_command(&t, "a UID MOVE 1:5 Trash");
	assert_int_equal(c->def->id, IMAP_CMD_MOVE);
	assert_string_equal(c->u.copy.mailbox.name, "Trash");
	imap_test_done(&t);
	c = imap_test_command(&t, "a COPY 2 \"Saved\"");
	assert_int_equal(c->def->id, IMAP_CMD_COPY);
	imap_test_done(&t);
	imap_test_bad("a COPY 1", "Usage: COPY sequence-set mailbox");
	c = imap_test_command(&t, "a UID EXPUNGE 3000:3002");
	assert_int_equal(c->u.expunge.set.ranges[0].hi, 3002);
	imap_test_done(&t);
	imap_test_bad("a UID EXPUNGE", "Usage: UID EXPUNGE uid-set");
}

static void test_table(void **state)
{
	unsigned n;
	const struct imap_command_def *defs = imap_command_table(&n);
	for (unsigned i = 0; i < n; i++)
		assert_ptr_equal(imap_command_lookup(defs[i].name), &defs[i]);
	assert_non_null(imap_command_lookup("uid fetch"));
	assert_null(imap_command_lookup("UID NOOP"));
	assert_true(imap_command_allowed(imap_command_lookup("LOGIN"), IMAP_STATE_NOT_AUTH));
	assert_false(imap_command_allowed(imap_command_lookup("FETCH"), IMAP_STATE_AUTH));
}

static void test_utf8_accept(void **state)
{
	struct imap_test_run t;
	struct imap_parse_ctx ctx = {.utf8_accept = true};
	imap_test_both(&t, "a SELECT \"caf\xc3\xa9 &\"\r\n", NULL, &ctx);
	assert_int_equal(t.last.event, IMAP_PARSE_COMMAND);
	assert_string_equal(t.last.command->u.select.mailbox.name, "caf\xc3\xa9 &");
	imap_test_done(&t);
	imap_test_both(&t, "a SELECT \"caf\xc3\xa9\"\r\n", NULL, NULL);
	assert_int_equal(t.last.event, IMAP_PARSE_ERROR);
	imap_test_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_commands), cmocka_unit_test(test_mailbox_commands),
		cmocka_unit_test(test_append),		 cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_store_copy),	 cmocka_unit_test(test_table),
		cmocka_unit_test(test_utf8_accept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
