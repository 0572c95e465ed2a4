#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/directory.h"
#include "directory/password.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	strcpy(tmpdir, "/tmp/postern-directory-test-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static char *path_in(const char *name)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void expect_error(const char *error, const char *want)
{
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("error '%s' lacks '%s'", error, want);
}

static struct directory *create_dir(void)
{
	struct directory *dir = NULL;
	char *error = NULL;
	if (directory_create(tmpdir, "example.com", "mail.example.com", &dir, &error) != 0)
		fail_msg("create: %s", error);
	struct directory_backend local = {.name = "local",
					  .imap4_address = "127.0.0.1:1143",
					  .pop3_address = "127.0.0.1:1110",
					  .lmtp_address = "unix:/tmp/lmtp.sock"};
	assert_int_equal(directory_backend_add(dir, &local, &error), 1);
	return dir;
}

static char *file_bytes(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(65536);
	*len_r = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static void test_open_missing(void **state)
{
	struct directory *dir = NULL;
	char *error = NULL;
	assert_int_equal(directory_open("/nonexistent/postern-data", false, &dir, &error), -1);
	expect_error(error, "data dir '/nonexistent/postern-data' does not exist");
	free(error);
	assert_null(dir);
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), -1);
	expect_error(error, "directory.db does not exist");
	expect_error(error, tmpdir);
	free(error);
	/* nothing was created */
	char *p = path_in("directory.db");
	assert_int_equal(access(p, F_OK), -1);
	free(p);
}

static void test_open_garbage(void **state)
{
	char *p = path_in("directory.db");
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	for (int i = 0; i < 4096; i++)
		fputc((i * 37 + 11) & 0xff, f);
	fclose(f);
	size_t len1, len2;
	char *before = file_bytes(p, &len1);
	struct directory *dir = NULL;
	char *error = NULL;
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), -1);
	expect_error(error, p);
	expect_error(error, "not a SQLite database");
	free(error);
	assert_int_equal(directory_open(tmpdir, true, &dir, &error), -1);
	expect_error(error, "not a SQLite database");
	free(error);
	char *after = file_bytes(p, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(before, after, len1);
	free(before);
	free(after);
	char *wal = path_in("directory.db-wal");
	assert_int_equal(access(wal, F_OK), -1);
	free(wal);
	/* an empty file */
	f = fopen(p, "wb");
	fclose(f);
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), -1);
	expect_error(error, "is empty");
	free(error);
	free(p);
}

static void test_open_foreign_and_newer(void **state)
{
	char *p = path_in("directory.db");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "CREATE TABLE t (x); PRAGMA user_version = 3", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	struct directory *dir = NULL;
	char *error = NULL;
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), -1);
	expect_error(error, "not a postern directory database");
	free(error);
	unlink(p);

	dir = create_dir();
	directory_close(&dir);
	assert_null(dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	size_t len1, len2;
	char *before = file_bytes(p, &len1);
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), -1);
	expect_error(error, "schema version 99 is newer");
	free(error);
	char *after = file_bytes(p, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(before, after, len1);
	free(before);
	free(after);
	free(p);
}

static void test_create(void **state)
{
	struct directory *dir = create_dir();
	char *p = path_in("directory.db");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *value = NULL, *error = NULL;
	assert_int_equal(directory_meta_get(dir, DIRECTORY_META_DOMAIN, &value, &error), 1);
	assert_string_equal(value, "example.com");
	free(value);
	assert_int_equal(directory_meta_get(dir, DIRECTORY_META_HOSTNAME, &value, &error), 1);
	assert_string_equal(value, "mail.example.com");
	free(value);
	assert_int_equal(directory_meta_get(dir, DIRECTORY_META_INTERNAL_SECRET, &value, &error),
			 1);
	assert_int_equal(strlen(value), 64);
	assert_int_equal(strspn(value, "0123456789abcdef"), 64);
	free(value);
	assert_int_equal(directory_meta_get(dir, "nope", &value, &error), 0);
	assert_null(value);
	directory_close(&dir);

	/* a second create refuses and leaves the first alone */
	assert_int_equal(directory_create(tmpdir, "example.org", "mx", &dir, &error), -1);
	expect_error(error, "cannot create");
	free(error);
	assert_int_equal(directory_open(tmpdir, true, &dir, &error), 0);
	assert_int_equal(directory_meta_get(dir, DIRECTORY_META_DOMAIN, &value, &error), 1);
	assert_string_equal(value, "example.com");
	free(value);
	directory_close(&dir);
	free(p);

	assert_int_equal(directory_create(tmpdir, "bad domain", "mx", &dir, &error), -1);
	expect_error(error, "not a valid DNS name");
	free(error);
}

