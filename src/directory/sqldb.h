#ifndef POSTERN_SQLDB_H
#define POSTERN_SQLDB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

/* Opening, checking and migrating the instance's SQLite databases
 * (directory.db, settings.db). Both use the same rules: WAL journal,
 * busy_timeout 5000 ms, foreign keys on, PRAGMA application_id to tell the
 * files apart, PRAGMA user_version as the schema version and an ordered array
 * of SQL migration steps applied in one transaction.
 *
 * Opening an existing database never creates or changes anything when the
 * file is missing, is not SQLite, belongs to another application or has a
 * schema newer than this code knows; the error then names the path and what
 * is wrong. */

struct sqldb_schema {
	const char *what;	       /* "directory database", for messages */
	int32_t application_id;	       /* PRAGMA application_id of the file */
	mode_t file_mode;	       /* permissions of a created file */
	const char *const *migrations; /* migrations[i] takes version i to i + 1 */
	unsigned version;	       /* the current version: number of migrations */
};

enum sqldb_mode {
	SQLDB_READONLY,	 /* read only, no migration (an old schema is an error) */
	SQLDB_READWRITE, /* read-write, migrates an old schema */
	SQLDB_CREATE,	 /* the file must not exist; create it at the current version */
};

/* Check that datadir exists and is a directory. Returns 0, or -1 with
 * *error_r (malloc'ed) telling how to create an instance. */
int sqldb_datadir_check(const char *datadir, char **error_r);

/* Open (or create) the database at path. Returns 0 with *db_r, or -1 with
 * *error_r (malloc'ed) naming path. A file created by a failed
 * SQLDB_CREATE is removed again. */
int sqldb_open(const char *path, const struct sqldb_schema *schema, enum sqldb_mode mode,
	       sqlite3 **db_r, char **error_r);

/* Close and clear *db (NULL is fine). */
void sqldb_close(sqlite3 **db);

/* An error text "PATH: CONTEXT: SQLITE-MESSAGE" (malloc'ed). */
char *sqldb_error(sqlite3 *db, const char *context);

/* Run SQL without results. Returns 0, or -1 with *error_r. */
int sqldb_exec(sqlite3 *db, const char *sql, char **error_r);

/* Prepare one statement. Returns 0 with *stmt_r, or -1 with *error_r. */
int sqldb_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt_r, char **error_r);

/* BEGIN IMMEDIATE (takes the write lock at once, waiting up to the busy
 * timeout), COMMIT, ROLLBACK. begin and commit return 0 or -1 with
 * *error_r; rollback ignores errors (it is the error path). */
int sqldb_begin(sqlite3 *db, char **error_r);
int sqldb_commit(sqlite3 *db, char **error_r);
void sqldb_rollback(sqlite3 *db);

/* A column as a malloc'ed string ("" for NULL when null_as_empty, else NULL). */
char *sqldb_column_text(sqlite3_stmt *stmt, int col, bool null_as_empty);

#endif
