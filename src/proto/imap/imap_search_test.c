#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proto/imap/imap_test_util.h"

static void expect_tree(const char *line, const char *tree)
{
	struct imap_test_run t;
	struct imap_command *c = imap_test_command(&t, line);
	const struct imap_search_key *keys = c->def->id == IMAP_CMD_SORT     ? c->u.sort.keys
					     : c->def->id == IMAP_CMD_THREAD ? c->u.thread.keys
									     : c->u.search.keys;
	char *s = imap_search_format(keys);
	if (strcmp(s, tree) != 0)
		fail_msg("%s: got %s, want %s", line, s, tree);
	free(s);
	imap_test_done(&t);
}

static void test_keys(void **state)
{
	expect_tree("a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
		    "(FLAGGED SINCE 1994-02-01 NOT FROM \"Smith\")");
	expect_tree("a SEARCH OR (SEEN FROM a) NOT (TO b OR CC c BCC d)",
		    "(OR (SEEN FROM \"a\") NOT (TO \"b\" OR CC \"c\" BCC \"d\"))");
	expect_tree("a SEARCH NOT NOT OR OR ALL NEW OLD RECENT",
		    "(NOT NOT OR OR ALL NEW OLD RECENT)");
	expect_tree("a UID SEARCH UID 1:5,7 1:* $ UID $",
		    "(UID 1:5,7 1:* $ UID $)");
	expect_tree("a SEARCH HEADER Message-ID \"<x@y>\" LARGER 100 SMALLER 5000000000 "
		    "KEYWORD $Junk UNKEYWORD $Seen BODY {3+}\r\nabc TEXT x SUBJECT \"\"",
		    "(HEADER MESSAGE-ID \"<x@y>\" LARGER 100 SMALLER 5000000000 KEYWORD \"$Junk\" "
		    "UNKEYWORD \"$Seen\" BODY \"abc\" TEXT \"x\" SUBJECT \"\")");
	expect_tree("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 MODSEQ 5",
		    "(MODSEQ \"/flags/\\draft\" all 620162338 MODSEQ 5)");
	expect_tree("a SEARCH OLDER 3600 YOUNGER 60 SAVEDBEFORE \"2-Mar-2020\" SAVEDON "
		    "2-mar-2020 SAVEDSINCE 1-Jan-2020 SAVEDATESUPPORTED",
		    "(OLDER 3600 YOUNGER 60 SAVEDBEFORE 2020-03-02 SAVEDON 2020-03-02 "
		    "SAVEDSINCE 2020-01-01 SAVEDATESUPPORTED)");
	expect_tree("a SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9",
		    "(EMAILID \"M6d99ac3275bb4e\" THREADID \"T64b478a75b7ea9\")");
	expect_tree("a SEARCH ANSWERED DELETED DRAFT UNANSWERED UNDELETED UNDRAFT UNFLAGGED "
		    "UNSEEN SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 ON "
		    "1-Jan-2000 BEFORE 1-Jan-2000",
		    "(ANSWERED DELETED DRAFT UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN "
		    "SENTBEFORE 2000-01-01 SENTON 2000-01-01 SENTSINCE 2000-01-01 ON 2000-01-01 "
		    "BEFORE 2000-01-01)");
}

static void test_return_and_charset(void **state)
{
	struct imap_test_run t;
	struct imap_command *c =
		imap_test_command(&t, "a SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET utf-8 ALL");
	assert_true(c->u.search.esearch);
	assert_int_equal(c->u.search.ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX |
						  IMAP_SEARCH_RET_COUNT | IMAP_SEARCH_RET_SAVE);
	assert_string_equal(c->u.search.charset, "UTF-8");
	imap_test_done(&t);
	c = imap_test_command(&t, "a SEARCH RETURN () 1:5");
	assert_int_equal(c->u.search.ret, IMAP_SEARCH_RET_ALL);
	imap_test_done(&t);
	c = imap_test_command(&t, "a SEARCH MODSEQ 5");
	assert_true(imap_search_has_modseq(c->u.search.keys));
	assert_false(imap_search_uses_saved(c->u.search.keys));
	imap_test_done(&t);
}

static void test_sort_thread(void **state)
{
	struct imap_test_run t;
	struct imap_command *c =
		imap_test_command(&t, "a UID SORT (REVERSE DATE SUBJECT reverse size) UTF-8 ALL");
	assert_int_equal(c->u.sort.count, 3);
	assert_true(c->u.sort.criteria[0].reverse);
	assert_false(c->u.sort.criteria[1].reverse);
	assert_int_equal(c->u.sort.criteria[2].key, IMAP_SORT_SIZE);
	assert_string_equal(c->u.sort.charset, "UTF-8");
	imap_test_done(&t);
	expect_tree("a SORT (ARRIVAL CC FROM TO) US-ASCII UNSEEN", "(UNSEEN)");
	c = imap_test_command(&t, "a THREAD REFERENCES UTF-8 SINCE 5-MAR-2000");
	assert_int_equal(c->u.thread.algorithm, IMAP_THREAD_REFERENCES);
	imap_test_done(&t);
	c = imap_test_command(&t, "a UID THREAD orderedsubject US-ASCII ALL");
	assert_int_equal(c->u.thread.algorithm, IMAP_THREAD_ORDEREDSUBJECT);
	imap_test_done(&t);
	imap_test_bad("a SORT (REVERSE) UTF-8 ALL", "REVERSE must precede a sort key");
	imap_test_bad("a SORT (BOGUS) UTF-8 ALL", "Unknown sort criterion: BOGUS");
	imap_test_bad("a THREAD BOGUS UTF-8 ALL", "Unknown threading algorithm");
}

static void test_bad_searches(void **state)
{
	imap_test_bad("a SEARCH", "Missing search keys");
	imap_test_bad("a SEARCH BOGUS", "Unknown search key: BOGUS");
	imap_test_bad("a SEARCH FROM", "Missing argument for FROM");
	imap_test_bad("a SEARCH OR SEEN", "Missing search key");
	imap_test_bad("a SEARCH SINCE 31-Feb-2020", "Invalid date (expected d-Mon-yyyy)");
	imap_test_bad("a SEARCH LARGER x", "Invalid number for LARGER");
	imap_test_bad("a SEARCH OLDER 0", "Invalid interval for OLDER");
	imap_test_bad("a SEARCH ()", "Empty search key list");
	imap_test_bad("a SEARCH RETURN (FOO) ALL", "Unknown SEARCH return option: FOO");
	imap_test_bad("a SEARCH CHARSET", "Usage: CHARSET name");
	imap_test_bad("a SEARCH EMAILID a.b", "Invalid object id");
	imap_test_bad("a SEARCH MODSEQ \"/flags/\\\\seen\" bogus 5",
		      "MODSEQ entry type must be priv, shared or all");
	imap_test_bad("a SEARCH 1:5,x", "Invalid sequence set");
	/* depth: NOT chains and nested lists */
	char line[512] = "a SEARCH";
	for (int i = 0; i < IMAP_SEARCH_MAX_DEPTH; i++)
		strcat(line, " NOT");
	strcat(line, " ALL");
	imap_test_bad(line, "Search keys nested too deeply (max 32)");
	strcpy(line, "a SEARCH");
	for (int i = 0; i < IMAP_SEARCH_MAX_DEPTH - 1; i++)
		strcat(line, " NOT");
	strcat(line, " ALL");
	struct imap_test_run t;
	imap_test_command(&t, line);
	imap_test_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_return_and_charset),
		cmocka_unit_test(test_sort_thread),
		cmocka_unit_test(test_bad_searches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