static void test_user_names(void **state)
{
	(void)state;
	const char *good[] = {"alice", "Alice.Smith", "a_b-c", "bob@example.com",
			      "x1",    "a.b@c.d",     "0",     "_x"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *error = NULL;
		if (directory_user_name_check(good[i], &error) != 0)
			fail_msg("'%s' refused: %s", good[i], error);
	}
	static const struct {
		const char *name, *want;
	} bad[] = {
	    {"a/b", "user name 'a/b': '/' is not allowed (letters, digits, '.', '_', '-' and "
		    "one '@domain')"},
	    {"a\\b", "'\\' is not allowed"},
	    {"..", "must not start with '.' or '-'"},
	    {"a..b", "'..' is not allowed"},
	    {".a", "must not start"},
	    {"-a", "must not start"},
	    {"a.", "must not end with '.'"},
	    {"", "user name '': must not be empty"},
	    {"x\ty", "user name 'x\\x09y': control characters are not allowed"},
	    {"a b", "blanks are not allowed"},
	    {"\xc3\xbcn\xc3\xaf", "non-ASCII characters are not allowed"},
	    {"a@b@c", "only one '@'"},
	    {"@example.com", "the part before '@' is empty"},
	    {"a@", "the domain after '@' is not a valid DNS name"},
	    {"a@-x.com", "not a valid DNS name"},
	    {"a:b", "':' is not allowed"},
	    {"a+b", "'+' is not allowed"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *error = NULL;
		if (directory_user_name_check(bad[i].name, &error) != -1)
			fail_msg("'%s' accepted", bad[i].name);
		expect_error(error, bad[i].want);
		free(error);
	}
	char name[80];
	memset(name, 'a', 64);
	name[64] = '\0';
	char *error = NULL;
	assert_int_equal(directory_user_name_check(name, &error), 0);
	name[64] = 'a';
	name[65] = '\0';
	assert_int_equal(directory_user_name_check(name, &error), -1);
	expect_error(error, "longer than 64 bytes");
	free(error);
}

static void test_kinds_and_send_as(void **state)
{
	(void)state;
	enum directory_user_kind kind;
	char *error = NULL, *norm = NULL;
	assert_int_equal(directory_kind_parse("Shared", &kind, &error), 0);
	assert_int_equal(kind, DIRECTORY_KIND_SHARED);
	assert_string_equal(directory_kind_name(DIRECTORY_KIND_ADMIN), "admin");
	assert_int_equal(directory_kind_parse("root", &kind, &error), -1);
	expect_error(error, "user, shared, guest or admin");
	free(error);

	assert_int_equal(directory_send_as_normalise("", &norm, &error), 0);
	assert_string_equal(norm, "");
	free(norm);
	assert_int_equal(directory_send_as_normalise("A@Example.COM,b.c@x.org", &norm, &error), 0);
	assert_string_equal(norm, "A@example.com, b.c@x.org");
	free(norm);
	const char *bad[] = {"a",      "a@",	   "@b.c",    "a@b@c",
			     ".a@b.c", "a..b@c.d", "a b@c.d", "a@b.c, a@B.c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (directory_send_as_normalise(bad[i], &norm, &error) != -1)
			fail_msg("send-as '%s' accepted", bad[i]);
		expect_error(error, "send-as: ");
		free(error);
	}
}

/* Version 1 files (before save_sent and the SCRAM keys) are upgraded on a read-write open;
 * a read-only open refuses them until then. */
static void test_save_sent_and_migration(void **state)
{
	struct directory *dir = create_dir();
	char *error = NULL;
	struct directory_user u;
	directory_user_init(&u, "alice", DIRECTORY_KIND_USER);
	assert_int_equal(u.save_sent, DIRECTORY_SAVE_SENT_DEFAULT);
	assert_int_equal(directory_user_add(dir, &u, &error), 1);
	directory_user_clear(&u);
	directory_close(&dir);

	char *p = path_in("directory.db");
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "ALTER TABLE users DROP COLUMN scram_sha256;"
				      "ALTER TABLE users DROP COLUMN save_sent;"
				      "PRAGMA user_version = 1",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	free(p);
	assert_int_equal(directory_open(tmpdir, true, &dir, &error), -1);
	expect_error(error, "needs an upgrade");
	free(error);
	assert_int_equal(directory_open(tmpdir, false, &dir, &error), 0);

	struct directory_user *got = NULL;
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got->save_sent, DIRECTORY_SAVE_SENT_DEFAULT);
	directory_user_free(&got);
	struct directory_user v = {.save_sent = DIRECTORY_SAVE_SENT_ON};
	assert_int_equal(
	    directory_user_set_fields(dir, "ALICE", DIRECTORY_FIELD_SAVE_SENT, &v, &error), 1);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got->save_sent, DIRECTORY_SAVE_SENT_ON);
	assert_true(got->pop3_enabled);
	directory_user_free(&got);
	v.save_sent = DIRECTORY_SAVE_SENT_DEFAULT;
	assert_int_equal(
	    directory_user_set_fields(dir, "alice", DIRECTORY_FIELD_SAVE_SENT, &v, &error), 1);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_int_equal(got->save_sent, DIRECTORY_SAVE_SENT_DEFAULT);
	directory_user_free(&got);

	directory_user_init(&u, "bob", DIRECTORY_KIND_USER);
	u.save_sent = DIRECTORY_SAVE_SENT_OFF;
	assert_int_equal(directory_user_add(dir, &u, &error), 1);
	directory_user_clear(&u);
	assert_int_equal(directory_user_get(dir, "bob", &got, &error), 1);
	assert_int_equal(got->save_sent, DIRECTORY_SAVE_SENT_OFF);
	directory_user_free(&got);
	directory_close(&dir);

	enum directory_save_sent s;
	assert_int_equal(directory_save_sent_parse("On", &s, &error), 0);
	assert_int_equal(s, DIRECTORY_SAVE_SENT_ON);
	assert_int_equal(directory_save_sent_parse("default", &s, &error), 0);
	assert_int_equal(s, DIRECTORY_SAVE_SENT_DEFAULT);
	assert_int_equal(directory_save_sent_parse("maybe", &s, &error), -1);
	expect_error(error, "save-sent: must be on, off or default");
	free(error);
	assert_string_equal(directory_save_sent_name(DIRECTORY_SAVE_SENT_OFF), "off");
}

