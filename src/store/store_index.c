#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* The per-user index: SQLite in WAL mode with synchronous=FULL, so that a
 * committed UID or flag change survives a crash of the machine, not only of
 * the process. Schema changes are numbered migrations applied in order;
 * PRAGMA user_version records the last one applied. */

static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "INSERT INTO meta VALUES('quota_used', 0);"
    "INSERT INTO meta VALUES('last_uidvalidity', 0);"
    "CREATE TABLE folders("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " uidvalidity INTEGER NOT NULL,"
    " uidnext INTEGER NOT NULL DEFAULT 1,"
    " highestmodseq INTEGER NOT NULL DEFAULT 1,"
    " role TEXT,"
    " cur_mtime INTEGER NOT NULL DEFAULT 0,"
    " new_mtime INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE subscriptions(name TEXT PRIMARY KEY);"
    "CREATE TABLE messages("
    " id INTEGER PRIMARY KEY,"
    " folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,"
    " uid INTEGER NOT NULL,"
    " base TEXT NOT NULL,"
    " fname TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " internal_date INTEGER NOT NULL,"
    " sent_day INTEGER,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " keywords TEXT NOT NULL DEFAULT '',"
    " modseq INTEGER NOT NULL,"
    " guid TEXT NOT NULL,"
    " envelope TEXT, body TEXT, bodystructure TEXT,"
    " UNIQUE(folder_id, uid), UNIQUE(folder_id, base));"
    "CREATE TABLE parts("
    " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " section TEXT NOT NULL, is_message INTEGER NOT NULL,"
    " header_start INTEGER NOT NULL, body_start INTEGER NOT NULL,"
    " end_off INTEGER NOT NULL, lines INTEGER NOT NULL,"
    " PRIMARY KEY(message_id, section, is_message)) WITHOUT ROWID;"
    /* the search text, folded (store_fold) so that FTS and the file scan
     * agree; trigram terms find candidates for a substring and instr() on
     * the stored text confirms them (store_search.c) */
    "CREATE VIRTUAL TABLE fts USING fts5(header, body, tokenize='trigram case_sensitive 1',"
    " detail=column);"
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
    " DELETE FROM fts WHERE rowid = old.id; END;",
    /* 2: expunged UIDs with their MODSEQ, so that another process (and
     * later QRESYNC) can learn what went away since a MODSEQ */
    "CREATE TABLE expunged(folder_id INTEGER NOT NULL, uid INTEGER NOT NULL,"
    " modseq INTEGER NOT NULL, PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;"
    "CREATE INDEX messages_modseq ON messages(folder_id, modseq);"
    "CREATE TRIGGER messages_expunged AFTER DELETE ON messages BEGIN"
    " INSERT OR REPLACE INTO expunged SELECT old.folder_id, old.uid, highestmodseq + 1"
    " FROM folders WHERE id = old.folder_id; END;"
    "CREATE TRIGGER folders_gone AFTER DELETE ON folders BEGIN"
    " DELETE FROM expunged WHERE folder_id = old.id; END;",
    /* 3: OBJECTID (RFC 8474) MAILBOXID, kept by RENAME; SAVEDATE (RFC
     * 8514), the time a message entered its folder (older messages: their
     * internal date) */
    "ALTER TABLE folders ADD COLUMN mailbox_id TEXT;"
    "UPDATE folders SET mailbox_id = 'F' || lower(hex(randomblob(12)));"
    "ALTER TABLE messages ADD COLUMN save_date INTEGER;"
    "UPDATE messages SET save_date = internal_date;",
};

char *store_db_error(struct store *store, const char *what)
{
	return xasprintf("mail index %s/%s: %s: %s", store->path, STORE_INDEX_FILE, what,
			 sqlite3_errmsg(store->db));
}

