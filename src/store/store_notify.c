#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* Change notifications within one process, and inotify for files that
 * other programs put into (or take out of) the Maildir. */

unsigned store_subscribe(struct store *store, store_event_cb *cb, void *ctx)
{
	store->subs = xrealloc(store->subs, (store->nsubs + 1) * sizeof(*store->subs));
	struct store_sub *s = &store->subs[store->nsubs++];
	s->id = ++store->next_sub_id;
	s->cb = cb;
	s->ctx = ctx;
	return s->id;
}

void store_unsubscribe(struct store *store, unsigned id)
{
	for (size_t i = 0; i < store->nsubs; i++)
		if (store->subs[i].id == id) {
			memmove(&store->subs[i], &store->subs[i + 1],
				(store->nsubs - i - 1) * sizeof(*store->subs));
			store->nsubs--;
			return;
		}
}

static struct store_seen *seen_get(struct store *store, const char *folder)
{
	for (size_t i = 0; i < store->nseen; i++)
		if (strcmp(store->seen[i].folder, folder) == 0)
			return &store->seen[i];
	return NULL;
}

/* Start tracking a folder from its present state. */
static void seen_init(struct store *store, const char *folder)
{
	char *error = NULL;
	uint32_t uidnext;
	uint64_t modseq;
	if (store_index_folder_get(store, folder, NULL, NULL, &uidnext, &modseq, &error) <= 0) {
		free(error);
		return;
	}
	struct store_seen *s = seen_get(store, folder);
	if (s == NULL) {
		store->seen = xrealloc(store->seen, (store->nseen + 1) * sizeof(*store->seen));
		s = &store->seen[store->nseen++];
		s->folder = xstrdup(folder);
	}
	s->modseq = modseq;
	s->uidnext = uidnext;
}

void store_notify(struct store *store, enum store_event_kind kind, const char *folder, uint32_t uid,
		  unsigned flags, uint64_t modseq)
{
	struct store_seen *seen = store->watch_fd >= 0 ? seen_get(store, folder) : NULL;
	if (seen != NULL) {
		/* our own changes come in MODSEQ order; a gap means another
		 * process changed the folder meanwhile: store_watch_handle()
		 * reports that from the index */
		if (modseq == seen->modseq + 1)
			seen->modseq = modseq;
		if (kind == STORE_EVENT_APPEND && uid >= seen->uidnext)
			seen->uidnext = uid + 1;
	}
	struct store_event ev = {
	    .kind = kind, .folder = folder, .uid = uid, .flags = flags, .modseq = modseq};
	/* a callback may subscribe more: iterate over a copy of the count */
	size_t n = store->nsubs;
	for (size_t i = 0; i < n && i < store->nsubs; i++)
		store->subs[i].cb(store->subs[i].ctx, &ev);
}

/* Report what changed in a folder since this store last looked: new
 * messages, flag changes and expunges made by other processes. */
static int report_changes(struct store *store, const char *folder, char **error_r)
{
	struct store_seen *seen = seen_get(store, folder);
	if (seen == NULL) {
		seen_init(store, folder);
		return 0;
	}
	int64_t id;
	uint32_t uidnext;
	uint64_t modseq;
	int r = store_index_folder_get(store, folder, &id, NULL, &uidnext, &modseq, error_r);
	if (r <= 0)
		return r;
	if (modseq <= seen->modseq)
		return 0;
	uint64_t since = seen->modseq;
	uint32_t old_uidnext = seen->uidnext;
	seen->modseq = modseq;
	seen->uidnext = uidnext;
	/* copies: the callbacks may change the seen array */
	char *name = xstrdup(folder);
	sqlite3_stmt *st =
	    store_stmt(store,
		       "SELECT 0, uid, flags, modseq FROM messages WHERE folder_id = ?1 "
		       "AND modseq > ?2 UNION ALL SELECT 1, uid, 0, modseq FROM expunged "
		       "WHERE folder_id = ?1 AND modseq > ?2 ORDER BY 4",
		       error_r);
	if (st == NULL) {
		free(name);
		return -1;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)since);
	struct change {
		int gone;
		uint32_t uid;
		unsigned flags;
		uint64_t modseq;
	} *changes = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		changes = xrealloc(changes, (n + 1) * sizeof(*changes));
		changes[n].gone = sqlite3_column_int(st, 0);
		changes[n].uid = (uint32_t)sqlite3_column_int64(st, 1);
		changes[n].flags = (unsigned)sqlite3_column_int(st, 2);
		changes[n].modseq = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	store_stmt_done(store, &st);
	for (size_t i = 0; i < n; i++) {
		enum store_event_kind kind = changes[i].gone		     ? STORE_EVENT_EXPUNGE
					     : changes[i].uid >= old_uidnext ? STORE_EVENT_APPEND
									     : STORE_EVENT_FLAGS;
		struct store_event ev = {.kind = kind,
					 .folder = name,
					 .uid = changes[i].uid,
					 .flags = changes[i].flags,
					 .modseq = changes[i].modseq};
		size_t nsubs = store->nsubs;
		for (size_t k = 0; k < nsubs && k < store->nsubs; k++)
			store->subs[k].cb(store->subs[k].ctx, &ev);
	}
	free(changes);
	free(name);
	return 0;
}

