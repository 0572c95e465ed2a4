#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Messages of an open folder: index rows, reading, flags, expunge. */

void store_guid_new(char guid[33])
{
	unsigned char rnd[16];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	for (int i = 0; i < 16; i++)
		snprintf(guid + i * 2, 3, "%02x", rnd[i]);
}

int store_index_insert_message(struct store *store, int64_t folder_id, uint32_t uid,
			       uint64_t modseq, const char *base, const char *fname, uint64_t size,
			       time_t internal_date, unsigned flags, const char *keywords,
			       const char *guid, const struct store_parsed *parsed, char **error_r)
{
	sqlite3_stmt *st = store_stmt(
	    store,
	    "INSERT INTO messages(folder_id, uid, base, fname, size, internal_date, sent_day,"
	    " flags, keywords, modseq, guid, envelope, body, bodystructure, save_date)"
	    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,CAST(strftime('%s','now') AS INTEGER))",
	    error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, base, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, fname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)size);
	sqlite3_bind_int64(st, 6, (int64_t)internal_date);
	if (parsed->sent_day != INT64_MIN)
		sqlite3_bind_int64(st, 7, parsed->sent_day);
	sqlite3_bind_int(st, 8, (int)flags);
	sqlite3_bind_text(st, 9, keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, (int64_t)modseq);
	sqlite3_bind_text(st, 11, guid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, parsed->envelope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, parsed->body, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, parsed->bodystructure, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "message insert");
		return -1;
	}
	int64_t id = sqlite3_last_insert_rowid(store->db);
	st = store_stmt(store, "INSERT INTO parts VALUES(?,?,?,?,?,?,?)", error_r);
	if (st == NULL)
		return -1;
	for (size_t i = 0; i < parsed->nsections; i++) {
		const struct store_section *s = &parsed->sections[i];
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, s->section, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, s->is_message);
		sqlite3_bind_int64(st, 4, (int64_t)s->header_start);
		sqlite3_bind_int64(st, 5, (int64_t)s->body_start);
		sqlite3_bind_int64(st, 6, (int64_t)s->end);
		sqlite3_bind_int64(st, 7, (int64_t)s->lines);
		if (sqlite3_step(st) != SQLITE_DONE) {
			store_stmt_done(store, &st);
			*error_r = store_db_error(store, "part insert");
			return -1;
		}
	}
	store_stmt_done(store, &st);
	st = store_stmt(store, "INSERT INTO fts(rowid, header, body) VALUES(?,?,?)", error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, parsed->header_text != NULL ? parsed->header_text : "", -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 3, parsed->body_text != NULL ? parsed->body_text : "", -1,
			  SQLITE_STATIC);
	rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "search text insert");
		return -1;
	}
	return 0;
}

