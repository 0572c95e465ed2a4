#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lib/xalloc.h"
#include "store/store_private.h"

/* The watcher: one inotify instance for every store of a process, and
 * polling for the folders it cannot watch.
 *
 * The kernel bounds inotify instances per user id (128 by default): one
 * instance per store would run out once the processes of one user id
 * serve that many users, whose IDLE would then miss deliveries. Each
 * attached store has
 * a watch on new/ and cur/ of each folder. inotify gives a directory one
 * watch descriptor (wd) however often it is added to an instance, so two
 * stores of one user in this process share a wd: a wd leads to a chain of
 * entries, one per store, and the kernel's watch is removed with the last
 * of them. Watches are bounded too (the watcher's max_watches, the
 * kernel's fs.inotify.max_user_watches): a folder that gets no watch is
 * polled, by the directories' mtimes and the index's MODSEQ, and is never
 * half watched. */

#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)

/* what to do for a folder, in increasing cost; the larger wins */
enum watch_todo {
	TODO_NONE,
	TODO_REPORT, /* a postern process changed it: the index has it all */
	TODO_SCAN,   /* reconcile if the directories' mtimes changed */
	TODO_RESCAN, /* another program changed the files: reconcile */
};

struct wd_slot {
	int wd;
	struct store_watch *first; /* one entry per store, through next_same */
};

struct store_watcher {
	int fd;		      /* -1: no inotify instance */
	unsigned max_watches; /* kernel watches (distinct wds) it may hold */
	struct wd_slot *wds;  /* ascending by wd */
	size_t nwds;
	struct store *stores; /* attached, through watch_next */
	struct store **dirty; /* stores with entries to handle */
	size_t ndirty;
	size_t npolled;	    /* polled folders of all stores */
	char *no_fd_reason; /* why there is no instance */
	char *fallback;	    /* why the first polled folder is polled */
};

struct store_watcher *store_watcher_new(unsigned max_watches)
{
	struct store_watcher *w = xcalloc(1, sizeof(*w));
	w->max_watches = max_watches;
	w->fd = -1;
	if (max_watches == 0) {
		w->no_fd_reason = xstrdup("the bound of inotify watches of this process is 0");
		return w;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0)
		w->no_fd_reason =
		    xasprintf("inotify_init1: %s%s", strerror(errno),
			      errno == EMFILE ? " (fs.inotify.max_user_instances)" : "");
	return w;
}

void store_watcher_free(struct store_watcher **watcher)
{
	struct store_watcher *w = *watcher;
	if (w == NULL)
		return;
	while (w->stores != NULL)
		store_watch_detach(w->stores);
	if (w->fd >= 0)
		close(w->fd);
	free(w->wds);
	free(w->dirty);
	free(w->no_fd_reason);
	free(w->fallback);
	free(w);
	*watcher = NULL;
}

int store_watcher_fd(const struct store_watcher *watcher)
{
	return watcher->fd;
}

bool store_watcher_polling(const struct store_watcher *watcher)
{
	return watcher->npolled > 0;
}

const char *store_watcher_fallback(const struct store_watcher *watcher)
{
	return watcher->npolled > 0 ? watcher->fallback : NULL;
}

unsigned store_watcher_watches(const struct store_watcher *watcher)
{
	return (unsigned)watcher->nwds;
}

/* ---- the wd table ---- */

/* Index of wd's slot, or where it would go. */
static size_t wd_search(const struct store_watcher *w, int wd, bool *found_r)
{
	size_t lo = 0, hi = w->nwds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->wds[mid].wd < wd)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = lo < w->nwds && w->wds[lo].wd == wd;
	return lo;
}

static void entry_add(struct store *store, int wd, const char *folder, bool is_new)
{
	struct store_watcher *w = store->watcher;
	bool found;
	size_t i = wd_search(w, wd, &found);
	if (found)
		for (struct store_watch *e = w->wds[i].first; e != NULL; e = e->next_same)
			if (e->store == store) {
				/* the same directory under a new name: the folder
				 * was renamed, and the watch followed its inode */
				free(e->folder);
				e->folder = xstrdup(folder);
				e->is_new = is_new;
				return;
			}
	if (!found) {
		w->wds = xrealloc(w->wds, (w->nwds + 1) * sizeof(*w->wds));
		memmove(&w->wds[i + 1], &w->wds[i], (w->nwds - i) * sizeof(*w->wds));
		w->wds[i].wd = wd;
		w->wds[i].first = NULL;
		w->nwds++;
	}
	struct store_watch *e = xcalloc(1, sizeof(*e));
	e->store = store;
	e->wd = wd;
	e->is_new = is_new;
	e->folder = xstrdup(folder);
	e->next_same = w->wds[i].first;
	w->wds[i].first = e;
	store->watches = xrealloc(store->watches, (store->nwatches + 1) * sizeof(*store->watches));
	store->watches[store->nwatches++] = e;
}

