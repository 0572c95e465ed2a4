#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <time.h>

#include "store/store.h"
#include "store/store_test_util.h"

static const char *msg1 = "From: Alice <alice@example.com>\r\n"
			  "To: bob@example.com\r\n"
			  "Subject: first\r\n"
			  "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
			  "\r\n"
			  "hello\r\n";

static const char *msg2 = "From: carol@example.com\r\n"
			  "Subject: second\r\n"
			  "Content-Type: multipart/mixed; boundary=b\r\n"
			  "\r\n"
			  "--b\r\n"
			  "Content-Type: text/plain\r\n"
			  "\r\n"
			  "part one\r\n"
			  "--b\r\n"
			  "Content-Type: application/octet-stream\r\n"
			  "Content-Transfer-Encoding: base64\r\n"
			  "\r\n"
			  "AAEC\r\n"
			  "--b--\r\n";

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_open_defaults(void **state)
{
	struct store *store = test_open("Alice@Example.COM", 0);
	assert_non_null(strstr(store_path(store), "/alice@example.com"));
	struct store_folder_info *list;
	size_t n;
	char *error = NULL;
	assert_int_equal(store_folder_list(store, &list, &n, &error), 1);
	assert_int_equal(n, 6);
	assert_string_equal(list[0].name, "INBOX");
	assert_string_equal(list[1].name, "Archive");
	assert_string_equal(list[1].role, "\\Archive");
	assert_true(list[0].subscribed);
	store_folder_list_free(&list, n);
	store_close(&store);
	/* a leading dot never reaches the file system */
	store = test_open(".hidden", 0);
	assert_non_null(strstr(store_path(store), "/%2Ehidden"));
	store_close(&store);
}

static void test_append_read(void **state)
{
	struct store *store = test_open("u1", 0);
	const char *flags[] = {"\\Seen", "$Forwarded", "$forwarded"};
	uint32_t uid1 = test_append(store, "inbox", msg1, flags, 3, 1000000);
	uint32_t uid2 = test_append(store, "INBOX", msg2, NULL, 0, 0);
	assert_int_equal(uid1, 1);
	assert_int_equal(uid2, 2);
	assert_int_equal(store_quota_used(store), strlen(msg1) + strlen(msg2));

	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "Inbox", &f, &error), 1);
	assert_int_equal(store_folder_count(f), 2);
	assert_int_equal(store_folder_uidnext(f), 3);
	const struct store_message *m = store_folder_message(f, 0);
	assert_int_equal(m->uid, 1);
	assert_int_equal(m->size, strlen(msg1));
	assert_int_equal(m->internal_date, 1000000);
	assert_int_equal(m->flags, STORE_FLAG_SEEN);
	assert_string_equal(m->keywords, "$Forwarded");
	assert_int_equal(strlen(m->guid), 32);
	char *body = test_read(f, 1);
	assert_string_equal(body, msg1);
	free(body);

	/* cached parsed form */
	char *env, *bs;
	assert_int_equal(store_message_imap(f, 1, &env, NULL, &bs, &error), 1);
	assert_string_equal(env, "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"first\" "
				 "((\"Alice\" NIL \"alice\" \"example.com\")) "
				 "((\"Alice\" NIL \"alice\" \"example.com\")) "
				 "((\"Alice\" NIL \"alice\" \"example.com\")) "
				 "((NIL NIL \"bob\" \"example.com\")) NIL NIL NIL NIL)");
	free(env);
	free(bs);

	/* sections from the part table, read by range */
	uint64_t off, size, lines;
	assert_int_equal(
	    store_message_section(f, 2, "2", STORE_SECTION_ALL, &off, &size, &lines, &error), 1);
	char buf[64];
	size_t got;
	assert_int_equal(store_message_pread(f, 2, off, buf, size, &got, &error), 1);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "AAEC", 4);
	assert_int_equal(
	    store_message_section(f, 2, "1", STORE_SECTION_MIME, &off, &size, &lines, &error), 1);
	assert_int_equal(store_message_pread(f, 2, off, buf, size, &got, &error), 1);
	assert_memory_equal(buf, "Content-Type: text/plain\r\n\r\n", got);
	assert_int_equal(
	    store_message_section(f, 2, "", STORE_SECTION_TEXT, &off, &size, &lines, &error), 1);
	assert_int_equal(off + size, strlen(msg2));
	assert_int_equal(
	    store_message_section(f, 2, "9", STORE_SECTION_ALL, &off, &size, &lines, &error), 0);
	assert_int_equal(
	    store_message_section(f, 1, "", STORE_SECTION_HEADER, &off, &size, &lines, &error), 1);
	assert_int_equal(size, strlen(msg1) - 7);
	store_folder_close(&f);
	store_close(&store);
}

