#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Reconcile a folder's index with its Maildir: the files are the truth.
 * Files in new/ move to cur/; files unknown to the index get new UIDs;
 * index rows whose file is gone are expunged; a file whose flags were
 * changed by its name (another tool, or a crash between our rename and the
 * index commit) gives its system flags to the row. UIDVALIDITY never
 * changes. The directories' mtimes are remembered so that an unchanged
 * folder is not rescanned; an mtime less than two seconds old is not
 * trusted (a change within the same tick would go unseen). */

#define BATCH 256

struct entry {
	char *base;
	char *fname;
	unsigned flags;
	int64_t row_id; /* index rows */
	uint32_t uid;
	uint64_t size;
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->base, ((const struct entry *)b)->base);
}

static void entries_free(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].base);
		free(e[i].fname);
	}
	free(e);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int move_new(const char *dir, char **error_r)
{
	char *newdir = xasprintf("%s/new", dir);
	DIR *d = opendir(newdir);
	if (d == NULL) {
		free(newdir);
		return 0;
	}
	bool moved = false;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *from = xasprintf("%s/%s", newdir, de->d_name);
		char *to = strstr(de->d_name, ":2,") != NULL
			       ? xasprintf("%s/cur/%s", dir, de->d_name)
			       : xasprintf("%s/cur/%s:2,", dir, de->d_name);
		if (rename(from, to) == 0)
			moved = true;
		free(from);
		free(to);
	}
	closedir(d);
	free(newdir);
	if (moved) {
		char *cur = xasprintf("%s/cur", dir);
		int r = store_fsync_dir(cur, error_r);
		free(cur);
		return r;
	}
	return 0;
}

/* tmp/ files older than 36 hours are left-overs of deliveries that never
 * finished (a crash before the rename): the Maildir convention removes
 * them. */
static void clean_tmp(const char *dir)
{
	char *tmp = xasprintf("%s/tmp", dir);
	DIR *d = opendir(tmp);
	if (d != NULL) {
		time_t limit = time(NULL) - 36 * 3600;
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode) && st.st_mtime < limit)
				unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	free(tmp);
}

static int read_files(const char *dir, struct entry **files_r, size_t *count_r, char **error_r)
{
	char *cur = xasprintf("%s/cur", dir);
	DIR *d = opendir(cur);
	if (d == NULL) {
		*error_r = xasprintf("opendir %s: %s", cur, strerror(errno));
		free(cur);
		return -1;
	}
	free(cur);
	struct entry *files = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap * 2 + 64;
			files = xrealloc(files, cap * sizeof(*files));
		}
		struct entry *e = &files[n++];
		memset(e, 0, sizeof(*e));
		e->fname = xstrdup(de->d_name);
		e->base = store_maildir_parse(de->d_name, &e->flags, NULL);
	}
	closedir(d);
	if (n > 1)
		qsort(files, n, sizeof(*files), entry_cmp);
	/* two names with one base (a tool copied a file): keep the first */
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (w > 0 && strcmp(files[w - 1].base, files[i].base) == 0) {
			free(files[i].base);
			free(files[i].fname);
			continue;
		}
		files[w++] = files[i];
	}
	*files_r = files;
	*count_r = w;
	return 0;
}

static int read_rows(struct store *store, int64_t folder_id, struct entry **rows_r, size_t *count_r,
		     char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "SELECT id, uid, base, fname, flags, size FROM messages "
				      "WHERE folder_id = ? ORDER BY base",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder_id);
	struct entry *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap * 2 + 64;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		struct entry *e = &rows[n++];
		e->row_id = sqlite3_column_int64(st, 0);
		e->uid = (uint32_t)sqlite3_column_int64(st, 1);
		e->base = xstrdup((const char *)sqlite3_column_text(st, 2));
		e->fname = xstrdup((const char *)sqlite3_column_text(st, 3));
		e->flags = (unsigned)sqlite3_column_int(st, 4);
		e->size = (uint64_t)sqlite3_column_int64(st, 5);
	}
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		entries_free(rows, n);
		*error_r = store_db_error(store, "reconcile");
		return -1;
	}
	/* ORDER BY base uses SQLite's BINARY collation: memcmp, as strcmp */
	*rows_r = rows;
	*count_r = n;
	return 0;
}