/* Drop an entry; the kernel's watch goes with the last entry of its wd
 * (rm_watch false: the kernel has dropped it already). */
static void entry_drop(struct store_watch *e, bool rm_watch)
{
	struct store *store = e->store;
	struct store_watcher *w = store->watcher;
	bool found;
	size_t i = wd_search(w, e->wd, &found);
	if (found) {
		for (struct store_watch **p = &w->wds[i].first; *p != NULL; p = &(*p)->next_same)
			if (*p == e) {
				*p = e->next_same;
				break;
			}
		if (w->wds[i].first == NULL) {
			if (rm_watch)
				inotify_rm_watch(w->fd, e->wd);
			memmove(&w->wds[i], &w->wds[i + 1], (w->nwds - i - 1) * sizeof(*w->wds));
			w->nwds--;
		}
	}
	for (size_t k = 0; k < store->nwatches; k++)
		if (store->watches[k] == e) {
			store->watches[k] = store->watches[--store->nwatches];
			break;
		}
	free(e->folder);
	free(e);
}

/* ---- polled folders ---- */

static bool polled_has(const struct store *store, const char *folder)
{
	for (size_t i = 0; i < store->npolled; i++)
		if (strcmp(store->polled[i], folder) == 0)
			return true;
	return false;
}

/* Poll a folder from now on; reason (malloc'ed, taken) says why. */
static void polled_add(struct store *store, const char *folder, char *reason)
{
	struct store_watcher *w = store->watcher;
	if (w->fallback == NULL)
		w->fallback = reason;
	else
		free(reason);
	if (polled_has(store, folder))
		return;
	store->polled = xrealloc(store->polled, (store->npolled + 1) * sizeof(*store->polled));
	store->polled[store->npolled++] = xstrdup(folder);
	w->npolled++;
}

static void polled_del(struct store *store, const char *folder)
{
	for (size_t i = 0; i < store->npolled; i++)
		if (strcmp(store->polled[i], folder) == 0) {
			free(store->polled[i]);
			store->polled[i] = store->polled[--store->npolled];
			store->watcher->npolled--;
			return;
		}
}

/* ---- attaching ---- */

/* inotify's watch of dir/sub: the wd, or -1 with errno. *fresh_r: the
 * watcher did not hold it before. */
static int add_dir(struct store_watcher *w, const char *dir, const char *sub, bool *fresh_r)
{
	char *path = xasprintf("%s/%s", dir, sub);
	int wd = inotify_add_watch(w->fd, path, WATCH_MASK);
	int e = errno;
	free(path);
	bool found = false;
	if (wd >= 0)
		wd_search(w, wd, &found);
	*fresh_r = !found;
	errno = e;
	return wd;
}

void store_watch_add_folder(struct store *store, const char *name)
{
	struct store_watcher *w = store->watcher;
	if (w == NULL)
		return;
	store_notify_track(store, name);
	if (w->fd < 0) {
		polled_add(store, name, xstrdup(w->no_fd_reason));
		return;
	}
	char *dir = store_maildir_dir(store, name);
	bool fresh_new = false, fresh_cur = false;
	int wd_new = add_dir(w, dir, "new", &fresh_new);
	int wd_cur = wd_new < 0 ? -1 : add_dir(w, dir, "cur", &fresh_cur);
	char *reason = NULL;
	if (wd_cur < 0)
		reason = xasprintf("inotify_add_watch %s/%s: %s%s", dir, wd_new < 0 ? "new" : "cur",
				   strerror(errno),
				   errno == ENOSPC ? " (fs.inotify.max_user_watches)" : "");
	else if (w->nwds + fresh_new + fresh_cur > w->max_watches)
		reason = xasprintf("the bound of %u inotify watches of this process is reached",
				   w->max_watches);
	free(dir);
	if (reason != NULL) {
		/* both directories or neither: a half-watched folder would
		 * miss the other half's changes */
		if (wd_new >= 0 && fresh_new)
			inotify_rm_watch(w->fd, wd_new);
		if (wd_cur >= 0 && fresh_cur)
			inotify_rm_watch(w->fd, wd_cur);
		polled_add(store, name, reason);
		return;
	}
	entry_add(store, wd_new, name, true);
	entry_add(store, wd_cur, name, false);
	polled_del(store, name);
}

