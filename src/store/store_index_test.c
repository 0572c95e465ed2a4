#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>

#include "store/store_private.h"
#include "store/store_test_util.h"

/* The index's kept statements (store_stmt): reuse, nested use, bindings,
 * the bound, and that nothing is left out or unfinalized. */

static const char *msg = "From: Alice <alice@example.com>\r\n"
			 "To: bob@example.com\r\n"
			 "Subject: budget\r\n"
			 "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
			 "Content-Type: multipart/mixed; boundary=b\r\n"
			 "\r\n"
			 "--b\r\n"
			 "Content-Type: text/plain\r\n"
			 "\r\n"
			 "the quarterly budget\r\n"
			 "--b--\r\n";

static size_t db_statements(struct store *store)
{
	size_t n = 0;
	for (sqlite3_stmt *st = sqlite3_next_stmt(store->db, NULL); st != NULL;
	     st = sqlite3_next_stmt(store->db, st))
		n++;
	return n;
}

/* FTS5 keeps statements of its own until the database closes (on its
 * shadow tables, 'main'.'fts_idx' ..., and PRAGMA 'main'.data_version);
 * the store's SQL never names the schema. */
static bool fts_internal(sqlite3_stmt *st)
{
	return strstr(sqlite3_sql(st), "'main'.") != NULL;
}

/* Every statement of the database is a kept one (or FTS5's), none is out,
 * none is in the middle of a step. */
static void assert_all_given_back(struct store *store)
{
	for (size_t i = 0; i < store->nstmts; i++)
		assert_false(store->stmts[i].in_use);
	for (sqlite3_stmt *st = sqlite3_next_stmt(store->db, NULL); st != NULL;
	     st = sqlite3_next_stmt(store->db, st)) {
		bool kept = fts_internal(st);
		for (size_t i = 0; i < store->nstmts && !kept; i++)
			kept = store->stmts[i].st == st;
		if (!kept)
			fail_msg("statement not given back: %s", sqlite3_sql(st));
		if (sqlite3_stmt_busy(st))
			fail_msg("statement not reset: %s", sqlite3_sql(st));
	}
}

/* What store_close() does, checked: once the kept statements are
 * finalized no statement of ours is left and the database closes. */
static void close_checked(struct store **store)
{
	assert_all_given_back(*store);
	assert_true((*store)->nstmts > 0);
	store_stmt_cache_clear(*store);
	for (sqlite3_stmt *st = sqlite3_next_stmt((*store)->db, NULL); st != NULL;
	     st = sqlite3_next_stmt((*store)->db, st))
		if (!fts_internal(st))
			fail_msg("statement left: %s", sqlite3_sql(st));
	assert_int_equal(sqlite3_close((*store)->db), SQLITE_OK);
	(*store)->db = NULL;
	store_close(store);
	assert_null(*store);
}

static void test_stmt_reused(void **state)
{
	struct store *store = test_open("reuse", 0);
	char *error = NULL;
	static const char *sql = "SELECT count(*) FROM folders";
	sqlite3_stmt *st = store_stmt(store, sql, &error);
	assert_non_null(st);
	sqlite3_stmt *first = st;
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 6);
	store_stmt_done(store, &st);
	assert_null(st);
	size_t kept = store->nstmts;
	for (int i = 0; i < 3; i++) {
		st = store_stmt(store, sql, &error);
		assert_ptr_equal(st, first);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 6);
		store_stmt_done(store, &st);
	}
	/* the same text at another address finds it too */
	char copy[64];
	strcpy(copy, sql);
	st = store_stmt(store, copy, &error);
	assert_ptr_equal(st, first);
	store_stmt_done(store, &st);
	assert_int_equal(store->nstmts, kept);
	store_stmt_done(store, &st); /* NULL: nothing */
	close_checked(&store);
}

