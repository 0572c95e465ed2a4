#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Folders: create, delete, rename, subscriptions, listing, and the message
 * list snapshot of an open folder. A folder is a Maildir directory and an
 * index row; the directory is made (or moved away) before the index row
 * changes, so a crash leaves at worst a directory that store_open() adopts
 * or a row whose messages reconcile as expunged. */

static void ignore_error(char *error)
{
	free(error);
}

static int folder_exists(struct store *store, const char *name, char **error_r)
{
	return store_index_folder_get(store, name, NULL, NULL, NULL, NULL, error_r);
}

static int create_one(struct store *store, const char *name, const char *role, char **error_r)
{
	char *dir = store_maildir_dir(store, name);
	int r = store_maildir_create(dir, error_r);
	free(dir);
	if (r < 0)
		return -1;
	if (store_index_begin(store, error_r) < 0)
		return -1;
	/* under the write lock: another process may have made it since the
	 * caller looked (two first uses of a new store at once) */
	int e = folder_exists(store, name, error_r);
	if (e != 0) {
		store_index_rollback(store);
		return e > 0 ? 1 : -1;
	}
	if (store_index_folder_add(store, name, role, error_r) < 0) {
		store_index_rollback(store);
		return -1;
	}
	if (store_index_commit(store, error_r) < 0)
		return -1;
	store_watch_add_folder(store, name);
	return 0;
}