int store_exec(struct store *store, const char *sql, char **error_r)
{
	char *msg = NULL;
	if (sqlite3_exec(store->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		*error_r = xasprintf("mail index %s/%s: %s", store->path, STORE_INDEX_FILE,
				     msg != NULL ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* The IMAP back end runs the same few dozen statements for every command:
 * they are prepared once per store and reset between uses, since parsing
 * and planning cost more than most of the queries themselves. */
static struct store_stmt_slot *stmt_slot(struct store *store, const char *sql)
{
	for (size_t i = 0; i < store->nstmts; i++)
		if (store->stmts[i].sql == sql)
			return &store->stmts[i];
	/* the same text from another file need not be the same constant */
	for (size_t i = 0; i < store->nstmts; i++)
		if (strcmp(store->stmts[i].sql, sql) == 0)
			return &store->stmts[i];
	return NULL;
}

sqlite3_stmt *store_stmt(struct store *store, const char *sql, char **error_r)
{
	struct store_stmt_slot *slot = stmt_slot(store, sql);
	if (slot != NULL && !slot->in_use) {
		slot->in_use = true;
		return slot->st;
	}
	bool keep = slot == NULL && store->nstmts < STORE_STMT_CACHE_MAX;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(store->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st,
			       NULL) != SQLITE_OK) {
		*error_r = store_db_error(store, "prepare");
		return NULL;
	}
	if (st == NULL) {
		*error_r = xasprintf("mail index %s/%s: no SQL statement in '%s'", store->path,
				     STORE_INDEX_FILE, sql);
		return NULL;
	}
	if (keep) {
		slot = &store->stmts[store->nstmts++];
		slot->sql = sql;
		slot->st = st;
		slot->in_use = true;
	}
	return st;
}

void store_stmt_done(struct store *store, sqlite3_stmt **stp)
{
	sqlite3_stmt *st = *stp;
	if (st == NULL)
		return;
	*stp = NULL;
	for (size_t i = 0; i < store->nstmts; i++)
		if (store->stmts[i].st == st) {
			/* reset ends its read of the database; cleared bindings
			 * hold no pointer into the caller's memory */
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			store->stmts[i].in_use = false;
			return;
		}
	sqlite3_finalize(st);
}

void store_stmt_cache_clear(struct store *store)
{
	for (size_t i = 0; i < store->nstmts; i++)
		sqlite3_finalize(store->stmts[i].st);
	memset(store->stmts, 0, sizeof(store->stmts));
	store->nstmts = 0;
}

void store_release_memory(struct store *store)
{
	size_t kept = 0;
	for (size_t i = 0; i < store->nstmts; i++) {
		if (store->stmts[i].in_use)
			store->stmts[kept++] = store->stmts[i];
		else
			sqlite3_finalize(store->stmts[i].st);
	}
	memset(&store->stmts[kept], 0, (store->nstmts - kept) * sizeof(store->stmts[0]));
	store->nstmts = kept;
	sqlite3_db_release_memory(store->db);
}

void store_index_close(struct store *store)
{
	store_stmt_cache_clear(store);
	if (store->db != NULL)
		sqlite3_close(store->db);
	store->db = NULL;
}

int store_index_open(struct store *store, char **error_r)
{
	char *path = xasprintf("%s/%s", store->path, STORE_INDEX_FILE);
	int rc =
	    sqlite3_open_v2(path, &store->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	free(path);
	if (rc != SQLITE_OK) {
		*error_r = store_db_error(store, "open");
		return -1;
	}
	sqlite3_busy_timeout(store->db, 5000);
	sqlite3_extended_result_codes(store->db, 1);
	/* the lmtp service opens a store once per delivery: the WAL stays
	 * between opens (no directory sync to create and delete it each
	 * time), and checkpoints are left to the writers' commits
	 * (wal_autocheckpoint) rather than made at every close. Commits are
	 * as durable as before (synchronous=FULL). */
	int persist = 1;
	sqlite3_file_control(store->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	sqlite3_db_config(store->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if (store_exec(store,
		       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		       "PRAGMA foreign_keys=ON;",
		       error_r) < 0)
		return -1;

	sqlite3_stmt *st = store_stmt(store, "PRAGMA user_version", error_r);
	if (st == NULL)
		return -1;
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	store_stmt_done(store, &st);
	int latest = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (version > latest) {
		*error_r = xasprintf("mail index %s/%s: schema version %d is newer than this "
				     "program's %d",
				     store->path, STORE_INDEX_FILE, version, latest);
		return -1;
	}
	for (int v = version; v < latest; v++) {
		if (store_exec(store, "BEGIN IMMEDIATE", error_r) < 0)
			return -1;
		/* under the write lock: another process opening a new store at
		 * the same moment (a delivery and a login) may have migrated it */
		st = store_stmt(store, "PRAGMA user_version", error_r);
		if (st == NULL) {
			store_index_rollback(store);
			return -1;
		}
		int now = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
		store_stmt_done(store, &st);
		if (now > v) {
			store_index_rollback(store);
			v = now - 1;
			continue;
		}
		char *set = xasprintf("PRAGMA user_version=%d", v + 1);
		int r = store_exec(store, migrations[v], error_r);
		if (r == 0)
			r = store_exec(store, set, error_r);
		free(set);
		if (r < 0 || store_exec(store, "COMMIT", error_r) < 0) {
			store_index_rollback(store);
			return -1;
		}
	}
	return 0;
}

int store_index_run(struct store *store, const char *sql, int64_t a, int64_t b, const char *what,
		    char **error_r)
{
	sqlite3_stmt *st = store_stmt(store, sql, error_r);
	if (st == NULL)
		return -1;
	int nparams = sqlite3_bind_parameter_count(st);
	if (nparams >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (nparams >= 2)
		sqlite3_bind_int64(st, 2, b);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, what);
		return -1;
	}
	return 0;
}

int store_index_begin(struct store *store, char **error_r)
{
	return store_index_run(store, "BEGIN IMMEDIATE", 0, 0, "begin", error_r);
}

int store_index_begin_lazy(struct store *store, char **error_r)
{
	/* synchronous=NORMAL in WAL mode: the commit is written to the WAL
	 * but not flushed; the next durable commit or checkpoint flushes it */
	if (store_exec(store, "PRAGMA synchronous=NORMAL", error_r) < 0)
		return -1;
	store->lazy_txn = true;
	if (store_index_begin(store, error_r) < 0) {
		store_index_rollback(store);
		return -1;
	}
	return 0;
}

/* Back to durable commits after a lazy transaction. */
static void store_index_end_lazy(struct store *store)
{
	if (store->lazy_txn) {
		sqlite3_exec(store->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		store->lazy_txn = false;
	}
}

int store_index_commit(struct store *store, char **error_r)
{
	if (store_index_run(store, "COMMIT", 0, 0, "commit", error_r) < 0) {
		store_index_rollback(store);
		return -1;
	}
	store_index_end_lazy(store);
	return 0;
}

void store_index_rollback(struct store *store)
{
	char *error = NULL;
	if (!sqlite3_get_autocommit(store->db) &&
	    store_index_run(store, "ROLLBACK", 0, 0, "rollback", &error) < 0)
		free(error);
	store_index_end_lazy(store);
}

int store_index_folder_mailbox_id(struct store *store, int64_t id, char *buf, size_t size,
				  char **error_r)
{
	sqlite3_stmt *st =
	    store_stmt(store, "SELECT mailbox_id FROM folders WHERE id = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	buf[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	store_stmt_done(store, &st);
	return 0;
}

int store_index_folder_get(struct store *store, const char *name, int64_t *id_r,
			   uint32_t *uidvalidity_r, uint32_t *uidnext_r, uint64_t *modseq_r,
			   char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "SELECT id, uidvalidity, uidnext, highestmodseq FROM folders "
				      "WHERE name = ?",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int ret;
	if (rc == SQLITE_ROW) {
		if (id_r != NULL)
			*id_r = sqlite3_column_int64(st, 0);
		if (uidvalidity_r != NULL)
			*uidvalidity_r = (uint32_t)sqlite3_column_int64(st, 1);
		if (uidnext_r != NULL)
			*uidnext_r = (uint32_t)sqlite3_column_int64(st, 2);
		if (modseq_r != NULL)
			*modseq_r = (uint64_t)sqlite3_column_int64(st, 3);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		*error_r = store_db_error(store, "folder lookup");
		ret = -1;
	}
	store_stmt_done(store, &st);
	return ret;
}

/* Insert a folder row with a new UIDVALIDITY (greater than any handed out
 * before in this store, so a deleted and re-created folder never repeats
 * one). Must run inside a transaction. */
int store_index_folder_add(struct store *store, const char *name, const char *role, char **error_r)
{
	sqlite3_stmt *st =
	    store_stmt(store, "SELECT value FROM meta WHERE key='last_uidvalidity'", error_r);
	if (st == NULL)
		return -1;
	int64_t last = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	store_stmt_done(store, &st);
	int64_t uv = (int64_t)time(NULL);
	if (uv <= last)
		uv = last + 1;
	if (uv > (int64_t)UINT32_MAX)
		uv = 1;
	st = store_stmt(store, "UPDATE meta SET value = ? WHERE key='last_uidvalidity'", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, uv);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "uidvalidity");
		return -1;
	}
	st = store_stmt(store,
			"INSERT INTO folders(name, uidvalidity, role, mailbox_id) "
			"VALUES(?, ?, ?, 'F' || lower(hex(randomblob(12))))",
			error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uv);
	if (role != NULL)
		sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "folder insert");
		return -1;
	}
	return 0;
}

int store_index_next_uid(struct store *store, int64_t folder_id, uint32_t *uid_r,
			 uint64_t *modseq_r, char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "UPDATE folders SET uidnext = uidnext + 1, "
				      "highestmodseq = highestmodseq + 1 WHERE id = ? "
				      "RETURNING uidnext - 1, highestmodseq",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder_id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		*error_r = store_db_error(store, "uid allocation");
		store_stmt_done(store, &st);
		return -1;
	}
	int64_t uid = sqlite3_column_int64(st, 0);
	*modseq_r = (uint64_t)sqlite3_column_int64(st, 1);
	store_stmt_done(store, &st);
	if (uid <= 0 || uid >= (int64_t)UINT32_MAX) {
		*error_r = xstrdup("folder has run out of UIDs");
		return -1;
	}
	*uid_r = (uint32_t)uid;
	return 0;
}

int store_index_bump_modseq(struct store *store, int64_t folder_id, uint64_t *modseq_r,
			    char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "UPDATE folders SET highestmodseq = highestmodseq + 1 "
				      "WHERE id = ? RETURNING highestmodseq",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder_id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		*error_r = store_db_error(store, "modseq");
		store_stmt_done(store, &st);
		return -1;
	}
	*modseq_r = (uint64_t)sqlite3_column_int64(st, 0);
	store_stmt_done(store, &st);
	return 0;
}

int store_index_quota_add(struct store *store, int64_t delta, char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "UPDATE meta SET value = max(0, value + ?) "
				      "WHERE key = 'quota_used'",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, delta);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "quota");
		return -1;
	}
	return 0;
}