static void test_flags_expunge_no_reuse(void **state)
{
	struct store *store = test_open("u2", 0);
	for (int i = 0; i < 3; i++)
		test_append(store, "INBOX", msg1, NULL, 0, 0);
	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	uint64_t ms0 = store_folder_highestmodseq(f);
	assert_int_equal(store_flags_update(f, 2, STORE_FLAG_SEEN | STORE_FLAG_DELETED, 0, &error),
			 1);
	assert_true(store_folder_message(f, 1)->modseq > ms0);
	assert_int_equal(store_folder_message(f, 1)->flags, STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	const char *kw[] = {"$Junk", "work"};
	uint64_t modseq;
	assert_int_equal(store_flags_change(f, 2, 1, STORE_FLAG_FLAGGED, kw, 2, &modseq, &error),
			 1);
	assert_string_equal(store_folder_message(f, 1)->keywords, "$Junk work");
	assert_int_equal(store_flags_change(f, 2, -1, 0, kw, 1, NULL, &error), 1);
	assert_string_equal(store_folder_message(f, 1)->keywords, "work");
	/* the file name carries the flags (Maildir) */
	char *cur = NULL;
	assert_true(asprintf(&cur, "%s/cur", store_path(store)) > 0);
	DIR *d = opendir(cur);
	struct dirent *de;
	bool found = false;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ":2,FST") != NULL)
			found = true;
	closedir(d);
	assert_true(found);
	/* the same change twice does not bump MODSEQ */
	uint64_t again;
	assert_int_equal(store_flags_change(f, 2, 1, STORE_FLAG_FLAGGED, NULL, 0, &again, &error),
			 1);
	assert_int_equal(again, store_folder_message(f, 1)->modseq);

	uint32_t gone[] = {2, 3, 99};
	uint64_t before = store_quota_used(store);
	uint64_t ms_before = store_folder_highestmodseq(f);
	assert_int_equal(store_expunge(f, gone, 3, &error), 1);
	uint32_t *vanished;
	size_t nvanished;
	assert_int_equal(store_folder_expunged_since(f, ms_before, &vanished, &nvanished, &error),
			 1);
	assert_int_equal(nvanished, 2);
	assert_int_equal(vanished[0], 2);
	assert_int_equal(vanished[1], 3);
	free(vanished);
	struct store_folder_info fi;
	assert_int_equal(store_folder_status(store, "inbox", &fi, &error), 1);
	assert_string_equal(fi.name, "INBOX");
	assert_int_equal(fi.messages, 1);
	assert_int_equal(fi.unseen, 1);
	assert_int_equal(fi.uidnext, 4);
	assert_true(fi.highestmodseq > ms_before);
	store_folder_info_clear(&fi);
	assert_int_equal(store_folder_status(store, "Nope", &fi, &error), 0);
	assert_int_equal(store_quota_used(store), before - 2 * strlen(msg1));
	assert_int_equal(count_files(cur), 1);
	/* the snapshot still lists them; opening one says it is gone */
	int fd;
	assert_int_equal(store_message_open(f, 2, &fd, &error), 0);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_folder_count(f), 1);
	store_folder_close(&f);
	/* the next UID is 4, also after reopening */
	assert_int_equal(test_append(store, "INBOX", msg1, NULL, 0, 0), 4);
	store_close(&store);
	store = test_open("u2", 0);
	assert_int_equal(test_append(store, "INBOX", msg1, NULL, 0, 0), 5);
	free(cur);
	store_close(&store);
}