static void test_stmt_nested(void **state)
{
	struct store *store = test_open("nested", 0);
	char *error = NULL;
	static const char *sql = "SELECT name FROM folders ORDER BY name";
	sqlite3_stmt *outer = store_stmt(store, sql, &error);
	assert_non_null(outer);
	assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(outer, 0), "Archive");
	size_t before = db_statements(store);
	sqlite3_stmt *inner = store_stmt(store, sql, &error);
	assert_non_null(inner);
	assert_ptr_not_equal(inner, outer);
	assert_int_equal(db_statements(store), before + 1);
	size_t rows = 0;
	while (sqlite3_step(inner) == SQLITE_ROW)
		rows++;
	assert_int_equal(rows, 6);
	store_stmt_done(store, &inner);
	/* the one-off is finalized; the outer one goes on where it was */
	assert_int_equal(db_statements(store), before);
	assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(outer, 0), "Drafts");
	sqlite3_stmt *kept = outer;
	store_stmt_done(store, &outer);
	sqlite3_stmt *again = store_stmt(store, sql, &error);
	assert_ptr_equal(again, kept);
	assert_int_equal(sqlite3_step(again), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(again, 0), "Archive");
	store_stmt_done(store, &again);
	close_checked(&store);
}

static void test_stmt_bindings_cleared(void **state)
{
	struct store *store = test_open("bind", 0);
	char *error = NULL;
	static const char *sql = "SELECT ?1, ?2";
	sqlite3_stmt *st = store_stmt(store, sql, &error);
	char *text = strdup("transient");
	sqlite3_bind_int(st, 1, 42);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 42);
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "transient");
	store_stmt_done(store, &st);
	/* the bound text is gone: a binding left behind would read it */
	free(text);
	st = store_stmt(store, sql, &error);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_type(st, 0), SQLITE_NULL);
	assert_int_equal(sqlite3_column_type(st, 1), SQLITE_NULL);
	store_stmt_done(store, &st);
	close_checked(&store);
}

static void test_stmt_error_kept(void **state)
{
	struct store *store = test_open("error", 0);
	char *error = NULL;
	static const char *sql = "INSERT INTO subscriptions VALUES(?)";
	sqlite3_stmt *st = store_stmt(store, sql, &error);
	sqlite3_bind_text(st, 1, "INBOX", -1, SQLITE_STATIC); /* subscribed on open */
	assert_int_equal(sqlite3_step(st), SQLITE_CONSTRAINT_PRIMARYKEY);
	sqlite3_stmt *kept = st;
	store_stmt_done(store, &st);
	/* the statement's error is still the database's after it is given back */
	error = store_db_error(store, "subscribe");
	assert_non_null(strstr(error, "UNIQUE constraint failed"));
	free(error);
	error = NULL;
	/* and the statement works again */
	st = store_stmt(store, sql, &error);
	assert_ptr_equal(st, kept);
	sqlite3_bind_text(st, 1, "Other", -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	store_stmt_done(store, &st);
	/* a statement that does not prepare is not kept */
	size_t kept_n = store->nstmts;
	assert_null(store_stmt(store, "SELECT x FROM nowhere", &error));
	assert_non_null(strstr(error, "no such table"));
	free(error);
	assert_int_equal(store->nstmts, kept_n);
	close_checked(&store);
}

static void test_stmt_bound(void **state)
{
	struct store *store = test_open("bound", 0);
	char *error = NULL;
	/* texts that live as long as the store, as string constants do */
	static char sqls[STORE_STMT_CACHE_MAX + 8][32];
	for (size_t i = 0; i < STORE_STMT_CACHE_MAX + 8; i++) {
		snprintf(sqls[i], sizeof(sqls[i]), "SELECT %zu + 0", i);
		sqlite3_stmt *st = store_stmt(store, sqls[i], &error);
		assert_non_null(st);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int64(st, 0), (int64_t)i);
		store_stmt_done(store, &st);
		assert_true(store->nstmts <= STORE_STMT_CACHE_MAX);
	}
	assert_int_equal(store->nstmts, STORE_STMT_CACHE_MAX);
	/* past the bound a statement is prepared for one use and finalized */
	assert_int_equal(db_statements(store), STORE_STMT_CACHE_MAX);
	sqlite3_stmt *st = store_stmt(store, sqls[STORE_STMT_CACHE_MAX + 3], &error);
	assert_int_equal(db_statements(store), STORE_STMT_CACHE_MAX + 1);
	store_stmt_done(store, &st);
	assert_int_equal(db_statements(store), STORE_STMT_CACHE_MAX);
	/* the store's own statements still work, one use at a time */
	struct store_folder_info info;
	assert_int_equal(store_folder_status(store, "INBOX", &info, &error), 1);
	store_folder_info_clear(&info);
	assert_int_equal(test_append(store, "INBOX", msg, NULL, 0, 0), 1);
	close_checked(&store);
}

