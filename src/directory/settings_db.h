#ifndef POSTERN_SETTINGS_DB_H
#define POSTERN_SETTINGS_DB_H

#include <stdbool.h>
#include <stddef.h>

/* Per-service settings stored in DATADIR/settings.db (SQLite; see sqldb.h
 * for the open rules). It holds no secrets: the master and workers may read
 * it.
 *
 * The effective value of a key is, first found:
 *   1. the value an administrator set (table settings),
 *   2. the instance default written by init (table instance_defaults), for
 *      values that depend on the instance: host name, --bind, --port-offset,
 *   3. the schema default from src/lib/settings.c.
 * `reset` removes (1), so a key goes back to (2) or (3).
 *
 * Every value written is validated and normalised with settings_validate().
 * A stored value that a newer schema refuses is ignored with a warning and
 * the default is used. */

#define SETTINGS_DB_FILE "settings.db"

struct settings_db;

/* Open DATADIR/settings.db. Returns 0 with *db_r, or -1 with *error_r
 * (malloc'ed) naming the path and what is wrong; nothing is created or
 * changed then. */
int settings_db_open(const char *datadir, bool readonly, struct settings_db **db_r, char **error_r);

/* Create DATADIR/settings.db (it must not exist), mode 0644. Returns 0 with
 * *db_r open read-write, or -1 with *error_r and no file left behind. */
int settings_db_create(const char *datadir, struct settings_db **db_r, char **error_r);

/* Close and clear *db (NULL is fine). */
void settings_db_close(struct settings_db **db);

/* The effective value of one key. Returns 0 with *value_r (malloc'ed), or -1
 * with *error_r for an unknown service or key or a database error. */
int settings_db_get(struct settings_db *db, const char *service, const char *key, char **value_r,
		    char **error_r);

/* Whether an administrator (or init) set the key explicitly. Returns 1 set,
 * 0 not set, -1 error. */
int settings_db_is_set(struct settings_db *db, const char *service, const char *key,
		       char **error_r);

/* Set n keys of one service. Every pair is validated first (a key given
 * twice is an error too); then all are written in one transaction. Returns
 * 0, or -1 with *error_r naming the first bad key and its accepted form, and
 * nothing written. */
int settings_db_set(struct settings_db *db, const char *service, size_t n, const char *const keys[],
		    const char *const values[], char **error_r);

/* Like settings_db_set(), and also record the values as this instance's
 * defaults (what reset goes back to). Used by init. */
int settings_db_set_instance_defaults(struct settings_db *db, const char *service, size_t n,
				      const char *const keys[], const char *const values[],
				      char **error_r);

/* Remove the explicit values of n keys (all validated as known keys first),
 * in one transaction. Resetting a key that is not set is not an error.
 * Returns 0 or -1 with *error_r and nothing changed. */
int settings_db_reset(struct settings_db *db, const char *service, size_t n,
		      const char *const keys[], char **error_r);

/* Call cb with every key of the service in schema order and its effective
 * value. Values are read in one transaction, so they are consistent.
 * Returns 0, or -1 with *error_r (cb may have been called for some keys). */
int settings_db_foreach(struct settings_db *db, const char *service,
			void (*cb)(void *ctx, const char *key, const char *value), void *ctx,
			char **error_r);

#endif