static void test_folders(void **state)
{
	struct store *store = test_open("u3", 0);
	char *error = NULL;
	const char *bad[] = {"", "/a", "a/", "a//b", "a/../b", "..", "a\x01", "\xff\xfe", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		assert_int_equal(store_folder_create(store, bad[i], NULL, &error), -1);
		assert_non_null(error);
		free(error);
		error = NULL;
	}
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(store_folder_create(store, longname, NULL, &error), -1);
	assert_non_null(strstr(error, "too long"));
	free(error);

	assert_int_equal(store_folder_create(store, "Work/Projects/Caf\xc3\xa9", NULL, &error), 1);
	assert_int_equal(store_folder_create(store, "Work", NULL, &error), 0);
	free(error);
	uint32_t uid = test_append(store, "Work/Projects/Caf\xc3\xa9", msg1, NULL, 0, 0);
	assert_int_equal(uid, 1);
	struct store_folder *f;
	assert_int_equal(store_folder_open(store, "Work/Projects/Caf\xc3\xa9", &f, &error), 1);
	uint32_t uv = store_folder_uidvalidity(f);
	store_folder_close(&f);

	assert_int_equal(store_folder_rename(store, "Work", "Old/Work", &error), 1);
	assert_int_equal(store_folder_open(store, "Work", &f, &error), 0);
	assert_int_equal(store_folder_open(store, "Old/Work/Projects/Caf\xc3\xa9", &f, &error), 1);
	assert_int_equal(store_folder_uidvalidity(f), uv);
	assert_int_equal(store_folder_count(f), 1);
	char *body = test_read(f, 1);
	assert_string_equal(body, msg1);
	free(body);
	store_folder_close(&f);
	assert_int_equal(store_folder_rename(store, "Old", "Old/Below", &error), -1);
	free(error);
	assert_int_equal(store_folder_rename(store, "INBOX", "X", &error), -1);
	free(error);

	struct store_folder_info *list;
	size_t n;
	assert_int_equal(store_folder_list(store, &list, &n, &error), 1);
	bool saw = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, "Old/Work") == 0) {
			assert_true(list[i].has_children);
			saw = true;
		} else if (strcmp(list[i].name, "Old/Work/Projects/Caf\xc3\xa9") == 0) {
			assert_int_equal(list[i].messages, 1);
			assert_int_equal(list[i].unseen, 1);
			assert_int_equal(list[i].bytes, strlen(msg1));
		}
	assert_true(saw);
	store_folder_list_free(&list, n);

	assert_int_equal(store_folder_subscribe(store, "Nowhere", true, &error), 1);
	assert_int_equal(store_folder_delete(store, "Old", &error), 1);
	assert_int_equal(store_quota_used(store), 0);
	assert_int_equal(store_folder_delete(store, "INBOX", &error), -1);
	free(error);
	assert_int_equal(store_folder_list(store, &list, &n, &error), 1);
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(list[i].name, "Old"));
		if (strcmp(list[i].name, "Nowhere") == 0)
			assert_false(list[i].exists);
	}
	store_folder_list_free(&list, n);
	/* a re-created folder gets a new UIDVALIDITY */
	assert_int_equal(store_folder_create(store, "Old/Work/Projects/Caf\xc3\xa9", NULL, &error),
			 1);
	assert_int_equal(store_folder_open(store, "Old/Work/Projects/Caf\xc3\xa9", &f, &error), 1);
	assert_true(store_folder_uidvalidity(f) > uv);
	store_folder_close(&f);
	/* folder names in APPEND are checked too */
	struct store_append *a;
	bool oq;
	assert_int_equal(store_append_begin(store, "No/Such", 0, &a, &oq, &error), -1);
	free(error);
	store_close(&store);
}