int store_flags_parse(const char *const *words, size_t nwords, unsigned *flags_r,
		      const char ***keywords_r, size_t *nkeywords_r, char **error_r)
{
	static const struct {
		const char *name;
		unsigned flag;
	} sys[] = {
	    {"\\Seen", STORE_FLAG_SEEN},       {"\\Answered", STORE_FLAG_ANSWERED},
	    {"\\Flagged", STORE_FLAG_FLAGGED}, {"\\Deleted", STORE_FLAG_DELETED},
	    {"\\Draft", STORE_FLAG_DRAFT},     {"\\Recent", STORE_FLAG_RECENT},
	};
	unsigned flags = 0;
	const char **kw = nwords > 0 ? xcalloc(nwords, sizeof(*kw)) : NULL;
	size_t nkw = 0;
	for (size_t i = 0; i < nwords; i++) {
		const char *w = words[i];
		if (w[0] == '\\') {
			bool found = false;
			for (size_t k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
				if (strcasecmp(w, sys[k].name) == 0) {
					flags |= sys[k].flag;
					found = true;
				}
			if (!found) {
				*error_r = xasprintf("unknown system flag '%s'", w);
				free(kw);
				return -1;
			}
			continue;
		}
		size_t len = strlen(w);
		bool ok = len > 0 && len <= STORE_KEYWORD_MAX;
		for (size_t k = 0; k < len && ok; k++) {
			unsigned char c = (unsigned char)w[k];
			ok = c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
		}
		if (!ok) {
			*error_r =
			    xasprintf("bad keyword '%s' (1 to %d printable ASCII characters, "
				      "none of (){%%*\"\\])",
				      w, STORE_KEYWORD_MAX);
			free(kw);
			return -1;
		}
		kw[nkw++] = w;
	}
	if (nkw > STORE_KEYWORDS_MAX) {
		*error_r = xasprintf("too many keywords (at most %d)", STORE_KEYWORDS_MAX);
		free(kw);
		return -1;
	}
	*flags_r = flags;
	if (keywords_r != NULL)
		*keywords_r = kw;
	else
		free(kw);
	if (nkeywords_r != NULL)
		*nkeywords_r = nkw;
	return 0;
}

/* The row of a message: id, base, fname, flags, keywords, size. */
struct row {
	int64_t id;
	char *base, *fname, *keywords;
	unsigned flags;
	uint64_t size, modseq;
};

static void row_clear(struct row *r)
{
	free(r->base);
	free(r->fname);
	free(r->keywords);
	memset(r, 0, sizeof(*r));
}

static int row_get(struct store_folder *f, uint32_t uid, struct row *row, char **error_r)
{
	memset(row, 0, sizeof(*row));
	sqlite3_stmt *st = store_stmt(f->store,
				      "SELECT id, base, fname, flags, keywords, size, modseq FROM "
				      "messages WHERE folder_id = ? AND uid = ?",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, f->id);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		row->id = sqlite3_column_int64(st, 0);
		row->base = xstrdup((const char *)sqlite3_column_text(st, 1));
		row->fname = xstrdup((const char *)sqlite3_column_text(st, 2));
		row->flags = (unsigned)sqlite3_column_int(st, 3);
		row->keywords = xstrdup((const char *)sqlite3_column_text(st, 4));
		row->size = (uint64_t)sqlite3_column_int64(st, 5);
		row->modseq = (uint64_t)sqlite3_column_int64(st, 6);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		*error_r = store_db_error(f->store, "message lookup");
		ret = -1;
	}
	store_stmt_done(f->store, &st);
	return ret;
}

/* Find a message's file whose name changed behind our back (flags set by
 * another program): scan cur/ for the base. Updates the row. */
static int find_renamed(struct store_folder *f, struct row *row, char **error_r)
{
	char *cur = xasprintf("%s/cur", f->dir);
	DIR *d = opendir(cur);
	free(cur);
	if (d == NULL)
		return 0;
	size_t bl = strlen(row->base);
	char *found = NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, row->base, bl) == 0 &&
		    (de->d_name[bl] == ':' || de->d_name[bl] == '\0')) {
			found = xstrdup(de->d_name);
			break;
		}
	closedir(d);
	if (found == NULL)
		return 0;
	sqlite3_stmt *st =
	    store_stmt(f->store, "UPDATE messages SET fname = ? WHERE id = ?", error_r);
	if (st != NULL) {
		sqlite3_bind_text(st, 1, found, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, row->id);
		sqlite3_step(st);
		store_stmt_done(f->store, &st);
	}
	free(row->fname);
	row->fname = found;
	return 1;
}

static int open_row(struct store_folder *f, struct row *row, int *fd_r, char **error_r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char *path = xasprintf("%s/cur/%s", f->dir, row->fname);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		int e = errno;
		free(path);
		if (fd >= 0) {
			*fd_r = fd;
			return 1;
		}
		if (e != ENOENT) {
			*error_r = xasprintf("open message %s: %s", row->fname, strerror(e));
			return -1;
		}
		if (attempt == 0 && find_renamed(f, row, error_r) <= 0)
			return 0;
	}
	return 0;
}

int store_message_open(struct store_folder *folder, uint32_t uid, int *fd_r, char **error_r)
{
	struct row row;
	int r = row_get(folder, uid, &row, error_r);
	if (r == 1)
		r = open_row(folder, &row, fd_r, error_r);
	row_clear(&row);
	return r;
}