int store_folder_create(struct store *store, const char *name, const char *role, char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	int r = folder_exists(store, norm, error_r);
	if (r != 0) {
		if (r > 0)
			*error_r = xasprintf("folder '%s' exists already", norm);
		free(norm);
		return r > 0 ? 0 : -1;
	}
	/* parents first */
	for (char *slash = strchr(norm, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		int e = folder_exists(store, norm, error_r);
		if (e == 0)
			e = create_one(store, norm, NULL, error_r) < 0 ? -1 : 1;
		*slash = '/';
		if (e < 0) {
			free(norm);
			return -1;
		}
	}
	r = create_one(store, norm, role, error_r);
	if (r == 0)
		store_notify(store, STORE_EVENT_FOLDERS, norm, 0, 0, 0);
	else if (r > 0)
		*error_r = xasprintf("folder '%s' exists already", norm);
	free(norm);
	return r < 0 ? -1 : r > 0 ? 0 : 1;
}

/* Names of a folder and every folder below it. */
static int family(struct store *store, const char *name, char ***names_r, int64_t **ids_r,
		  size_t *count_r, char **error_r)
{
	sqlite3_stmt *st = store_stmt(store,
				      "SELECT name, id FROM folders WHERE name = ?1 OR "
				      "substr(name, 1, length(?1) + 1) = ?1 || '/' ORDER BY name",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	char **names = NULL;
	int64_t *ids = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		names = xrealloc(names, (n + 1) * sizeof(*names));
		ids = xrealloc(ids, (n + 1) * sizeof(*ids));
		names[n] = xstrdup((const char *)sqlite3_column_text(st, 0));
		ids[n] = sqlite3_column_int64(st, 1);
		n++;
	}
	store_stmt_done(store, &st);
	*names_r = names;
	*ids_r = ids;
	*count_r = n;
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int store_folder_delete(struct store *store, const char *name, char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	if (strcmp(norm, "INBOX") == 0) {
		free(norm);
		*error_r = xstrdup("INBOX cannot be deleted");
		return -1;
	}
	char **names;
	int64_t *ids;
	size_t n;
	if (family(store, norm, &names, &ids, &n, error_r) < 0) {
		free(norm);
		return -1;
	}
	if (n == 0 || strcmp(names[0], norm) != 0) {
		free_names(names, n);
		free(ids);
		free(norm);
		return 0;
	}
	/* move the directories out of the way first (one rename each) */
	char **trash = xcalloc(n, sizeof(*trash));
	for (size_t i = 0; i < n; i++) {
		char *dir = store_maildir_dir(store, names[i]);
		unsigned char rnd[8];
		RAND_bytes(rnd, sizeof(rnd));
		trash[i] =
		    xasprintf("%s/.#deleted-%02x%02x%02x%02x%02x%02x%02x%02x", store->path, rnd[0],
			      rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		if (rename(dir, trash[i]) < 0 && errno != ENOENT) {
			*error_r = xasprintf("rename %s: %s", dir, strerror(errno));
			free(dir);
			for (size_t k = 0; k < n; k++)
				free(trash[k]);
			free(trash);
			free_names(names, n);
			free(ids);
			free(norm);
			return -1;
		}
		free(dir);
	}
	store_fsync_dir_quiet(store->path);
	int ret = 1;
	if (store_index_begin(store, error_r) < 0) {
		ret = -1;
	} else {
		for (size_t i = 0; i < n && ret == 1; i++) {
			sqlite3_stmt *st = store_stmt(
			    store,
			    "UPDATE meta SET value = max(0, value - (SELECT coalesce(sum(size), 0) "
			    "FROM messages WHERE folder_id = ?1)) WHERE key = 'quota_used'",
			    error_r);
			if (st == NULL) {
				ret = -1;
				break;
			}
			sqlite3_bind_int64(st, 1, ids[i]);
			int rc = sqlite3_step(st);
			store_stmt_done(store, &st);
			st = store_stmt(store, "DELETE FROM folders WHERE id = ?", error_r);
			if (st == NULL) {
				ret = -1;
				break;
			}
			sqlite3_bind_int64(st, 1, ids[i]);
			if (rc != SQLITE_DONE || sqlite3_step(st) != SQLITE_DONE) {
				*error_r = store_db_error(store, "folder delete");
				ret = -1;
			}
			store_stmt_done(store, &st);
		}
		if (ret == 1 && store_index_commit(store, error_r) < 0)
			ret = -1;
		if (ret < 0)
			store_index_rollback(store);
	}
	for (size_t i = 0; i < n; i++) {
		if (ret == 1)
			store_rmtree(trash[i]);
		free(trash[i]);
	}
	free(trash);
	if (ret == 1)
		store_notify(store, STORE_EVENT_FOLDERS, norm, 0, 0, 0);
	free_names(names, n);
	free(ids);
	free(norm);
	return ret;
}

int store_folder_rename(struct store *store, const char *from, const char *to, char **error_r)
{
	char *src, *dst;
	if (store_folder_name_check(from, &src, error_r) < 0)
		return -1;
	if (store_folder_name_check(to, &dst, error_r) < 0) {
		free(src);
		return -1;
	}
	int ret = -1;
	char **names = NULL;
	int64_t *ids = NULL;
	size_t n = 0;
	size_t slen = strlen(src);
	if (strcmp(src, "INBOX") == 0 || strcmp(dst, "INBOX") == 0) {
		*error_r = xstrdup("INBOX cannot be renamed, and no folder can become INBOX");
		goto out;
	}
	if (strncmp(dst, src, slen) == 0 && (dst[slen] == '/' || dst[slen] == '\0')) {
		*error_r = xasprintf("cannot rename '%s' to itself or below itself", src);
		goto out;
	}
	int r = folder_exists(store, dst, error_r);
	if (r != 0) {
		if (r > 0)
			*error_r = xasprintf("folder '%s' exists already", dst);
		goto out;
	}
	if (family(store, src, &names, &ids, &n, error_r) < 0)
		goto out;
	if (n == 0 || strcmp(names[0], src) != 0) {
		ret = 0;
		goto out;
	}
	/* missing parents of the target */
	char *parent = xstrdup(dst);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		r = store_folder_create(store, parent, NULL, error_r);
		if (r == 0) {
			free(*error_r);
			*error_r = NULL;
		}
	} else {
		r = 1;
	}
	free(parent);
	if (r < 0)
		goto out;
	char **newnames = xcalloc(n, sizeof(*newnames));
	for (size_t i = 0; i < n; i++)
		newnames[i] = xasprintf("%s%s", dst, names[i] + slen);
	size_t moved = 0;
	for (; moved < n; moved++) {
		char *od = store_maildir_dir(store, names[moved]);
		char *nd = store_maildir_dir(store, newnames[moved]);
		int rr = rename(od, nd);
		if (rr < 0 && errno != ENOENT)
			*error_r = xasprintf("rename %s: %s", od, strerror(errno));
		free(od);
		free(nd);
		if (rr < 0 && errno != ENOENT)
			break;
	}
	if (moved == n && store_index_begin(store, error_r) == 0) {
		bool ok = true;
		for (size_t i = 0; i < n && ok; i++) {
			sqlite3_stmt *st =
			    store_stmt(store, "UPDATE folders SET name = ? WHERE id = ?", error_r);
			if (st == NULL) {
				ok = false;
				break;
			}
			sqlite3_bind_text(st, 1, newnames[i], -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, ids[i]);
			if (sqlite3_step(st) != SQLITE_DONE) {
				*error_r = store_db_error(store, "folder rename");
				ok = false;
			}
			store_stmt_done(store, &st);
		}
		if (ok && store_index_commit(store, error_r) == 0)
			ret = 1;
		else
			store_index_rollback(store);
	}
	if (ret != 1) {
		/* put the directories back */
		while (moved-- > 0) {
			char *od = store_maildir_dir(store, names[moved]);
			char *nd = store_maildir_dir(store, newnames[moved]);
			if (rename(nd, od) < 0)
				ignore_error(NULL);
			free(od);
			free(nd);
		}
	} else {
		store_fsync_dir_quiet(store->path);
		for (struct store_folder *f = store->open_folders; f != NULL; f = f->next_open)
			for (size_t i = 0; i < n; i++)
				if (f->id == ids[i]) {
					free(f->name);
					free(f->dir);
					f->name = xstrdup(newnames[i]);
					f->dir = store_maildir_dir(store, newnames[i]);
				}
		for (size_t i = 0; i < n; i++)
			store_watch_add_folder(store, newnames[i]);
		store_notify(store, STORE_EVENT_FOLDERS, dst, 0, 0, 0);
	}
	free_names(newnames, n);
out:
	free_names(names, n);
	free(ids);
	free(src);
	free(dst);
	return ret;
}

int store_folder_subscribe(struct store *store, const char *name, bool subscribed, char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	sqlite3_stmt *st = store_stmt(store,
				      subscribed ? "INSERT OR IGNORE INTO subscriptions VALUES(?)"
						 : "DELETE FROM subscriptions WHERE name = ?",
				      error_r);
	if (st == NULL) {
		free(norm);
		return -1;
	}
	sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	free(norm);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "subscription");
		return -1;
	}
	return 1;
}