static void test_copy_move(void **state)
{
	struct store *store = test_open("u4", 0);
	const char *flags[] = {"\\Flagged", "work"};
	test_append(store, "INBOX", msg1, flags, 2, 0);
	test_append(store, "INBOX", msg2, NULL, 0, 0);
	test_append(store, "Archive", msg1, NULL, 0, 0);
	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	uint32_t uids[] = {2, 1, 77};
	uint32_t *src, *dst, uv;
	size_t n;
	bool oq;
	assert_int_equal(store_copy(f, uids, 3, "Archive", false, &uv, &src, &dst, &n, &oq, &error),
			 1);
	assert_int_equal(n, 2);
	assert_int_equal(src[0], 2);
	assert_int_equal(dst[0], 2);
	assert_int_equal(src[1], 1);
	assert_int_equal(dst[1], 3);
	free(src);
	free(dst);
	assert_int_equal(store_quota_used(store), 3 * strlen(msg1) + 2 * strlen(msg2));
	struct store_folder *a;
	assert_int_equal(store_folder_open(store, "Archive", &a, &error), 1);
	assert_int_equal(store_folder_uidvalidity(a), uv);
	assert_int_equal(store_folder_count(a), 3);
	assert_int_equal(store_folder_message(a, 2)->flags, STORE_FLAG_FLAGGED);
	assert_string_equal(store_folder_message(a, 2)->keywords, "work");
	char *env;
	assert_int_equal(store_message_imap(a, 2, &env, NULL, NULL, &error), 1);
	assert_non_null(strstr(env, "\"second\""));
	free(env);
	store_folder_close(&a);

	uint32_t one[] = {1};
	assert_int_equal(store_copy(f, one, 1, "Trash", true, &uv, &src, &dst, &n, &oq, &error), 1);
	assert_int_equal(n, 1);
	free(src);
	free(dst);
	assert_int_equal(store_folder_refresh(f, &error), 1);
	assert_int_equal(store_folder_count(f), 1);
	assert_int_equal(store_copy(f, one, 1, "Nope", false, &uv, &src, &dst, &n, &oq, &error), 0);
	store_folder_close(&f);
	assert_int_equal(store_folder_open(store, "Trash", &f, &error), 1);
	char *body = test_read(f, 1);
	assert_string_equal(body, msg1);
	free(body);
	store_folder_close(&f);
	store_close(&store);
}

static void test_quota(void **state)
{
	size_t limit = strlen(msg1) * 2 + 10;
	struct store *store = test_open("u5", limit);
	test_append(store, "INBOX", msg1, NULL, 0, 0);
	struct store_append *a;
	bool oq;
	char *error = NULL;
	/* refused up front from the size hint */
	assert_int_equal(store_append_begin(store, "INBOX", limit, &a, &oq, &error), -1);
	assert_true(oq);
	free(error);
	/* and at commit when the hint was low */
	assert_int_equal(store_append_begin(store, "INBOX", 0, &a, &oq, &error), 1);
	for (int i = 0; i < 3; i++)
		store_append_write(a, msg1, strlen(msg1), &error);
	uint32_t uid;
	assert_int_equal(store_append_commit(&a, NULL, 0, 0, &uid, &oq, &error), -1);
	assert_true(oq);
	assert_null(a);
	free(error);
	char *tmp = NULL;
	assert_true(asprintf(&tmp, "%s/tmp", store_path(store)) > 0);
	assert_int_equal(count_files(tmp), 0);
	free(tmp);
	test_append(store, "INBOX", msg1, NULL, 0, 0);
	uint64_t used;
	assert_int_equal(store_quota_recalculate(store, &used, &error), 1);
	assert_int_equal(used, 2 * strlen(msg1));
	store_close(&store);
}

