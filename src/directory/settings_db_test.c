#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/settings_db.h"
#include "lib/settings.h"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	strcpy(tmpdir, "/tmp/postern-settings-db-test-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void expect_error(const char *error, const char *want)
{
	assert_non_null(error);
	if (strstr(error, want) == NULL)
		fail_msg("error '%s' lacks '%s'", error, want);
}

static struct settings_db *create_db(void)
{
	struct settings_db *db = NULL;
	char *error = NULL;
	if (settings_db_create(tmpdir, &db, &error) != 0)
		fail_msg("create: %s", error);
	return db;
}

static void check_value(struct settings_db *db, const char *service, const char *key,
			const char *want)
{
	char *value = NULL, *error = NULL;
	if (settings_db_get(db, service, key, &value, &error) != 0)
		fail_msg("get %s %s: %s", service, key, error);
	if (strcmp(value, want) != 0)
		fail_msg("%s %s = '%s', expected '%s'", service, key, value, want);
	free(value);
}

static void test_create_and_open(void **state)
{
	struct settings_db *db = NULL;
	char *error = NULL;
	assert_int_equal(settings_db_open(tmpdir, false, &db, &error), -1);
	expect_error(error, "settings.db does not exist");
	free(error);
	assert_int_equal(settings_db_open("/nonexistent/x", true, &db, &error), -1);
	expect_error(error, "data dir '/nonexistent/x' does not exist");
	free(error);

	db = create_db();
	settings_db_close(&db);
	assert_null(db);
	char path[128];
	snprintf(path, sizeof(path), "%s/settings.db", tmpdir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(settings_db_create(tmpdir, &db, &error), -1);
	expect_error(error, "cannot create");
	free(error);
	assert_int_equal(settings_db_open(tmpdir, true, &db, &error), 0);
	settings_db_close(&db);

	/* the directory database is not a settings database */
	sqlite3 *sql;
	assert_int_equal(sqlite3_open(path, &sql), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sql, "PRAGMA application_id = 1", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(sql);
	assert_int_equal(settings_db_open(tmpdir, false, &db, &error), -1);
	expect_error(error, "not a postern settings database");
	free(error);
}

static void test_defaults(void **state)
{
	struct settings_db *db = create_db();
	check_value(db, "pop3", "startup", "manual");
	check_value(db, "http", "startup", "automatic");
	check_value(db, "pop3", "max-command-size", "512");
	check_value(db, "imap4", "ssl-bindings", "[::]:993, 0.0.0.0:993");
	char *value = NULL, *error = NULL;
	assert_int_equal(settings_db_get(db, "pop3", "nope", &value, &error), -1);
	expect_error(error, "pop3: unknown setting 'nope'");
	free(error);
	assert_int_equal(settings_db_get(db, "smtp", "workers", &value, &error), -1);
	expect_error(error, "unknown service 'smtp'");
	free(error);
	assert_int_equal(settings_db_is_set(db, "pop3", "startup", &error), 0);
	settings_db_close(&db);
}

static void test_set_and_reset(void **state)
{
	struct settings_db *db = create_db();
	char *error = NULL;
	const char *keys[] = {"max-command-size", "startup",
			      "pre-authenticated-connection-timeout"};
	const char *values[] = {"100", "Automatic", "2m"};
	assert_int_equal(settings_db_set(db, "pop3", 3, keys, values, &error), 0);
	check_value(db, "pop3", "max-command-size", "100");
	check_value(db, "pop3", "startup", "automatic");
	check_value(db, "pop3", "pre-authenticated-connection-timeout", "120");
	assert_int_equal(settings_db_is_set(db, "pop3", "startup", &error), 1);
	/* other services are untouched */
	check_value(db, "pop3-backend", "max-command-size", "512");

	/* one bad pair: nothing written */
	const char *keys2[] = {"max-command-size", "login-type"};
	const char *values2[] = {"200", "foo"};
	assert_int_equal(settings_db_set(db, "pop3", 2, keys2, values2, &error), -1);
	expect_error(error, "pop3: login-type: must be one of");
	free(error);
	check_value(db, "pop3", "max-command-size", "100");
	const char *values3[] = {"5", "secure-login"};
	assert_int_equal(settings_db_set(db, "pop3", 2, keys2, values3, &error), -1);
	expect_error(error, "pop3: max-command-size: must be a number from 40 to 1024 (got '5')");
	free(error);
	check_value(db, "pop3", "login-type", "secure-login");
	const char *keys4[] = {"workers", "workers"};
	const char *values4[] = {"2", "3"};
	assert_int_equal(settings_db_set(db, "pop3", 2, keys4, values4, &error), -1);
	expect_error(error, "given twice");
	free(error);
	check_value(db, "pop3", "workers", "1");
	const char *keys5[] = {"workers", "no-such-key"};
	assert_int_equal(settings_db_set(db, "pop3", 2, keys5, values4, &error), -1);
	expect_error(error, "unknown setting 'no-such-key'");
	free(error);
	check_value(db, "pop3", "workers", "1");

	/* reset */
	const char *rk[] = {"max-command-size", "startup"};
	assert_int_equal(settings_db_reset(db, "pop3", 2, rk, &error), 0);
	check_value(db, "pop3", "max-command-size", "512");
	check_value(db, "pop3", "startup", "manual");
	check_value(db, "pop3", "pre-authenticated-connection-timeout", "120");
	assert_int_equal(settings_db_reset(db, "pop3", 2, rk, &error), 0);
	const char *rk2[] = {"pre-authenticated-connection-timeout", "bogus"};
	assert_int_equal(settings_db_reset(db, "pop3", 2, rk2, &error), -1);
	expect_error(error, "bogus");
	free(error);
	check_value(db, "pop3", "pre-authenticated-connection-timeout", "120");
	settings_db_close(&db);

	/* values persist */
	assert_int_equal(settings_db_open(tmpdir, true, &db, &error), 0);
	check_value(db, "pop3", "pre-authenticated-connection-timeout", "120");
	settings_db_close(&db);
}

static void test_instance_defaults(void **state)
{
	struct settings_db *db = create_db();
	char *error = NULL;
	const char *keys[] = {"ssl-bindings", "internal-connection-settings"};
	const char *values[] = {"127.0.0.1:10993", "mx.example.com:10993:ssl"};
	assert_int_equal(settings_db_set_instance_defaults(db, "imap4", 2, keys, values, &error),
			 0);
	check_value(db, "imap4", "ssl-bindings", "127.0.0.1:10993");
	check_value(db, "imap4", "internal-connection-settings", "mx.example.com:10993:SSL");
	const char *k1[] = {"ssl-bindings"};
	const char *v1[] = {"[::1]:993"};
	assert_int_equal(settings_db_set(db, "imap4", 1, k1, v1, &error), 0);
	check_value(db, "imap4", "ssl-bindings", "[::1]:993");
	assert_int_equal(settings_db_reset(db, "imap4", 1, k1, &error), 0);
	/* reset goes back to the instance default, not the schema default */
	check_value(db, "imap4", "ssl-bindings", "127.0.0.1:10993");
	settings_db_close(&db);
}

struct collect {
	int n;
	char keys[64][64];
	char values[64][128];
};

static void collect_cb(void *ctx, const char *key, const char *value)
{
	struct collect *c = ctx;
	snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
	snprintf(c->values[c->n], sizeof(c->values[0]), "%s", value);
	c->n++;
}

static void test_foreach(void **state)
{
	struct settings_db *db = create_db();
	char *error = NULL;
	const char *k[] = {"banner"};
	const char *v[] = {"Hello."};
	assert_int_equal(settings_db_set(db, "imap4", 1, k, v, &error), 0);
	struct collect c = {0};
	assert_int_equal(settings_db_foreach(db, "imap4", collect_cb, &c, &error), 0);
	assert_int_equal(c.n, 23);
	assert_string_equal(c.keys[0], "startup");
	assert_string_equal(c.values[0], "manual");
	int found = 0;
	for (int i = 0; i < c.n; i++)
		if (strcmp(c.keys[i], "banner") == 0 && strcmp(c.values[i], "Hello.") == 0)
			found++;
	assert_int_equal(found, 1);
	c.n = 0;
	assert_int_equal(settings_db_foreach(db, "nope", collect_cb, &c, &error), -1);
	expect_error(error, "unknown service 'nope'");
	free(error);
	assert_int_equal(c.n, 0);
	settings_db_close(&db);
}

static void test_stale_value(void **state)
{
	struct settings_db *db = create_db();
	settings_db_close(&db);
	/* a value an older schema allowed but this one refuses is ignored */
	char path[128];
	snprintf(path, sizeof(path), "%s/settings.db", tmpdir);
	sqlite3 *sql;
	assert_int_equal(sqlite3_open(path, &sql), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sql,
				      "INSERT INTO settings VALUES ('pop3', 'workers', '999', 0)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(sql);
	char *error = NULL;
	assert_int_equal(settings_db_open(tmpdir, true, &db, &error), 0);
	check_value(db, "pop3", "workers", "1");
	settings_db_close(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_and_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_and_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instance_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_value, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