static void test_users(void **state)
{
	struct directory *dir = create_dir();
	char *error = NULL, *hash = NULL;
	struct directory_user u;
	directory_user_init(&u, "Alice", DIRECTORY_KIND_USER);
	assert_true(u.pop3_enabled && u.imap4_enabled && u.smtp_enabled);
	assert_int_equal(password_hash("secret", &hash, &error), 0);
	u.password_hash = hash;
	u.quota_bytes = 1024ULL * 1024 * 1024;
	u.send_as = strdup("alice@example.com");
	assert_int_equal(directory_user_add(dir, &u, &error), 1);

	/* the same name in another case is taken */
	free(u.name);
	u.name = strdup("aLiCe");
	assert_int_equal(directory_user_add(dir, &u, &error), 0);
	expect_error(error, "already exists (as 'Alice'");
	free(error);
	directory_user_clear(&u);

	/* guests and admins start with their switches off */
	directory_user_init(&u, "guest1", DIRECTORY_KIND_GUEST);
	assert_false(u.pop3_enabled || u.imap4_enabled || u.smtp_enabled);
	assert_int_equal(directory_user_add(dir, &u, &error), 1);
	directory_user_clear(&u);

	/* refusals: bad name, missing back end, bad hash, bad send-as */
	directory_user_init(&u, "a/b", DIRECTORY_KIND_USER);
	assert_int_equal(directory_user_add(dir, &u, &error), -1);
	expect_error(error, "'/' is not allowed");
	free(error);
	directory_user_clear(&u);
	directory_user_init(&u, "bob", DIRECTORY_KIND_USER);
	free(u.backend);
	u.backend = strdup("mbx9");
	assert_int_equal(directory_user_add(dir, &u, &error), -1);
	expect_error(error, "back end 'mbx9' does not exist (back ends: local)");
	free(error);
	free(u.backend);
	u.backend = strdup("local");
	u.password_hash = strdup("$1$abc$def");
	assert_int_equal(directory_user_add(dir, &u, &error), -1);
	expect_error(error, "password hash");
	free(error);
	free(u.password_hash);
	u.password_hash = NULL;
	u.send_as = strdup("not-an-address");
	assert_int_equal(directory_user_add(dir, &u, &error), -1);
	expect_error(error, "send-as");
	free(error);
	directory_user_clear(&u);

	struct directory_user *users = NULL;
	size_t count = 0;
	assert_int_equal(directory_user_list(dir, &users, &count, &error), 0);
	assert_int_equal(count, 2);
	assert_string_equal(users[0].name, "Alice");
	assert_string_equal(users[1].name, "guest1");
	assert_int_equal(users[1].kind, DIRECTORY_KIND_GUEST);
	directory_user_list_free(&users, count);
	assert_null(users);

	struct directory_user *got = NULL;
	assert_int_equal(directory_user_get(dir, "ALICE", &got, &error), 1);
	assert_string_equal(got->name, "Alice");
	assert_int_equal(got->kind, DIRECTORY_KIND_USER);
	assert_int_equal(got->quota_bytes, 1024ULL * 1024 * 1024);
	assert_string_equal(got->send_as, "alice@example.com");
	assert_string_equal(got->backend, "local");
	assert_true(got->created > 0);
	assert_int_equal(password_verify("secret", got->password_hash), 1);
	directory_user_free(&got);
	assert_null(got);
	assert_int_equal(directory_user_get(dir, "nobody", &got, &error), 0);
	assert_null(got);

	/* set_fields: all or nothing */
	struct directory_user v = {0};
	v.pop3_enabled = false;
	v.backend = "mbx9";
	assert_int_equal(directory_user_set_fields(dir, "alice",
						   DIRECTORY_FIELD_POP3 | DIRECTORY_FIELD_BACKEND,
						   &v, &error),
			 -1);
	expect_error(error, "back end 'mbx9' does not exist");
	free(error);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_true(got->pop3_enabled);
	directory_user_free(&got);
	v.backend = "local";
	v.kind = DIRECTORY_KIND_SHARED;
	v.quota_bytes = 0;
	v.send_as = "x@y.z , w@y.z";
	assert_int_equal(directory_user_set_fields(
			     dir, "alice",
			     DIRECTORY_FIELD_POP3 | DIRECTORY_FIELD_BACKEND | DIRECTORY_FIELD_KIND |
				 DIRECTORY_FIELD_QUOTA | DIRECTORY_FIELD_SEND_AS,
			     &v, &error),
			 1);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_false(got->pop3_enabled);
	assert_true(got->imap4_enabled);
	assert_int_equal(got->kind, DIRECTORY_KIND_SHARED);
	assert_int_equal(got->quota_bytes, 0);
	assert_string_equal(got->send_as, "x@y.z, w@y.z");
	directory_user_free(&got);
	assert_int_equal(directory_user_set_fields(dir, "nobody", DIRECTORY_FIELD_POP3, &v, &error),
			 0);
	assert_int_equal(directory_user_set_fields(dir, "alice", 0, &v, &error), 1);

	/* passwords */
	assert_int_equal(password_hash("new", &hash, &error), 0);
	assert_int_equal(directory_user_set_password(dir, "alice", hash, &error), 1);
	assert_int_equal(directory_user_set_password(dir, "nobody", hash, &error), 0);
	free(hash);
	assert_int_equal(directory_user_set_password(dir, "alice", "garbage", &error), -1);
	free(error);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_int_equal(password_verify("new", got->password_hash), 1);
	directory_user_free(&got);
	assert_int_equal(directory_user_set_password(dir, "alice", NULL, &error), 1);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 1);
	assert_null(got->password_hash);
	directory_user_free(&got);

	/* delete */
	assert_int_equal(directory_user_del(dir, "ALICE", &error), 1);
	assert_int_equal(directory_user_del(dir, "alice", &error), 0);
	assert_int_equal(directory_user_get(dir, "alice", &got, &error), 0);
	directory_close(&dir);
}