static int info_cmp(const void *a, const void *b)
{
	const struct store_folder_info *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

int store_folder_list(struct store *store, struct store_folder_info **list_r, size_t *count_r,
		      char **error_r)
{
	sqlite3_stmt *st =
	    store_stmt(store,
		       "SELECT f.name, f.role, f.uidvalidity, f.uidnext, f.highestmodseq,"
		       " count(m.id), coalesce(sum((m.flags & 1) = 0), 0),"
		       " coalesce(sum((m.flags & 8) != 0), 0), coalesce(sum(m.size), 0),"
		       " EXISTS(SELECT 1 FROM subscriptions s WHERE s.name = f.name), f.mailbox_id,"
		       " coalesce(sum(CASE WHEN (m.flags & 8) != 0 THEN m.size END), 0)"
		       " FROM folders f LEFT JOIN messages m ON m.folder_id = f.id GROUP BY f.id "
		       "UNION ALL SELECT s.name, NULL, 0, 0, 0, 0, 0, 0, 0, 2, NULL, 0"
		       " FROM subscriptions s"
		       " WHERE NOT EXISTS(SELECT 1 FROM folders f WHERE f.name = s.name)",
		       error_r);
	if (st == NULL)
		return -1;
	struct store_folder_info *list = NULL;
	size_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = xrealloc(list, (n + 1) * sizeof(*list));
		struct store_folder_info *fi = &list[n++];
		memset(fi, 0, sizeof(*fi));
		fi->name = xstrdup((const char *)sqlite3_column_text(st, 0));
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			fi->role = xstrdup((const char *)sqlite3_column_text(st, 1));
		fi->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
		fi->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
		fi->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
		fi->messages = (uint32_t)sqlite3_column_int64(st, 5);
		fi->unseen = (uint32_t)sqlite3_column_int64(st, 6);
		fi->deleted = (uint32_t)sqlite3_column_int64(st, 7);
		fi->bytes = (uint64_t)sqlite3_column_int64(st, 8);
		int sub = sqlite3_column_int(st, 9);
		fi->subscribed = sub != 0;
		fi->exists = sub != 2;
		if (sqlite3_column_type(st, 10) != SQLITE_NULL)
			snprintf(fi->mailbox_id, sizeof(fi->mailbox_id), "%s",
				 (const char *)sqlite3_column_text(st, 10));
		fi->deleted_bytes = (uint64_t)sqlite3_column_int64(st, 11);
	}
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		store_folder_list_free(&list, n);
		*error_r = store_db_error(store, "folder list");
		return -1;
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), info_cmp);
	for (size_t i = 0; i + 1 < n; i++) {
		size_t l = strlen(list[i].name);
		for (size_t k = i + 1; k < n; k++)
			if (list[k].exists && strncmp(list[k].name, list[i].name, l) == 0 &&
			    list[k].name[l] == '/') {
				list[i].has_children = true;
				break;
			}
	}
	*list_r = list;
	*count_r = n;
	return 1;
}