static int expunge_row(struct store *store, int64_t folder_id, const char *name,
		       const struct entry *row, char **error_r)
{
	sqlite3_stmt *st = store_stmt(store, "DELETE FROM messages WHERE id = ?", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, row->row_id);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	uint64_t modseq;
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "reconcile expunge");
		return -1;
	}
	if (store_index_quota_add(store, -(int64_t)row->size, error_r) < 0 ||
	    store_index_bump_modseq(store, folder_id, &modseq, error_r) < 0)
		return -1;
	store_notify(store, STORE_EVENT_EXPUNGE, name, row->uid, 0, modseq);
	return 0;
}

static int update_row(struct store *store, int64_t folder_id, const char *name,
		      const struct entry *row, const struct entry *file, char **error_r)
{
	uint64_t modseq;
	unsigned flags = (row->flags & ~STORE_FLAGS_SYSTEM) | (file->flags & STORE_FLAGS_SYSTEM);
	if (store_index_bump_modseq(store, folder_id, &modseq, error_r) < 0)
		return -1;
	sqlite3_stmt *st = store_stmt(store,
				      "UPDATE messages SET fname = ?, flags = ?, modseq = ? "
				      "WHERE id = ?",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, file->fname, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)flags);
	sqlite3_bind_int64(st, 3, (int64_t)modseq);
	sqlite3_bind_int64(st, 4, row->row_id);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "reconcile update");
		return -1;
	}
	if (flags != row->flags)
		store_notify(store, STORE_EVENT_FLAGS, name, row->uid, flags, modseq);
	return 0;
}

static int add_file(struct store *store, int64_t folder_id, const char *name, const char *dir,
		    const struct entry *file, char **error_r)
{
	char *path = xasprintf("%s/cur/%s", dir, file->fname);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0; /* renamed or removed meanwhile: the next pass sees it */
	struct stat st;
	struct store_parsed parsed;
	char *err = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || store_parse_fd(fd, &parsed, &err) < 0) {
		close(fd);
		free(err);
		return 0;
	}
	close(fd);
	uint32_t uid;
	uint64_t modseq;
	char guid[33];
	store_guid_new(guid);
	int r = store_index_next_uid(store, folder_id, &uid, &modseq, error_r);
	if (r == 0)
		r = store_index_insert_message(store, folder_id, uid, modseq, file->base,
					       file->fname, (uint64_t)st.st_size, st.st_mtime,
					       file->flags, "", guid, &parsed, error_r);
	if (r == 0)
		r = store_index_quota_add(store, (int64_t)st.st_size, error_r);
	store_parsed_clear(&parsed);
	if (r == 0)
		store_notify(store, STORE_EVENT_APPEND, name, uid, file->flags, modseq);
	return r;
}