static void watch_dir(struct store *store, const char *folder, const char *sub)
{
	char *dir = store_maildir_dir(store, folder);
	char *path = xasprintf("%s/%s", dir, sub);
	free(dir);
	int wd =
	    inotify_add_watch(store->watch_fd, path,
			      IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
	free(path);
	if (wd < 0)
		return;
	for (size_t i = 0; i < store->nwatches; i++)
		if (store->watches[i].wd == wd) {
			free(store->watches[i].folder);
			store->watches[i].folder = xstrdup(folder);
			return;
		}
	store->watches = xrealloc(store->watches, (store->nwatches + 1) * sizeof(*store->watches));
	store->watches[store->nwatches].wd = wd;
	store->watches[store->nwatches].folder = xstrdup(folder);
	store->watches[store->nwatches].is_new = strcmp(sub, "new") == 0;
	store->nwatches++;
}

void store_watch_add_folder(struct store *store, const char *name)
{
	if (store->watch_fd < 0)
		return;
	if (seen_get(store, name) == NULL)
		seen_init(store, name);
	watch_dir(store, name, "new");
	watch_dir(store, name, "cur");
}

bool store_watch_covers(const struct store *store, const char *folder)
{
	if (store->watch_fd < 0)
		return false;
	bool cur = false, new = false;
	for (size_t i = 0; i < store->nwatches; i++)
		if (strcmp(store->watches[i].folder, folder) == 0) {
			if (store->watches[i].is_new)
				new = true;
			else
				cur = true;
		}
	return cur && new;
}

int store_watch_fd(struct store *store, char **error_r)
{
	if (store->watch_fd >= 0)
		return store->watch_fd;
	store->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (store->watch_fd < 0) {
		*error_r = xasprintf("inotify: %s", strerror(errno));
		return -1;
	}
	sqlite3_stmt *st = store_stmt(store, "SELECT name FROM folders", error_r);
	if (st == NULL)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW)
		store_watch_add_folder(store, (const char *)sqlite3_column_text(st, 0));
	store_stmt_done(store, &st);
	return store->watch_fd;
}

/* Whether an event in cur/ is one of our own: a name that appeared and is
 * in the index, or a name that went away and is not (any more). */
static bool own_change(struct store *store, const char *folder, const char *fname, bool appeared)
{
	char *error = NULL;
	sqlite3_stmt *st =
	    store_stmt(store,
		       "SELECT 1 FROM messages m JOIN folders f ON f.id = m.folder_id "
		       "WHERE f.name = ? AND m.fname = ?",
		       &error);
	if (st == NULL) {
		free(error);
		return false;
	}
	sqlite3_bind_text(st, 1, folder, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, fname, -1, SQLITE_STATIC);
	bool known = sqlite3_step(st) == SQLITE_ROW;
	store_stmt_done(store, &st);
	return appeared ? known : !known;
}

static void add_name(char ***list, size_t *n, const char *name)
{
	for (size_t k = 0; k < *n; k++)
		if (strcmp((*list)[k], name) == 0)
			return;
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrdup(name);
}

int store_watch_handle(struct store *store, char **error_r)
{
	if (store->watch_fd < 0)
		return 0;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	char **rescan = NULL, **check = NULL;
	size_t nrescan = 0, ncheck = 0;
	for (;;) {
		ssize_t n = read(store->watch_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event ev;
			memcpy(&ev, p, sizeof(ev));
			const char *name = ev.len > 0 ? p + sizeof(struct inotify_event) : "";
			for (size_t i = 0; i < store->nwatches; i++) {
				const struct store_watch *w = &store->watches[i];
				if (w->wd != ev.wd)
					continue;
				add_name(&check, &ncheck, w->folder);
				/* a name the index knows (appeared) or no longer
				 * knows (went away) in cur/ is a postern change,
				 * already in the index: no rescan needed */
				bool appeared = (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0;
				if (w->is_new || *name == '\0' ||
				    !own_change(store, w->folder, name, appeared))
					add_name(&rescan, &nrescan, w->folder);
			}
			if (ev.mask & IN_Q_OVERFLOW) {
				/* events were lost: look at every watched folder */
				for (size_t i = 0; i < store->nwatches; i++) {
					add_name(&rescan, &nrescan, store->watches[i].folder);
					add_name(&check, &ncheck, store->watches[i].folder);
				}
			}
			p += sizeof(struct inotify_event) + ev.len;
		}
	}
	int ret = 1;
	for (size_t i = 0; i < nrescan; i++) {
		if (ret == 1 && store_folder_reconcile(store, rescan[i], NULL, NULL, error_r) < 0)
			ret = -1;
		free(rescan[i]);
	}
	for (size_t i = 0; i < ncheck; i++) {
		if (ret == 1 && report_changes(store, check[i], error_r) < 0)
			ret = -1;
		free(check[i]);
	}
	free(rescan);
	free(check);
	return ret;
}

void store_watch_close(struct store *store)
{
	for (size_t i = 0; i < store->nwatches; i++)
		free(store->watches[i].folder);
	free(store->watches);
	store->watches = NULL;
	store->nwatches = 0;
	for (size_t i = 0; i < store->nseen; i++)
		free(store->seen[i].folder);
	free(store->seen);
	store->seen = NULL;
	store->nseen = 0;
	if (store->watch_fd >= 0)
		close(store->watch_fd);
	store->watch_fd = -1;
}