int store_watch_attach(struct store *store, struct store_watcher *watcher, char **error_r)
{
	if (store->watcher == watcher)
		return 1;
	store_watch_detach(store);
	store->watcher = watcher;
	store->watch_prev = NULL;
	store->watch_next = watcher->stores;
	if (watcher->stores != NULL)
		watcher->stores->watch_prev = store;
	watcher->stores = store;
	/* INBOX first: where deliveries go, it gets a watch while any is left */
	sqlite3_stmt *st =
	    store_stmt(store, "SELECT name FROM folders ORDER BY name != 'INBOX', id", error_r);
	if (st == NULL) {
		store_watch_detach(store);
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		store_watch_add_folder(store, (const char *)sqlite3_column_text(st, 0));
	store_stmt_done(store, &st);
	return 1;
}

void store_watch_detach(struct store *store)
{
	struct store_watcher *w = store->watcher;
	if (w == NULL)
		return;
	while (store->nwatches > 0)
		entry_drop(store->watches[store->nwatches - 1], true);
	free(store->watches);
	store->watches = NULL;
	for (size_t i = 0; i < store->npolled; i++)
		free(store->polled[i]);
	w->npolled -= store->npolled;
	free(store->polled);
	store->polled = NULL;
	store->npolled = 0;
	if (store->watch_dirty) {
		for (size_t i = 0; i < w->ndirty; i++)
			if (w->dirty[i] == store) {
				w->dirty[i] = w->dirty[--w->ndirty];
				break;
			}
		store->watch_dirty = false;
	}
	if (store->watch_prev != NULL)
		store->watch_prev->watch_next = store->watch_next;
	else
		w->stores = store->watch_next;
	if (store->watch_next != NULL)
		store->watch_next->watch_prev = store->watch_prev;
	store->watch_prev = store->watch_next = NULL;
	store->watcher = NULL;
	store_notify_forget(store);
}

bool store_watch_covers(const struct store *store, const char *folder)
{
	bool new_dir = false, cur_dir = false;
	for (size_t i = 0; i < store->nwatches; i++)
		if (strcmp(store->watches[i]->folder, folder) == 0) {
			if (store->watches[i]->is_new)
				new_dir = true;
			else
				cur_dir = true;
		}
	return new_dir && cur_dir;
}

/* ---- finding and reporting changes ---- */

/* Bring the index in line with the folder's files (todo TODO_SCAN: only
 * when its directories' mtimes changed) and report what changed since
 * the store last looked. Returns 1, 0 when the folder is gone, -1. */
static int check_folder(struct store *store, const char *name, enum watch_todo todo, char **error_r)
{
	if (todo >= TODO_SCAN) {
		int64_t id;
		int r = store_index_folder_get(store, name, &id, NULL, NULL, NULL, error_r);
		if (r <= 0)
			return r;
		if (store_reconcile_folder(store, id, name, todo == TODO_RESCAN, NULL, NULL,
					   error_r) < 0)
			return -1;
	}
	return store_notify_report(store, name, error_r) < 0 ? -1 : 1;
}

/* Keep the first error, naming the store it is about. */
static void first_error(int *ret, char **error_r, const struct store *store, char *error)
{
	if (*ret == 1) {
		*error_r = xasprintf("%s: %s", store->path, error != NULL ? error : "?");
		*ret = -1;
	}
	free(error);
}

static void mark(struct store_watch *e, enum watch_todo todo)
{
	struct store *store = e->store;
	struct store_watcher *w = store->watcher;
	if (e->todo < todo)
		e->todo = (unsigned char)todo;
	if (!store->watch_dirty) {
		store->watch_dirty = true;
		w->dirty = xrealloc(w->dirty, (w->ndirty + 1) * sizeof(*w->dirty));
		w->dirty[w->ndirty++] = store;
	}
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

/* The kernel dropped the watch (the directory was deleted): drop its
 * entries, and poll a folder that still exists (its directories were
 * removed behind our back; reconciling makes them again). */
static void watch_gone(struct store_watcher *w, int wd)
{
	for (;;) {
		bool found;
		size_t slot = wd_search(w, wd, &found);
		if (!found)
			return; /* the last entry went with its slot */
		struct store_watch *e = w->wds[slot].first;
		struct store *store = e->store;
		char *folder = xstrdup(e->folder);
		entry_drop(e, false);
		char *error = NULL;
		if (!store_watch_covers(store, folder) &&
		    store_index_folder_get(store, folder, NULL, NULL, NULL, NULL, &error) != 0)
			polled_add(store, folder,
				   xasprintf("the directories of folder '%s' of %s went away",
					     folder, store->path));
		free(error);
		free(folder);
	}
}

static void add_name(char ***names, enum watch_todo **todos, size_t *n, const char *name,
		     enum watch_todo todo)
{
	for (size_t k = 0; k < *n; k++)
		if (strcmp((*names)[k], name) == 0) {
			if ((*todos)[k] < todo)
				(*todos)[k] = todo;
			return;
		}
	*names = xrealloc(*names, (*n + 1) * sizeof(**names));
	*todos = xrealloc(*todos, (*n + 1) * sizeof(**todos));
	(*names)[*n] = xstrdup(name);
	(*todos)[(*n)++] = todo;
}

/* Handle the marked folders of every dirty store. */
static int handle_dirty(struct store_watcher *w, char **error_r)
{
	int ret = 1;
	while (w->ndirty > 0) {
		struct store *store = w->dirty[--w->ndirty];
		store->watch_dirty = false;
		/* copies: the subscribers' callbacks may add folders */
		char **names = NULL;
		enum watch_todo *todos = NULL;
		size_t n = 0;
		for (size_t i = 0; i < store->nwatches; i++) {
			struct store_watch *e = store->watches[i];
			if (e->todo != TODO_NONE)
				add_name(&names, &todos, &n, e->folder, e->todo);
			e->todo = TODO_NONE;
		}
		for (size_t i = 0; i < n; i++) {
			char *error = NULL;
			if (check_folder(store, names[i], todos[i], &error) < 0)
				first_error(&ret, error_r, store, error);
			free(names[i]);
		}
		free(names);
		free(todos);
	}
	return ret;
}

int store_watcher_handle(struct store_watcher *w, char **error_r)
{
	if (w->fd < 0)
		return 1;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool overflow = false;
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event ev;
			memcpy(&ev, p, sizeof(ev));
			const char *name = ev.len > 0 ? p + sizeof(struct inotify_event) : "";
			p += sizeof(struct inotify_event) + ev.len;
			if (ev.mask & IN_Q_OVERFLOW) {
				overflow = true;
				continue;
			}
			bool found;
			size_t slot = wd_search(w, ev.wd, &found);
			if (!found)
				continue; /* a watch removed since */
			if (ev.mask & IN_IGNORED) {
				watch_gone(w, ev.wd);
				continue;
			}
			bool appeared = (ev.mask & (IN_CREATE | IN_MOVED_TO)) != 0;
			for (struct store_watch *e = w->wds[slot].first; e != NULL;
			     e = e->next_same) {
				/* a name the index knows (appeared) or no longer
				 * knows (went away) in cur/ is a postern change,
				 * already in the index: no rescan needed */
				bool own = !e->is_new && *name != '\0' &&
					   own_change(e->store, e->folder, name, appeared);
				mark(e, own ? TODO_REPORT : TODO_RESCAN);
			}
		}
	}
	if (overflow) {
		/* events were lost: look at every watched folder, by the
		 * directories' mtimes (polled folders are looked at anyway) */
		for (struct store *s = w->stores; s != NULL; s = s->watch_next)
			for (size_t i = 0; i < s->nwatches; i++)
				mark(s->watches[i], TODO_SCAN);
	}
	return handle_dirty(w, error_r);
}