int store_reconcile_folder(struct store *store, int64_t folder_id, const char *name, bool force,
			   unsigned *added_r, unsigned *removed_r, char **error_r)
{
	char *dir = store_maildir_dir(store, name);
	unsigned added = 0, removed = 0;
	struct entry *files = NULL, *rows = NULL;
	size_t nfiles = 0, nrows = 0;
	int ret = -1;
	char *cur = xasprintf("%s/cur", dir);
	char *newd = xasprintf("%s/new", dir);
	struct stat st_cur, st_new;
	if (stat(cur, &st_cur) < 0 || stat(newd, &st_new) < 0) {
		if (store_maildir_create(dir, error_r) < 0)
			goto out;
		force = true;
	}
	int64_t old_cur = -1, old_new = -1; /* what the index holds */
	unsigned updated = 0;
	if (!force) {
		sqlite3_stmt *st = store_stmt(
		    store, "SELECT cur_mtime, new_mtime FROM folders WHERE id = ?", error_r);
		if (st == NULL)
			goto out;
		sqlite3_bind_int64(st, 1, folder_id);
		bool same = false;
		if (sqlite3_step(st) == SQLITE_ROW) {
			old_cur = sqlite3_column_int64(st, 0);
			old_new = sqlite3_column_int64(st, 1);
			same = old_cur != 0 && old_cur == mtime_ns(&st_cur) &&
			       old_new == mtime_ns(&st_new);
		}
		store_stmt_done(store, &st);
		if (same) {
			ret = 0;
			goto out;
		}
	}
	clean_tmp(dir);
	if (move_new(dir, error_r) < 0)
		goto out;
	/* the mtimes before reading: a change during the scan makes them differ */
	if (stat(cur, &st_cur) < 0 || stat(newd, &st_new) < 0) {
		*error_r = xasprintf("stat %s: %s", cur, strerror(errno));
		goto out;
	}
	/* rows are read inside the write transaction: another process that
	 * reconciles the same folder waits, then sees what this one added */
	if (store_index_begin(store, error_r) < 0)
		goto out;
	if (read_files(dir, &files, &nfiles, error_r) < 0 ||
	    read_rows(store, folder_id, &rows, &nrows, error_r) < 0) {
		store_index_rollback(store);
		goto out;
	}
	size_t i = 0, k = 0;
	unsigned in_batch = 0;
	struct entry **new_files = NULL;
	size_t nnew = 0;
	while (i < nfiles || k < nrows) {
		int c = i >= nfiles ? 1 : k >= nrows ? -1 : strcmp(files[i].base, rows[k].base);
		int r = 0;
		if (c == 0) {
			if (strcmp(files[i].fname, rows[k].fname) != 0) {
				r = update_row(store, folder_id, name, &rows[k], &files[i],
					       error_r);
				updated++;
			}
			i++;
			k++;
		} else if (c > 0) {
			r = expunge_row(store, folder_id, name, &rows[k], error_r);
			removed++;
			k++;
		} else {
			new_files = xrealloc(new_files, (nnew + 1) * sizeof(*new_files));
			new_files[nnew++] = &files[i];
			i++;
		}
		if (r < 0) {
			free(new_files);
			store_index_rollback(store);
			goto out;
		}
	}
	/* new files in name order: Maildir names start with the delivery time */
	for (size_t n = 0; n < nnew; n++) {
		if (add_file(store, folder_id, name, dir, new_files[n], error_r) < 0) {
			free(new_files);
			store_index_rollback(store);
			goto out;
		}
		added++;
		if (++in_batch == BATCH) {
			in_batch = 0;
			if (store_index_commit(store, error_r) < 0 ||
			    store_index_begin(store, error_r) < 0) {
				free(new_files);
				goto out;
			}
		}
	}
	free(new_files);
	time_t now = time(NULL);
	bool settled = now - st_cur.st_mtime >= 2 && now - st_new.st_mtime >= 2;
	int64_t new_cur = settled ? mtime_ns(&st_cur) : 0,
		new_new = settled ? mtime_ns(&st_new) : 0;
	if (added == 0 && removed == 0 && updated == 0 && old_cur == new_cur &&
	    old_new == new_new) {
		/* nothing to write (a folder still changing, scanned again):
		 * no commit, no disk flush */
		store_index_rollback(store);
		ret = 1;
		goto out;
	}
	sqlite3_stmt *st = store_stmt(
	    store, "UPDATE folders SET cur_mtime = ?, new_mtime = ? WHERE id = ?", error_r);
	if (st == NULL) {
		store_index_rollback(store);
		goto out;
	}
	sqlite3_bind_int64(st, 1, new_cur);
	sqlite3_bind_int64(st, 2, new_new);
	sqlite3_bind_int64(st, 3, folder_id);
	sqlite3_step(st);
	store_stmt_done(store, &st);
	if (store_index_commit(store, error_r) < 0)
		goto out;
	ret = 1;
out:
	if (added_r != NULL)
		*added_r = added;
	if (removed_r != NULL)
		*removed_r = removed;
	entries_free(files, nfiles);
	entries_free(rows, nrows);
	free(cur);
	free(newd);
	free(dir);
	return ret;
}

