#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* COPY and MOVE. Files are hard-linked (copy) or renamed (move) into the
 * destination's cur/ under new base names, the directory is fsynced, then
 * one transaction gives the new UIDs, copies the cached parsed form and
 * search text, and (for a move) drops the source rows. A crash before the
 * commit leaves extra files that reconcile adopts (copy) or a source row
 * whose file moved, which reconcile expunges while the destination adopts
 * the file (move): nothing is lost. */

struct item {
	uint32_t src_uid;
	int64_t src_id;
	char *src_fname;
	char *new_base, *new_fname;
	uint64_t size;
	unsigned flags;
	bool placed;
};

static int copy_bytes(const char *from, const char *to, char **error_r)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		*error_r = xasprintf("open %s: %s", from, strerror(errno));
		return -1;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		*error_r = xasprintf("create %s: %s", to, strerror(errno));
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t n;
	int ret = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			ret = -1;
			break;
		}
	if (n < 0 || ret < 0 || fsync(out) < 0) {
		*error_r = xasprintf("copy to %s: %s", to, strerror(errno));
		ret = -1;
		unlink(to);
	}
	close(in);
	close(out);
	return ret;
}

int store_copy(struct store_folder *src, const uint32_t *uids, size_t count, const char *dest,
	       bool move, uint32_t *dest_uidvalidity_r, uint32_t **src_uids_r,
	       uint32_t **dest_uids_r, size_t *count_r, bool *over_quota_r, char **error_r)
{
	struct store *store = src->store;
	bool in_tx = false;
	*over_quota_r = false;
	*src_uids_r = *dest_uids_r = NULL;
	*count_r = 0;
	char *norm;
	if (store_folder_name_check(dest, &norm, error_r) < 0)
		return -1;
	int64_t dest_id;
	int r =
	    store_index_folder_get(store, norm, &dest_id, dest_uidvalidity_r, NULL, NULL, error_r);
	if (r <= 0) {
		free(norm);
		return r;
	}
	char *dest_dir = store_maildir_dir(store, norm);
	struct item *items = xcalloc(count + 1, sizeof(*items));
	size_t n = 0;
	uint64_t total = 0;
	int ret = -1;
	sqlite3_stmt *st = store_stmt(store,
				      "SELECT id, fname, size, flags FROM messages "
				      "WHERE folder_id = ? AND uid = ?",
				      error_r);
	if (st == NULL)
		goto out;
	for (size_t i = 0; i < count; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, src->id);
		sqlite3_bind_int64(st, 2, uids[i]);
		if (sqlite3_step(st) != SQLITE_ROW)
			continue;
		struct item *it = &items[n++];
		it->src_uid = uids[i];
		it->src_id = sqlite3_column_int64(st, 0);
		it->src_fname = xstrdup((const char *)sqlite3_column_text(st, 1));
		it->size = (uint64_t)sqlite3_column_int64(st, 2);
		it->flags = (unsigned)sqlite3_column_int(st, 3);
		total += it->size;
	}
	store_stmt_done(store, &st);
	if (n == 0) {
		ret = 1;
		goto out;
	}
	if (!move && store->quota_limit > 0 &&
	    store_quota_used(store) + total > store->quota_limit) {
		*over_quota_r = true;
		*error_r =
		    xasprintf("over quota: copying %llu bytes would pass the limit of %llu",
			      (unsigned long long)total, (unsigned long long)store->quota_limit);
		goto out;
	}
	if (store_maildir_create(dest_dir, error_r) < 0)
		goto out;
	/* the index's write lock first, as in store_append_commit(): no
	 * reconcile elsewhere can adopt the placed files under UIDs of its own */
	if (store_index_begin(store, error_r) < 0)
		goto out;
	in_tx = true;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		it->new_base = store_maildir_new_base(store, it->size);
		it->new_fname = store_maildir_fname(it->new_base, it->flags);
		char *from = xasprintf("%s/cur/%s", src->dir, it->src_fname);
		char *to = xasprintf("%s/cur/%s", dest_dir, it->new_fname);
		int rr = move ? rename(from, to) : link(from, to);
		if (rr < 0 && !move && errno != ENOENT)
			rr = copy_bytes(from, to, error_r);
		else if (rr < 0 && errno != ENOENT)
			*error_r =
			    xasprintf("%s %s: %s", move ? "move" : "link", from, strerror(errno));
		int e = errno;
		free(from);
		free(to);
		if (rr < 0 && e == ENOENT) {
			continue; /* expunged meanwhile */
		}
		if (rr < 0)
			goto undo;
		it->placed = true;
	}
	char *cur = xasprintf("%s/cur", dest_dir);
	r = store_fsync_dir(cur, error_r);
	free(cur);
	if (r < 0)
		goto undo;
	if (move) {
		cur = xasprintf("%s/cur", src->dir);
		store_fsync_dir_quiet(cur);
		free(cur);
	}
	uint32_t *su = xcalloc(n, sizeof(*su)), *du = xcalloc(n, sizeof(*du));
	size_t done = 0;
	uint64_t copied_bytes = 0, modseq = 0, src_modseq = 0;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (!it->placed)
			continue;
		uint32_t uid;
		if (store_index_next_uid(store, dest_id, &uid, &modseq, error_r) < 0)
			goto rollback;
		st = store_stmt(
		    store,
		    "INSERT INTO messages(folder_id, uid, base, fname, size, "
		    "internal_date, sent_day, flags, keywords, modseq, guid, envelope, "
		    "body, bodystructure, save_date) SELECT ?1, ?2, ?3, ?4, size, "
		    "internal_date, sent_day, flags, keywords, ?5, guid, envelope, body, "
		    "bodystructure, CAST(strftime('%s','now') AS INTEGER) "
		    "FROM messages WHERE id = ?6",
		    error_r);
		if (st == NULL)
			goto rollback;
		sqlite3_bind_int64(st, 1, dest_id);
		sqlite3_bind_int64(st, 2, uid);
		sqlite3_bind_text(st, 3, it->new_base, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, it->new_fname, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (int64_t)modseq);
		sqlite3_bind_int64(st, 6, it->src_id);
		int rc = sqlite3_step(st);
		store_stmt_done(store, &st);
		if (rc != SQLITE_DONE) {
			*error_r = store_db_error(store, "copy");
			goto rollback;
		}
		int64_t new_id = sqlite3_last_insert_rowid(store->db);
		if (store_index_run(
			store,
			"INSERT INTO parts SELECT ?1, section, is_message, header_start, "
			"body_start, end_off, lines FROM parts WHERE message_id = ?2",
			new_id, it->src_id, "copy parts", error_r) < 0 ||
		    store_index_run(store,
				    "INSERT INTO fts(rowid, header, body) SELECT ?1, header, body "
				    "FROM fts WHERE rowid = ?2",
				    new_id, it->src_id, "copy search text", error_r) < 0)
			goto rollback;
		if (move) {
			if (store_index_run(store, "DELETE FROM messages WHERE id = ?", it->src_id,
					    0, "move", error_r) < 0)
				goto rollback;
		} else {
			copied_bytes += it->size;
		}
		su[done] = it->src_uid;
		du[done] = uid;
		done++;
	}
	if ((move && store_index_bump_modseq(store, src->id, &src_modseq, error_r) < 0) ||
	    store_index_quota_add(store, (int64_t)copied_bytes, error_r) < 0 ||
	    store_index_commit(store, error_r) < 0)
		goto rollback;
	for (size_t i = 0; i < done; i++) {
		store_notify(store, STORE_EVENT_APPEND, norm, du[i], 0, modseq);
		if (move)
			store_notify(store, STORE_EVENT_EXPUNGE, src->name, su[i], 0, src_modseq);
	}
	*src_uids_r = su;
	*dest_uids_r = du;
	*count_r = done;
	ret = 1;
	goto out;
rollback:
	store_index_rollback(store);
	in_tx = false;
	free(su);
	free(du);
undo:
	if (in_tx)
		store_index_rollback(store);
	in_tx = false;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (!it->placed)
			continue;
		char *to = xasprintf("%s/cur/%s", dest_dir, it->new_fname);
		if (move) {
			char *from = xasprintf("%s/cur/%s", src->dir, it->src_fname);
			/* if it cannot go back, reconcile adopts it in dest */
			if (rename(to, from) < 0)
				(void)0;
			free(from);
		} else {
			unlink(to);
		}
		free(to);
	}
out:
	for (size_t i = 0; i < n; i++) {
		free(items[i].src_fname);
		free(items[i].new_base);
		free(items[i].new_fname);
	}
	free(items);
	free(dest_dir);
	free(norm);
	return ret;
}
