#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store.h"
#include "store/store_test_util.h"

/* Every search runs twice, from the FTS index and by scanning the files;
 * the answers must be the same, and match the expected UIDs. */

static const char *msgs[] = {
    "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.com>\r\n"
    "To: team@example.com\r\n"
    "Subject: =?UTF-8?B?UsOpdW5pb24gZGUgbHVuZGk=?=\r\n"
    "Date: Mon, 3 Mar 2025 09:00:00 +0100\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 et croissants =E0 9h. Ordre du jour: BUDGET.\r\n",

    "From: bob@example.com\r\n"
    "To: alice@example.com\r\n"
    "Cc: carol@example.com\r\n"
    "Subject: Quarterly numbers\r\n"
    "Date: Tue, 4 Mar 2025 18:30:00 -0800\r\n"
    "Content-Type: multipart/alternative; boundary=zz\r\n"
    "\r\n"
    "--zz\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "VGhlIGJ1ZGdldCBpcyBhcHByb3ZlZC4gTmHDr3ZlIHJlc3VtZS4=\r\n"
    "--zz\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>The budget is approved.</p>\r\n"
    "--zz--\r\n",

    "From: carol@example.com\r\n"
    "To: bob@example.com\r\n"
    "Subject: lunch?\r\n"
    "Date: Wed, 5 Mar 2025 12:00:00 +0000\r\n"
    "Content-Type: multipart/mixed; boundary=q\r\n"
    "\r\n"
    "--q\r\n"
    "\r\n"
    "Pizza or sushi?\r\n"
    "--q\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "YnVkZ2V0IGluIGEgcGRm\r\n"
    "--q--\r\n",
};

struct run_case {
	struct store_search *s;
	const char *want; /* "1,3" */
};

static char *run(struct store_folder *f, const struct store_search *s, bool fts)
{
	uint32_t *uids;
	size_t n;
	char *error = NULL;
	if (store_search_run(f, s, fts, &uids, &n, &error) != 1)
		fail_msg("search: %s", error);
	char *out = calloc(1, n * 12 + 1);
	for (size_t i = 0; i < n; i++)
		sprintf(out + strlen(out), "%s%u", i ? "," : "", uids[i]);
	free(uids);
	return out;
}

static struct store_search *key(enum store_search_op op, const char *field, const char *text)
{
	return store_search_text(op, field, text);
}

static struct store_search *node2(enum store_search_op op, struct store_search *a,
				  struct store_search *b)
{
	struct store_search *s = store_search_new(op);
	store_search_add(s, a);
	if (b != NULL)
		store_search_add(s, b);
	return s;
}

static struct store_search *flags_key(enum store_search_op op, unsigned flags)
{
	struct store_search *s = store_search_new(op);
	s->flags = flags;
	return s;
}

static struct store_search *num_key(enum store_search_op op, uint64_t n)
{
	struct store_search *s = store_search_new(op);
	s->number = n;
	return s;
}

static struct store_search *date_key(enum store_search_op op, time_t t)
{
	struct store_search *s = store_search_new(op);
	s->date = t;
	return s;
}

static struct store_search *set_key(enum store_search_op op, uint32_t lo, uint32_t hi)
{
	struct store_search *s = store_search_new(op);
	s->ranges = calloc(1, sizeof(*s->ranges));
	s->ranges[0].lo = lo;
	s->ranges[0].hi = hi;
	s->nranges = 1;
	return s;
}

