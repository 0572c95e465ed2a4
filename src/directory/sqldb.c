#include "directory/sqldb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"

#define SQLDB_BUSY_TIMEOUT_MS 5000

int sqldb_datadir_check(const char *datadir, char **error_r)
{
	struct stat st;
	if (stat(datadir, &st) < 0) {
		if (errno == ENOENT)
			*error_r =
			    xasprintf("data dir '%s' does not exist (create an instance with "
				      "'posternctl -d %s init --domain DOMAIN')",
				      datadir, datadir);
		else
			*error_r = xasprintf("data dir '%s': %s", datadir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("data dir '%s' is not a directory", datadir);
		return -1;
	}
	return 0;
}

char *sqldb_error(sqlite3 *db, const char *context)
{
	const char *path = sqlite3_db_filename(db, "main");
	return xasprintf("%s: %s: %s", path == NULL || *path == '\0' ? "database" : path, context,
			 sqlite3_errmsg(db));
}

int sqldb_exec(sqlite3 *db, const char *sql, char **error_r)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		const char *path = sqlite3_db_filename(db, "main");
		*error_r = xasprintf("%s: %s", path == NULL || *path == '\0' ? "database" : path,
				     msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int sqldb_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r)
{
	if (sqlite3_prepare_v2(db, sql, -1, stmt_r, NULL) != SQLITE_OK) {
		*error_r = sqldb_error(db, "preparing a query");
		*stmt_r = NULL;
		return -1;
	}
	return 0;
}

int sqldb_begin(sqlite3 *db, char **error_r)
{
	return sqldb_exec(db, "BEGIN IMMEDIATE", error_r);
}

int sqldb_commit(sqlite3 *db, char **error_r)
{
	if (sqldb_exec(db, "COMMIT", error_r) < 0) {
		sqldb_rollback(db);
		return -1;
	}
	return 0;
}

void sqldb_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

char *sqldb_column_text(sqlite3_stmt *stmt, int col, bool null_as_empty)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);
	if (text == NULL)
		return null_as_empty ? xstrdup("") : NULL;
	return xstrdup((const char *)text);
}

void sqldb_close(sqlite3 **db)
{
	if (*db == NULL)
		return;
	sqlite3_close_v2(*db);
	*db = NULL;
}

/* One integer PRAGMA. Returns 0 with *value_r or -1 with *error_r. */
static int sqldb_pragma_int(sqlite3 *db, const char *path, const char *pragma, long long *value_r,
			    char **error_r)
{
	char *sql = xasprintf("PRAGMA %s", pragma);
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	free(sql);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW)
			*value_r = sqlite3_column_int64(stmt, 0);
	}
	sqlite3_finalize(stmt);
	if (rc == SQLITE_ROW)
		return 0;
	int code = sqlite3_errcode(db) & 0xff;
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		*error_r = xasprintf("%s: not a SQLite database, or a damaged one (%s)", path,
				     sqlite3_errmsg(db));
	else
		*error_r = xasprintf("%s: cannot read it: %s", path, sqlite3_errmsg(db));
	return -1;
}

/* Apply migrations from the file's version to schema->version in one
 * transaction. The version is read again under the write lock, so two
 * processes opening an old file at once migrate it once. */
static int sqldb_migrate(sqlite3 *db, const char *path, const struct sqldb_schema *schema,
			 bool set_application_id, char **error_r)
{
	if (sqldb_begin(db, error_r) < 0)
		return -1;
	long long version;
	if (sqldb_pragma_int(db, path, "user_version", &version, error_r) < 0) {
		sqldb_rollback(db);
		return -1;
	}
	if (set_application_id) {
		char *sql = xasprintf("PRAGMA application_id = %d", (int)schema->application_id);
		int ret = sqldb_exec(db, sql, error_r);
		free(sql);
		if (ret < 0) {
			sqldb_rollback(db);
			return -1;
		}
	}
	for (unsigned v = (unsigned)version; v < schema->version; v++) {
		char *error = NULL;
		if (sqldb_exec(db, schema->migrations[v], &error) < 0) {
			*error_r = xasprintf("%s: upgrading the schema to version %u failed: %s",
					     path, v + 1, error);
			free(error);
			sqldb_rollback(db);
			return -1;
		}
	}
	char *sql = xasprintf("PRAGMA user_version = %u", schema->version);
	int ret = sqldb_exec(db, sql, error_r);
	free(sql);
	if (ret < 0) {
		sqldb_rollback(db);
		return -1;
	}
	return sqldb_commit(db, error_r);
}