static unsigned events;

static void on_event(void *ctx, const struct store_event *ev)
{
	struct store *store = ctx;
	char *error = NULL;
	struct store_folder_info info;
	/* statements from inside the store's own calls */
	if (store_folder_status(store, ev->folder, &info, &error) == 1)
		store_folder_info_clear(&info);
	free(error);
	events++;
}

static void put_file(struct store *store, const char *folder, const char *name)
{
	char *dir = store_folder_path(store, folder);
	char *path = NULL;
	if (asprintf(&path, "%s/new/%s", dir, name) < 0)
		abort();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	close(fd);
	free(path);
	free(dir);
}

/* Every public path of the store, then: no statement out, none left
 * behind, and none after the kept ones are finalized. */
static void test_stmt_none_left(void **state)
{
	struct store *store = test_open("workload", 0);
	char *error = NULL;
	store_subscribe(store, on_event, store);
	struct store_watcher *watcher = store_watcher_new(64);
	assert_int_equal(store_watch_attach(store, watcher, &error), 1);
	const char *seen[] = {"\\Seen", "$Work"};
	for (int i = 0; i < 4; i++)
		test_append(store, "INBOX", msg, seen, i % 2 ? 2 : 0, 0);
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	assert_int_equal(store_folder_count(f), 4);
	uint64_t off, size, lines;
	assert_int_equal(
	    store_message_section(f, 1, "", STORE_SECTION_HEADER, &off, &size, &lines, &error), 1);
	assert_int_equal(
	    store_message_section(f, 1, "9", STORE_SECTION_ALL, &off, &size, &lines, &error), 0);
	char *env, *body, *bs;
	assert_int_equal(store_message_imap(f, 2, &env, &body, &bs, &error), 1);
	free(env);
	free(body);
	free(bs);
	assert_int_equal(store_message_imap(f, 99, &env, NULL, NULL, &error), 0);
	const char *kw[] = {"$Later"};
	assert_int_equal(store_flags_change(f, 1, 1, STORE_FLAG_FLAGGED, kw, 1, NULL, &error), 1);
	assert_int_equal(store_flags_change(f, 1, 1, STORE_FLAG_FLAGGED, kw, 1, NULL, &error),
			 1); /* no change */
	assert_int_equal(store_flags_change(f, 99, 1, STORE_FLAG_SEEN, NULL, 0, NULL, &error), 0);
	assert_int_equal(store_flags_update(f, 2, STORE_FLAG_DELETED, 0, &error), 1);
	struct store_search *s = store_search_new(STORE_SEARCH_AND);
	store_search_add(s, store_search_text(STORE_SEARCH_BODY, NULL, "quarterly"));
	struct store_search *sent = store_search_new(STORE_SEARCH_SENTSINCE);
	sent->date = 0;
	store_search_add(s, sent);
	uint32_t *uids;
	size_t n;
	assert_int_equal(store_search_run(f, s, true, &uids, &n, &error), 1);
	assert_int_equal(n, 4);
	free(uids);
	store_search_free(&s);
	uint32_t *su, *du;
	size_t nc;
	bool oq;
	uint32_t uv;
	const uint32_t two[] = {3, 4};
	assert_int_equal(store_copy(f, two, 2, "Archive", false, &uv, &su, &du, &nc, &oq, &error),
			 1);
	free(su);
	free(du);
	assert_int_equal(store_copy(f, two, 2, "Trash", true, &uv, &su, &du, &nc, &oq, &error), 1);
	free(su);
	free(du);
	assert_int_equal(store_copy(f, two, 2, "Nowhere", false, &uv, &su, &du, &nc, &oq, &error),
			 0);
	const uint32_t gone[] = {2};
	assert_int_equal(store_expunge(f, gone, 1, &error), 1);
	uint32_t *vanished;
	assert_int_equal(store_folder_expunged_since(f, 0, &vanished, &n, &error), 1);
	free(vanished);
	put_file(store, "INBOX", "1000000000.M1P1Q1.elsewhere");
	assert_int_equal(store_watcher_handle(watcher, &error), 1);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	store_folder_close(&f);

	assert_int_equal(store_folder_create(store, "Projects/2025", NULL, &error), 1);
	assert_int_equal(store_folder_create(store, "Projects", NULL, &error), 0);
	free(error);
	error = NULL;
	assert_int_equal(store_folder_rename(store, "Projects", "Old/Projects", &error), 1);
	assert_int_equal(store_folder_rename(store, "Missing", "Other", &error), 0);
	assert_int_equal(store_folder_subscribe(store, "Old/Projects", true, &error), 1);
	assert_int_equal(store_folder_subscribe(store, "Old/Projects", false, &error), 1);
	struct store_folder_info *list;
	assert_int_equal(store_folder_list(store, &list, &n, &error), 1);
	store_folder_list_free(&list, n);
	struct store_folder_info info;
	assert_int_equal(store_folder_status(store, "Archive", &info, &error), 1);
	store_folder_info_clear(&info);
	assert_int_equal(store_folder_status(store, "Missing", &info, &error), 0);
	assert_int_equal(store_folder_delete(store, "Old", &error), 1);
	assert_int_equal(store_folder_open(store, "Missing", &f, &error), 0);
	put_file(store, "Archive", "1000000001.M1P1Q1.elsewhere");
	unsigned added, removed;
	assert_int_equal(store_folder_reconcile(store, "Archive", &added, &removed, &error), 1);
	assert_int_equal(added, 1);
	uint64_t used, reindexed;
	assert_int_equal(store_quota_recalculate(store, &used, &error), 1);
	assert_int_equal(store_reindex(store, &reindexed, &error), 1);
	assert_true(reindexed >= 5);
	assert_true(store_quota_used(store) > 0);
	assert_int_equal(store_folder_rename(store, "Archive", "Trash", &error), -1);
	free(error);
	error = NULL;
	assert_true(events > 0);

	close_checked(&store);
	store_watcher_free(&watcher);
}