int store_watch_poll(struct store *store, char **error_r)
{
	struct store_watcher *w = store->watcher;
	if (w == NULL || store->npolled == 0)
		return 1;
	/* copies: checking may change the list */
	size_t n = store->npolled;
	char **names = xcalloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = xstrdup(store->polled[i]);
	int ret = 1;
	for (size_t i = 0; i < n; i++) {
		/* room again (another store detached): watch it from now on,
		 * and look once more for what changed before the watch */
		if (w->fd >= 0 && w->nwds + 2 <= w->max_watches)
			store_watch_add_folder(store, names[i]);
		char *error = NULL;
		int r = check_folder(store, names[i], TODO_SCAN, &error);
		if (r < 0)
			first_error(&ret, error_r, store, error);
		else if (r == 0)
			polled_del(store, names[i]); /* the folder was deleted */
		free(names[i]);
	}
	free(names);
	return ret;
}

int store_watcher_poll(struct store_watcher *watcher, char **error_r)
{
	int ret = 1;
	for (struct store *s = watcher->stores; s != NULL; s = s->watch_next) {
		if (s->npolled == 0)
			continue;
		char *error = NULL;
		if (store_watch_poll(s, &error) < 0) {
			if (ret == 1)
				*error_r = error;
			else
				free(error);
			ret = -1;
		}
	}
	return ret;
}
