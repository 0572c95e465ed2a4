#include "directory/settings_db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "directory/sqldb.h"
#include "lib/log.h"
#include "lib/settings.h"
#include "lib/xalloc.h"

struct settings_db {
	sqlite3 *db;
};

/* Schema steps; settings_db_migrations[i] takes version i to i + 1. Never
 * edit a released step: append a new one. */
static const char *const settings_db_migrations[] = {
    /* 1: explicit values and instance defaults */
    "CREATE TABLE settings ("
    "  service TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  changed INTEGER NOT NULL,"
    "  PRIMARY KEY (service, key));"
    "CREATE TABLE instance_defaults ("
    "  service TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (service, key));",
};

static const struct sqldb_schema settings_db_schema = {
    .what = "settings database",
    .application_id = 0x50535453, /* "PSTS" */
    .file_mode = 0644,
    .migrations = settings_db_migrations,
    .version = sizeof(settings_db_migrations) / sizeof(settings_db_migrations[0]),
};

static int settings_db_open_mode(const char *datadir, enum sqldb_mode mode,
				 struct settings_db **db_r, char **error_r)
{
	*db_r = NULL;
	if (sqldb_datadir_check(datadir, error_r) < 0)
		return -1;
	char *path = xasprintf("%s/%s", datadir, SETTINGS_DB_FILE);
	sqlite3 *sql;
	int ret = sqldb_open(path, &settings_db_schema, mode, &sql, error_r);
	free(path);
	if (ret < 0)
		return -1;
	struct settings_db *db = xcalloc(1, sizeof(*db));
	db->db = sql;
	*db_r = db;
	return 0;
}

int settings_db_open(const char *datadir, bool readonly, struct settings_db **db_r, char **error_r)
{
	return settings_db_open_mode(datadir, readonly ? SQLDB_READONLY : SQLDB_READWRITE, db_r,
				     error_r);
}

int settings_db_create(const char *datadir, struct settings_db **db_r, char **error_r)
{
	return settings_db_open_mode(datadir, SQLDB_CREATE, db_r, error_r);
}

void settings_db_close(struct settings_db **db)
{
	if (*db == NULL)
		return;
	sqldb_close(&(*db)->db);
	free(*db);
	*db = NULL;
}

static int settings_db_check_key(const char *service, const char *key, char **error_r)
{
	char *norm;
	if (settings_default(service, key) != NULL)
		return 0;
	/* let the schema produce its "unknown service/key" message */
	if (settings_validate(service, key, "", &norm, error_r) == 0) {
		free(norm);
		*error_r = xasprintf("%s: unknown setting '%s'", service, key);
	}
	return -1;
}

/* A stored value from table, if any and still valid: 1 with *value_r,
 * 0 none, -1 error. */