void store_folder_list_free(struct store_folder_info **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].name);
		free((*list)[i].role);
	}
	free(*list);
	*list = NULL;
}

/* ---- an open folder ---- */

const char store_no_keywords[] = "";

void store_snapshot_set_keywords(struct store_message *m, const char *keywords)
{
	if (m->keywords != NULL && m->keywords != store_no_keywords)
		free((char *)m->keywords);
	m->keywords = keywords != NULL && *keywords != '\0' ? xstrdup(keywords) : store_no_keywords;
}

static void snapshot_clear(struct store_folder *f)
{
	for (size_t i = 0; i < f->count; i++)
		store_snapshot_set_keywords(&f->msgs[i], NULL);
	free(f->msgs);
	f->msgs = NULL;
	f->count = f->cap = 0;
}

static void snapshot_reserve(struct store_folder *f, size_t n)
{
	if (n <= f->cap)
		return;
	f->cap = n + n / 4 + 64;
	f->msgs = xrealloc(f->msgs, f->cap * sizeof(*f->msgs));
}

#define SNAPSHOT_COLUMNS "uid, size, internal_date, modseq, flags, guid, keywords, save_date"

/* One row of SNAPSHOT_COLUMNS into m (whose keywords are set anew). */
static void snapshot_row(sqlite3_stmt *st, struct store_message *m)
{
	const char *old_keywords = m->keywords;
	memset(m, 0, sizeof(*m));
	m->keywords = old_keywords;
	m->uid = (uint32_t)sqlite3_column_int64(st, 0);
	m->size = (uint64_t)sqlite3_column_int64(st, 1);
	m->internal_date = (time_t)sqlite3_column_int64(st, 2);
	m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
	m->flags = (unsigned)sqlite3_column_int(st, 4);
	const char *guid = (const char *)sqlite3_column_text(st, 5);
	snprintf(m->guid, sizeof(m->guid), "%s", guid != NULL ? guid : "");
	store_snapshot_set_keywords(m, (const char *)sqlite3_column_text(st, 6));
	m->save_date = sqlite3_column_type(st, 7) != SQLITE_NULL
			   ? (time_t)sqlite3_column_int64(st, 7)
			   : m->internal_date;
}

/* A new message at the end of the list, from a row of SNAPSHOT_COLUMNS. */
static void snapshot_append(struct store_folder *f, sqlite3_stmt *st)
{
	snapshot_reserve(f, f->count + 1);
	struct store_message *m = &f->msgs[f->count++];
	m->keywords = NULL;
	snapshot_row(st, m);
}

/* The first of the list's first n messages whose UID is >= uid (n when
 * none is). */