static void test_search(void **state)
{
	struct store *store = test_open("s1", 0);
	const char *seen[] = {"\\Seen", "urgent"};
	/* 2025-03-03, 2025-03-04, 2025-03-05 00:00 UTC + some hours */
	test_append(store, "INBOX", msgs[0], seen, 2, 1740992400);
	test_append(store, "INBOX", msgs[1], NULL, 0, 1741078800);
	test_append(store, "INBOX", msgs[2], seen, 1, 1741165200);
	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);

	struct run_case cases[] = {
	    {key(STORE_SEARCH_BODY, NULL, "budget"), "1,2"},
	    {key(STORE_SEARCH_BODY, NULL, "CAFÉ"), "1"},
	    {key(STORE_SEARCH_BODY, NULL, "naïve"), "2"},
	    {key(STORE_SEARCH_BODY, NULL, "budget is approved."), "2"},
	    {key(STORE_SEARCH_BODY, NULL, "pdf"), ""},
	    {key(STORE_SEARCH_BODY, NULL, "9h"), "1"},
	    {key(STORE_SEARCH_BODY, NULL, "\"quoted\""), ""},
	    {key(STORE_SEARCH_TEXT, NULL, "lunch"), "3"},
	    {key(STORE_SEARCH_TEXT, NULL, "réunion"), "1"},
	    {key(STORE_SEARCH_TEXT, NULL, "carol@"), "2,3"},
	    {key(STORE_SEARCH_HEADER, "From", "andré"), "1"},
	    {key(STORE_SEARCH_HEADER, "subject", "QUARTERLY"), "2"},
	    {key(STORE_SEARCH_HEADER, "Cc", ""), "2"},
	    {key(STORE_SEARCH_HEADER, "To", "bob"), "3"},
	    /* shorter than a trigram: every message's header text is read */
	    {key(STORE_SEARCH_HEADER, "TO", "bo"), "3"},
	    {key(STORE_SEARCH_HEADER, "subject", "?"), "3"},
	    /* the text in another field, or in the field's name, is no match */
	    {key(STORE_SEARCH_HEADER, "From", "team"), ""},
	    {key(STORE_SEARCH_HEADER, "To", "to:"), ""},
	    {key(STORE_SEARCH_HEADER, "Content-Type", "ALTERNATIVE"), "2"},
	    {key(STORE_SEARCH_HEADER, "X-Missing", ""), ""},
	    {flags_key(STORE_SEARCH_FLAGS, STORE_FLAG_SEEN), "1,3"},
	    {flags_key(STORE_SEARCH_UNFLAGS, STORE_FLAG_SEEN), "2"},
	    {key(STORE_SEARCH_KEYWORD, NULL, "URGENT"), "1"},
	    {key(STORE_SEARCH_UNKEYWORD, NULL, "urgent"), "2,3"},
	    {num_key(STORE_SEARCH_LARGER, 300), "1,2"},
	    {num_key(STORE_SEARCH_SMALLER, 300), "3"},
	    {date_key(STORE_SEARCH_BEFORE, 1741078800), "1"},
	    {date_key(STORE_SEARCH_ON, 1741078800 + 3600), "2"},
	    {date_key(STORE_SEARCH_SINCE, 1741078800), "2,3"},
	    /* Tue, 4 Mar 2025 18:30 -0800 is the 4th as written */
	    {date_key(STORE_SEARCH_SENTON, 1741078800), "2"},
	    {date_key(STORE_SEARCH_SENTBEFORE, 1741078800), "1"},
	    {date_key(STORE_SEARCH_SENTSINCE, 1741165200), "3"},
	    {set_key(STORE_SEARCH_UID, 2, STORE_SEQ_STAR), "2,3"},
	    {set_key(STORE_SEARCH_SEQ, STORE_SEQ_STAR, STORE_SEQ_STAR), "3"},
	    {node2(STORE_SEARCH_OR, key(STORE_SEARCH_BODY, NULL, "sushi"),
		   key(STORE_SEARCH_HEADER, "From", "andre")),
	     "1,3"},
	    {node2(STORE_SEARCH_NOT, key(STORE_SEARCH_BODY, NULL, "budget"), NULL), "3"},
	    {node2(STORE_SEARCH_AND, key(STORE_SEARCH_TEXT, NULL, "budget"),
		   flags_key(STORE_SEARCH_FLAGS, STORE_FLAG_SEEN)),
	     "1"},
	    {store_search_new(STORE_SEARCH_ALL), "1,2,3"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *a = run(f, cases[i].s, true);
		char *b = run(f, cases[i].s, false);
		if (strcmp(a, b) != 0 || strcmp(a, cases[i].want) != 0)
			fail_msg("case %zu: fts '%s' scan '%s' want '%s'", i, a, b, cases[i].want);
		free(a);
		free(b);
		store_search_free(&cases[i].s);
	}

	/* nesting bound */
	struct store_search *deep = store_search_new(STORE_SEARCH_ALL);
	for (int i = 0; i < STORE_SEARCH_DEPTH_MAX + 2; i++)
		deep = node2(STORE_SEARCH_NOT, deep, NULL);
	uint32_t *uids;
	size_t n;
	assert_int_equal(store_search_run(f, deep, true, &uids, &n, &error), -1);
	assert_non_null(strstr(error, "deeply"));
	free(error);
	store_search_free(&deep);

	/* expunged messages leave the FTS index too */
	uint32_t one = 2;
	assert_int_equal(store_expunge(f, &one, 1, &error), 1);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	struct store_search *s = key(STORE_SEARCH_BODY, NULL, "budget");
	char *a = run(f, s, true);
	assert_string_equal(a, "1");
	free(a);
	store_search_free(&s);
	store_folder_close(&f);
	store_close(&store);
}

/* Many generated messages: FTS and scan agree on every query. */
static void test_agree_many(void **state)
{
	struct store *store = test_open("s2", 0);
	const char *words[] = {"alpha", "Beta", "GAMMA", "délta", "épsilon", "zeta", "eta", "θήτα"};
	srand(7);
	for (int i = 0; i < 60; i++) {
		char msg[1024];
		int n = snprintf(msg, sizeof(msg), "Subject: m%d %s\r\n\r\n", i, words[rand() % 8]);
		for (int k = 0; k < 6; k++)
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s ", words[rand() % 8]);
		snprintf(msg + n, sizeof(msg) - (size_t)n, "\r\n");
		test_append(store, "INBOX", msg, NULL, 0, 0);
	}
	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	const char *queries[] = {
	    "alpha",
	    "BETA gamma",
	    "ÉPSILON",
	    "delta",
	    "eta ",
	    "ΘΉΤΑ",
	    "ta",
	    "m1",
	    "m5 ",
	    "zeta zeta",
	    "a b",
	    "\"al\"pha",
	    "\xe0\x80\x80\x80\x80x",
	    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi"};
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++)
		for (int op = 0; op < 2; op++) {
			struct store_search *s =
			    key(op ? STORE_SEARCH_TEXT : STORE_SEARCH_BODY, NULL, queries[q]);
			char *a = run(f, s, true);
			char *b = run(f, s, false);
			if (strcmp(a, b) != 0)
				fail_msg("'%s': fts '%s' scan '%s'", queries[q], a, b);
			/* in slices of 7 messages: the same answer */
			char joined[4096] = "";
			for (size_t first = 0; first < store_folder_count(f); first += 7) {
				uint32_t *uids;
				size_t n;
				assert_int_equal(
				    store_search_run_slice(f, s, true, first, 7, &uids, &n, &error),
				    1);
				for (size_t i = 0; i < n; i++)
					snprintf(joined + strlen(joined),
						 sizeof(joined) - strlen(joined), "%s%u",
						 *joined ? "," : "", uids[i]);
				free(uids);
			}
			assert_string_equal(joined, a);
			free(a);
			free(b);
			store_search_free(&s);
		}
	store_folder_close(&f);
	store_close(&store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_search, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_agree_many, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