static void refuse(struct store *store, const char *table, const char *what)
{
	char *sql = NULL;
	if (asprintf(&sql,
		     "DROP TRIGGER IF EXISTS temp.refuse; CREATE TEMP TRIGGER refuse BEFORE %s ON "
		     "main.%s BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
		     what, table) < 0)
		abort();
	assert_int_equal(sqlite3_exec(store->db, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
}

static void allow(struct store *store)
{
	assert_int_equal(sqlite3_exec(store->db, "DROP TRIGGER temp.refuse", NULL, NULL, NULL),
			 SQLITE_OK);
}

static void expect_refused(struct store *store, int r, char **error)
{
	assert_int_equal(r, -1);
	assert_non_null(*error);
	assert_non_null(strstr(*error, "refused by the test"));
	free(*error);
	*error = NULL;
	assert_true(sqlite3_get_autocommit(store->db));
	assert_all_given_back(store);
}

static int append(struct store *store, const char *folder)
{
	struct store_append *a;
	bool oq;
	uint32_t uid;
	char *error = NULL;
	if (store_append_begin(store, folder, strlen(msg), &a, &oq, &error) != 1 ||
	    store_append_write(a, msg, strlen(msg), &error) != 1)
		fail_msg("append: %s", error);
	int r = store_append_commit(&a, NULL, 0, 0, &uid, &oq, &error);
	if (r < 0)
		assert_non_null(strstr(error, "refused by the test"));
	free(error);
	return r;
}

/* Statements that fail halfway (a trigger refuses the change): every one
 * is given back and the transaction rolled back. */
static void test_stmt_error_paths(void **state)
{
	struct store *store = test_open("errors", 0);
	char *error = NULL;
	for (int i = 0; i < 3; i++)
		test_append(store, "INBOX", msg, NULL, 0, 0);
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);

	refuse(store, "messages", "UPDATE");
	expect_refused(store, store_flags_change(f, 1, 1, STORE_FLAG_SEEN, NULL, 0, NULL, &error),
		       &error);
	allow(store);

	refuse(store, "parts", "INSERT"); /* in the middle of the parts loop */
	assert_int_equal(append(store, "INBOX"), -1);
	assert_all_given_back(store);
	put_file(store, "INBOX", "1000000002.M1P1Q1.elsewhere");
	expect_refused(store, store_folder_reconcile(store, "INBOX", NULL, NULL, &error), &error);
	allow(store);

	refuse(store, "folders", "UPDATE"); /* UPDATE ... RETURNING */
	assert_int_equal(append(store, "INBOX"), -1);
	assert_all_given_back(store);
	allow(store);

	refuse(store, "messages", "INSERT");
	uint32_t *su, *du;
	size_t nc;
	bool oq;
	uint32_t uv;
	const uint32_t one[] = {2}; /* 1 was renamed by the refused flag change */
	expect_refused(store,
		       store_copy(f, one, 1, "Archive", false, &uv, &su, &du, &nc, &oq, &error),
		       &error);
	allow(store);

	refuse(store, "messages", "DELETE"); /* in the middle of the expunge loop */
	const uint32_t two[] = {2, 3};
	expect_refused(store, store_expunge(f, two, 2, &error), &error);
	allow(store);

	refuse(store, "subscriptions", "INSERT");
	expect_refused(store, store_folder_subscribe(store, "Other", true, &error), &error);
	allow(store);

	/* all is well afterwards */
	assert_int_equal(store_folder_reconcile(store, "INBOX", NULL, NULL, &error), 1);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_flags_change(f, 1, 1, STORE_FLAG_SEEN, NULL, 0, NULL, &error), 1);
	assert_int_equal(append(store, "INBOX"), 1);
	store_folder_close(&f);
	close_checked(&store);
}

/* Releasing memory finalizes the kept statements nobody holds, keeps the
 * one still out (it is given back as usual), and the store goes on. */
static void test_release_memory(void **state)
{
	struct store *store = test_open("release", 0);
	char *error = NULL;
	test_append(store, "INBOX", msg, NULL, 0, 0);
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	assert_true(store->nstmts > 2);
	static const char *held_sql = "SELECT count(*) FROM messages";
	sqlite3_stmt *held = store_stmt(store, held_sql, &error);
	assert_int_equal(sqlite3_step(held), SQLITE_ROW);
	store_release_memory(store);
	assert_int_equal(store->nstmts, 1);
	assert_ptr_equal(store->stmts[0].st, held);
	assert_int_equal(sqlite3_column_int(held, 0), 1);
	store_stmt_done(store, &held);
	assert_all_given_back(store);
	/* everything works after it, and statements are kept again */
	test_append(store, "INBOX", msg, NULL, 0, 0);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_folder_count(f), 2);
	assert_true(store->nstmts > 2);
	store_folder_close(&f);
	close_checked(&store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_stmt_reused, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_release_memory, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_nested, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_bindings_cleared, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_error_kept, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_bound, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_none_left, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_error_paths, test_setup, test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