static void test_readonly(void **state)
{
	struct directory *dir = create_dir();
	struct directory_user u;
	char *error = NULL;
	directory_user_init(&u, "carol", DIRECTORY_KIND_USER);
	assert_int_equal(directory_user_add(dir, &u, &error), 1);
	directory_close(&dir);
	assert_int_equal(directory_open(tmpdir, true, &dir, &error), 0);
	struct directory_user *got = NULL;
	assert_int_equal(directory_user_get(dir, "carol", &got, &error), 1);
	directory_user_free(&got);
	free(u.name);
	u.name = strdup("dave");
	assert_int_equal(directory_user_add(dir, &u, &error), -1);
	assert_non_null(error);
	free(error);
	directory_user_clear(&u);
	directory_close(&dir);
}

static void test_backends(void **state)
{
	struct directory *dir = create_dir();
	char *error = NULL;
	struct directory_backend b = {.name = "mbx1", .imap4_address = "[::1]:1143"};
	assert_int_equal(directory_backend_add(dir, &b, &error), 1);
	assert_int_equal(directory_backend_add(dir, &b, &error), 0);
	expect_error(error, "already exists");
	free(error);
	struct directory_backend bad = {.name = "mbx2", .pop3_address = "somewhere:110"};
	assert_int_equal(directory_backend_add(dir, &bad, &error), -1);
	expect_error(error, "POP3 address 'somewhere:110'");
	free(error);
	struct directory_backend badname = {.name = "a@b"};
	assert_int_equal(directory_backend_add(dir, &badname, &error), -1);
	expect_error(error, "back-end name 'a@b'");
	free(error);
	struct directory_backend *got = NULL;
	assert_int_equal(directory_backend_get(dir, "MBX1", &got, &error), 1);
	assert_string_equal(got->imap4_address, "[::1]:1143");
	assert_string_equal(got->pop3_address, "");
	directory_backend_free(&got);
	assert_int_equal(directory_backend_get(dir, "mbx2", &got, &error), 0);
	struct directory_backend *list = NULL;
	size_t count = 0;
	assert_int_equal(directory_backend_list(dir, &list, &count, &error), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].name, "local");
	assert_string_equal(list[0].lmtp_address, "unix:/tmp/lmtp.sock");
	assert_string_equal(list[1].name, "mbx1");
	directory_backend_list_free(&list, count);
	directory_close(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_foreign_and_newer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_create, setup, teardown),
	    cmocka_unit_test(test_user_names),
	    cmocka_unit_test(test_kinds_and_send_as),
	    cmocka_unit_test_setup_teardown(test_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_sent_and_migration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backends, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