int store_message_pread(struct store_folder *folder, uint32_t uid, uint64_t offset, void *buf,
			size_t size, size_t *got_r, char **error_r)
{
	int fd;
	int r = store_message_open(folder, uid, &fd, error_r);
	if (r <= 0)
		return r;
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, (char *)buf + got, size - got, (off_t)(offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("read message: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*got_r = got;
	return 1;
}

int store_message_imap(struct store_folder *folder, uint32_t uid, char **envelope_r, char **body_r,
		       char **bodystructure_r, char **error_r)
{
	sqlite3_stmt *st = store_stmt(folder->store,
				      "SELECT envelope, body, bodystructure FROM messages "
				      "WHERE folder_id = ? AND uid = ?",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder->id);
	sqlite3_bind_int64(st, 2, uid);
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		char **outs[3] = {envelope_r, body_r, bodystructure_r};
		for (int i = 0; i < 3; i++)
			if (outs[i] != NULL) {
				const char *t = (const char *)sqlite3_column_text(st, i);
				*outs[i] = xstrdup(t != NULL ? t : "NIL");
			}
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		*error_r = store_db_error(folder->store, "message lookup");
		ret = -1;
	}
	store_stmt_done(folder->store, &st);
	return ret;
}

int store_message_section(struct store_folder *folder, uint32_t uid, const char *section,
			  enum store_section_part what, uint64_t *offset_r, uint64_t *size_r,
			  uint64_t *lines_r, char **error_r)
{
	bool want_message = what == STORE_SECTION_HEADER || what == STORE_SECTION_TEXT ||
			    (what == STORE_SECTION_ALL && *section == '\0');
	sqlite3_stmt *st = store_stmt(folder->store,
				      "SELECT p.header_start, p.body_start, p.end_off, p.lines, "
				      "m.size FROM messages m JOIN parts p ON p.message_id = m.id "
				      "WHERE m.folder_id = ? AND m.uid = ? AND p.section = ? "
				      "AND p.is_message = ?",
				      error_r);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, folder->id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, section, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, want_message);
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		uint64_t hs = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t bs = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t end = (uint64_t)sqlite3_column_int64(st, 2);
		uint64_t lines = (uint64_t)sqlite3_column_int64(st, 3);
		uint64_t size = (uint64_t)sqlite3_column_int64(st, 4);
		switch (what) {
		case STORE_SECTION_ALL:
			if (*section == '\0') {
				*offset_r = 0;
				*size_r = size;
			} else {
				*offset_r = bs;
				*size_r = end - bs;
			}
			break;
		case STORE_SECTION_HEADER:
		case STORE_SECTION_MIME:
			*offset_r = hs;
			*size_r = bs - hs;
			lines = 0;
			break;
		case STORE_SECTION_TEXT:
			*offset_r = bs;
			*size_r = end - bs;
			break;
		}
		if (lines_r != NULL)
			*lines_r = lines;
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		*error_r = store_db_error(folder->store, "section lookup");
		ret = -1;
	}
	store_stmt_done(folder->store, &st);
	return ret;
}

/* ---- flags ---- */

static bool kw_has(const char *list, const char *kw)
{
	size_t l = strlen(kw);
	const char *s = list;
	while (*s != '\0') {
		const char *e = strchr(s, ' ');
		size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
		if (n == l && strncasecmp(s, kw, l) == 0)
			return true;
		s += n;
		while (*s == ' ')
			s++;
	}
	return false;
}

static char *kw_apply(const char *list, int mode, const char *const *kw, size_t n)
{
	size_t cap = strlen(list) + 2;
	for (size_t i = 0; i < n; i++)
		cap += strlen(kw[i]) + 1;
	char *out = xmalloc(cap);
	out[0] = '\0';
	size_t o = 0;
	unsigned count = 0;
	if (mode != 0) {
		const char *s = list;
		while (*s != '\0') {
			const char *e = strchr(s, ' ');
			size_t l = e != NULL ? (size_t)(e - s) : strlen(s);
			char *word = xstrndup(s, l);
			bool drop = false;
			if (mode < 0)
				for (size_t i = 0; i < n && !drop; i++)
					drop = strcasecmp(word, kw[i]) == 0;
			if (!drop && l > 0) {
				o += (size_t)sprintf(out + o, "%s%s", o > 0 ? " " : "", word);
				count++;
			}
			free(word);
			s += l;
			while (*s == ' ')
				s++;
		}
	}
	if (mode >= 0)
		for (size_t i = 0; i < n && count < STORE_KEYWORDS_MAX; i++)
			if (!kw_has(out, kw[i])) {
				o += (size_t)sprintf(out + o, "%s%s", o > 0 ? " " : "", kw[i]);
				count++;
			}
	return out;
}

