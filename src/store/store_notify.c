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

void store_notify(struct store *store, enum store_event_kind kind, const char *folder, uint32_t uid,
		  unsigned flags, uint64_t modseq)
{
	struct store_event ev = {
	    .kind = kind, .folder = folder, .uid = uid, .flags = flags, .modseq = modseq};
	/* a callback may subscribe more: iterate over a copy of the count */
	size_t n = store->nsubs;
	for (size_t i = 0; i < n && i < store->nsubs; i++)
		store->subs[i].cb(store->subs[i].ctx, &ev);
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
	watch_dir(store, name, "new");
	watch_dir(store, name, "cur");
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
	sqlite3_finalize(st);
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
	sqlite3_finalize(st);
	return appeared ? known : !known;
}

int store_watch_handle(struct store *store, char **error_r)
{
	if (store->watch_fd < 0)
		return 0;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	char **dirty = NULL;
	size_t ndirty = 0;
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
				bool appeared = (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0;
				if (!w->is_new && (ev.mask & IN_Q_OVERFLOW) == 0 && *name != '\0' &&
				    own_change(store, w->folder, name, appeared))
					continue;
				bool seen = false;
				for (size_t k = 0; k < ndirty && !seen; k++)
					seen = strcmp(dirty[k], w->folder) == 0;
				if (!seen) {
					dirty = xrealloc(dirty, (ndirty + 1) * sizeof(*dirty));
					dirty[ndirty++] = xstrdup(w->folder);
				}
			}
			if (ev.mask & IN_Q_OVERFLOW) {
				/* events were lost: look at every watched folder */
				for (size_t i = 0; i < store->nwatches; i++) {
					dirty = xrealloc(dirty, (ndirty + 1) * sizeof(*dirty));
					dirty[ndirty++] = xstrdup(store->watches[i].folder);
				}
			}
			p += sizeof(struct inotify_event) + ev.len;
		}
	}
	int ret = 1;
	for (size_t i = 0; i < ndirty; i++) {
		if (ret == 1 && store_folder_reconcile(store, dirty[i], NULL, NULL, error_r) < 0)
			ret = -1;
		free(dirty[i]);
	}
	free(dirty);
	return ret;
}

void store_watch_close(struct store *store)
{
	for (size_t i = 0; i < store->nwatches; i++)
		free(store->watches[i].folder);
	free(store->watches);
	store->watches = NULL;
	store->nwatches = 0;
	if (store->watch_fd >= 0)
		close(store->watch_fd);
	store->watch_fd = -1;
}