static int reindex_message(struct store *store, int64_t id, const char *path, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone: the next reconcile expunges it */
	struct store_parsed p;
	struct stat st;
	if (fstat(fd, &st) < 0 || store_parse_fd(fd, &p, error_r) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	int ret = -1;
	sqlite3_stmt *stmt;
	if (store_index_run(store, "DELETE FROM parts WHERE message_id = ?", id, 0, "reindex",
			    error_r) < 0 ||
	    store_index_run(store, "DELETE FROM fts WHERE rowid = ?", id, 0, "reindex", error_r) <
		0)
		goto out;
	stmt = store_stmt(store,
			  "UPDATE messages SET envelope = ?, body = ?, bodystructure = ?, "
			  "sent_day = ?, size = ? WHERE id = ?",
			  error_r);
	if (stmt == NULL)
		goto out;
	sqlite3_bind_text(stmt, 1, p.envelope, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, p.body, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, p.bodystructure, -1, SQLITE_STATIC);
	if (p.sent_day != INT64_MIN)
		sqlite3_bind_int64(stmt, 4, p.sent_day);
	sqlite3_bind_int64(stmt, 5, (int64_t)st.st_size);
	sqlite3_bind_int64(stmt, 6, id);
	int rc = sqlite3_step(stmt);
	store_stmt_done(store, &stmt);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "reindex");
		goto out;
	}
	stmt = store_stmt(store, "INSERT INTO parts VALUES(?,?,?,?,?,?,?)", error_r);
	if (stmt == NULL)
		goto out;
	for (size_t i = 0; i < p.nsections; i++) {
		const struct store_section *s = &p.sections[i];
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, id);
		sqlite3_bind_text(stmt, 2, s->section, -1, SQLITE_STATIC);
		sqlite3_bind_int(stmt, 3, s->is_message);
		sqlite3_bind_int64(stmt, 4, (int64_t)s->header_start);
		sqlite3_bind_int64(stmt, 5, (int64_t)s->body_start);
		sqlite3_bind_int64(stmt, 6, (int64_t)s->end);
		sqlite3_bind_int64(stmt, 7, (int64_t)s->lines);
		sqlite3_step(stmt);
	}
	store_stmt_done(store, &stmt);
	stmt = store_stmt(store, "INSERT INTO fts(rowid, header, body) VALUES(?,?,?)", error_r);
	if (stmt == NULL)
		goto out;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, p.header_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, p.body_text, -1, SQLITE_STATIC);
	sqlite3_step(stmt);
	store_stmt_done(store, &stmt);
	ret = 1;
out:
	store_parsed_clear(&p);
	return ret;
}

int store_reindex(struct store *store, uint64_t *messages_r, char **error_r)
{
	*messages_r = 0;
	sqlite3_stmt *st = store_stmt(store, "SELECT id, name FROM folders ORDER BY name", error_r);
	if (st == NULL)
		return -1;
	int64_t *ids = NULL;
	char **names = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		names = xrealloc(names, (n + 1) * sizeof(*names));
		ids[n] = sqlite3_column_int64(st, 0);
		names[n] = xstrdup((const char *)sqlite3_column_text(st, 1));
		n++;
	}
	store_stmt_done(store, &st);
	int ret = 1;
	for (size_t i = 0; i < n && ret == 1; i++) {
		if (store_reconcile_folder(store, ids[i], names[i], true, NULL, NULL, error_r) <
		    0) {
			ret = -1;
			break;
		}
		char *dir = store_maildir_dir(store, names[i]);
		st = store_stmt(store, "SELECT id, fname FROM messages WHERE folder_id = ?",
				error_r);
		if (st == NULL) {
			free(dir);
			ret = -1;
			break;
		}
		sqlite3_bind_int64(st, 1, ids[i]);
		int64_t *mids = NULL;
		char **paths = NULL;
		size_t m = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			mids = xrealloc(mids, (m + 1) * sizeof(*mids));
			paths = xrealloc(paths, (m + 1) * sizeof(*paths));
			mids[m] = sqlite3_column_int64(st, 0);
			paths[m] = xasprintf("%s/cur/%s", dir, sqlite3_column_text(st, 1));
			m++;
		}
		store_stmt_done(store, &st);
		free(dir);
		for (size_t k = 0; k < m; k++) {
			if (ret == 1 && k % BATCH == 0 && store_index_begin(store, error_r) < 0)
				ret = -1;
			if (ret == 1) {
				int r = reindex_message(store, mids[k], paths[k], error_r);
				if (r < 0)
					ret = -1;
				else
					*messages_r += (uint64_t)r;
			}
			if (ret == 1 && (k % BATCH == BATCH - 1 || k + 1 == m) &&
			    store_index_commit(store, error_r) < 0)
				ret = -1;
			free(paths[k]);
		}
		if (ret < 0)
			store_index_rollback(store);
		free(mids);
		free(paths);
	}
	uint64_t used;
	if (ret == 1 && store_quota_recalculate(store, &used, error_r) < 0)
		ret = -1;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(ids);
	return ret;
}