static int settings_db_lookup(struct settings_db *db, const char *table, const char *service,
			      const char *key, char **value_r, char **error_r)
{
	char *sql = xasprintf("SELECT value FROM %s WHERE service = ? AND key = ?", table);
	sqlite3_stmt *stmt;
	int ret = sqldb_prepare(db->db, sql, &stmt, error_r);
	free(sql);
	if (ret < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		char *stored = sqldb_column_text(stmt, 0, true);
		char *norm = NULL, *error = NULL;
		if (settings_validate(service, key, stored, &norm, &error) < 0) {
			log_warn("settings.db: ignoring a stored value the schema refuses: %s",
				 error);
			free(error);
			ret = 0;
		} else {
			*value_r = norm;
			ret = 1;
		}
		free(stored);
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = sqldb_error(db->db, "reading a setting");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* effective value, the key already known to be valid */
static int settings_db_effective(struct settings_db *db, const char *service, const char *key,
				 char **value_r, char **error_r)
{
	int ret = settings_db_lookup(db, "settings", service, key, value_r, error_r);
	if (ret == 0)
		ret = settings_db_lookup(db, "instance_defaults", service, key, value_r, error_r);
	if (ret < 0)
		return -1;
	if (ret == 0)
		*value_r = xstrdup(settings_default(service, key));
	return 0;
}

int settings_db_get(struct settings_db *db, const char *service, const char *key, char **value_r,
		    char **error_r)
{
	*value_r = NULL;
	if (settings_db_check_key(service, key, error_r) < 0)
		return -1;
	return settings_db_effective(db, service, key, value_r, error_r);
}

int settings_db_is_set(struct settings_db *db, const char *service, const char *key, char **error_r)
{
	if (settings_db_check_key(service, key, error_r) < 0)
		return -1;
	char *value = NULL;
	int ret = settings_db_lookup(db, "settings", service, key, &value, error_r);
	free(value);
	return ret;
}

/* Validate all pairs; on success *norm_r is an array of n normalised values. */
static int settings_db_validate_all(const char *service, size_t n, const char *const keys[],
				    const char *const values[], char ***norm_r, char **error_r)
{
	char **norm = xcalloc(n + 1, sizeof(*norm));
	for (size_t i = 0; i < n; i++) {
		int ret = settings_validate(service, keys[i], values[i], &norm[i], error_r);
		for (size_t j = 0; ret == 0 && j < i; j++) {
			if (strcmp(keys[j], keys[i]) == 0) {
				*error_r = xasprintf("%s: %s: given twice", service, keys[i]);
				ret = -1;
			}
		}
		if (ret < 0) {
			for (size_t j = 0; j <= i; j++)
				free(norm[j]);
			free(norm);
			return -1;
		}
	}
	*norm_r = norm;
	return 0;
}

static int settings_db_write(struct settings_db *db, const char *sql, const char *service,
			     const char *key, const char *value, char **error_r)
{
	sqlite3_stmt *stmt;
	if (sqldb_prepare(db->db, sql, &stmt, error_r) < 0)
		return -1;
	sqlite3_bind_text(stmt, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	if (value != NULL) {
		sqlite3_bind_text(stmt, 3, value, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 4, (sqlite3_int64)time(NULL));
	}
	int ret = 0;
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		*error_r = sqldb_error(db->db, "writing a setting");
		ret = -1;
	}
	sqlite3_finalize(stmt);
	return ret;
}

static int settings_db_set_full(struct settings_db *db, const char *service, size_t n,
				const char *const keys[], const char *const values[],
				bool instance_default, char **error_r)
{
	char **norm;
	if (settings_db_validate_all(service, n, keys, values, &norm, error_r) < 0)
		return -1;
	int ret = sqldb_begin(db->db, error_r);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = settings_db_write(db,
					"INSERT OR REPLACE INTO settings (service, key, value, "
					"changed) VALUES (?1, ?2, ?3, ?4)",
					service, keys[i], norm[i], error_r);
		if (ret == 0 && instance_default)
			ret = settings_db_write(db,
						"INSERT OR REPLACE INTO instance_defaults "
						"(service, key, value) VALUES (?1, ?2, ?3)",
						service, keys[i], norm[i], error_r);
	}
	if (ret == 0)
		ret = sqldb_commit(db->db, error_r);
	else
		sqldb_rollback(db->db);
	for (size_t i = 0; i < n; i++)
		free(norm[i]);
	free(norm);
	return ret;
}

int settings_db_set(struct settings_db *db, const char *service, size_t n, const char *const keys[],
		    const char *const values[], char **error_r)
{
	return settings_db_set_full(db, service, n, keys, values, false, error_r);
}

int settings_db_set_instance_defaults(struct settings_db *db, const char *service, size_t n,
				      const char *const keys[], const char *const values[],
				      char **error_r)
{
	return settings_db_set_full(db, service, n, keys, values, true, error_r);
}

int settings_db_reset(struct settings_db *db, const char *service, size_t n,
		      const char *const keys[], char **error_r)
{
	for (size_t i = 0; i < n; i++)
		if (settings_db_check_key(service, keys[i], error_r) < 0)
			return -1;
	int ret = sqldb_begin(db->db, error_r);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = settings_db_write(db, "DELETE FROM settings WHERE service = ?1 AND key = ?2",
					service, keys[i], NULL, error_r);
	if (ret == 0)
		ret = sqldb_commit(db->db, error_r);
	else
		sqldb_rollback(db->db);
	return ret;
}

struct settings_db_foreach_ctx {
	struct settings_db *db;
	const char *service;
	void (*cb)(void *ctx, const char *key, const char *value);
	void *ctx;
	char *error;
};

static void settings_db_foreach_key(void *ctx, const char *key, const char *help)
{
	struct settings_db_foreach_ctx *f = ctx;
	if (f->error != NULL)
		return;
	char *value;
	if (settings_db_effective(f->db, f->service, key, &value, &f->error) < 0)
		return;
	f->cb(f->ctx, key, value);
	free(value);
}

int settings_db_foreach(struct settings_db *db, const char *service,
			void (*cb)(void *ctx, const char *key, const char *value), void *ctx,
			char **error_r)
{
	if (!settings_service_known(service)) {
		char *norm;
		if (settings_validate(service, "startup", "", &norm, error_r) == 0)
			free(norm);
		return -1;
	}
	/* a read transaction gives one snapshot for all keys */
	if (sqldb_exec(db->db, "BEGIN", error_r) < 0)
		return -1;
	struct settings_db_foreach_ctx f = {
	    .db = db, .service = service, .cb = cb, .ctx = ctx, .error = NULL};
	settings_foreach_key(service, settings_db_foreach_key, &f);
	sqldb_rollback(db->db);
	if (f.error != NULL) {
		*error_r = f.error;
		return -1;
	}
	return 0;
}