static size_t snapshot_lower(const struct store_folder *f, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The whole message list. */
static int snapshot_load_all(struct store_folder *f, char **error_r)
{
	struct store *store = f->store;
	sqlite3_stmt *st = store_stmt(
	    store, "SELECT " SNAPSHOT_COLUMNS " FROM messages WHERE folder_id = ? ORDER BY uid",
	    error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, f->id);
	snapshot_clear(f);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		snapshot_append(f, st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "message list");
		return -1;
	}
	return 0;
}

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int message_uid_cmp(const void *a, const void *b)
{
	const struct store_message *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* What changed since f->loaded_modseq: expunged messages leave the list,
 * changed ones are updated in place, new ones are merged in by UID (a UID
 * taken by one process may be committed after a greater one taken by
 * another). */
static int snapshot_catch_up(struct store_folder *f, char **error_r)
{
	struct store *store = f->store;
	sqlite3_stmt *st = store_stmt(
	    store, "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid",
	    error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, f->id);
	sqlite3_bind_int64(st, 2, (int64_t)f->loaded_modseq);
	uint32_t *gone = NULL;
	size_t ngone = 0, gone_cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ngone == gone_cap) {
			gone_cap = gone_cap * 2 + 64;
			gone = xrealloc(gone, gone_cap * sizeof(*gone));
		}
		gone[ngone++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		free(gone);
		*error_r = store_db_error(store, "expunged list");
		return -1;
	}
	if (ngone > 0) {
		size_t o = 0;
		for (size_t i = 0; i < f->count; i++) {
			if (bsearch(&f->msgs[i].uid, gone, ngone, sizeof(*gone), uid_cmp) != NULL) {
				store_snapshot_set_keywords(&f->msgs[i], NULL);
				f->removed++;
				continue;
			}
			f->msgs[o++] = f->msgs[i];
		}
		f->count = o;
	}
	free(gone);

	st = store_stmt(store,
			"SELECT " SNAPSHOT_COLUMNS
			" FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid",
			error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, f->id);
	sqlite3_bind_int64(st, 2, (int64_t)f->loaded_modseq);
	size_t old_count = f->count;
	bool sorted = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
		if (old_count > 0 && uid <= f->msgs[old_count - 1].uid) {
			size_t i = snapshot_lower(f, old_count, uid);
			if (f->msgs[i].uid == uid) {
				snapshot_row(st, &f->msgs[i]);
				continue;
			}
			sorted = false;
		}
		snapshot_append(f, st);
	}
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "message list");
		return -1;
	}
	if (!sorted)
		qsort(f->msgs, f->count, sizeof(*f->msgs), message_uid_cmp);
	return 0;
}

/* Bring the snapshot up to date with the index (all of it when full),
 * in one read transaction so that the folder's row and its messages
 * agree. Returns 1, 0 when the folder is gone, -1. */
static int snapshot_load(struct store_folder *f, bool full, char **error_r)
{
	struct store *store = f->store;
	bool own_txn = sqlite3_get_autocommit(store->db) != 0;
	if (own_txn && store_index_run(store, "BEGIN", 0, 0, "begin", error_r) < 0)
		return -1;
	int64_t id;
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;
	int r =
	    store_index_folder_get(store, f->name, &id, &uidvalidity, &uidnext, &modseq, error_r);
	if (r > 0 && (id != f->id || (!full && uidvalidity != f->uidvalidity))) {
		r = 0; /* deleted, and made again under the same name */
	} else if (r > 0) {
		f->uidvalidity = uidvalidity;
		if (full) {
			r = store_index_folder_mailbox_id(store, f->id, f->mailbox_id,
							  sizeof(f->mailbox_id), error_r) < 0 ||
				    snapshot_load_all(f, error_r) < 0
				? -1
				: 1;
		} else if (modseq != f->loaded_modseq || uidnext != f->uidnext) {
			r = snapshot_catch_up(f, error_r) < 0 ? -1 : 1;
		}
		if (r > 0) {
			f->uidnext = uidnext;
			f->loaded_modseq = modseq;
			if (modseq > f->highestmodseq || full)
				f->highestmodseq = modseq;
		}
	}
	char *error = NULL;
	if (own_txn && store_index_run(store, "COMMIT", 0, 0, "commit", &error) < 0) {
		if (r >= 0) {
			*error_r = error;
			return -1;
		}
		free(error);
	}
	return r;
}

/* Re-read the folder's files first unless inotify brings their changes. */
static int snapshot_refresh(struct store_folder *f, char **error_r)
{
	if (!store_watch_covers(f->store, f->name) &&
	    store_reconcile_folder(f->store, f->id, f->name, false, NULL, NULL, error_r) < 0)
		return -1;
	int r = snapshot_load(f, false, error_r);
	if (r == 0)
		*error_r = xasprintf("folder '%s' was deleted", f->name);
	return r == 0 ? -1 : r;
}