static void snapshot_update(struct store_folder *f, uint32_t uid, unsigned flags,
			    const char *keywords, uint64_t modseq)
{
	for (struct store_folder *o = f->store->open_folders; o != NULL; o = o->next_open) {
		if (o->id != f->id)
			continue;
		long i = store_folder_find(o, uid);
		if (i < 0)
			continue;
		o->msgs[i].flags = flags | (o->msgs[i].flags & STORE_FLAG_RECENT);
		o->msgs[i].modseq = modseq;
		if (keywords != NULL)
			store_snapshot_set_keywords(&o->msgs[i], keywords);
		if (modseq > o->highestmodseq)
			o->highestmodseq = modseq;
	}
}

/* New flags = (old | add) & ~remove; keywords changed by kw_mode (0
 * replace, 1 add, -1 remove, 2 untouched). */
static int flags_apply(struct store_folder *folder, uint32_t uid, unsigned add, unsigned remove,
		       int kw_mode, const char *const *keywords, size_t nkeywords,
		       uint64_t *modseq_r, char **error_r)
{
	struct store *store = folder->store;
	struct row row;
	int r = row_get(folder, uid, &row, error_r);
	if (r <= 0)
		return r;
	unsigned nflags = ((row.flags | add) & ~remove) & STORE_FLAGS_SYSTEM;
	char *nkw = kw_mode != 2 ? kw_apply(row.keywords, kw_mode, keywords, nkeywords)
				 : xstrdup(row.keywords);
	if (nflags == row.flags && strcmp(nkw, row.keywords) == 0) {
		if (modseq_r != NULL)
			*modseq_r = row.modseq;
		free(nkw);
		row_clear(&row);
		return 1;
	}
	/* the file name first, the index after: after a crash of the process
	 * the name is never older than the index. Neither is flushed to the
	 * disk here: a power failure may take back a flag change, whose
	 * file name then gives the row its old flags again (reconcile), but
	 * never a message; STORE then costs no disk flush */
	char *newname = store_maildir_fname(row.base, nflags);
	int ret = -1;
	if (strcmp(newname, row.fname) != 0) {
		char *from = xasprintf("%s/cur/%s", folder->dir, row.fname);
		char *to = xasprintf("%s/cur/%s", folder->dir, newname);
		int rr = rename(from, to);
		int e = errno;
		free(from);
		free(to);
		if (rr < 0 && e == ENOENT && find_renamed(folder, &row, error_r) > 0) {
			from = xasprintf("%s/cur/%s", folder->dir, row.fname);
			to = xasprintf("%s/cur/%s", folder->dir, newname);
			rr = rename(from, to);
			e = errno;
			free(from);
			free(to);
		}
		if (rr < 0) {
			if (e == ENOENT)
				ret = 0;
			else
				*error_r = xasprintf("rename message file: %s", strerror(e));
			goto out;
		}
	}
	uint64_t modseq;
	if (store_index_begin_lazy(store, error_r) < 0)
		goto out;
	sqlite3_stmt *st = NULL;
	if (store_index_bump_modseq(store, folder->id, &modseq, error_r) < 0 ||
	    (st = store_stmt(store,
			     "UPDATE messages SET flags = ?, keywords = ?, fname = ?, modseq = ? "
			     "WHERE id = ?",
			     error_r)) == NULL) {
		store_index_rollback(store);
		goto out;
	}
	sqlite3_bind_int(st, 1, (int)nflags);
	sqlite3_bind_text(st, 2, nkw, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, newname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)modseq);
	sqlite3_bind_int64(st, 5, row.id);
	int rc = sqlite3_step(st);
	store_stmt_done(store, &st);
	if (rc != SQLITE_DONE) {
		*error_r = store_db_error(store, "flags update");
		store_index_rollback(store);
		goto out;
	}
	if (store_index_commit(store, error_r) < 0)
		goto out;
	snapshot_update(folder, uid, nflags, nkw, modseq);
	if (modseq_r != NULL)
		*modseq_r = modseq;
	store_notify(store, STORE_EVENT_FLAGS, folder->name, uid, nflags, modseq);
	ret = 1;