static void test_reconcile(void **state)
{
	struct store *store = test_open("u6", 0);
	for (int i = 0; i < 4; i++)
		test_append(store, "INBOX", msg1, NULL, 0, 0);
	struct store_folder *f;
	char *error = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	uint32_t uv = store_folder_uidvalidity(f);
	store_folder_close(&f);
	store_close(&store);

	/* another program: delivers into new/, deletes one, marks one seen */
	char *path = NULL;
	assert_true(asprintf(&path, "%s/mail/u6/new/1234.foreign.host", test_root) > 0);
	FILE *fp = fopen(path, "w");
	fputs(msg2, fp);
	fclose(fp);
	free(path);
	char *cur = NULL;
	assert_true(asprintf(&cur, "%s/mail/u6/cur", test_root) > 0);
	DIR *d = opendir(cur);
	struct dirent *de;
	char *names[8];
	int n = 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && n < 8)
			names[n++] = strdup(de->d_name);
	closedir(d);
	assert_int_equal(n, 4);
	char *victim = NULL, *from = NULL, *to = NULL;
	assert_true(asprintf(&victim, "%s/%s", cur, names[0]) > 0);
	unlink(victim);
	assert_true(asprintf(&from, "%s/%s", cur, names[1]) > 0);
	assert_true(asprintf(&to, "%sS", from) > 0);
	rename(from, to);
	free(victim);
	free(from);
	free(to);
	for (int i = 0; i < n; i++)
		free(names[i]);

	store = test_open("u6", 0);
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	assert_int_equal(store_folder_uidvalidity(f), uv);
	assert_int_equal(store_folder_count(f), 4);
	assert_int_equal(store_folder_message(f, 3)->uid, 5);
	assert_int_equal(store_folder_message(f, 3)->size, strlen(msg2));
	unsigned seen = 0;
	for (size_t i = 0; i < 4; i++)
		seen += (store_folder_message(f, i)->flags & STORE_FLAG_SEEN) != 0;
	assert_int_equal(seen, 1);
	assert_int_equal(store_quota_used(store), 3 * strlen(msg1) + strlen(msg2));
	char *bs;
	assert_int_equal(store_message_imap(f, 5, NULL, NULL, &bs, &error), 1);
	assert_non_null(strstr(bs, "\"mixed\""));
	free(bs);
	store_folder_close(&f);

	/* a delivery that died before its rename long ago: tmp/ is cleaned */
	char *stale = NULL, *fresh = NULL;
	assert_true(asprintf(&stale, "%s/mail/u6/tmp/old.delivery", test_root) > 0);
	assert_true(asprintf(&fresh, "%s/mail/u6/tmp/new.delivery", test_root) > 0);
	fclose(fopen(stale, "w"));
	fclose(fopen(fresh, "w"));
	struct timespec old[2] = {{.tv_sec = time(NULL) - 40 * 3600},
				  {.tv_sec = time(NULL) - 40 * 3600}};
	utimensat(AT_FDCWD, stale, old, 0);
	unsigned added, removed;
	assert_int_equal(store_folder_reconcile(store, "INBOX", &added, &removed, &error), 1);
	assert_int_equal(added + removed, 0);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(fresh, F_OK), 0);
	free(stale);
	free(fresh);

	/* losing the whole index keeps every message (new UIDVALIDITY then) */
	uint64_t reread;
	assert_int_equal(store_reindex(store, &reread, &error), 1);
	assert_int_equal(reread, 4);
	store_close(&store);
	char *db = NULL;
	assert_true(asprintf(&db, "%s/mail/u6/postern-index.sqlite", test_root) > 0);
	unlink(db);
	free(db);
	store = test_open("u6", 0);
	assert_int_equal(store_folder_open(store, "INBOX", &f, &error), 1);
	assert_int_equal(store_folder_count(f), 4);
	store_folder_close(&f);
	store_close(&store);
	free(cur);
}

/* Two openers of a folder share one snapshot; a refresh reads what another
 * process (here a second store object on the same files) changed: new
 * messages, flags and keywords, expunges, and nothing else. */