int store_folder_open(struct store *store, const char *name, struct store_folder **folder_r,
		      char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	int64_t id;
	uint32_t uidvalidity;
	int r = store_index_folder_get(store, norm, &id, &uidvalidity, NULL, NULL, error_r);
	if (r <= 0) {
		free(norm);
		return r;
	}
	for (struct store_folder *f = store->open_folders; f != NULL; f = f->next_open) {
		/* a folder made again under a name may get the old row id */
		if (f->id != id || f->uidvalidity != uidvalidity)
			continue;
		/* shared: brought up to date for the new opener */
		free(norm);
		if (snapshot_refresh(f, error_r) < 0)
			return -1;
		f->refs++;
		*folder_r = f;
		return 1;
	}
	if (store_reconcile_folder(store, id, norm, false, NULL, NULL, error_r) < 0) {
		free(norm);
		return -1;
	}
	struct store_folder *f = xcalloc(1, sizeof(*f));
	f->store = store;
	f->refs = 1;
	f->id = id;
	f->name = norm;
	f->dir = store_maildir_dir(store, norm);
	r = snapshot_load(f, true, error_r);
	if (r <= 0) {
		snapshot_clear(f);
		free(f->name);
		free(f->dir);
		free(f);
		return r;
	}
	f->next_open = store->open_folders;
	store->open_folders = f;
	*folder_r = f;
	return 1;
}

void store_folder_close(struct store_folder **folderp)
{
	struct store_folder *f = *folderp;
	if (f == NULL)
		return;
	*folderp = NULL;
	if (--f->refs > 0)
		return;
	for (struct store_folder **p = &f->store->open_folders; *p != NULL; p = &(*p)->next_open)
		if (*p == f) {
			*p = f->next_open;
			break;
		}
	snapshot_clear(f);
	free(f->name);
	free(f->dir);
	free(f);
}

int store_folder_refresh(struct store_folder *folder, char **error_r)
{
	return snapshot_refresh(folder, error_r);
}

uint64_t store_folder_removed(const struct store_folder *folder)
{
	return folder->removed;
}

int store_folder_reconcile(struct store *store, const char *name, unsigned *added_r,
			   unsigned *removed_r, char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	int64_t id;
	int r = store_index_folder_get(store, norm, &id, NULL, NULL, NULL, error_r);
	if (r > 0 && store_reconcile_folder(store, id, norm, true, added_r, removed_r, error_r) < 0)
		r = -1;
	free(norm);
	return r;
}

uint32_t store_folder_uidvalidity(const struct store_folder *folder)
{
	return folder->uidvalidity;
}

uint32_t store_folder_uidnext(const struct store_folder *folder)
{
	return folder->uidnext;
}

uint64_t store_folder_highestmodseq(const struct store_folder *folder)
{
	return folder->highestmodseq;
}

const char *store_folder_mailbox_id(const struct store_folder *folder)
{
	return folder->mailbox_id;
}

const char *store_folder_name(const struct store_folder *folder)
{
	return folder->name;
}

size_t store_folder_count(const struct store_folder *folder)
{
	return folder->count;
}

const struct store_message *store_folder_message(const struct store_folder *folder, size_t index)
{
	return index < folder->count ? &folder->msgs[index] : NULL;
}

long store_folder_find(const struct store_folder *folder, uint32_t uid)
{
	size_t i = snapshot_lower(folder, folder->count, uid);
	return i < folder->count && folder->msgs[i].uid == uid ? (long)i : -1;
}

/* Adopt folder directories that have no index row (made by other tools, or
 * left by a crash between mkdir and the index insert), and remove what a
 * crashed delete left behind. */