out:
	free(newname);
	free(nkw);
	row_clear(&row);
	return ret;
}

int store_flags_change(struct store_folder *folder, uint32_t uid, int mode, unsigned flags,
		       const char *const *keywords, size_t nkeywords, uint64_t *modseq_r,
		       char **error_r)
{
	flags &= STORE_FLAGS_SYSTEM;
	if (keywords == NULL)
		nkeywords = 0;
	if (mode == 0)
		return flags_apply(folder, uid, flags, STORE_FLAGS_SYSTEM & ~flags, 0, keywords,
				   nkeywords, modseq_r, error_r);
	if (mode > 0)
		return flags_apply(folder, uid, flags, 0, nkeywords > 0 ? 1 : 2, keywords,
				   nkeywords, modseq_r, error_r);
	return flags_apply(folder, uid, 0, flags, nkeywords > 0 ? -1 : 2, keywords, nkeywords,
			   modseq_r, error_r);
}

int store_flags_update(struct store_folder *folder, uint32_t uid, unsigned add, unsigned remove,
		       char **error_r)
{
	return flags_apply(folder, uid, add, remove, 2, NULL, 0, NULL, error_r);
}

/* ---- expunge ---- */

int store_expunge(struct store_folder *folder, const uint32_t *uids, size_t count, char **error_r)
{
	struct store *store = folder->store;
	/* unlink every file first, fsync the directory once, then drop the
	 * rows: a crash in between leaves rows that reconcile expunges */
	int64_t *ids = xcalloc(count + 1, sizeof(*ids));
	uint64_t *sizes = xcalloc(count + 1, sizeof(*sizes));
	uint32_t *gone = xcalloc(count + 1, sizeof(*gone));
	size_t n = 0;
	int ret = -1;
	for (size_t i = 0; i < count; i++) {
		struct row row;
		int r = row_get(folder, uids[i], &row, error_r);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		char *path = xasprintf("%s/cur/%s", folder->dir, row.fname);
		if (unlink(path) < 0 && errno == ENOENT &&
		    find_renamed(folder, &row, error_r) > 0) {
			free(path);
			path = xasprintf("%s/cur/%s", folder->dir, row.fname);
			unlink(path);
		}
		free(path);
		ids[n] = row.id;
		sizes[n] = row.size;
		gone[n] = uids[i];
		n++;
		row_clear(&row);
	}
	if (n == 0) {
		ret = 1;
		goto out;
	}
	char *cur = xasprintf("%s/cur", folder->dir);
	int r = store_fsync_dir(cur, error_r);
	free(cur);
	if (r < 0 || store_index_begin(store, error_r) < 0)
		goto out;
	uint64_t modseq = 0;
	int64_t total = 0;
	sqlite3_stmt *st = store_stmt(store, "DELETE FROM messages WHERE id = ?", error_r);
	if (st == NULL) {
		store_index_rollback(store);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ids[i]);
		if (sqlite3_step(st) != SQLITE_DONE) {
			*error_r = store_db_error(store, "expunge");
			store_stmt_done(store, &st);
			store_index_rollback(store);
			goto out;
		}
		total += (int64_t)sizes[i];
	}
	store_stmt_done(store, &st);
	if (store_index_bump_modseq(store, folder->id, &modseq, error_r) < 0 ||
	    store_index_quota_add(store, -total, error_r) < 0 ||
	    store_index_commit(store, error_r) < 0) {
		store_index_rollback(store);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		store_notify(store, STORE_EVENT_EXPUNGE, folder->name, gone[i], 0, modseq);
	ret = 1;
out:
	free(ids);
	free(sizes);
	free(gone);
	return ret;
}