static void test_shared_incremental_snapshot(void **state)
{
	struct store *store = test_open("shared", 0);
	struct store *other = test_open("shared", 0);
	for (int i = 0; i < 5; i++)
		test_append(store, "INBOX", msg1, NULL, 0, 0);
	char *error = NULL;
	struct store_folder *a = NULL, *b = NULL, *o = NULL;
	assert_int_equal(store_folder_open(store, "INBOX", &a, &error), 1);
	assert_int_equal(store_folder_open(store, "inbox", &b, &error), 1);
	assert_ptr_equal(a, b);
	assert_int_equal(store_folder_count(a), 5);
	assert_int_equal(store_folder_removed(a), 0);

	/* the other process: a flag and a keyword, an expunge, two new messages */
	assert_int_equal(store_folder_open(other, "INBOX", &o, &error), 1);
	const char *kw[] = {"$Important"};
	assert_int_equal(store_flags_change(o, 2, 1, STORE_FLAG_FLAGGED, kw, 1, NULL, &error), 1);
	uint32_t gone = 4;
	assert_int_equal(store_expunge(o, &gone, 1, &error), 1);
	test_append(other, "INBOX", msg2, NULL, 0, 0);
	test_append(other, "INBOX", msg1, NULL, 0, 0);
	store_folder_close(&o);

	/* not read until a refresh */
	assert_int_equal(store_folder_count(a), 5);
	assert_int_equal(store_folder_refresh(a, &error), 1);
	assert_int_equal(store_folder_count(b), 6);
	assert_int_equal(store_folder_removed(b), 1);
	const uint32_t want[] = {1, 2, 3, 5, 6, 7};
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(store_folder_message(a, i)->uid, want[i]);
	const struct store_message *m = store_folder_message(a, 1);
	assert_true(m->flags & STORE_FLAG_FLAGGED);
	assert_string_equal(m->keywords, "$Important");
	assert_string_equal(store_folder_message(a, 0)->keywords, "");
	assert_int_equal(store_folder_uidnext(a), 8);
	assert_int_equal(store_folder_find(a, 4), -1);
	/* what a full load gives is the same */
	assert_int_equal(store_folder_open(other, "INBOX", &o, &error), 1);
	assert_int_equal(store_folder_count(o), store_folder_count(a));
	for (size_t i = 0; i < store_folder_count(o); i++) {
		const struct store_message *x = store_folder_message(o, i),
					   *y = store_folder_message(a, i);
		assert_int_equal(x->uid, y->uid);
		assert_int_equal(x->flags, y->flags);
		assert_int_equal(x->modseq, y->modseq);
		assert_int_equal(x->size, y->size);
		assert_string_equal(x->keywords, y->keywords);
		assert_string_equal(x->guid, y->guid);
	}
	assert_int_equal(store_folder_highestmodseq(o), store_folder_highestmodseq(a));
	store_folder_close(&o);
	/* a refresh with nothing new changes nothing */
	assert_int_equal(store_folder_refresh(a, &error), 1);
	assert_int_equal(store_folder_count(a), 6);
	assert_int_equal(store_folder_removed(a), 1);

	/* our own flag change is seen by both openers at once */
	assert_int_equal(store_flags_change(a, 1, 1, STORE_FLAG_SEEN, NULL, 0, NULL, &error), 1);
	assert_true(store_folder_message(b, 0)->flags & STORE_FLAG_SEEN);
	/* the first close leaves the other opener's handle working */
	store_folder_close(&b);
	assert_null(b);
	assert_int_equal(store_folder_count(a), 6);
	assert_int_equal(store_folder_refresh(a, &error), 1);
	store_folder_close(&a);

	/* a folder deleted and made again is not the open one */
	assert_int_equal(store_folder_create(store, "Lists", NULL, &error), 1);
	assert_int_equal(store_folder_open(store, "Lists", &a, &error), 1);
	test_append(store, "Lists", msg1, NULL, 0, 0);
	assert_int_equal(store_folder_delete(other, "Lists", &error), 1);
	assert_int_equal(store_folder_create(other, "Lists", NULL, &error), 1);
	assert_int_equal(store_folder_refresh(a, &error), -1);
	free(error);
	error = NULL;
	assert_int_equal(store_folder_open(store, "Lists", &b, &error), 1);
	assert_ptr_not_equal(a, b);
	assert_int_equal(store_folder_count(b), 0);
	store_folder_close(&b);
	store_folder_close(&a);
	store_close(&other);
	store_close(&store);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_defaults, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_append_read, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_flags_expunge_no_reuse, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_folders, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_copy_move, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_quota, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_reconcile, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_shared_incremental_snapshot, test_setup,
					    test_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