int store_adopt_folders(struct store *store, char **error_r)
{
	DIR *d = opendir(store->path);
	if (d == NULL) {
		*error_r = xasprintf("opendir %s: %s", store->path, strerror(errno));
		return -1;
	}
	struct dirent *de;
	char **found = NULL;
	size_t n = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, ".#deleted-", 10) == 0) {
			char *p = xasprintf("%s/%s", store->path, de->d_name);
			store_rmtree(p);
			free(p);
			continue;
		}
		char *cur = xasprintf("%s/%s/cur", store->path, de->d_name);
		bool is_maildir = access(cur, F_OK) == 0;
		free(cur);
		if (!is_maildir)
			continue;
		char *name = store_maildir_unescape(de->d_name);
		char *norm = NULL, *err = NULL;
		if (name != NULL && store_folder_name_check(name, &norm, &err) == 0) {
			found = xrealloc(found, (n + 1) * sizeof(*found));
			found[n++] = norm;
		}
		free(err);
		free(name);
	}
	closedir(d);
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (ret == 0) {
			int r = folder_exists(store, found[i], error_r);
			if (r < 0)
				ret = -1;
			else if (r == 0) {
				r = store_folder_create(store, found[i], NULL, error_r);
				if (r == 0) {
					free(*error_r);
					*error_r = NULL;
				}
				if (r < 0)
					ret = -1;
			}
		}
		free(found[i]);
	}
	free(found);
	return ret;
}

int store_folder_status(struct store *store, const char *name, struct store_folder_info *info_r,
			char **error_r)
{
	char *norm;
	if (store_folder_name_check(name, &norm, error_r) < 0)
		return -1;
	sqlite3_stmt *st = store_stmt(
	    store,
	    "SELECT f.role, f.uidvalidity, f.uidnext, f.highestmodseq, count(m.id),"
	    " coalesce(sum((m.flags & 1) = 0), 0), coalesce(sum((m.flags & 8) != 0), 0),"
	    " coalesce(sum(m.size), 0),"
	    " EXISTS(SELECT 1 FROM subscriptions s WHERE s.name = f.name),"
	    " EXISTS(SELECT 1 FROM folders c WHERE substr(c.name, 1, length(f.name) + 1) ="
	    " f.name || '/'), f.mailbox_id,"
	    " coalesce(sum(CASE WHEN (m.flags & 8) != 0 THEN m.size END), 0)"
	    " FROM folders f LEFT JOIN messages m ON m.folder_id = f.id WHERE f.name = ?"
	    " GROUP BY f.id",
	    error_r);
	if (st == NULL) {
		free(norm);
		return -1;
	}
	sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		struct store_folder_info *fi = info_r;
		memset(fi, 0, sizeof(*fi));
		fi->name = norm;
		norm = NULL;
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			fi->role = xstrdup((const char *)sqlite3_column_text(st, 0));
		fi->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
		fi->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
		fi->highestmodseq = (uint64_t)sqlite3_column_int64(st, 3);
		fi->messages = (uint32_t)sqlite3_column_int64(st, 4);
		fi->unseen = (uint32_t)sqlite3_column_int64(st, 5);
		fi->deleted = (uint32_t)sqlite3_column_int64(st, 6);
		fi->bytes = (uint64_t)sqlite3_column_int64(st, 7);
		fi->subscribed = sqlite3_column_int(st, 8) != 0;
		fi->has_children = sqlite3_column_int(st, 9) != 0;
		if (sqlite3_column_type(st, 10) != SQLITE_NULL)
			snprintf(fi->mailbox_id, sizeof(fi->mailbox_id), "%s",
				 (const char *)sqlite3_column_text(st, 10));
		fi->deleted_bytes = (uint64_t)sqlite3_column_int64(st, 11);
		fi->exists = true;
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "folder status");
		ret = -1;
	}
	store_stmt_done(store, &st);
	free(norm);
	return ret;
}

void store_folder_info_clear(struct store_folder_info *info)
{
	free(info->name);
	free(info->role);
	info->name = info->role = NULL;
}

int store_folder_expunged_since(struct store_folder *folder, uint64_t modseq, uint32_t **uids_r,
				size_t *count_r, char **error_r)
{
	*uids_r = NULL;
	*count_r = 0;
	sqlite3_stmt *st = store_stmt(folder->store,
				      "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? "
				      "ORDER BY uid",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder->id);
	sqlite3_bind_int64(st, 2, (int64_t)modseq);
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap * 2 + 64;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	store_stmt_done(folder->store, &st);
	if (rc != SQLITE_DONE) {
		free(uids);
		*error_r = store_db_error(folder->store, "expunged list");
		return -1;
	}
	*uids_r = uids;
	*count_r = n;
	return 1;
}