/* Check the file's identity and version. Nothing is written here. */
static int sqldb_check(sqlite3 *db, const char *path, const struct sqldb_schema *schema,
		       enum sqldb_mode mode, long long *version_r, char **error_r)
{
	long long app_id, version;
	if (sqldb_pragma_int(db, path, "application_id", &app_id, error_r) < 0 ||
	    sqldb_pragma_int(db, path, "user_version", &version, error_r) < 0)
		return -1;
	if (mode == SQLDB_CREATE) {
		*version_r = version;
		return 0;
	}
	if (app_id != schema->application_id) {
		if (app_id == 0 && version == 0)
			*error_r =
			    xasprintf("%s: not a postern %s (it is an empty or foreign SQLite "
				      "database)",
				      path, schema->what);
		else
			*error_r =
			    xasprintf("%s: not a postern %s (application id 0x%08llx, "
				      "expected 0x%08x)",
				      path, schema->what, (unsigned long long)(uint32_t)app_id,
				      (unsigned)schema->application_id);
		return -1;
	}
	if (version > (long long)schema->version) {
		*error_r = xasprintf("%s: schema version %lld is newer than this postern knows "
				     "(%u); run a newer postern on this data dir",
				     path, version, schema->version);
		return -1;
	}
	if (version < (long long)schema->version && mode == SQLDB_READONLY) {
		*error_r = xasprintf("%s: schema version %lld needs an upgrade to %u; open it "
				     "read-write once (any posternctl command does)",
				     path, version, schema->version);
		return -1;
	}
	*version_r = version;
	return 0;
}

int sqldb_open(const char *path, const struct sqldb_schema *schema, enum sqldb_mode mode,
	       sqlite3 **db_r, char **error_r)
{
	*db_r = NULL;
	struct stat st;
	if (mode == SQLDB_CREATE) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, schema->file_mode);
		if (fd < 0) {
			*error_r = xasprintf("%s: cannot create: %s", path, strerror(errno));
			return -1;
		}
		/* the umask must not widen or narrow what the schema asks for */
		if (fchmod(fd, schema->file_mode) < 0) {
			*error_r = xasprintf("%s: chmod: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		close(fd);
	} else if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			*error_r = xasprintf("%s does not exist: the data dir holds no postern "
					     "instance (create one with 'posternctl init')",
					     path);
		else
			*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	} else if (!S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s is not a regular file", path);
		return -1;
	} else if (st.st_size == 0) {
		*error_r = xasprintf("%s is empty: not a postern %s", path, schema->what);
		return -1;
	}

	int flags = (mode == SQLDB_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		    SQLITE_OPEN_NOMUTEX;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("%s: cannot open: %s", path,
				     db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, SQLDB_BUSY_TIMEOUT_MS);
	if (mode != SQLDB_READONLY && sqlite3_db_readonly(db, "main") == 1) {
		*error_r = xasprintf("%s: not writable by this user", path);
		goto fail;
	}

	long long version;
	if (sqldb_check(db, path, schema, mode, &version, error_r) < 0)
		goto fail;
	if (sqldb_exec(db, "PRAGMA foreign_keys = ON", error_r) < 0)
		goto fail;
	if (mode != SQLDB_READONLY) {
		/* WAL is persistent in the file; setting it again is a no-op */
		if (sqldb_exec(db, "PRAGMA journal_mode = WAL", error_r) < 0)
			goto fail;
		if (version < (long long)schema->version &&
		    sqldb_migrate(db, path, schema, mode == SQLDB_CREATE, error_r) < 0)
			goto fail;
	}
	*db_r = db;
	return 0;

fail:
	sqlite3_close_v2(db);
	if (mode == SQLDB_CREATE) {
		unlink(path);
		char *side = xasprintf("%s-wal", path);
		unlink(side);
		free(side);
		side = xasprintf("%s-shm", path);
		unlink(side);
		free(side);
	}
	return -1;
}
